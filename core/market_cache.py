"""On-disk cache of built markets: one entry per (market settings, expiry, group of days).

A warm run reads one file per expiry group (about a week of days) instead of every tick file's index
and day entries, and rebuilds nothing: the entry holds each day's spot grid, its hour windows with the
ATM strike, and the candidates' sparse series (core.markets.DayMarket), plus the data-health tally
their building produced, so a run served from it reports the same problems as one that built them.

An entry is keyed by the settings a market is built from (symbol, options folder, session, strike
step and count, naive timezone, GRID_VERSION, MARKET_FORMAT), the expiry, the days, and the name,
size and modification time of every spot file of those days. The option series an entry was built
from are listed in it (each candidate key the group asked for, with its file's path, size and
modification time, or none): an entry is used only while the expiry's folder still maps every one of
those keys to the same file version, so adding, replacing or removing a series file rebuilds it.

Entries are sealed with core.cache's length + CRC-32 and written atomically (temp file + rename); a
damaged entry is rebuilt with a ``cache_rebuilt`` warning. Groups whose building met a transient read
error (permission, I/O) are not stored, so the next run retries those files.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .cache import read_sealed
from .grid import GRID_VERSION
from .health import Health
from .layout import DayLayout

MAGIC = b"ATMBMKT1"
# Part of every key: entries of older formats are simply not found. Bump it with any change to what
# core.markets builds from the per-second data (windows, ATM, candidates, health counted while building),
# or warm runs would keep serving markets built by the old code.
MARKET_FORMAT = 6
# How each array of a day's layout (core.layout.DayLayout) is stored and decoded; bars are stored as
# uint16 when they fit (a session has 22,501 bars) and decoded to int64; unlisted arrays are int64.
LAYOUT_DTYPES = {"is_ce": np.bool_, "volume_cum": np.float64, "prices": np.float64, "win_hour_open": np.float64}
BARS = ("volume_bars", "price_bars")
# Kinds that describe this run's use of the caches, not the data: never stored in an entry.
CACHE_KINDS = ("cache_hits", "files_read", "cache_rebuilt", "cache_unwritable")


def file_identity(path: str) -> list | None:
    """[path, size, mtime_ns] of a file, or None if it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [str(path), st.st_size, st.st_mtime_ns]


