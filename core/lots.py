"""Lot sizes of NSE index option contracts, as data with the first expiry each applies to.

A contract's lot size is the row of its instrument with the latest ``First_Expiry`` on or
before the contract's expiry (NSE changes lot sizes by contract series, not by trade date).
Sources are in ``meta/lot_sizes.csv``.
"""
from __future__ import annotations

import datetime as dt
import functools

from .resources import meta_file

LOT_SIZES_CSV = meta_file("lot_sizes.csv")


@functools.lru_cache(maxsize=4)
def lot_table(path: str = str(LOT_SIZES_CSV)) -> dict[str, list[tuple[dt.date, int]]]:
    import pandas as pd

    frame = pd.read_csv(path, dtype=str)
    out: dict[str, list[tuple[dt.date, int]]] = {}
    for row in frame.itertuples(index=False):
        out.setdefault(row.Instrument.upper(), []).append((dt.date.fromisoformat(row.First_Expiry), int(row.Lot_Size)))
    return {k: sorted(v) for k, v in out.items()}


@functools.lru_cache(maxsize=4096)
def lot_size(symbol: str, expiry: dt.date) -> int:
    """Lot size of ``symbol`` contracts expiring on ``expiry``; ValueError if the table has none."""
    rows = lot_table().get(symbol.upper())
    if not rows:
        raise ValueError(f"no lot size for {symbol} in {LOT_SIZES_CSV}; add its history there")
    size = None
    for first, lots in rows:
        if first <= expiry:
            size = lots
    if size is None:
        raise ValueError(f"no lot size for {symbol} contracts expiring {expiry} (table starts {rows[0][0]})")
    return size
