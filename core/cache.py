"""On-disk cache of per-second aggregates: one file per tick file version, holding the file's index
and one entry per IST day that some run needed.

Files are keyed by the tick file's absolute path, size and modification time, the naive
timezone used to read it, GRID_VERSION and the cache format: any change makes a new key.
A cache file holds the index (the days the tick file has ticks on and its file-level counts, or
the reason its content cannot be used) and the day entries built so far; a run that needs a day
not yet in it reads the tick file once and writes the file again with the new days added.
One file per tick file rather than one per (file, day): creating a file costs about half a
millisecond of system time on the ext4 disk measured, more than writing its bytes.

Every cache file is sealed with a CRC-32 checksum and the length of its bytes, verified on each read: a
truncated, damaged or foreign file is rebuilt from the tick file with a warning
(``cache_rebuilt``). Everything is written to a temporary file and renamed into place, so a
reader sees a whole file or none, and two processes building the same file both leave a valid
one. Files and folders are created with the permissions the umask allows (readable by the
group and others under the usual 022/002), so one cache can serve a team or a cluster. The cache
is only a speed-up: a folder that cannot be written is skipped with one warning
(``cache_unwritable``) and the run goes on. Read errors that may pass (permission, I/O) are never
cached; only failures that are properties of the file's content are. A warm run opens no tick file.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .grid import GRID_VERSION
from .ticks import Seconds, TickFileError, days_seconds, load_rows

# Entry layout: MAGIC, uint32 header length, JSON header (padded to 8 bytes), then the day's
# rows as float64 close, volume (float32 when that is exact, else float64), int32 second of day,
# int32 ticks, and (only for files whose prices may need merging, i.e. spot) int32 ns into the second.
# The whole is sealed: SEAL + uint64 length + uint32 CRC-32 of what follows + the bytes. CRC-32 finds
# truncation, torn writes and flipped bits (any burst of up to 32 bits, anything else with probability
# 1 - 2^-32) at about four times the speed of BLAKE2b: the cache guards against damage, not forgery.
MAGIC = b"ATMBSEC1"
SEAL = b"ATMBCRC1"
HEAD = len(SEAL) + 8 + 4
# A cache file: FILE_MAGIC, uint32 header length, JSON header (grid version, days, file counts, and
# each stored day's [offset, length] in the body; or the file's error), padded to 8 bytes, then the
# body: the day entries above, each padded to 8 bytes. The whole is sealed like an entry.
FILE_MAGIC = b"ATMBSFL1"
CACHE_FORMAT = 4  # part of every key: files of older formats are simply not found


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_current_umask()


@dataclass(frozen=True)
class FileIndex:
    """What one tick file holds: the IST days with ticks, and rows that belong to no day."""

    days: frozenset[int]
    file_counts: dict


def cache_key(path: str, kind: str, naive_timezone: str) -> str | None:
    """Hex key of a tick file's current version, or None if the file does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    ident = (f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{kind}|{naive_timezone}|v{GRID_VERSION}"
             f"|f{CACHE_FORMAT}")
    return hashlib.sha256(ident.encode()).hexdigest()[:40]


_FOLDERS_MADE: set[str] = set()


def atomic_write_bytes(target: Path, write: Callable) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``target``, then rename it into place.

    The file gets the mode the umask allows (as ``open`` would give), not mkstemp's 0600.
    """
    target = Path(target)
    folder = str(target.parent)
    if folder not in _FOLDERS_MADE:  # a tick file's entries share one folder: made once per process
        target.parent.mkdir(parents=True, exist_ok=True)
        _FOLDERS_MADE.add(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except FileNotFoundError:  # the folder was removed since (a cache cleared while a run goes on)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def seal(data: bytes) -> bytes:
    """``data`` with a checksum in front (see SEAL)."""
    return SEAL + struct.pack("<QI", len(data), zlib.crc32(data)) + data


def seal_parts(parts: list) -> list:
    """The bytes of ``seal(b"".join(parts))`` as a list of parts, without joining them."""
    crc, length = 0, 0
    for part in parts:
        crc = zlib.crc32(part, crc)
        length += len(part)
    return [SEAL + struct.pack("<QI", length, crc), *parts]


def unseal_view(sealed: bytes | bytearray) -> memoryview:
    """A view of the data of a sealed blob (no copy); ValueError if it is truncated, damaged or not sealed."""
    if len(sealed) < HEAD or bytes(sealed[:len(SEAL)]) != SEAL:
        raise ValueError("not a sealed cache file")
    length, crc = struct.unpack_from("<QI", sealed, len(SEAL))
    data = memoryview(sealed)[HEAD:]
    if len(data) != length:
        raise ValueError("truncated cache file")
    if zlib.crc32(data) != crc:
        raise ValueError("checksum mismatch (damaged cache file)")
    return data


def unseal(sealed: bytes) -> bytes:
    """The data of a sealed blob; ValueError if it is truncated, damaged or not sealed."""
    return bytes(unseal_view(sealed))


def read_into_buffer(path: Path) -> bytearray:
    """A file's whole content in a writable buffer (arrays viewing it are writable); OSError as ``open``."""
    with open(path, "rb") as fh:
        buffer = bytearray(os.fstat(fh.fileno()).st_size)
        if fh.readinto(buffer) != len(buffer):
            raise OSError(f"{path} changed while it was read")
    return buffer


