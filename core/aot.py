"""The compiled loops ahead of time: a process loads their machine code as an ordinary extension
module instead of starting numba.

numba's JIT keeps compiled code on disk, but loading it starts numba first: it imports and registers
its typing and lowering registries (about 250 modules), 0.13 s of a warm run's 0.3 s on this
project's bench machine, under the GIL, and again in every Ray worker. ``numba.pycc`` compiles the
same functions (the batch kernel's ``day_signals`` and ``day_exits``, core.kernel_loops, normalisation's
``file_seconds``, ``aggregate_rows`` and ``ist_instants``, core.ticks_loops, and the per-second cache's
``entry_columns``, core.cache_loops; each with the argument types of its one JIT variant, core.compiled)
into an extension module that imports in under a millisecond and needs no numba at run time. Like the
JIT loops (``nogil=True``), its functions release the GIL while they run, so a loader's file threads
still normalise files in parallel.

* Built once per checkout, numba, numpy, Python and machine (the key of the file name), into
  ``core/__pycache__`` beside numba's own cache: ``python -m core.aot``, which a process that had to
  load the JIT loops starts by itself, detached and at low priority, so the next process finds it.
  One builder at a time (a file lock); the module and the file of its argument types are renamed
  into place, the types first, so a half-built module is never loaded.
* Needs a C compiler and setuptools (numba.pycc). Without them, in a read-only install, or with
  ``ATMBURST_AOT=0``, the loops are numba's JIT ones, as before: the same machine code from the same
  source, so the same trades (tested).
* The module's wrappers do not check their arguments (a wrong dtype would read memory as another
  type), so every call is checked here first, as numba's dispatcher types it: each array argument a
  C-contiguous ndarray of the built dtype and number of dimensions, writable where the loop writes;
  each integer a Python or numpy int64 within int64's range, each float a Python or numpy float64.
  A call that does not match goes to the JIT loop instead, which compiles a variant for it.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

ENV = "ATMBURST_AOT"  # "0": numba's JIT loops only
EXPORTED = {"day_signals": "kernel_loops", "day_exits": "kernel_loops", "file_seconds": "ticks_loops",
            "aggregate_rows": "ticks_loops", "ist_instants": "ticks_loops",
            "entry_columns": "cache_loops"}  # loop -> its JIT module in core
FORMAT = 2  # of the module and its argument file: part of the key
HERE = Path(__file__).resolve().parent
# the loops, and the modules they take constants from (core.exits, core.ticks, core.cache)
SOURCES = ("kernel_loops.py", "exits.py", "ticks_loops.py", "ticks.py", "cache_loops.py", "cache.py")
SCALAR = 0  # the dimensions written for a scalar argument
INT64_RANGE = (-2 ** 63, 2 ** 63)


def enabled() -> bool:
    """Whether ahead-of-time loops may be used (``ATMBURST_AOT`` is not "0")."""
    return os.environ.get(ENV, "1").strip() != "0"


def module_name() -> str:
    """This checkout's module name: the loops' sources and numba's, numpy's, Python's and the machine's
    versions (read without importing numba)."""
    from importlib.metadata import version

    from .compiled import source_digest

    header = f"{FORMAT}|numba=={version('numba')}|numpy=={np.__version__}|{sys.version}|{platform.machine()}"
    return f"atmburst_loops_{source_digest(header, [(name, HERE / name) for name in SOURCES])[:24]}"


def _stem(path: Path) -> str:
    """The module's name: its file name without the extension suffix (which has dots of its own)."""
    return path.name.split(".")[0]


def module_paths(folder: Path | None = None) -> tuple[Path, Path]:
    """(the extension module, the json of its argument types) in ``folder`` (default core/__pycache__)."""
    folder = Path(folder) if folder is not None else HERE / "__pycache__"
    name = module_name()
    return folder / f"{name}{importlib.machinery.EXTENSION_SUFFIXES[0]}", folder / f"{name}.json"


class AheadOfTimeLoops:
    """The loops of a built module (``EXPORTED``), each call checked against the argument types it was
    built for (``argument_types``: per loop, [dtype name, dimensions (0: a scalar), written] per argument)."""

    def __init__(self, module, argument_types: dict, path: Path):
        self.path = path
        for name in EXPORTED:
            expected = tuple((np.dtype(dtype), int(ndim), bool(written)) for dtype, ndim, written in argument_types[name])
            setattr(self, name, _checked(getattr(module, name), expected, name))


