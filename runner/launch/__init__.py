"""Where a job's command runs and how it ends: on this machine (`local`) or on a Ray cluster (`ray`); the devices it gets."""