def encode_entry(seconds: Seconds, day: int, with_sub_ns: bool = True) -> bytes:
    """One day's aggregates as bytes (see MAGIC for the layout)."""
    volume = seconds.volume.astype(np.float64)
    small = volume.astype(np.float32)
    vol_type = "f4" if np.array_equal(small.astype(np.float64), volume) else "f8"
    header = json.dumps({"n": len(seconds.second), "counts": seconds.counts, "volume": vol_type,
                         "sub_ns": with_sub_ns}).encode()
    header += b" " * (-(len(MAGIC) + 4 + len(header)) % 8)
    base = np.int64(day) * 86_400
    parts = [MAGIC, np.uint32(len(header)).tobytes(), header, seconds.close.astype(np.float64).tobytes(),
             (small if vol_type == "f4" else volume).tobytes(),
             (seconds.second - base).astype(np.int32).tobytes(), seconds.ticks.astype(np.int32).tobytes()]
    if with_sub_ns:
        sub_ns = np.where(seconds.close_ns < 0, -1, seconds.close_ns - seconds.second * 1_000_000_000)
        parts.append(sub_ns.astype(np.int32).tobytes())
    return b"".join(parts)


def encode_file(meta: dict, entries: dict) -> list:
    """A cache file's parts (see FILE_MAGIC): ``meta`` and the encoded day entries."""
    spans, body, offset = {}, [], 0
    for day in sorted(entries):
        data = entries[day]
        spans[str(day)] = [offset, len(data)]
        body.append(data)
        pad = -len(data) % 8
        if pad:
            body.append(b"\0" * pad)
        offset += len(data) + pad
    header = json.dumps({**meta, "entries": spans}).encode()
    header += b" " * (-(len(FILE_MAGIC) + 4 + len(header)) % 8)
    return [FILE_MAGIC, struct.pack("<I", len(header)), header, *body]


def decode_file(data: memoryview) -> tuple[dict, dict[int, memoryview]]:
    """Inverse of encode_file: (meta, {day: encoded entry, a view of ``data``}); ValueError on a
    truncated or foreign file."""
    if bytes(data[:len(FILE_MAGIC)]) != FILE_MAGIC:
        raise ValueError("not a per-second cache file")
    start = len(FILE_MAGIC) + 4
    (hlen,) = struct.unpack_from("<I", data, len(FILE_MAGIC))
    meta = json.loads(bytes(data[start:start + hlen]))
    body = data[start + hlen:]
    entries = {}
    for day, (offset, length) in meta.pop("entries", {}).items():
        if offset < 0 or offset + length > len(body):
            raise ValueError("truncated per-second cache file")
        entries[int(day)] = body[offset:offset + length]
    return meta, entries


def decode_entry(data: bytes | memoryview, day: int) -> Seconds:
    """Inverse of encode_entry; raises ValueError on a truncated or foreign entry."""
    if bytes(data[:len(MAGIC)]) != MAGIC:
        raise ValueError("not a seconds cache entry")
    start = len(MAGIC) + 4
    hlen = int(np.frombuffer(data, np.uint32, 1, len(MAGIC))[0])
    header = json.loads(bytes(data[start:start + hlen]))
    n, off = int(header["n"]), start + hlen
    vol_size = 4 if header["volume"] == "f4" else 8
    row = 8 + vol_size + 8 + (4 if header["sub_ns"] else 0)
    if len(data) != off + n * row:
        raise ValueError("truncated seconds cache entry")
    close = np.frombuffer(data, np.float64, n, off)
    off += 8 * n
    volume = np.frombuffer(data, np.float32 if vol_size == 4 else np.float64, n, off).astype(np.float64)
    off += vol_size * n
    second = np.frombuffer(data, np.int32, n, off).astype(np.int64) + np.int64(day) * 86_400
    ticks = np.frombuffer(data, np.int32, n, off + 4 * n).astype(np.int64)
    if header["sub_ns"]:
        sub_ns = np.frombuffer(data, np.int32, n, off + 8 * n).astype(np.int64)
        close_ns = np.where(sub_ns < 0, -1, second * 1_000_000_000 + sub_ns)
    else:
        close_ns = np.where(np.isnan(close), -1, second * 1_000_000_000)
    return Seconds(second, volume, ticks, close, close_ns, dict(header["counts"]))


