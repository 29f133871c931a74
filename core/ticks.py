"""Load one tick file and normalise it (strategy.md §1.4) into per-second aggregates.

A tick file (an option series or a spot file) becomes :class:`Seconds`: one row per
IST wall-clock second that holds at least one tick, with the summed repaired volume,
the tick count, and the last valid price of that second. That table does not depend on
the session or strategy, so it is what the cache stores; per-day grids are cut from it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .arrow_numpy import numpy_view
from .compiled import import_numba_without_blas_probe, read_only

NS = 1_000_000_000
DAY_NS = 86_400 * NS
IST_OFFSET_NS = 19_800 * NS  # Asia/Kolkata is UTC+05:30, without DST since 1945
FUSED_OK, FUSED_DECLINED = 0, 1  # the status of core.ticks_loops.file_seconds
FIXED_OFFSETS_NS = {"Asia/Kolkata": IST_OFFSET_NS, "Asia/Calcutta": IST_OFFSET_NS, "UTC": 0, "Etc/UTC": 0}
UNIT_NS = {"s": NS, "ms": 1_000_000, "us": 1_000, "ns": 1}

OPTION_COLUMNS = ("timestamp", "close", "vol_delta")
SPOT_COLUMNS = ("timestamp", "close")



class TickFileError(Exception):
    """A tick file cannot be used; ``kind`` is the health kind (bad_file, missing_column)."""

    def __init__(self, kind: str, message: str, transient: bool = False):
        super().__init__(message)
        self.kind = kind
        self.transient = transient  # may pass (permission, I/O): never cached as the file's verdict


@dataclass
class Seconds:
    """Per-second aggregates of ticks, sorted by ``second`` (IST epoch seconds)."""

    second: np.ndarray  # int64, IST wall-clock seconds since 1970-01-01 00:00 IST
    volume: np.ndarray  # float64, sum of repaired vol_delta
    ticks: np.ndarray  # int64, number of rows
    close: np.ndarray  # float64, last valid price in the second, NaN if none
    close_ns: np.ndarray  # int64, IST ns timestamp of the tick that set close (for merging files)
    counts: dict = field(default_factory=dict)  # repaired/dropped rows among these ticks, by kind

    def days(self) -> np.ndarray:
        """IST dates (days since epoch) that have at least one tick."""
        return np.unique(self.second // 86_400)


@dataclass
class TickRows:
    """One file's usable rows in IST time order (ties keep file order), before per-day rules."""

    ist_ns: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # raw vol_delta, nulls as 0
    vol_null: np.ndarray
    file_counts: dict

    def days(self) -> np.ndarray:
        day = self.ist_ns // DAY_NS
        return day[np.r_[True, day[1:] != day[:-1]]] if len(day) else day

    def day_rows(self, day: int) -> slice:
        lo = int(np.searchsorted(self.ist_ns, day * DAY_NS, "left"))
        hi = int(np.searchsorted(self.ist_ns, (day + 1) * DAY_NS, "left"))
        return slice(lo, hi)


def read_tick_table(path: str, columns: tuple[str, ...], use_threads: bool = True) -> pa.Table:
    """Read just ``columns`` of a parquet file (one open); errors become TickFileError."""
    try:
        # the file opened directly: pq.read_table builds a dataset around it first (about 0.3 ms a file);
        # ParquetFile.read skips a missing column silently, so the schema is checked first. pre_buffer (on by
        # default) hands the column chunks' reads to arrow's I/O threads, which pays for a remote store's
        # latency; on a local disk it costs the wake-ups (docs/engine.md)
        with pq.ParquetFile(path, pre_buffer=False) as parquet:
            names = parquet.schema_arrow.names
            if all(c in names for c in columns):
                return parquet.read(columns=list(columns), use_threads=use_threads)
    except Exception as exc:  # corrupt footer, not parquet, permission
        if isinstance(exc, OSError) and exc.errno is not None:  # permission, I/O: may pass
            raise TickFileError("bad_file", f"{path}: cannot be read now ({_short(exc)}); check its permissions "
                                "and the disk", transient=True) from None
        raise TickFileError("bad_file", f"{path}: unreadable parquet ({_short(exc)}); re-export or delete the file") from None
    missing = [c for c in columns if c not in names]
    raise TickFileError("missing_column", f"{path}: no column {', '.join(repr(m) for m in missing)} "
                        f"(has: {', '.join(names)}); rename the column in the file or re-export it")


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$", re.IGNORECASE)


