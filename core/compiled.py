"""How the steps hand arrays to their compiled loops (numba: core.ticks_loops, core.kernel_loops).

numba compiles a loop once per combination of argument types, and an array's type includes whether it
is writable. The same step sees both kinds: a market from Ray's object store is read-only, one built or
read from the cache in this process is writable; a price column read zero-copy from a file is read-only,
one that was cast, filled or reordered is writable. Each variant costs seconds to compile in a fresh
checkout and its own load from numba's cache, so the steps pass read-only views (``read_only``) and
every loop has one variant.
"""
from __future__ import annotations

import numpy as np


def read_only(values: np.ndarray) -> np.ndarray:
    """A read-only view of ``values`` (no copy)."""
    view = values.view()
    view.setflags(write=False)
    return view
