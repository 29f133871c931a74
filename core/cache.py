"""On-disk cache of per-second aggregates: one file per folder of tick files, holding for each tick
file version read from that folder its index and one entry per IST day that some run needed.

A cache file is keyed by the folder's absolute path, the kind of its files (option or spot), the
naive timezone used to read them, GRID_VERSION and the cache format. Inside, each tick file's part is
keyed by the file's absolute path, size and modification time: a changed file gets a new part (and
its old part is dropped when the cache file is next written). A part holds the index (the days the
tick file has ticks on and its file-level counts, or the reason its content cannot be used) and the
day entries built so far. A run reads each folder's cache file once; the tick files or days it does
not hold are read from the tick files, and the cache file is written again once per batch of files
with what it held and the new parts. One file per folder rather than one per tick file (format 4) or
per (tick file, day) (format 3): creating a file costs about half a millisecond of system time on the
ext4 disk measured, more than writing its bytes, and a cold year of the packed layout read 1,997 tick
files from 359 folders.

Every cache file is sealed with a CRC-32 checksum and the length of its bytes, verified on each read: a
truncated, damaged or foreign file is rebuilt from the tick files with a warning
(``cache_rebuilt``). Everything is written to a temporary file and renamed into place, so a
reader sees a whole file or none. Before writing a folder's file a run adds what another process
(a Ray task of another date chunk) wrote to it since the run read it; two writers that cross between
that read and the rename both leave a valid file, and the parts only the other had are built again by
a later run. Files and folders are created with the permissions the umask allows (readable by the
group and others under the usual 022/002), so one cache can serve a team or a cluster. A TickCache
given a BackgroundWriter writes on the writer's thread, in order, and waits for a folder's pending
write before reading that folder's file again. The cache is only a speed-up: a folder that cannot be
written is skipped with one warning (``cache_unwritable``) and the run goes on. Read errors that may
pass (permission, I/O) are never cached; only failures that are properties
of the file's content are. A warm run opens no tick file.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import struct
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from zlib_ng.zlib_ng import crc32

from .compiled import read_only
from .grid import GRID_VERSION
from .ticks import Seconds, TickFileError, load_file_days

# Entry layout: MAGIC, uint32 header length, JSON header (padded to 8 bytes), then the day's rows
# column by column, each column padded to 8 bytes and stored in the narrowest type that gives back
# every value bit for bit (the header names each column's type): close (int32 price in 1/20 or 1/100
# of a rupee, NO_PRICE for NaN, else float64), volume (uint8/uint16/uint32/float32, else float64),
# second (uint16/int32 seconds after the header's first second), ticks (uint8/uint16/int32), and (only
# for files whose prices may need merging, i.e. spot) int32 ns into the second. A cold year's 3,781
# entries (option and spot) hold 21.9 M rows in 0.21 GB instead of the 0.46 GB of format 5's
# float64/float32/int32 columns; see docs/engine.md.
# The whole is sealed: SEAL + uint64 length + uint32 CRC-32 of what follows + the bytes. CRC-32 finds
# truncation, torn writes and flipped bits (any burst of up to 32 bits, anything else with probability
# 1 - 2^-32): the cache guards against damage, not forgery. zlib-ng computes it (the same values as the
# standard library's zlib.crc32, so files of either stay valid) at 25-29 GB/s on the bench machine against
# zlib's 3.4 GB/s, and without the GIL.
MAGIC = b"ATMBSEC1"
SEAL = b"ATMBCRC1"
HEAD = len(SEAL) + 8 + 4
# A cache file: FILE_MAGIC, uint32 header length, JSON header (grid version, and for each tick file
# part its path, days, file counts and each stored day's [offset, length] in the body, or the file's
# error), padded to 8 bytes, then the body: the day entries above, each padded to 8 bytes. The whole
# is sealed like an entry.
FILE_MAGIC = b"ATMBPCK1"
CACHE_FORMAT = 6  # part of every key: files of older formats are simply not found




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


def open_temp_beside(target: Path) -> tuple[int, Path]:
    """(descriptor, path) of a new hidden temp file beside ``target``, open for writing. O_EXCL, so
    never another writer's file; the mode the umask allows, as ``open`` gives (not mkstemp's 0600)."""
    while True:
        temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), temp
        except FileExistsError:
            continue


def atomic_write_bytes(target: Path, write: Callable) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``target`` (``open_temp_beside``), then rename it
    into place."""
    target = Path(target)
    folder = str(target.parent)
    if folder not in _FOLDERS_MADE:  # a tick file's entries share one folder: made once per process
        target.parent.mkdir(parents=True, exist_ok=True)
        _FOLDERS_MADE.add(folder)
    try:
        fd, tmp = open_temp_beside(target)
    except FileNotFoundError:  # the folder was removed since (a cache cleared while a run goes on)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = open_temp_beside(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


