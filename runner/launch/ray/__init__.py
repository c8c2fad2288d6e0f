"""Ray as a launcher: the job submission API client, a submitted job as a child, the backend that plans a node's job and its files."""
