"""Trades and daily summary tables with the exact schema of strategy.md §8, and atomic writers."""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .cache import atomic_write_bytes, open_temp_beside

IST = "Asia/Kolkata"
TS = pa.timestamp("us", tz=IST)

TRADE_SCHEMA = pa.schema([
    ("symbol", pa.string()),
    ("trade_date", pa.date32()),
    ("anchor", pa.string()),
    ("expiry", pa.date32()),
    ("opt_type", pa.string()),
    ("strike", pa.int64()),
    ("side", pa.string()),
    ("entry_ts", TS),
    ("exit_ts", TS),
    ("entry_spot", pa.float64()),
    ("exit_spot", pa.float64()),
    ("delta_used", pa.float64()),
    ("entry_opt", pa.float64()),
    ("exit_opt", pa.float64()),
    ("pnl_pts", pa.float64()),
    ("exit_reason", pa.string()),
    # informative extras
    ("signal_ts", TS),
    ("burst_vol", pa.float64()),
    ("base_vol", pa.float64()),
    ("atm", pa.int64()),
    ("days_to_expiry", pa.int64()),
])

SUMMARY_SCHEMA = pa.schema([
    ("trade_date", pa.date32()),
    ("n_trades", pa.int64()),
    ("pnl_pts", pa.float64()),
    ("avg_pnl", pa.float64()),
    ("std_pnl", pa.float64()),
    # daily sums of the money columns (null when a day's costs are unknown)
    ("gross_inr", pa.float64()),
    ("charges_inr", pa.float64()),
    ("net_inr", pa.float64()),
    ("net_pts", pa.float64()),
])
MONEY_SUMS = ("gross_inr", "charges_inr", "net_inr", "net_pts")


def trades_table(parts: list[pa.Table]) -> pa.Table:
    """Trade tables (core.kernel, in TRADE_SCHEMA) as one table sorted by entry_ts (then anchor,
    symbol: deterministic)."""
    table = pa.concat_tables(parts) if parts else TRADE_SCHEMA.empty_table()
    if table.num_rows:
        table = table.sort_by([("entry_ts", "ascending"), ("anchor", "ascending"), ("symbol", "ascending")])
    return table.combine_chunks()


def day_sums(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sum of each group ``values[start:start + count]``, added left to right from 0.0."""
    total = np.zeros(len(starts))
    for k in range(int(counts.max()) if len(counts) else 0):
        has = counts > k
        total[has] += values[starts[has] + k]
    return total


def summary_table(trades: pa.Table) -> pa.Table:
    """One row per trade_date: count, sum, mean and sample std (ddof 1; null for one trade)."""
    if trades.num_rows == 0:
        return SUMMARY_SCHEMA.empty_table()
    dates = trades.column("trade_date").cast(pa.int32()).to_numpy()
    pnl = trades.column("pnl_pts").to_numpy()
    money = {k: (trades.column(k).to_numpy(zero_copy_only=False) if k in trades.column_names
                 else np.full(len(pnl), np.nan)) for k in MONEY_SUMS}
    order = np.argsort(dates, kind="stable")
    dates, pnl = dates[order], pnl[order]
    money = {k: np.asarray(v, float)[order] for k, v in money.items()}
    starts = np.flatnonzero(np.r_[True, dates[1:] != dates[:-1]])
    counts = np.diff(np.r_[starts, len(dates)])
    rows = {"trade_date": dates[starts], "n_trades": counts}
    if counts.max() < 8:
        # numpy sums fewer than 8 values left to right from 0.0; so does day_sums, so these equal
        # the per-day chunk.sum(), .mean() and .std(ddof=1) bit for bit.
        rows["pnl_pts"] = day_sums(pnl, starts, counts)
        rows["avg_pnl"] = rows["pnl_pts"] / counts
        deviation = pnl - np.repeat(rows["avg_pnl"], counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(day_sums(deviation * deviation, starts, counts) / (counts - 1))
        rows["std_pnl"] = pa.array(std, pa.float64(), mask=counts == 1)  # null for a single trade
        for k, values in money.items():
            sums = day_sums(values, starts, counts)
            rows[k] = pa.array(sums, pa.float64(), mask=np.isnan(sums))  # null when a trade has no cost
    else:  # many trades a day (many anchors): numpy sums pairwise, so sum each day as numpy does
        ends = np.r_[starts[1:], len(dates)]
        rows["pnl_pts"] = [float(pnl[a:b].sum()) for a, b in zip(starts, ends)]
        rows["avg_pnl"] = [float(pnl[a:b].mean()) for a, b in zip(starts, ends)]
        rows["std_pnl"] = [float(pnl[a:b].std(ddof=1)) if b - a > 1 else None for a, b in zip(starts, ends)]
        for k, values in money.items():
            rows[k] = [None if np.isnan(values[a:b]).any() else float(values[a:b].sum()) for a, b in zip(starts, ends)]
    arrays = [pa.array(np.asarray(rows["trade_date"], np.int32), pa.int32()).cast(pa.date32())] + [
        rows[f.name] if isinstance(rows[f.name], pa.Array) else pa.array(rows[f.name], f.type)
        for f in list(SUMMARY_SCHEMA)[1:]
    ]
    return pa.Table.from_arrays(arrays, schema=SUMMARY_SCHEMA)


def output_paths(results_dir: Path, symbol: str, start, end) -> dict[str, Path]:
    stem = f"{symbol}_{start:%Y-%m-%d}_{end:%Y-%m-%d}"
    return {
        "trades": results_dir / f"trades_{stem}.parquet",
        "summary": results_dir / f"summary_{stem}.parquet",
        "health": results_dir / f"health_{stem}.json",
    }


def write_table(table: pa.Table, where) -> None:
    """``pq.write_table`` as every output table is written: dictionary encoding for the string
    columns only (their few labels), plain for numbers, whose values rarely repeat (a trades file
    is written in about two thirds of the time, and is smaller)."""
    strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    pq.write_table(table, where, use_dictionary=strings or False)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically (temp file + rename)."""
    atomic_write_bytes(Path(path), lambda fh: write_table(table, fh))


def write_json(obj, path: Path) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str).encode()
    atomic_write_bytes(Path(path), lambda fh: fh.write(text))


