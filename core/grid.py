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


def sparse_series(seconds: Seconds, day: int, session: Session) -> SparseSeries:
    """The series of ``day`` inside the session grid (``day_series`` of it alone)."""
    return day_series([seconds], day, session).series(0)


def has_valid_price(seconds: Seconds, day: int, session: Session) -> bool:
    """Whether ``day`` has a valid price inside the session grid (strategy.md §2: a trading day)."""
    part = session_slice(seconds, day, session)
    return bool(np.isfinite(seconds.close[part.rows]).any())


@dataclass(frozen=True)
class SeriesArrays:
    """Option series laid end to end: series ``j``'s SparseSeries fields are
    ``volume_bars[volume_bars_off[j]:volume_bars_off[j + 1]]`` and likewise for ``volume_cum``,
    ``price_bars`` and ``prices``. ``price_bars`` is ``volume_bars`` itself (and shares its offsets) when
    every bar with ticks set a price."""

    volume_bars: np.ndarray  # int64
    volume_bars_off: np.ndarray  # int64, series + 1
    volume_cum: np.ndarray  # float64
    volume_cum_off: np.ndarray
    price_bars: np.ndarray  # int64
    price_bars_off: np.ndarray
    prices: np.ndarray  # float64
    prices_off: np.ndarray

    def series(self, j: int) -> SparseSeries:
        """Series ``j`` (views of the arrays)."""
        def part(values, offsets):
            return values[offsets[j]:offsets[j + 1]]

        return SparseSeries(part(self.volume_bars, self.volume_bars_off), part(self.volume_cum, self.volume_cum_off),
                            part(self.price_bars, self.price_bars_off), part(self.prices, self.prices_off))


@dataclass(frozen=True)
class DaySeries(SeriesArrays):
    """A day's option series cut to the session grid (``day_series``), and per series its ticks before the
    open, after the close and inside the session (as SessionSlice counts them)."""

    pre_open: np.ndarray  # int64 per series
    post_close: np.ndarray
    inside: np.ndarray


def offsets_of(counts) -> np.ndarray:
    """[0, running sums of ``counts``] as int64."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def day_series(parts: list[Seconds], day: int, session: Session) -> DaySeries:
    """The option series ``parts`` (per-second aggregates holding ``day``) cut to the session grid of ``day``:
    per series, its rows inside the session as bars, their running volume sums (one cumulative sum per
    series), the bars whose last valid tick set a price and those prices, and its ticks outside the
    session. Each series is written straight into the flat arrays, without a SparseSeries of its own
    that would be copied again to join them."""
    k = len(parts)
    first = day * 86_400 + session.open_sec
    # per series, as session_slice: the day's rows [lo, hi) and the session's [i0, i1)
    targets = np.array([day * 86_400, first, day * 86_400 + session.close_sec + 1, (day + 1) * 86_400], np.int64)
    bounds = np.array([p.second.searchsorted(targets) for p in parts], np.int64).reshape(k, 4)
    lo, i0, i1, hi = bounds.T
    bars_off = offsets_of(i1 - i0)
    cum_off = bars_off + np.arange(k + 1, dtype=np.int64)
    volume_bars = np.empty(bars_off[-1], np.int64)
    volume_cum = np.empty(cum_off[-1])
    session_close = np.empty(bars_off[-1])
    ticks = np.empty((k, 3), np.int64)
    for j, part in enumerate(parts):
        start, stop, at, cum_at = int(i0[j]), int(i1[j]), int(bars_off[j]), int(cum_off[j])
        n = stop - start
        volume_bars[at:at + n] = part.second[start:stop]
        volume_cum[cum_at] = 0.0
        np.cumsum(part.volume[start:stop], out=volume_cum[cum_at + 1:cum_at + 1 + n])
        session_close[at:at + n] = part.close[start:stop]
        ticks[j] = part.ticks[lo[j]:start].sum(), part.ticks[stop:hi[j]].sum(), part.ticks[start:stop].sum()
    volume_bars -= first
    priced = ~np.isnan(session_close)
    if priced.all():
        price_bars, price_bars_off, closes = volume_bars, bars_off, session_close  # every tick bar set a price
    else:
        price_bars, closes = volume_bars[priced], session_close[priced]
        priced_before = offsets_of(priced)
        price_bars_off = offsets_of(priced_before[bars_off[1:]] - priced_before[bars_off[:-1]])
    prices_off = price_bars_off + np.arange(k + 1, dtype=np.int64)
    leading = np.zeros(len(price_bars) + k, np.bool_)  # each series' prices begin with a NaN
    leading[prices_off[:-1]] = True
    prices = np.empty(len(leading))
    prices[leading] = np.nan
    prices[~leading] = closes
    return DaySeries(volume_bars, bars_off, volume_cum, cum_off, price_bars, price_bars_off, prices, prices_off,
                     pre_open=ticks[:, 0], post_close=ticks[:, 1], inside=ticks[:, 2])
