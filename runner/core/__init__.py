"""The daemon's core: the job store, the scheduler, a job's execution, reports, tracking and GC; it runs jobs through `runner.launch`."""