def _scalar_matches(value, dtype: np.dtype) -> bool:
    """Whether numba's dispatcher would type the scalar ``value`` as the built int64 or float64."""
    if dtype == np.int64:
        return (type(value) is int and INT64_RANGE[0] <= value < INT64_RANGE[1]) or type(value) is np.int64
    return type(value) is float or type(value) is np.float64  # the build refuses other scalar types


def _checked(compiled, expected: tuple, name: str):
    """``compiled`` called only with arguments of the ``expected`` types (see the module's docstring); other
    calls go to the JIT loop. The arrays are checked inline: a day's kernel calls pass 57 of them."""
    n = len(expected)

    def call(*args):
        if len(args) == n:
            for value, (dtype, ndim, written) in zip(args, expected):
                if ndim == SCALAR:
                    if not _scalar_matches(value, dtype):
                        break
                    continue
                if type(value) is not np.ndarray or value.dtype != dtype or value.ndim != ndim:
                    break
                flags = value.flags
                if not flags.c_contiguous or (written and not flags.writeable):
                    break
            else:
                return compiled(*args)
        return getattr(jit_module(name), name)(*args)

    call.__name__ = name
    return call


def jit_module(name: str):
    """The module of numba's JIT loop ``name`` (core.kernel_loops, core.ticks_loops or core.cache_loops;
    importing it imports numba)."""
    return _core_module(EXPORTED[name])


def _core_module(module_name: str):
    return importlib.import_module(f"{__package__}.{module_name}")


_LOCK = threading.Lock()
_CHOSEN: list = []  # [the loops or None], decided once per process


