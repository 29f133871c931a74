"""Per-second grids of one trading day (SPEC 2), cut from a file's per-second aggregates.

Bar ``i`` of a day is the second ``session.open + i``; the grid runs from the open to the
close inclusive (22,501 bars for 09:15:00-15:30:00).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Session
from .ticks import Seconds

# Bump when the meaning of cached per-second aggregates changes (invalidates the cache).
GRID_VERSION = 1


@dataclass(frozen=True)
class DayGrid:
    """One series on one day: per-bar volume, forward-filled close, ignored tick counts."""

    volume: np.ndarray  # float64[n_bars]
    close: np.ndarray  # float64[n_bars], NaN before the day's first valid price
    ticks_in_session: int
    pre_open: int
    post_close: int

    @property
    def has_ticks(self) -> bool:
        return self.ticks_in_session + self.pre_open + self.post_close > 0


def forward_fill(values: np.ndarray) -> np.ndarray:
    """NaNs replaced by the last earlier non-NaN value; leading NaNs stay NaN."""
    valid = ~np.isnan(values)
    pos = np.where(valid, np.arange(len(values)), -1)
    np.maximum.accumulate(pos, out=pos)
    out = values[np.maximum(pos, 0)]
    out[pos < 0] = np.nan
    return out


def day_bounds(seconds: Seconds, day: int) -> tuple[int, int]:
    """Row range [lo, hi) of ``seconds`` on IST day ``day`` (days since epoch)."""
    lo = int(np.searchsorted(seconds.second, day * 86_400, "left"))
    hi = int(np.searchsorted(seconds.second, (day + 1) * 86_400, "left"))
    return lo, hi


def day_grid(seconds: Seconds, day: int, session: Session) -> DayGrid:
    """The grid of ``day``: vol[s] summed, close[s] last valid price carried forward."""
    first = day * 86_400 + session.open_sec
    last = day * 86_400 + session.close_sec
    lo, hi = day_bounds(seconds, day)
    i0 = lo + int(np.searchsorted(seconds.second[lo:hi], first, "left"))
    i1 = lo + int(np.searchsorted(seconds.second[lo:hi], last, "right"))
    n = session.n_bars
    bars = seconds.second[i0:i1] - first
    volume = np.zeros(n)
    volume[bars] = seconds.volume[i0:i1]
    close = np.full(n, np.nan)
    close[bars] = seconds.close[i0:i1]
    return DayGrid(
        volume=volume,
        close=forward_fill(close),
        ticks_in_session=int(seconds.ticks[i0:i1].sum()),
        pre_open=int(seconds.ticks[lo:i0].sum()),
        post_close=int(seconds.ticks[i1:hi].sum()),
    )


def valid_price_days(seconds: Seconds, session: Session) -> np.ndarray:
    """IST days with at least one valid price inside the session grid (SPEC 2: trading days)."""
    sod = seconds.second % 86_400
    ok = np.isfinite(seconds.close) & (sod >= session.open_sec) & (sod <= session.close_sec)
    return np.unique(seconds.second[ok] // 86_400)


def cumulative(volume: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0: sum(volume[a:b]) == out[b] - out[a] (exact for whole numbers)."""
    out = np.empty(len(volume) + 1)
    out[0] = 0.0
    np.cumsum(volume, out=out[1:])
    return out