WriteWarning = tuple[str, str] | None  # (health kind, message) that a cache write leaves, if any


class BackgroundWriter:
    """Runs cache writes on one thread of their own, in the order they are handed over, while the run
    goes on reading and building (writing a cold year's caches is mostly the kernel copying bytes into
    the page cache, about a fifth of the run, which a core left idle by the main thread can do).

    Each write is a job that returns the warning it leaves, if any. Warnings are handed to the job's
    ``warn`` on the calling thread, in the jobs' order, when a job is collected: when the bytes waiting
    to be written would pass ``limit_bytes`` (which bounds the memory they hold), when ``wait_for`` a
    target, and at ``close``. When that happens depends only on the jobs' sizes, so a run's health is the
    same however the threads are timed. An exception other than a warning is raised where its job is
    collected."""

    def __init__(self, limit_bytes: int = 64 << 20):
        self.limit_bytes = limit_bytes
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="atmburst-cache-writer")
        self._pending: deque[tuple[Future, int, Path, Callable]] = deque()
        self._bytes = 0

    def submit(self, target: Path, size: int, job: Callable[[], WriteWarning], warn: Callable[[str, str], None]) -> None:
        """Write ``target`` (about ``size`` bytes) with ``job`` on the writer's thread."""
        while self._pending and self._bytes + size > self.limit_bytes:
            self._collect()
        self._pending.append((self._pool.submit(job), size, Path(target), warn))
        self._bytes += size

    def wait_for(self, target: Path) -> None:
        """Return once every write of ``target`` handed over so far is done (before reading it again)."""
        target = Path(target)
        last = max((i for i, pending in enumerate(self._pending) if pending[2] == target), default=-1)
        for _ in range(last + 1):
            self._collect()

    def close(self) -> None:
        """Wait for every write, hand over their warnings, and stop the thread."""
        try:
            while self._pending:
                self._collect()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _collect(self) -> None:
        future, size, _, warn = self._pending.popleft()
        self._bytes -= size
        warning = future.result()
        if warning is not None:
            warn(*warning)


def seal(data: bytes) -> bytes:
    """``data`` with a checksum in front (see SEAL)."""
    return SEAL + struct.pack("<QI", len(data), crc32(data)) + data


def seal_parts(parts: list) -> list:
    """The bytes of ``seal(b"".join(parts))`` as a list of parts, without joining them."""
    crc, length = 0, 0
    for part in parts:
        crc = crc32(part, crc)
        length += len(part)
    return [SEAL + struct.pack("<QI", length, crc), *parts]


def unseal_view(sealed: bytes | bytearray | np.ndarray) -> memoryview:
    """A view of the data of a sealed blob (no copy); ValueError if it is truncated, damaged or not sealed."""
    if len(sealed) < HEAD or bytes(sealed[:len(SEAL)]) != SEAL:
        raise ValueError("not a sealed cache file")
    length, crc = struct.unpack_from("<QI", sealed, len(SEAL))
    data = memoryview(sealed)[HEAD:]
    if len(data) != length:
        raise ValueError("truncated cache file")
    if crc32(data) != crc:
        raise ValueError("checksum mismatch (damaged cache file)")
    return data


def unseal(sealed: bytes) -> bytes:
    """The data of a sealed blob; ValueError if it is truncated, damaged or not sealed."""
    return bytes(unseal_view(sealed))