class TickCache:
    """Loads tick files as per-day per-second aggregates, through the cache when it has one."""

    def __init__(self, cache_dir: Path | None, naive_timezone: str,
                 warn: Callable[[str, str], None] | None = None, use_threads: bool = True):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.naive_timezone = naive_timezone
        self.warn = warn or (lambda kind, message: None)  # (health kind, message)
        self.use_threads = use_threads  # let pyarrow decode a file on several threads
        self.writable = True  # set to False by the first write that fails

    def _target(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.sec"

    def load(self, path: str, kind: str, days: Iterable[int] | None = None, cache_only: bool = False
             ) -> tuple[FileIndex, dict[int, Seconds], bool] | None:
        """(index, {day: aggregates} for the wanted days that have ticks, served wholly from cache?).

        ``days`` None means every day of the file. Raises TickFileError for a file that cannot
        be used (also when that failure is cached). With ``cache_only``, returns None instead of
        reading the file when the cache cannot answer.
        """
        key = cache_key(path, kind, self.naive_timezone) if self.cache_dir is not None else None
        stored: dict[int, memoryview] = {}
        if key is not None:
            found = self._read_file(key, path)
            if found is not None:
                index, stored = found
                wanted = sorted(index.days if days is None else set(days) & index.days)
                if all(day in stored for day in wanted):
                    got = self._decode(key, path, stored, wanted)
                    if got is not None:
                        return index, got, True
                    stored = {}
        if cache_only:
            return None
        try:
            rows = load_rows(path, kind, self.naive_timezone, self.use_threads)
        except TickFileError as exc:
            if key is not None and not exc.transient:  # a passing read error is retried next run
                self._write(key, encode_file({"error": {"kind": exc.kind, "message": str(exc)}}, {}))
            raise
        all_days = frozenset(int(d) for d in rows.days())
        index = FileIndex(all_days, rows.file_counts)
        wanted = sorted(all_days if days is None else set(days) & all_days)
        got = days_seconds(rows, wanted)
        if key is not None:  # the days stored before stay stored, beside the new ones
            entries = {day: data for day, data in stored.items() if day in all_days}
            entries.update({day: encode_entry(seconds, day, with_sub_ns=(kind != "option"))
                            for day, seconds in got.items() if day not in entries})
            self._write(key, encode_file({"grid_version": GRID_VERSION, "days": sorted(all_days),
                                          "file_counts": rows.file_counts}, entries))
        return index, got, False

    # -- files ---------------------------------------------------------------------------
    def _read_file(self, key: str, path: str) -> tuple[FileIndex, dict[int, memoryview]] | None:
        """The index and encoded day entries of a tick file's cache file; None (with a warning if it
        exists) when unusable; raises TickFileError when the file's failure is what is cached."""
        target = self._target(key)
        try:
            buffer = read_into_buffer(target)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.warn("cache_rebuilt", f"cache file {target} for {path} could not be read ({exc.strerror or exc}); "
                      "rebuilt it")
            return None
        try:
            meta, entries = decode_file(unseal_view(buffer))
            if "error" not in meta:
                if meta.get("grid_version") != GRID_VERSION:
                    raise ValueError("file from another engine version")
                index = FileIndex(frozenset(int(d) for d in meta["days"]), dict(meta["file_counts"]))
        except Exception as exc:
            self.warn("cache_rebuilt", f"cache file {target} for {path} was unusable ({_why(exc)}); rebuilt it")
            return None
        if "error" in meta:
            raise TickFileError(meta["error"]["kind"], meta["error"]["message"])
        return index, entries

    def _decode(self, key: str, path: str, stored: dict[int, memoryview], days: list[int]) -> dict[int, Seconds] | None:
        try:
            return {day: decode_entry(stored[day], day) for day in days}
        except Exception as exc:
            self.warn("cache_rebuilt", f"cache file {self._target(key)} for {path} was unusable ({_why(exc)}); "
                      "rebuilt it")
            return None

    def _write(self, key: str, parts: list) -> None:
        """Write one cache file; the first failure turns writing off for this run, with one warning."""
        if not self.writable:
            return
        sealed = seal_parts(parts)
        try:
            atomic_write_bytes(self._target(key), lambda fh: fh.writelines(sealed))
        except OSError as exc:
            if self.writable:
                self.writable = False
                self.warn("cache_unwritable", f"the per-second cache {self.cache_dir} cannot be written "
                          f"({exc.strerror or exc}); this run goes on without caching (free space or fix "
                          f"the folder's permissions, or set cache_dir=null)")


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ValueError) and str(exc) else type(exc).__name__
