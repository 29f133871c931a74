"""The Hydra config groups of atmburst (shipped inside the package as ``sweep.conf``)."""