class BufferPool:
    """Byte buffers for cache reads that are used again once nothing views them any more.

    A warm year reads about 0.3 GB of market cache, a few megabytes per file, and keeps each file's
    bytes only until its days are evaluated. Reading every file into new memory makes the process fault
    in 0.3 GB of fresh pages (and where a virtual machine hands freed memory back to its host, each of
    those faults costs the host's time too: bench/RESULTS.md, "Fresh memory"). The pool instead hands
    out a view of a block it keeps; when the last array viewing that view is gone (Python's reference
    count, via weakref.finalize), the block goes back to the pool, so a warm year reads into about
    eighty megabytes of blocks used over and over. A block is never handed out while anything still
    views it. At most ``keep_bytes`` of idle blocks are kept; the rest are freed.

    No lock (a block can come back from a finalizer on any thread, even in the middle of ``take``): the
    idle blocks are only iterated as copies of their dict (dict.copy runs without calling back into
    Python), and taking one is ``dict.pop``, atomic under the GIL; a block given back while a take
    looks is simply not seen by that take, which then makes a new block."""

    ROUND = 1 << 20  # blocks are made in whole MiB, so files of similar sizes share them

    def __init__(self, keep_bytes: int):
        self.keep_bytes = keep_bytes
        self._idle: dict[int, np.ndarray] = {}  # id(block) -> block

    def take(self, size: int, offset: int = 0) -> np.ndarray:
        """A writable uint8 array of ``size`` bytes (contents undefined) starting ``offset`` bytes into an
        idle block at most twice as big as needed (plus a MiB), or into a new one (blocks start 16-byte
        aligned, as numpy allocates them)."""
        end = size + offset
        fitting = [(len(block), key) for key, block in self._idle.copy().items()
                   if end <= len(block) <= 2 * end + self.ROUND]
        block = None
        for _, key in sorted(fitting):
            block = self._idle.pop(key, None)  # None: another thread took it meanwhile
            if block is not None:
                break
        if block is None:
            block = np.empty(end + (-end % self.ROUND), np.uint8)
        view = block[offset:end]
        weakref.finalize(view, self._give_back, block).atexit = False
        return view

    def _give_back(self, block: np.ndarray) -> None:
        self._idle[id(block)] = block
        idle = sorted(self._idle.copy().items(), key=lambda item: len(item[1]))
        total = sum(len(b) for _, b in idle)
        while idle and total > self.keep_bytes:  # free the biggest idle blocks first
            key, freed = idle.pop()
            if self._idle.pop(key, None) is not None:
                total -= len(freed)

    def idle_bytes(self) -> int:
        """Bytes held by idle blocks."""
        return sum(len(b) for b in self._idle.copy().values())

    def clear(self) -> None:
        """Free every idle block (blocks still viewed come back, and are kept, when they are let go)."""
        for key in self._idle.copy():
            self._idle.pop(key, None)


READ_BUFFERS = BufferPool(keep_bytes=128 << 20)  # one per process: cache reads of every run share it


def read_into_buffer(path: Path, aligned_from: int = 0) -> np.ndarray:
    """A file's whole content in a writable byte array (arrays viewing it are writable), placed so that
    its byte ``aligned_from`` lies on an 8-byte boundary; OSError as ``open``.

    The array is a view of a block of READ_BUFFERS, filled once by the read (never zeroed first)."""
    with open(path, "rb", buffering=0) as fh:
        buffer = READ_BUFFERS.take(os.fstat(fh.fileno()).st_size, -aligned_from % 8)
        view, done = memoryview(buffer), 0
        while done < len(buffer):
            n = fh.readinto(view[done:])
            if not n:
                raise OSError(f"{path} changed while it was read")
            done += n
    return buffer


def read_sealed(path: Path) -> memoryview | Exception | None:
    """The checked content of a sealed cache file; None if there is none. An OSError (it cannot be read)
    or a ValueError (truncated, damaged or foreign) is returned, not raised. File reads and CRC-32
    release the GIL, so this can run on a read-ahead thread."""
    try:
        return unseal_view(read_into_buffer(path, aligned_from=HEAD))  # the arrays in it 8-byte aligned
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return exc


PRICE_SCALES = (20, 100)  # NSE's option tick is 0.05 rupee (prices in twentieths); 0.01 for vendors' others
NO_PRICE = np.iinfo(np.int32).min  # a scaled close that is NaN (a second without a usable price)


# the candidate types of each column, as core.cache_loops.entry_columns codes them; the last is the column's own
VOLUME_TYPES = tuple(map(np.dtype, (np.uint8, np.uint16, np.uint32, np.float32, np.float64)))
SECOND_TYPES = tuple(map(np.dtype, (np.uint16, np.int32, np.int64)))
TICKS_TYPES = tuple(map(np.dtype, (np.uint8, np.uint16, np.int32, np.int64)))