def load(folder: Path | None = None) -> AheadOfTimeLoops | None:
    """The built module's loops from ``folder`` (default core/__pycache__), or None: not built, disabled,
    or not loadable (then the JIT loops serve)."""
    if not enabled():
        return None
    try:
        path, types_path = module_paths(folder)
        if not path.is_file():
            return None
        argument_types = json.loads(types_path.read_text())
        spec = importlib.util.spec_from_file_location(_stem(path), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return AheadOfTimeLoops(module, argument_types, path)
    except (OSError, ImportError, ValueError, KeyError, TypeError, AttributeError):
        return None


def loops() -> AheadOfTimeLoops | None:
    """``load()``, decided once per process: a process keeps the loops it started with."""
    with _LOCK:
        if not _CHOSEN:
            _CHOSEN.append(load())
        return _CHOSEN[0]


def load_or_warm(load_jit) -> None:
    """Nothing when the built module serves (``loops()``); else ``load_jit()`` (which compiles or loads
    numba's JIT loops by calling them), then a builder of the module in the background for the next
    process."""
    if loops() is not None:
        return
    load_jit()
    build_in_background()


def serving(jit_module_name: str):
    """What a step calls its loops on: the built module's loops when it is loaded (``loops()``), else the
    JIT module ``jit_module_name`` of core, imported on first use (numba costs a fraction of a second to
    start, which a command that stops on a config error should not pay)."""
    built = loops()
    if built is not None:
        return built
    return _core_module(jit_module_name)


def build(folder: Path | None = None) -> Path | None:
    """Compile the module into ``folder`` (default core/__pycache__) unless it is there; returns its path,
    or None when another process is building it. Pins this process to numba's JIT loops (they are what
    it compiles). Raises what numba.pycc raises (no C compiler, ...)."""
    import shutil
    import tempfile

    from filelock import FileLock, Timeout

    path, types_path = module_paths(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = FileLock(str(path.with_name(_stem(path) + ".lock")), timeout=0)
        lock.acquire()
    except Timeout:
        return None
    try:
        if path.is_file() and types_path.is_file():
            return path
        with _LOCK:
            _CHOSEN[:] = [None]  # this process's steps call numba's loops, so each compiles its one variant
        from .cache import atomic_write_bytes
        from .cache import load_jit_loops as load_encoder_jit_loop
        from .kernel import load_jit_loops
        from .ticks import load_jit_loops as load_normalisation_jit_loops

        load_jit_loops()  # each loop's one variant, with the argument types of every real call
        load_normalisation_jit_loops()
        load_encoder_jit_loop()
        scratch = Path(tempfile.mkdtemp(prefix=".aot-", dir=path.parent))
        try:
            built, argument_types = _compile(_stem(path), scratch)
            atomic_write_bytes(types_path, lambda fh: fh.write(json.dumps(argument_types).encode()))
            os.replace(built, path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return path
    finally:
        lock.release()


def _compile(name: str, scratch: Path) -> tuple[Path, dict]:
    """numba.pycc's module ``name`` of every exported loop's one JIT variant, built in ``scratch``, its
    functions releasing the GIL as the JIT loops do; returns (its file, the argument types to check)."""
    import warnings
    from unittest import mock

    import numba.pycc.compiler
    from numba import types
    from numba.core.compiler import Flags
    from numba.core.errors import NumbaPendingDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        from numba.pycc import CC

    class ReleasingGil(Flags):  # pycc compiles with default flags; its wrappers then keep the GIL
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    compiler = CC(name)
    compiler.output_dir = str(scratch)
    compiler.verbose = False
    argument_types = {}
    for loop in EXPORTED:
        dispatcher = getattr(jit_module(loop), loop)
        if not dispatcher.targetoptions.get("nogil"):
            raise TypeError(f"core.aot: {loop} is compiled without nogil=True; the module releases the GIL "
                            "in every loop, so mark it nogil")
        if len(dispatcher.nopython_signatures) != 1:  # core.compiled: one variant per loop
            raise TypeError(f"core.aot: {loop} has {len(dispatcher.nopython_signatures)} compiled variants "
                            "in this process, not one; build in a fresh process (python -m core.aot)")
        (signature,) = dispatcher.nopython_signatures
        argument_types[loop] = [_argument_type(loop, t, types) for t in signature.args]
        compiler.export(loop, signature)(dispatcher.py_func)
    with mock.patch.object(numba.pycc.compiler, "Flags", ReleasingGil):
        compiler.compile()
    (built,) = scratch.glob(f"{name}*")
    return built, argument_types


def _argument_type(loop: str, argument_type, types) -> list:
    """[dtype name, dimensions (0: a scalar), written] of one argument that calls can be checked against."""
    if isinstance(argument_type, types.Array) and argument_type.layout == "C":
        return [str(argument_type.dtype), argument_type.ndim, argument_type.mutable]
    if argument_type in (types.int64, types.float64):
        return [str(argument_type), SCALAR, False]
    raise TypeError(f"core.aot: {loop} takes a {argument_type}; only C-contiguous arrays, int64 and float64 "
                    "are checked before a call")


_STARTED: list = []  # the builder this process started (kept, so it is not collected while it runs)


def _failed_marker(path: Path) -> Path:
    return path.with_name(_stem(path) + ".failed")


def build_in_background() -> None:
    """Start ``python -m core.aot --quiet`` detached (at low priority, its output discarded), once per
    process, when ahead-of-time loops are enabled, not built, not failed to build before for this key
    (a note beside it: no C compiler, ...) and core/__pycache__ is writable."""
    if not enabled() or _STARTED:
        return
    _STARTED.append(None)
    try:
        path, _ = module_paths()
        folder = path.parent if path.parent.is_dir() else HERE
        if path.is_file() or _failed_marker(path).is_file() or not os.access(folder, os.W_OK):
            return
        _STARTED[0] = subprocess.Popen([sys.executable, "-m", "core.aot", "--quiet"], cwd=HERE.parent,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
    except (OSError, ValueError, ImportError):
        pass  # only a speed-up: the JIT loops serve


def main(argv: list[str] | None = None) -> int:
    """``python -m core.aot [--quiet] [--folder DIR]``: build this checkout's module (into DIR, default
    core/__pycache__). Exit status 0 when it is there (or another process is building it), 1 when it
    cannot be built: then a note beside it keeps later processes from starting builders in the
    background until this command succeeds."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m core.aot", description=main.__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="low priority, nothing printed (background builds)")
    parser.add_argument("--folder", type=Path, default=None, help="where to build (default core/__pycache__)")
    args = parser.parse_args(argv)
    if args.quiet:
        try:
            os.nice(10)
        except OSError:
            pass
    if not enabled():
        print(f"core.aot: {ENV}=0, nothing built", file=sys.stderr)
        return 0
    failed = _failed_marker(module_paths(args.folder)[0])
    try:
        built = build(args.folder)
    except Exception as error:  # no C compiler, no setuptools, ...: the JIT loops serve
        message = f"core.aot: not built ({type(error).__name__}: {error}); numba's JIT loops serve"
        try:
            from .cache import atomic_write_bytes

            atomic_write_bytes(failed, lambda fh: fh.write(message.encode() + b"\n"))
        except OSError:
            pass
        if not args.quiet:
            print(message, file=sys.stderr)
        return 1
    failed.unlink(missing_ok=True)
    if not args.quiet:
        print(f"core.aot: {built}" if built is not None else "core.aot: another process is building it")
    return 0


if __name__ == "__main__":
    from core import aot  # run as core.aot, not __main__: the steps consult core.aot's choice of loops

    sys.exit(aot.main())
