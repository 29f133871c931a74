"""Files that ship inside the package: the tables of ``meta/`` and the Hydra configs of ``conf/``.

In a checkout ``core/meta`` and ``sweep/conf`` are links to the top-level ``meta/`` and ``conf/``
folders; a wheel carries copies. Either way they are read through ``importlib.resources``, so an
installed package finds them from any working directory.
"""
from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path


def meta_file(name: str) -> Path:
    """Path of a shipped table, e.g. ``meta_file("charges.csv")``."""
    resource = files("core").joinpath("meta", name)
    with as_file(resource) as path:  # a real file for installs from a wheel or a checkout
        return Path(path)