def _scaled_close(close: np.ndarray, scale: int) -> np.ndarray:
    """Decoding of a scaled close column (see MAGIC): the float64 closes."""
    return np.where(close == NO_PRICE, np.nan, close.astype(np.float64) / scale)


def encode_entry(seconds: Seconds, day: int, with_sub_ns: bool = True) -> np.ndarray:
    """One day's aggregates as bytes, a uint8 array (see MAGIC for the layout); each column's type is chosen
    by core.cache_loops.entry_columns."""
    close = np.ascontiguousarray(seconds.close, np.float64)
    volume = np.ascontiguousarray(seconds.volume, np.float64)
    ticks = np.ascontiguousarray(seconds.ticks, np.int64)
    first = int(seconds.second[0]) if len(seconds.second) else day * 86_400
    after_first = np.asarray(seconds.second, np.int64) - first
    scaled = np.empty(len(close), np.int32)
    scale, volume_code, second_code, ticks_code = _loops().entry_columns(
        read_only(close), read_only(volume), read_only(after_first), read_only(ticks), scaled)
    columns = {"close": (np.dtype(np.int32), scaled) if scale else (close.dtype, close),
               "volume": (VOLUME_TYPES[volume_code], volume),
               "second": (SECOND_TYPES[second_code], after_first),
               "ticks": (TICKS_TYPES[ticks_code], ticks)}
    if with_sub_ns:
        sub_ns = np.where(seconds.close_ns < 0, -1, seconds.close_ns - seconds.second * 1_000_000_000)
        columns["sub_ns"] = (np.dtype(np.int32), sub_ns)
    n = len(seconds.second)
    types = {name: dtype.str for name, (dtype, _) in columns.items()}
    header = json.dumps({"n": n, "counts": seconds.counts, "first_second": first - day * 86_400,
                         "close_scale": scale or None, "columns": types}).encode()
    header += b" " * (-(len(MAGIC) + 4 + len(header)) % 8)
    start = len(MAGIC) + 4 + len(header)
    sizes = [n * dtype.itemsize + (-(n * dtype.itemsize) % 8) for dtype, _ in columns.values()]
    # each column cast straight into its place in one buffer (no tobytes and join copies); only the padding
    # is zeroed, since the columns overwrite the rest
    out = np.empty(start + sum(sizes), np.uint8)
    out[:start] = np.frombuffer(MAGIC + struct.pack("<I", len(header)) + header, np.uint8)
    offset = start
    for (dtype, values), size in zip(columns.values(), sizes):
        np.copyto(out[offset:offset + n * dtype.itemsize].view(dtype), values, casting="unsafe")
        out[offset + n * dtype.itemsize:offset + size] = 0
        offset += size
    return out


def _loops():
    """The per-second cache's compiled loop: core.aot's module when it is built, else numba's JIT loop
    (core.cache_loops, imported on the first entry encoded, not by a warm run)."""
    from . import aot

    return aot.serving("cache_loops")


def load_jit_loops() -> None:
    """Compile or load numba's JIT loop of the encoder (core.cache_loops, from numba's on-disk cache) by
    encoding a day of two seconds: its arguments have the types of every real call."""
    encode_entry(Seconds(np.array([0, 1], np.int64), np.array([1.0, 2.0]), np.array([1, 1], np.int64),
                         np.array([100.0, 100.05]), np.array([0, 1_000_000_000], np.int64)), 0)


def encode_file(parts: dict[str, dict], entries: dict[str, dict[int, bytes]]) -> list:
    """A cache file's byte parts (see FILE_MAGIC): each tick file part's ``meta`` (by its key) and its
    encoded day entries."""
    files, body, offset = {}, [], 0
    for key in sorted(parts):
        spans = {}
        for day in sorted(entries.get(key, {})):
            data = entries[key][day]
            spans[str(day)] = [offset, len(data)]
            body.append(data)
            pad = -len(data) % 8
            if pad:
                body.append(b"\0" * pad)
            offset += len(data) + pad
        files[key] = {**parts[key], "entries": spans}
    header = json.dumps({"grid_version": GRID_VERSION, "files": files}).encode()
    header += b" " * (-(len(FILE_MAGIC) + 4 + len(header)) % 8)
    return [FILE_MAGIC, struct.pack("<I", len(header)), header, *body]


