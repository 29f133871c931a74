"""Per-second grids of one trading day (strategy.md §2), cut from a file's per-second aggregates.

Bar ``i`` of a day is the second ``session.open + i``; the grid runs from the open to the
close inclusive (22,501 bars for 09:15:00-15:30:00). Spot is kept dense (one value per
bar, carried forward). An option series is kept sparse, by the bars that hold ticks: its
volume sums and its carried-forward close at any bar are read from that exactly as from
the dense grid, without materialising 22,501 values per series and day.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Session
from .ticks import Seconds

# Bump when the meaning of cached per-second aggregates changes (invalidates the cache).
GRID_VERSION = 4  # 4: close and vol_delta stored as text are parsed, non-numbers counted as null


def forward_fill(values: np.ndarray) -> np.ndarray:
    """NaNs replaced by the last earlier non-NaN value; leading NaNs stay NaN."""
    valid = ~np.isnan(values)
    pos = np.where(valid, np.arange(len(values)), -1)
    np.maximum.accumulate(pos, out=pos)
    out = values[np.maximum(pos, 0)]
    out[pos < 0] = np.nan
    return out


@dataclass(frozen=True)
class SessionSlice:
    """The rows of one day's aggregates inside the session grid, and the ticks inside and outside it."""

    bars: np.ndarray  # int64 bar index of each row in the grid
    rows: slice
    pre_open: int
    post_close: int
    inside: int


def session_slice(seconds: Seconds, day: int, session: Session) -> SessionSlice:
    first = day * 86_400 + session.open_sec
    last = day * 86_400 + session.close_sec
    lo = int(np.searchsorted(seconds.second, day * 86_400, "left"))
    hi = int(np.searchsorted(seconds.second, (day + 1) * 86_400, "left"))
    i0 = int(np.searchsorted(seconds.second, first, "left"))
    i1 = int(np.searchsorted(seconds.second, last, "right"))
    return SessionSlice(seconds.second[i0:i1] - first, slice(i0, i1),
                        int(seconds.ticks[lo:i0].sum()), int(seconds.ticks[i1:hi].sum()), int(seconds.ticks[i0:i1].sum()))


def spot_grid(seconds: Seconds, day: int, session: Session) -> tuple[np.ndarray, SessionSlice]:
    """Dense close per bar of ``day`` (last valid price carried forward; NaN before the first)."""
    part = session_slice(seconds, day, session)
    close = np.full(session.n_bars, np.nan)
    close[part.bars] = seconds.close[part.rows]
    return forward_fill(close), part


@dataclass(frozen=True)
class SparseSeries:
    """One option series on one day, by the bars that hold ticks."""

    volume_bars: np.ndarray  # int64 bars with ticks, ascending
    volume_cum: np.ndarray  # float64 [0, running sums through each of those bars] (len + 1)
    price_bars: np.ndarray  # int64 bars whose last valid tick set a price, ascending
    prices: np.ndarray  # float64 [NaN, the price set at each of those bars] (len + 1)

    def volume_before(self, bars: np.ndarray) -> np.ndarray:
        """Sum of per-bar volume over bars < ``bars``: the dense prefix sum, exactly."""
        return self.volume_cum[np.searchsorted(self.volume_bars, bars, "left")]

    def volume_before_each(self, first: int, stop: int) -> np.ndarray:
        """``volume_before(np.arange(first, stop))``, without a binary search per bar: the same
        entries of ``volume_cum``, located by counting the tick bars below each of the bars."""
        i0 = int(np.searchsorted(self.volume_bars, first, "left"))
        i1 = int(np.searchsorted(self.volume_bars, stop - 1, "left"))
        # each tick bar in [first, stop - 1) lifts the count of every later bar by one
        below = np.bincount(self.volume_bars[i0:i1] - (first - 1), minlength=stop - first)
        return self.volume_cum[i0 + np.cumsum(below)]

    def close_at(self, bars: np.ndarray) -> np.ndarray:
        """close[bar]: the last valid price at or before each bar; NaN before the first."""
        return self.prices[np.searchsorted(self.price_bars, bars, "right")]


def sparse_series(seconds: Seconds, day: int, session: Session) -> tuple[SparseSeries, SessionSlice]:
    """The series of ``day`` inside the session grid, and the ticks that fall outside it."""
    part = session_slice(seconds, day, session)
    volume = seconds.volume[part.rows]
    close = seconds.close[part.rows]
    priced = ~np.isnan(close)
    cum = np.empty(len(volume) + 1)
    cum[0] = 0.0
    np.cumsum(volume, out=cum[1:])
    series = SparseSeries(volume_bars=part.bars, volume_cum=cum, price_bars=part.bars[priced],
                          prices=np.concatenate(([np.nan], close[priced])))
    return series, part


def has_valid_price(seconds: Seconds, day: int, session: Session) -> bool:
    """Whether ``day`` has a valid price inside the session grid (strategy.md §2: a trading day)."""
    part = session_slice(seconds, day, session)
    return bool(np.isfinite(seconds.close[part.rows]).any())
