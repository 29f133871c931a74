"""Tiny packed data sets written by tests: option and spot ticks, an expiry calendar."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

IST = "Asia/Kolkata"


def ist(day: str, clock: str) -> pd.Timestamp:
    """An IST timestamp from '2024-07-01' and '09:15:00[.fff]'."""
    return pd.Timestamp(f"{day} {clock}", tz=IST)


def ts_array(stamps, unit: str = "us", tz: str | None = IST) -> pa.Array:
    """tz-aware stamps as an arrow timestamp array of ``unit``, in zone ``tz`` (None: naive IST wall time)."""
    idx = pd.DatetimeIndex([pd.Timestamp(s).tz_convert("UTC") for s in stamps]).as_unit(unit)
    values = idx.asi8 if tz is not None else idx.tz_convert(IST).tz_localize(None).asi8
    return pa.array(values, pa.int64()).cast(pa.timestamp(unit, tz=tz))


def write_option(root: Path, symbol: str, expiry: str, opt_type: str, strike: int,
                 stamps, close, vol, timestamp_array: pa.Array | None = None, extra: dict | None = None) -> Path:
    exp = dt.date.fromisoformat(expiry)
    path = (Path(root) / "options" / symbol / f"{exp:%Y%m}" / f"exp={expiry}" / f"type={opt_type}"
            / f"strike={strike}.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {
        "timestamp": timestamp_array if timestamp_array is not None else ts_array(stamps),
        "close": pa.array(close, pa.float64()),
        "vol_delta": pa.array(vol, pa.int64()),
    }
    cols.update(extra or {})
    pq.write_table(pa.table(cols), path)
    return path


def write_spot(root: Path, symbol: str, day: str, stamps, close, timestamp_array: pa.Array | None = None) -> Path:
    d = dt.date.fromisoformat(day)
    path = Path(root) / "spot" / symbol / f"{d:%Y%m}" / f"date={day}" / "ticks.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "timestamp": timestamp_array if timestamp_array is not None else ts_array(stamps),
        "close": pa.array(close, pa.float64()),
    })
    pq.write_table(table, path)
    return path


def write_calendar(root: Path, symbol: str, expiries: list[str], kind: str = "Weekly") -> Path:
    path = Path(root) / "meta" / "expiry_calendar.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"Instrument": symbol, "Expiry_Type": kind, "Final_Expiry": e} for e in expiries]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def per_second_spot(day: str, start: str, values) -> tuple[list, list]:
    """One spot tick per second from ``start`` (IST clock) with the given values."""
    t0 = ist(day, start)
    return [t0 + pd.Timedelta(seconds=i) for i in range(len(values))], list(values)


def config(root: Path, start: str, end: str | None = None, **overrides) -> dict:
    """An engine config over the tiny data set in ``root`` (no cache unless asked)."""
    cfg = {
        "symbol": "BANKNIFTY",
        "start": start,
        "end": end or start,
        "data": {
            "options_dir": str(Path(root) / "options"),
            "spot_glob": str(Path(root) / "spot" / "{symbol}" / "**" / "*.parquet"),
            "calendar_csv": str(Path(root) / "meta" / "expiry_calendar.csv"),
        },
        "cache_dir": None,
        "results_dir": str(Path(root) / "results"),
    }
    for key, value in overrides.items():
        node = cfg
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return cfg


def volume_ticks(day: str, start: str, volumes, close) -> tuple[list, list, list]:
    """One option tick per second from ``start`` with per-second volumes and prices (skips zero-volume seconds
    only if the price is None too)."""
    t0 = ist(day, start)
    closes = close if isinstance(close, (list, tuple, np.ndarray)) else [close] * len(volumes)
    stamps, prices, vols = [], [], []
    for i, (v, c) in enumerate(zip(volumes, closes)):
        if v == 0 and c is None:
            continue
        stamps.append(t0 + pd.Timedelta(seconds=i))
        prices.append(c)
        vols.append(v)
    return stamps, prices, vols