def decode_file(data: memoryview) -> tuple[dict[str, dict], dict[str, dict[int, memoryview]]]:
    """Inverse of encode_file: ({key: part meta}, {key: {day: encoded entry, a view of ``data``}});
    ValueError on a truncated, foreign or other-version file."""
    if bytes(data[:len(FILE_MAGIC)]) != FILE_MAGIC:
        raise ValueError("not a per-second cache file")
    start = len(FILE_MAGIC) + 4
    (hlen,) = struct.unpack_from("<I", data, len(FILE_MAGIC))
    meta = json.loads(bytes(data[start:start + hlen]))
    if meta.get("grid_version") != GRID_VERSION:
        raise ValueError("file from another engine version")
    body = data[start + hlen:]
    parts, entries = {}, {}
    for key, part in meta["files"].items():
        spans = part.pop("entries", {})
        parts[key] = part
        entries[key] = {}
        for day, (offset, length) in spans.items():
            if offset < 0 or offset + length > len(body):
                raise ValueError("truncated per-second cache file")
            entries[key][int(day)] = body[offset:offset + length]
    return parts, entries


def decode_entry(data: bytes | memoryview, day: int) -> Seconds:
    """Inverse of encode_entry; raises ValueError on a truncated or foreign entry."""
    if bytes(data[:len(MAGIC)]) != MAGIC:
        raise ValueError("not a seconds cache entry")
    start = len(MAGIC) + 4
    hlen = int(np.frombuffer(data, np.uint32, 1, len(MAGIC))[0])
    header = json.loads(bytes(data[start:start + hlen]))
    n, offset = int(header["n"]), start + hlen
    columns = {}
    for name, stored in header["columns"].items():
        dtype = np.dtype(stored)
        if dtype.kind not in "uif" or offset + n * dtype.itemsize > len(data):
            raise ValueError("truncated seconds cache entry")
        columns[name] = np.frombuffer(data, dtype, n, offset)
        offset += n * dtype.itemsize + (-(n * dtype.itemsize) % 8)
    if offset != len(data):
        raise ValueError("truncated seconds cache entry")
    scale = header["close_scale"]
    close = _scaled_close(columns["close"], scale) if scale else columns["close"].astype(np.float64)
    second = columns["second"].astype(np.int64) + (np.int64(day) * 86_400 + int(header["first_second"]))
    if "sub_ns" in columns:
        sub_ns = columns["sub_ns"].astype(np.int64)
        close_ns = np.where(sub_ns < 0, -1, second * 1_000_000_000 + sub_ns)
    else:
        close_ns = np.where(np.isnan(close), -1, second * 1_000_000_000)
    return Seconds(second, columns["volume"].astype(np.float64), columns["ticks"].astype(np.int64), close, close_ns,
                   dict(header["counts"]))


@dataclass
class _Folder:
    """One folder's cache file as read (its tick file parts and their entries) and what a batch adds."""

    target: Path
    parts: dict[str, dict]
    entries: dict[str, dict[int, memoryview | bytes]]
    changed: bool = False


