"""Hyperparameter sweeps: an Optuna study the daemon owns, whose trials are ordinary jobs."""
