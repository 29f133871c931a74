"""The garbage collector in the shell's own processes: the command and Ray's workers.

CPython's full collections walk every object the collector tracks. Once pandas, pyarrow, numba (its
type registries), MLflow, SQLAlchemy, Ray and matplotlib are imported, that is a large heap that lives
as long as the process, and it is walked again at every full collection and once more when the
interpreter exits. ``gc.freeze`` moves what exists into the permanent generation, so later collections
walk only what the sweep makes from then on. Frozen objects are still freed by reference counting,
but a reference cycle among them is never collected. So only the shell freezes (the entry points and
the sweep's Ray tasks), at moments when what exists either lives until the process ends (modules,
Ray's and MLflow's clients) or is freed by reference counting (a built market: arrays and plain
records, no cycles). Library code (core) never does: in a notebook it would keep the user's cycles.

Measured on a 36-combination sweep of the bench year (warm cache, 2026-12-02, alternating runs):
see docs/sweeps.md, "Speed".
"""
from __future__ import annotations

import atexit
import gc

_frozen_at_exit = False


def freeze_what_exists() -> None:
    """Every object tracked now into the permanent generation: full collections skip it from now on."""
    gc.freeze()


def no_collection_at_exit() -> None:
    """Freeze when the interpreter exits, after the exit handlers registered later (they run first):
    the interpreter's final full collection then walks nothing (about 2 s after a sweep on a slow
    machine, 0.1-0.2 s with this). Once per process."""
    global _frozen_at_exit
    if not _frozen_at_exit:
        atexit.register(gc.freeze)
        _frozen_at_exit = True