class TickCache:
    """Loads tick files as per-day per-second aggregates, through the cache when it has one."""

    def __init__(self, cache_dir: Path | None, naive_timezone: str,
                 warn: Callable[[str, str], None] | None = None, use_threads: bool = True,
                 writer: BackgroundWriter | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.naive_timezone = naive_timezone
        self.warn = warn or (lambda kind, message: None)  # (health kind, message)
        self.use_threads = use_threads  # let pyarrow decode a file on several threads
        self.writable = True  # set to False by the first write that fails
        self.writer = writer  # None: every write is done before the call that asks for it returns

    def write_later(self, target: Path, size: int, job: Callable[[], WriteWarning],
                    warn: Callable[[str, str], None] | None = None) -> None:
        """Run the write ``job`` of ``target`` (about ``size`` bytes) on the writer, or now without one;
        its warning goes to ``warn`` (default: this cache's)."""
        warn = warn or self.warn
        if self.writer is not None:
            self.writer.submit(target, size, job, warn)
            return
        warning = job()
        if warning is not None:
            warn(*warning)

    def file_for(self, path: str, kind: str) -> Path | None:
        """The cache file that holds tick file ``path`` (of ``kind``), or None without a cache."""
        if self.cache_dir is None:
            return None
        folder = os.path.dirname(os.path.abspath(path))
        ident = f"{folder}|{kind}|{self.naive_timezone}|v{GRID_VERSION}|f{CACHE_FORMAT}"
        key = hashlib.sha256(ident.encode()).hexdigest()[:40]
        return self.cache_dir / key[:2] / f"{key}.sec"

    def load(self, path: str, kind: str, days: Iterable[int] | None = None, cache_only: bool = False
             ) -> tuple[FileIndex, dict[int, Seconds], bool] | None:
        """(index, {day: aggregates} for the wanted days that have ticks, served wholly from cache?).

        ``days`` None means every day of the file. Raises TickFileError for a file that cannot
        be used (also when that failure is cached). With ``cache_only``, returns None instead of
        reading the file when the cache cannot answer.
        """
        result = self.load_many([(path, kind, days)], cache_only)[0]
        if isinstance(result, TickFileError):
            raise result
        return result

    def load_many(self, requests: list[tuple], cache_only: bool = False, mapper: Callable = map,
                  use_threads: bool | None = None) -> list:
        """``load`` for each (path, kind, days) request: its result, or the TickFileError it raised.

        Each folder's cache file is read once; the misses are built with ``mapper(build, misses)``
        (``map``, or a thread pool's), then each folder's cache file that gained a part is written once.
        ``use_threads`` (default: this cache's) lets pyarrow decode each file on several threads; a caller
        whose ``mapper`` already reads files side by side turns it off (pyarrow's hand-offs between its
        threads then only cost wake-ups).
        """
        use_threads = self.use_threads if use_threads is None else use_threads
        folders: dict[Path, _Folder] = {}
        results: list = [None] * len(requests)
        misses = []
        for i, (path, kind, days) in enumerate(requests):
            key = cache_key(path, kind, self.naive_timezone) if self.cache_dir is not None else None
            folder = None
            if key is not None:
                target = self.file_for(path, kind)
                if target not in folders:
                    if self.writer is not None:
                        self.writer.wait_for(target)  # a write of it handed over earlier lands first
                    folders[target] = self._read_file(target, path)
                folder = folders[target]
                results[i] = self._lookup(folder, key, path, days)
            if results[i] is None:
                misses.append((i, key, folder))
        if cache_only:
            return results
        built = list(mapper(self._build, [tuple(requests[i][:3]) + (folder, key, use_threads)
                                          for i, key, folder in misses]))
        for (i, key, folder), (result, part, new_entries) in zip(misses, built):
            results[i] = result
            if folder is not None and part is not None:
                folder.parts[key], folder.entries[key] = part, new_entries
                folder.changed = True
        for folder in folders.values():
            if folder.changed:
                size = sum(len(data) for entries in folder.entries.values() for data in entries.values())
                self.write_later(folder.target, size, lambda folder=folder: self._write(folder))
        return results

    def _lookup(self, folder: _Folder, key: str, path: str, days) -> tuple | TickFileError | None:
        """A request served from ``folder``'s cache file, or None when it does not hold every wanted day."""
        part = folder.parts.get(key)
        if part is None:
            return None
        if "error" in part:
            return TickFileError(part["error"]["kind"], part["error"]["message"])
        index = FileIndex(frozenset(part["days"]), dict(part["file_counts"]))
        stored = folder.entries.get(key, {})
        wanted = sorted(index.days if days is None else set(days) & index.days)
        if not all(day in stored for day in wanted):
            return None
        try:
            return index, {day: decode_entry(stored[day], day) for day in wanted}, True
        except Exception as exc:
            self.warn("cache_rebuilt", f"cache file {folder.target} for {path} was unusable ({_why(exc)}); "
                      "rebuilt it")
            del folder.parts[key], folder.entries[key]
            return None

    def _build(self, request: tuple) -> tuple:
        """(result or TickFileError, the part to store or None, its encoded entries) of one miss."""
        path, kind, days, folder, key, use_threads = request
        try:
            loaded = load_file_days(path, kind, self.naive_timezone, days, use_threads)
        except TickFileError as exc:
            # a passing read error is retried next run; a lasting one is the file's cached verdict
            part = None if key is None or exc.transient else {
                "path": os.path.abspath(path), "kind": kind, "error": {"kind": exc.kind, "message": str(exc)}}
            return exc, part, {}
        all_days, got = loaded.days, loaded.seconds
        if key is None:
            return (FileIndex(all_days, loaded.file_counts), got, False), None, {}
        # the days stored before stay stored, beside the new ones
        entries = {day: data for day, data in folder.entries.get(key, {}).items() if day in all_days}
        entries.update({day: encode_entry(seconds, day, with_sub_ns=(kind != "option"))
                        for day, seconds in got.items() if day not in entries})
        part = {"path": os.path.abspath(path), "kind": kind, "days": sorted(all_days), "file_counts": loaded.file_counts}
        return (FileIndex(all_days, loaded.file_counts), got, False), part, entries

    # -- files ---------------------------------------------------------------------------
    def _read_file(self, target: Path, path: str) -> _Folder:
        """The tick file parts of a folder's cache file (none when it is missing, or unusable: with a warning)."""
        sealed = read_sealed(target)
        if sealed is None:
            return _Folder(target, {}, {})
        if isinstance(sealed, OSError):
            self.warn("cache_rebuilt", f"cache file {target} for {os.path.dirname(path)} could not be read "
                      f"({sealed.strerror or sealed}); rebuilt it")
            return _Folder(target, {}, {})
        try:
            parts, entries = _checked_parts(sealed)
        except Exception as exc:
            self.warn("cache_rebuilt", f"cache file {target} for {os.path.dirname(path)} was unusable "
                      f"({_why(exc)}); rebuilt it")
            return _Folder(target, {}, {})
        return _Folder(target, parts, entries)

    def _write(self, folder: _Folder) -> WriteWarning:
        """Write a folder's cache file with its current tick file parts (parts of files that have changed or
        gone since are dropped); the first failure turns writing off for this run and returns its warning."""
        if not self.writable:
            return None
        self._merge_written_since(folder)
        current = {key: part for key, part in folder.parts.items()
                   if cache_key(part["path"], part["kind"], self.naive_timezone) == key}
        return self.write_sealed(folder.target, encode_file(current, {key: folder.entries.get(key, {}) for key in current}),
                                 f"the per-second cache {self.cache_dir}")

    def write_sealed(self, target: Path, parts: list, what: str) -> WriteWarning:
        """Write ``parts`` sealed to ``target`` atomically (``what`` names the cache in the warning); the first
        failure, of this cache or of one sharing its ``writable`` (core.market_cache), turns writing off for
        this run and returns its warning."""
        if not self.writable:
            return None
        sealed = seal_parts(parts)
        try:
            atomic_write_bytes(target, lambda fh: fh.writelines(sealed))
        except OSError as exc:
            self.writable = False
            return ("cache_unwritable", f"{what} cannot be written ({exc.strerror or exc}); this run goes on "
                    f"without caching (free space or fix the folder's permissions, or set cache_dir=null)")
        return None

    def _merge_written_since(self, folder: _Folder) -> None:
        """Add to ``folder`` the parts and days that another process (a Ray task of another date chunk)
        wrote to its cache file since this batch read it, so that writing it again keeps them. Two
        writers can still cross between this read and the rename; the parts lost then are built again
        by a later run."""
        latest = read_sealed(folder.target)
        if latest is None or isinstance(latest, OSError):
            return
        try:
            parts, entries = _checked_parts(latest)
        except Exception:
            return  # unusable: replaced by this write
        for key, part in parts.items():
            if key not in folder.parts:
                folder.parts[key], folder.entries[key] = part, entries[key]
            elif "error" not in part and "error" not in folder.parts[key]:
                folder.entries[key] = {**entries[key], **folder.entries.get(key, {})}


def _checked_parts(sealed: memoryview | Exception) -> tuple[dict[str, dict], dict[str, dict[int, memoryview]]]:
    """decode_file of what read_sealed gave, every part checked; raises when the file is unusable."""
    if isinstance(sealed, Exception):
        raise sealed
    parts, entries = decode_file(sealed)
    for part in parts.values():
        _check_part(part)
    return parts, entries


def _check_part(part: dict) -> None:
    """Raise (KeyError, TypeError, ValueError) unless ``part`` is a well-formed tick file part."""
    str(part["path"]), str(part["kind"])
    if "error" in part:
        str(part["error"]["kind"]), str(part["error"]["message"])
    else:
        [int(day) for day in part["days"]], {str(k): int(n) for k, n in part["file_counts"].items()}


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ValueError) and str(exc) else type(exc).__name__
