"""On-disk cache of per-second aggregates, one entry per tick file.

An entry is keyed by the file's absolute path, size and modification time, the naive
timezone used to read it, and GRID_VERSION; any change makes a new key. Entries are
written to a temporary file and renamed into place, so readers see a whole entry or
none, and two processes building the same entry both leave a valid file. Files that
failed to load are cached as failures too, so a warm run opens no tick file at all.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .grid import GRID_VERSION
from .ticks import DAY_KINDS, Seconds, TickFileError, load_seconds

_ARRAYS = ("second", "volume", "ticks", "close", "close_ns", "day_counts_days", "day_counts")


def cache_key(path: str, kind: str, naive_timezone: str) -> str | None:
    """Hex key of a tick file's current version, or None if the file does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    ident = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{kind}|{naive_timezone}|v{GRID_VERSION}"
    return hashlib.sha256(ident.encode()).hexdigest()[:40]


def entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npz"


def atomic_write_bytes(target: Path, write) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``target``, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _save(target: Path, seconds: Seconds | None, error: TickFileError | None) -> None:
    meta = {"grid_version": GRID_VERSION, "day_kinds": list(DAY_KINDS)}
    arrays = {}
    if error is not None:
        meta["error"] = {"kind": error.kind, "message": str(error)}
    else:
        meta["file_counts"] = seconds.file_counts
        arrays = {name: getattr(seconds, name) for name in _ARRAYS}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write_bytes(target, lambda fh: np.savez(fh, **arrays))


def _load(target: Path) -> Seconds | TickFileError:
    with np.load(target, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        if meta.get("grid_version") != GRID_VERSION or meta.get("day_kinds") != list(DAY_KINDS):
            raise ValueError("cache entry from another engine version")
        if "error" in meta:
            return TickFileError(meta["error"]["kind"], meta["error"]["message"])
        arrays = {name: z[name] for name in _ARRAYS}
    return Seconds(file_counts=meta["file_counts"], **arrays)


def cached_load(path: str, kind: str, naive_timezone: str, cache_dir: Path | None,
                warn=None) -> tuple[Seconds, bool]:
    """Per-second aggregates of ``path`` and whether they came from the cache.

    Raises TickFileError for a file that cannot be used (also when that failure is cached).
    ``warn(message)`` is told when an unreadable entry is rebuilt.
    """
    key = cache_key(path, kind, naive_timezone) if cache_dir is not None else None
    if key is None:
        return load_seconds(path, kind, naive_timezone), False
    target = entry_path(cache_dir, key)
    if target.exists():
        try:
            got = _load(target)
        except Exception as exc:  # truncated, foreign or corrupt entry: rebuild it
            if warn:
                warn(f"cache entry {target} for {path} was unreadable ({type(exc).__name__}); rebuilt it")
        else:
            if isinstance(got, TickFileError):
                raise got
            return got, True
    try:
        seconds = load_seconds(path, kind, naive_timezone)
    except TickFileError as exc:
        _save(target, None, exc)
        raise
    _save(target, seconds, None)
    return seconds, False
