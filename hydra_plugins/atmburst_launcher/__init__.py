"""Hydra launcher plugin of atmburst: `-m` sweeps fan out with Ray (see sweep/runner.py)."""
