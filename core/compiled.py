"""How the steps hand arrays to their compiled loops (numba: core.ticks_loops, core.kernel_loops).

numba compiles a loop once per combination of argument types, and an array's type includes whether it
is writable. The same step sees both kinds: a market from Ray's object store is read-only, one built or
read from the cache in this process is writable; a price column read zero-copy from a file is read-only,
one that was cast, filled or reordered is writable. Each variant costs seconds to compile in a fresh
checkout and its own load from numba's cache, so the steps pass read-only views (``read_only``) and
every loop has one variant.
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path

import numpy as np


def read_only(values: np.ndarray) -> np.ndarray:
    """A read-only view of ``values`` (no copy)."""
    view = values.view()
    view.setflags(write=False)
    return view


# -- whether this checkout's loops are in numba's on-disk cache ------------------------------------
LOOP_MODULES = ("kernel_loops", "ticks_loops")


def _loops_key() -> str:
    """This checkout's compiled loops as numba caches them: the loop modules' paths and sources, and
    numba's and Python's versions (read without importing numba)."""
    from importlib.metadata import version

    paths = [Path(__file__).with_name(f"{name}.py") for name in LOOP_MODULES]
    return source_digest(f"numba=={version('numba')}|{sys.version}", [(str(path), path) for path in paths])[:32]


def source_digest(header: str, files: list[tuple[str, Path]]) -> str:
    """The sha256 (hex) of ``header`` and of each (label, file)'s label and bytes: a key of compiled code."""
    digest = hashlib.sha256(header.encode())
    for label, path in files:
        digest.update(label.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _marker(cache_dir: Path) -> Path:
    return Path(cache_dir) / "compiled" / f"loops-{_loops_key()}.done"


def loops_compiled_before(cache_dir: Path | None) -> bool:
    """Whether a command with this cache folder has compiled or loaded this checkout's loops
    (``mark_loops_compiled``) and numba's cache files of both loop modules are still beside them: then a
    worker loads them from numba's cache and nobody needs to compile them first. False whenever it cannot
    tell (no cache folder, numba's cache elsewhere through NUMBA_CACHE_DIR, files gone)."""
    if cache_dir is None or os.environ.get("NUMBA_CACHE_DIR"):
        return False
    try:
        if not _marker(cache_dir).is_file():
            return False
        cached = Path(__file__).with_name("__pycache__")
        return all(any(cached.glob(f"{name}.*.nbi")) for name in LOOP_MODULES)
    except (OSError, ValueError, ImportError):  # ImportError: numba's package metadata missing
        return False


def mark_loops_compiled(cache_dir: Path | None) -> None:
    """Note in the cache folder that this checkout's loops are in numba's cache (after loading them)."""
    if cache_dir is None:
        return
    from .cache import atomic_write_bytes

    try:
        atomic_write_bytes(_marker(cache_dir), lambda fh: fh.write(b"compiled\n"))
    except (OSError, ImportError):
        pass  # only a speed-up: the next command loads the loops first again


# -- numba's start without its BLAS probe -----------------------------------------------------------
class _RefuseScipy:
    """An import finder that makes scipy unimportable for one thread while it is set to."""

    def __init__(self):
        self.thread = None  # the refused thread's ident, or None

    def find_spec(self, name, path=None, target=None):
        if self.thread is not None and threading.get_ident() == self.thread and (
                name == "scipy" or name.startswith("scipy.")):
            raise ImportError(f"{name}: not imported while numba loads its registries (core.compiled)")
        return None


_REFUSE_SCIPY = _RefuseScipy()
_REFUSING = threading.Lock()  # one thread at a time sets the finder


def import_numba_without_blas_probe() -> None:
    """Import ``numba.np.arraymath`` (one of the registries numba loads on the first call of any compiled
    function) without the BLAS probe it runs at import: an import of scipy and scipy.linalg, 0.13-0.5 s
    under the GIL on this machine, which only selects the inner product of numba's ``np.correlate`` and
    ``np.convolve`` (a BLAS dot or a plain loop). atmburst's loops call neither; a user's numba code in the
    same process gets the plain loop for those two (numba's own fallback when scipy is absent), and every
    other linear-algebra function still finds the BLAS. Only the calling thread is refused scipy,
    and only during this import: a thread importing scipy meanwhile is not affected. The finder stays in
    ``sys.meta_path``, inert, since taking a finder out while another thread walks the list can make that
    thread skip the next one. Does nothing once arraymath or scipy.linalg is imported (then the probe
    costs nothing)."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    with _REFUSING:
        if _REFUSE_SCIPY not in sys.meta_path:
            sys.meta_path.insert(0, _REFUSE_SCIPY)
        _REFUSE_SCIPY.thread = threading.get_ident()
        try:
            import numba.np.arraymath  # noqa: F401
        finally:
            _REFUSE_SCIPY.thread = None