def group_key(settings: dict, expiry, days: list[int], spot_paths: list[str]) -> str | None:
    """Hex key of one expiry group's markets, or None if a spot file vanished while we looked."""
    spot = [file_identity(p) for p in spot_paths]
    if any(s is None for s in spot):
        return None
    ident = json.dumps({"settings": settings, "expiry": str(expiry), "days": days, "spot": spot,
                        "grid": GRID_VERSION, "format": MARKET_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(ident.encode()).hexdigest()[:40]


def encode_group(markets: list, health: Health, consulted: list, files: int) -> bytes:
    """Markets of one group, the health of building them and the series they were built from, as bytes."""
    return b"".join(group_parts(markets, health, consulted, files))


def group_parts(markets: list, health: Health, consulted: list, files: int) -> list:
    """The bytes of encode_group as a list of parts (the arrays' own memory, not copies)."""
    blobs: list = []
    offset = 0

    def put(values: np.ndarray, dtype) -> list:
        nonlocal offset
        data = memoryview(np.ascontiguousarray(values, dtype=dtype)).cast("B")
        at = offset
        blobs.append(data)
        pad = -len(data) % 8  # every array starts 8-byte aligned
        if pad:
            blobs.append(b"\0" * pad)
        offset += len(data) + pad
        return [at, len(values), np.dtype(dtype).str]

    def put_bars(bars: np.ndarray) -> list:
        return put(bars, np.uint16 if not len(bars) or int(bars.max()) < 2 ** 16 else np.int64)

    days = []
    for market in markets:
        layout = market.layout.arrays()
        stored = {}
        for name, values in layout.items():
            if name == "price_bars" and values is layout["volume_bars"]:
                stored[name] = None  # usually every bar with ticks also sets a price: stored once
            elif name == "price_bars_off" and values is layout["volume_bars_off"]:
                stored[name] = None
            elif name in BARS:
                stored[name] = put_bars(values)
            else:
                stored[name] = put(values, np.uint8 if values.dtype == np.bool_ else LAYOUT_DTYPES.get(name, np.int64))
        days.append({"day": market.day, "expiry": str(market.expiry), "open_sec": market.open_sec,
                     "spot": put(market.spot, np.float64), "layout": stored})
    kept = {k: int(n) for k, n in health.counts.items() if k not in CACHE_KINDS and n}
    messages = {k: list(v) for k, v in health.messages.items() if k not in CACHE_KINDS}
    header = json.dumps({"days": days, "health": {"counts": kept, "messages": messages},
                         "consulted": consulted, "files": files}).encode()
    header += b" " * (-(len(MAGIC) + 8 + len(header)) % 8)
    return [MAGIC, np.uint64(len(header)).tobytes(), header, *blobs]


def decode_group(data: memoryview) -> tuple[list, Health, list, int]:
    """Inverse of encode_group: (markets, health, consulted series, tick files used); ValueError if foreign.

    The arrays are views of ``data`` (no copy), except bar numbers stored as uint16 and flags stored as
    uint8, which are widened to the int64 and bool the kernel takes (as read-only views: core.compiled)."""
    from .markets import DayMarket

    if bytes(data[:len(MAGIC)]) != MAGIC:
        raise ValueError("not a market cache entry")
    hlen = int(np.frombuffer(data, np.uint64, 1, len(MAGIC))[0])
    start = len(MAGIC) + 8
    if start + hlen > len(data):
        raise ValueError("truncated market cache entry")
    meta = json.loads(bytes(data[start:start + hlen]))
    base = start + hlen

    def get(ref: list, dtype) -> np.ndarray:
        at, n, stored = ref
        stored = np.dtype(stored)
        if stored.kind not in "uif" or base + at + stored.itemsize * n > len(data):
            raise ValueError("truncated market cache entry")
        values = np.frombuffer(data, stored, n, base + at)
        return values if stored == dtype else values.astype(dtype)  # the kernel takes int64 bars, bool flags

    import datetime as dt

    markets = []
    for d in meta["days"]:
        stored = d["layout"]
        arrays = {name: get(ref, LAYOUT_DTYPES.get(name, np.int64)) for name, ref in stored.items() if ref is not None}
        if stored["price_bars"] is None:
            arrays["price_bars"], arrays["price_bars_off"] = arrays["volume_bars"], arrays["volume_bars_off"]
        markets.append(DayMarket(int(d["day"]), dt.date.fromisoformat(d["expiry"]), int(d["open_sec"]),
                                 get(d["spot"], np.float64), DayLayout(**arrays)))
    health = Health()
    health.counts.update({k: int(n) for k, n in meta["health"]["counts"].items()})
    health.messages.update({k: list(v) for k, v in meta["health"]["messages"].items()})
    return markets, health, meta["consulted"], int(meta["files"])


class MarketCache:
    """Reads and writes built markets of expiry groups under ``cache_dir``/markets."""

    def __init__(self, tick_cache, warn: Callable[[str, str], None]):
        self.folder = Path(tick_cache.cache_dir) / "markets"
        self.tick_cache = tick_cache  # shares its ``writable``: one folder, one warning when it cannot be written
        self.warn = warn  # (health kind, message)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.mkt"

    def read(self, key: str) -> memoryview | Exception | None:
        """core.cache.read_sealed of an entry (runs on a read-ahead thread while earlier groups are evaluated)."""
        return read_sealed(self._path(key))

    def load(self, key: str, series_now: dict, entry: memoryview | Exception | None) -> tuple[list, Health] | None:
        """(markets, health) of an entry whose series files are unchanged (``series_now``: the expiry's
        (opt_type, strike) -> path as found now); None when there is no usable entry. ``entry``: what
        ``read(key)`` gave (read ahead, on another thread)."""
        target = self._path(key)
        if entry is None:
            return None
        if isinstance(entry, OSError):
            self.warn("cache_rebuilt", f"market cache entry {target} could not be read ({entry}); rebuilt it")
            return None
        try:
            if isinstance(entry, Exception):
                raise entry
            markets, health, consulted, files = decode_group(entry)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self.warn("cache_rebuilt", f"market cache entry {target} was unusable ({exc}); rebuilt it")
            return None
        for opt_type, strike, ident in consulted:
            path = series_now.get((opt_type, int(strike)))
            if (None if path is None else file_identity(path)) != ident:
                return None  # a series file was added, replaced or removed since: build again
        health.add("cache_hits", files)
        return markets, health

    def store(self, key: str, markets: list, health: Health, consulted: list, files: int) -> None:
        """Write one group's entry (on the tick cache's writer, if it has one); the first failure turns
        writing off for this run, with one warning."""
        if not self.tick_cache.writable:
            return
        target = self._path(key)
        parts = group_parts(markets, health, consulted, files)  # taken now: views of the markets' arrays
        # write_sealed checks ``writable`` again on the writer: an earlier write may have failed meanwhile
        self.tick_cache.write_later(target, sum(len(part) for part in parts),
                                    lambda: self.tick_cache.write_sealed(target, parts, f"the cache {self.folder}"),
                                    self.warn)
