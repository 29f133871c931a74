"""atmburst shell: the Hydra app (sweep/main.py) and the sweep runner over the core engine."""
