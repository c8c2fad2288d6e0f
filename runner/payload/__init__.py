"""What runs outside the daemon, standard library only: the job's supervisor and a Ray node's agent. Nothing imports it: it is run by path."""