def _contents(write: Callable, *args) -> bytes:
    """What ``write(fileobj, *args)`` writes, as bytes."""
    buffer = io.BytesIO()
    write(buffer, *args)
    return buffer.getvalue()


def _write_temp(folder: Path, name: str, data: bytes) -> Path:
    """``data`` in a new hidden temp file of ``folder`` (beside ``name``), in three system calls."""
    fd, temp = open_temp_beside(folder / name)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    return temp


def write_file_set(folder: Path, files: dict[str, Callable], marker: str) -> dict[str, Path]:
    """Write a run's files as a set: every file into a hidden temp file of ``folder``, then each renamed
    into place with ``marker`` last (it lists the BLAKE2b digest of every other file of the set).

    The marker of an earlier run with the same names is removed before the first rename, so a reader
    that trusts only a marker whose digests match never mixes two runs. ``files`` maps file names to
    ``write(fileobj)`` callables; ``files[marker]`` is called with the digests as a second argument.
    On any error nothing new is left in ``folder`` and the error is raised.

    Few system calls on purpose (about four a file): a sweep's driver writes a set per combination
    while other threads of it compute, and a thread gets Python's lock back only after a switch
    interval (5 ms) each time a system call released it to a busy thread.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    temps: dict[str, Path] = {}
    try:
        digests = {}
        for name, write in files.items():
            if name == marker:
                continue
            data = _contents(write)
            temps[name] = _write_temp(folder, name, data)
            digests[name] = hashlib.blake2b(data, digest_size=16).hexdigest()
        temps[marker] = _write_temp(folder, marker, _contents(files[marker], digests))
        try:
            os.unlink(folder / marker)
        except FileNotFoundError:
            pass
        for name in [*digests, marker]:
            os.replace(temps.pop(name), folder / name)
    finally:
        for temp in temps.values():  # only after an error
            try:
                os.unlink(temp)
            except OSError:
                pass
    return {name: folder / name for name in files}


def write_run_files(paths: dict[str, Path], files: dict[str, Callable], health: dict) -> dict[str, Path]:
    """Write a run's ``files`` (name -> ``write(fileobj)``) and its health json ``paths['health']`` as one
    set (write_file_set; the health json lists every file's digest under ``outputs``)."""
    def write_health(fh, digests):
        fh.write(json.dumps({**health, "outputs": digests}, indent=2, default=str).encode())

    marker = paths["health"].name
    return write_file_set(paths["health"].parent, {**files, marker: write_health}, marker=marker)


__all__ = ["TRADE_SCHEMA", "SUMMARY_SCHEMA", "trades_table", "summary_table", "output_paths",
           "write_parquet", "write_table", "write_json", "write_file_set", "write_run_files"]