def timestamps_to_utc_ns(column: pa.ChunkedArray | pa.Array, naive_timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """UTC epoch nanoseconds and a validity mask for a timestamp column of any supported type.

    tz-aware timestamps keep their instant; naive ones are wall time in ``naive_timezone``;
    strings are parsed (with or without an offset); integers are epoch values whose unit
    (s/ms/us/ns) is told by their magnitude.
    """
    arr = _one_array(column)
    typ = arr.type
    if pa.types.is_dictionary(typ):
        arr = arr.dictionary_decode()
        typ = arr.type
    if pa.types.is_timestamp(typ):
        raw = arr.cast(pa.int64())
        if raw.null_count == 0:  # the usual case: no validity bitmap to expand, no nulls to fill
            valid = np.ones(len(raw), bool)
            values = raw.to_numpy() * UNIT_NS[typ.unit]
        else:
            valid = np.asarray(raw.is_valid())
            values = np.asarray(raw.fill_null(0), dtype=np.int64) * UNIT_NS[typ.unit]
        if typ.tz is None:
            values = _localize_naive(values, valid, naive_timezone)
        return values, valid
    if pa.types.is_date(typ):
        return timestamps_to_utc_ns(arr.cast(pa.timestamp("s")), naive_timezone)
    if pa.types.is_integer(typ):  # exact in int64 for every unit (ns epochs exceed float64's 2**53)
        valid = np.asarray(arr.is_valid())
        raw_int = np.asarray(arr.cast(pa.int64()).fill_null(0), dtype=np.int64)
        mag = np.abs(raw_int)
        scale = np.select([mag < 10**10, mag < 10**13, mag < 10**16], [NS, 1_000_000, 1_000], 1).astype(np.int64)
        return np.where(valid, raw_int, 0) * scale, valid
    if pa.types.is_floating(typ):
        raw = np.asarray(arr.cast(pa.float64()).fill_null(np.nan), dtype=np.float64)
        valid = np.isfinite(raw)
        mag = np.abs(np.where(valid, raw, 0.0))
        # Epoch magnitudes for 1973..2286: s < 1e10 <= ms < 1e13 <= us < 1e16 <= ns.
        scale = np.select([mag < 1e10, mag < 1e13, mag < 1e16], [1e9, 1e6, 1e3], 1.0)
        return np.round(np.where(valid, raw, 0.0) * scale).astype(np.int64), valid
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        import pandas as pd  # timestamps written as text: rare, and parsed by pandas

        text = pd.Series(arr.to_pandas(), dtype=object)
        stripped = text.str.strip()
        aware = stripped.str.contains(_TZ_SUFFIX, na=False).to_numpy()
        values = np.zeros(len(text), np.int64)
        valid = np.zeros(len(text), bool)
        if aware.any():
            parsed = pd.to_datetime(stripped[aware], errors="coerce", utc=True, format="ISO8601")
            ok = parsed.notna().to_numpy()
            values[np.flatnonzero(aware)[ok]] = parsed[ok].array.as_unit("ns").asi8
            valid[np.flatnonzero(aware)[ok]] = True
        naive = ~aware & stripped.notna().to_numpy()
        if naive.any():
            parsed = pd.to_datetime(stripped[naive], errors="coerce", format="ISO8601")
            ok = parsed.notna().to_numpy()
            wall = parsed[ok].array.as_unit("ns").asi8
            idx = np.flatnonzero(naive)[ok]
            values[idx] = _localize_naive(wall, np.ones(len(wall), bool), naive_timezone)
            valid[idx] = True
        return values, valid
    raise TickFileError("bad_file", f"timestamp column has unsupported type {typ}")


def _localize_naive(wall_ns: np.ndarray, valid: np.ndarray, tz: str) -> np.ndarray:
    """UTC ns for wall-clock ns in ``tz`` (nonexistent/ambiguous local times become invalid)."""
    if tz in FIXED_OFFSETS_NS:
        return wall_ns - FIXED_OFFSETS_NS[tz]
    import pandas as pd  # a zone with daylight saving or other changes of offset

    idx = pd.DatetimeIndex(wall_ns.view("datetime64[ns]")).tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    out = idx.asi8.copy()
    valid &= ~np.asarray(idx.isna())
    out[~valid] = 0
    return out


def prepare_rows(table: pa.Table, naive_timezone: str, has_volume: bool) -> TickRows:
    """Timestamps normalised to IST; null and epoch-zero rows dropped (counted); rows put in time order."""
    n = table.num_rows
    close = _float_column(table.column("close"), np.nan) if n else np.zeros(0)
    if has_volume and n:
        vol_col = _numbers(table.column("vol_delta"))
        vol_null = np.asarray(vol_col.is_null(), dtype=bool) if vol_col.null_count else np.zeros(n, bool)
        volume = _float_column(vol_col, 0.0)
    else:
        vol_null, volume = np.zeros(n, bool), np.zeros(n)
    fast = _plain_timestamps(table.column("timestamp"), naive_timezone) if n else None
    if fast is not None:  # the usual file: one compiled pass (no nulls to drop; order checked on the way)
        raw, unit, shift = fast
        ist_ns, n_epoch_zero, ascending = _loops().ist_instants(read_only(raw), unit, shift, IST_OFFSET_NS)
        if not n_epoch_zero:
            file_counts = {"null_timestamp": 0, "epoch_zero_timestamp": 0}
            if not ascending:
                order = np.argsort(ist_ns, kind="stable")  # ties keep file order: the later row wins
                ist_ns, close, volume, vol_null = ist_ns[order], close[order], volume[order], vol_null[order]
            return TickRows(ist_ns, close, volume, vol_null, file_counts)
    utc_ns, valid_ts = timestamps_to_utc_ns(table.column("timestamp"), naive_timezone)
    epoch_zero = valid_ts & (np.abs(utc_ns) < DAY_NS)
    file_counts = {"null_timestamp": int((~valid_ts).sum()), "epoch_zero_timestamp": int(epoch_zero.sum())}
    keep = valid_ts & ~epoch_zero
    ist_ns = utc_ns + IST_OFFSET_NS
    if not keep.all():
        idx = np.flatnonzero(keep)
        ist_ns, close, volume, vol_null = ist_ns[idx], close[idx], volume[idx], vol_null[idx]
    if len(ist_ns) > 1 and (np.diff(ist_ns) < 0).any():
        order = np.argsort(ist_ns, kind="stable")  # ties keep file order: the later row wins
        ist_ns, close, volume, vol_null = ist_ns[order], close[order], volume[order], vol_null[order]
    return TickRows(ist_ns, close, volume, vol_null, file_counts)


def _plain_timestamps(column: pa.ChunkedArray, naive_timezone: str) -> tuple[np.ndarray, int, int] | None:
    """(raw int64 values, unit in ns, shift to UTC in ns) of a timestamp column without nulls in a zone of
    fixed offset (what timestamps_to_utc_ns computes as ``raw * unit + shift``), or None for any other column."""
    typ = column.type
    if not pa.types.is_timestamp(typ) or column.null_count:
        return None
    if typ.tz is None and naive_timezone not in FIXED_OFFSETS_NS:
        return None
    shift = 0 if typ.tz is not None else -FIXED_OFFSETS_NS[naive_timezone]
    return numpy_view(_one_array(column).view(pa.int64()), np.int64), UNIT_NS[typ.unit], shift


def _one_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as one array: its only chunk as it is (a file of one row group, the usual case), else its
    chunks joined. combine_chunks copies even a single chunk: a year's timestamps and volumes are 0.5 GB of
    new memory, 0.15-0.9 s of CPU on the bench machine."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def _numbers(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A numeric column as it is; a text column parsed as numbers, with text that is not one as null."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    text = pc.utf8_trim_whitespace(column)
    number = pc.match_substring_regex(text, _NUMBER)  # '', 'n/a', '-', '1,234': not numbers, so null
    return pc.if_else(number, text, None).cast(pa.float64())  # arrow's parse: correctly rounded


def _float_column(column: pa.ChunkedArray, fill: float) -> np.ndarray:
    """A column as float64 numbers (text parsed, see ``_numbers``), nulls as ``fill``."""
    column = _numbers(column)
    if column.type != pa.float64():
        column = column.cast(pa.float64())
    if column.null_count:
        column = column.fill_null(fill)
    return numpy_view(column, np.float64)


def _duplicates(ist_ns: np.ndarray, close: np.ndarray, volume: np.ndarray, vol_null: np.ndarray) -> np.ndarray:
    """Rows that exactly repeat an earlier row (same instant, close and raw volume; NaN equals NaN, and
    -0.0 equals 0.0, as pandas' ``duplicated`` compares them).

    Rows are in time order with ties in file order, so only runs of equal instants are compared.
    """
    dup = np.zeros(len(ist_ns), bool)
    if len(ist_ns) < 2:
        return dup
    same = ist_ns[1:] == ist_ns[:-1]
    if not same.any():
        return dup
    tied = np.flatnonzero(np.r_[same, False] | np.r_[False, same])

    def bits(values: np.ndarray) -> np.ndarray:  # equal numbers, equal bits: one NaN, and -0.0 as 0.0
        values = np.asarray(values, np.float64) + 0.0
        return np.where(np.isnan(values), np.nan, values).view(np.int64)

    keys = np.stack([ist_ns[tied], bits(close[tied]), bits(np.where(vol_null[tied], np.nan, volume[tied]))], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)  # a stable sort: each key's first row in file order
    repeated = np.ones(len(tied), bool)
    repeated[first] = False
    dup[tied] = repeated
    return dup


_COUNT_KINDS = ("duplicate_row", "null_price", "nonpositive_price", "null_volume", "negative_volume")


def days_seconds(rows: TickRows, days: Iterable[int]) -> dict[int, Seconds]:
    """Per-second aggregates of each of ``days`` (sorted IST day numbers), applying the per-row rules of
    strategy.md §1.4 and counting them per day, in one pass over their rows.

    Instants tie, and seconds begin and end, only within a day, so each day's result is the one a pass
    over that day alone gives (tested); one pass instead of one per day saves a quarter of this step.
    """
    days = [int(d) for d in days]
    if not days:
        return {}
    parts = [rows.day_rows(day) for day in days]
    if all(a.stop == b.start for a, b in zip(parts, parts[1:])):
        take = slice(parts[0].start, parts[-1].stop)  # adjacent days: views, no copy
    else:
        take = np.concatenate([np.arange(p.start, p.stop) for p in parts])
    ist_ns, close, volume, vol_null = rows.ist_ns[take], rows.close[take], rows.volume[take], rows.vol_null[take]
    wanted = np.asarray(days, np.int64)
    dup = _duplicates(ist_ns, close, volume, vol_null)
    counts = np.zeros((len(days), len(_COUNT_KINDS)), np.int64)
    every = Seconds(*_loops().aggregate_rows(*map(read_only, (ist_ns, close, volume, vol_null, dup, wanted)), counts))
    return _split_days(every, days, counts)


def _split_days(every: Seconds, days: list[int], counts: np.ndarray) -> dict[int, Seconds]:
    """{day: its rows of ``every``} for ``days`` (sorted; every row lies on one of them), each with its row of
    ``counts`` (len(days) x len(_COUNT_KINDS)) as the nonzero counts by kind."""
    wanted = np.asarray(days, np.int64)
    edges = np.searchsorted(every.second // 86_400, np.r_[wanted, wanted[-1] + 1])
    by_kind = dict(zip(_COUNT_KINDS, counts.T))
    out = {}
    for k, day in enumerate(days):
        lo, hi = edges[k], edges[k + 1]
        out[day] = Seconds(every.second[lo:hi], every.volume[lo:hi], every.ticks[lo:hi], every.close[lo:hi],
                           every.close_ns[lo:hi], {kind: int(n[k]) for kind, n in by_kind.items() if n[k]})
    return out


@dataclass
class FileDays:
    """What one tick file gives a run: the IST days it has ticks on, its file-level counts (rows that
    belong to no day), and the per-second aggregates of the days asked for that have ticks."""

    days: frozenset[int]
    file_counts: dict
    seconds: dict[int, Seconds]


def file_days(table: pa.Table, naive_timezone: str, has_volume: bool, days: Iterable[int] | None = None
              ) -> FileDays:
    """Normalise a tick file's table (strategy.md §1.4) into per-second aggregates of ``days`` (None: every day).

    The usual file (timestamps without nulls in a fixed-offset zone and in time order, integer volumes
    without nulls, or no volume column) takes one compiled pass over its columns as read
    (core.ticks_loops.file_seconds); any other goes through ``prepare_rows`` and ``days_seconds``, with
    bit-identical results (tested)."""
    fused = _file_days_fused(table, naive_timezone, has_volume, days)
    if fused is not None:
        return fused
    rows = prepare_rows(table, naive_timezone, has_volume)
    every_day = frozenset(int(d) for d in rows.days())
    wanted = sorted(every_day if days is None else set(days) & every_day)
    return FileDays(every_day, rows.file_counts, days_seconds(rows, wanted))


def _file_days_fused(table: pa.Table, naive_timezone: str, has_volume: bool, days: Iterable[int] | None
                     ) -> FileDays | None:
    """``file_days`` by the one compiled pass, or None where that pass does not apply (see file_days)."""
    n = table.num_rows
    if not n:
        return None
    plain = _plain_timestamps(table.column("timestamp"), naive_timezone)
    if plain is None:
        return None
    if has_volume:
        vol_col = table.column("vol_delta")
        if vol_col.null_count or not pa.types.is_integer(vol_col.type) or vol_col.type == pa.uint64():
            return None
        volume = _one_array(vol_col)
        volume = numpy_view(volume if volume.type == pa.int64() else volume.cast(pa.int64()), np.int64)
    else:
        volume = np.zeros(n, np.int64)
    raw, unit, shift = plain
    if days is None:  # every day from the first row's to the last's (the pass declines rows out of order)
        first, last = ((int(raw[k]) * unit + shift + IST_OFFSET_NS) // DAY_NS for k in (0, -1))
        if not 0 <= last - first < 100_000:
            return None
        wanted = np.arange(first, last + 1, dtype=np.int64)
    else:
        wanted = np.array(sorted({int(d) for d in days}), np.int64)
    counts = np.zeros((len(wanted), len(_COUNT_KINDS)), np.int64)
    close = _float_column(table.column("close"), np.nan)
    status, every_day, *columns = _loops().file_seconds(read_only(raw), unit, shift, IST_OFFSET_NS,
                                                        read_only(close), read_only(volume), read_only(wanted),
                                                        counts)
    if status != FUSED_OK:
        return None
    every_day = frozenset(every_day.tolist())
    present = [k for k, day in enumerate(wanted.tolist()) if day in every_day]
    seconds = _split_days(Seconds(*columns), wanted[present].tolist(), counts[present]) if present else {}
    return FileDays(every_day, {"null_timestamp": 0, "epoch_zero_timestamp": 0}, seconds)


def normalise_ticks(table: pa.Table, naive_timezone: str, has_volume: bool) -> Seconds:
    """Per-second aggregates of all of one file's ticks (every day), for tests and tools."""
    return merge_seconds(list(file_days(table, naive_timezone, has_volume).seconds.values()))


def _loops():
    """The compiled loops of normalisation: core.aot's module when it is built, else numba's JIT loops
    (core.ticks_loops, imported on the first file read, not by a warm run)."""
    from . import aot

    return aot.serving("ticks_loops")


def load_loops() -> None:
    """Load the compiled loops of normalisation: core.aot's module when it is built; else numba's JIT
    loops (``load_jit_loops``), after which a builder of the module is started for the next process."""
    from . import aot

    aot.load_or_warm(load_jit_loops)


def load_jit_loops() -> None:
    """Compile or load numba's JIT loops of normalisation (core.ticks_loops, from numba's on-disk cache)
    by normalising two ticks of the usual file (one second apart, in a fixed-offset zone, with integer
    volume) both ways, the one compiled pass and the general path: their arguments have the types of
    every real call."""
    import_numba_without_blas_probe()  # before the first compiled call loads numba's registries
    instants = pa.array([1_700_000_000_000_000_000, 1_700_000_001_000_000_000], pa.timestamp("ns", tz="+05:30"))
    table = pa.table({"timestamp": instants, "close": [100.0, 101.0], "vol_delta": pa.array([1, 2], pa.int64())})
    normalise_ticks(table, "Asia/Kolkata", True)
    rows = prepare_rows(table, "Asia/Kolkata", True)
    days_seconds(rows, rows.days())


def _empty_seconds() -> Seconds:
    return Seconds(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))


def _aggregate(second, ist_ns, volume, close, price_ok, ticks=None) -> Seconds:
    """Group time-sorted rows by second: summed volume, tick count (rows, or the sum of ``ticks``),
    and the last valid price in that order."""
    n = len(second)
    if n == 0:
        return _empty_seconds()
    starts = np.flatnonzero(np.r_[True, second[1:] != second[:-1]])
    uniq = second[starts]
    vol = np.add.reduceat(volume, starts)
    ticks = np.diff(np.r_[starts, n]).astype(np.int64) if ticks is None else np.add.reduceat(ticks, starts)
    out_close = np.full(len(uniq), np.nan)
    out_ns = np.full(len(uniq), -1, np.int64)
    vsec = second[price_ok]
    if len(vsec):
        last = np.r_[vsec[1:] != vsec[:-1], True]
        pos = np.searchsorted(uniq, vsec[last])
        out_close[pos] = close[price_ok][last]
        out_ns[pos] = ist_ns[price_ok][last]
    return Seconds(uniq, vol, ticks, out_close, out_ns)


def merge_seconds(parts: list[Seconds]) -> Seconds:
    """One table from several files' aggregates (e.g. overlapping spot files).

    Volumes and counts add; the price of a second is the one set by the latest tick, and
    for ticks at the same instant the later file in the list wins.
    """
    counts: dict[str, int] = {}
    for p in parts:
        for k, v in p.counts.items():
            counts[k] = counts.get(k, 0) + v
    parts = [p for p in parts if len(p.second)]
    if len(parts) <= 1:
        out = parts[0] if parts else _empty_seconds()
        return Seconds(out.second, out.volume, out.ticks, out.close, out.close_ns, counts)
    second = np.concatenate([p.second for p in parts])
    volume = np.concatenate([p.volume for p in parts])
    ticks = np.concatenate([p.ticks for p in parts])
    close = np.concatenate([p.close for p in parts])
    close_ns = np.concatenate([p.close_ns for p in parts])
    order = np.lexsort((close_ns, second))  # stable: equal instants keep list order
    second, volume, ticks, close, close_ns = (a[order] for a in (second, volume, ticks, close, close_ns))
    out = _aggregate(second, close_ns, volume, close, np.isfinite(close), ticks=ticks)
    out.counts = counts
    return out


def load_file_days(path: str, kind: str, naive_timezone: str, days: Iterable[int] | None = None,
                   use_threads: bool = True) -> FileDays:
    """Read one tick file (``kind`` 'option' or 'spot') and normalise ``days`` of it (``file_days``)."""
    columns = OPTION_COLUMNS if kind == "option" else SPOT_COLUMNS
    table = read_tick_table(path, columns, use_threads)
    try:
        return file_days(table, naive_timezone, kind == "option", days)
    except TickFileError as exc:
        raise TickFileError(exc.kind, f"{path}: {exc}; re-export the file with a timestamp column") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, ValueError) as exc:
        raise TickFileError("bad_file", f"{path}: column types not usable ({_short(exc)}); re-export the file "
                            f"with numeric close and vol_delta columns") from None


__all__ = [
    "Seconds", "TickRows", "FileDays", "TickFileError", "load_file_days", "file_days", "prepare_rows",
    "merge_seconds", "normalise_ticks", "read_tick_table", "timestamps_to_utc_ns", "days_seconds",
]
