"""The burst signal, the trend filter and the choice of the trade (strategy.md §4-5)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Strategy
from .grid import SparseSeries

# Bars scanned per step when looking for a window's first signal: most windows fire early,
# so the scan grows geometrically instead of evaluating the whole hour at once.
FIRST_SCAN, MAX_SCAN = 64, 4096


@dataclass(frozen=True)
class Candidate:
    """One option series on one day, as the signal sees it."""

    opt_type: str  # "CE" or "PE"
    strike: int
    series: SparseSeries


@dataclass(frozen=True)
class Signal:
    """The first qualifying burst of a window and the candidate chosen at it."""

    bar: int
    candidate: int  # index into the window's candidates
    burst_volume: float  # B(s)
    baseline_sum: float  # S(s), the raw sum over the avg_secs bars before the burst window

    def baseline(self, strategy: Strategy) -> float:
        """base(s): the average burst-sized volume before the burst window."""
        return self.baseline_sum * strategy.burst_secs / strategy.avg_secs


def burst_and_baseline(series: SparseSeries, bars: np.ndarray, burst_secs: int, avg_secs: int):
    """B(s) and S(s) for each bar s (valid only where s - burst - avg + 1 >= 0)."""
    upper = series.volume_before(bars + 1)
    mid = series.volume_before(bars + 1 - burst_secs)
    lower = series.volume_before(bars + 1 - burst_secs - avg_secs)
    return upper - mid, mid - lower


def qualifies_by_trend(opt_type: str, trend: np.ndarray, strategy: Strategy) -> np.ndarray:
    """Trend filter per bar: a short CE needs a falling market, a short PE a rising one; longs the reverse."""
    if not strategy.trend_filter:
        return np.ones(len(trend), bool)
    wants_up = (opt_type == "CE") == (strategy.side == "long")
    return trend > 0 if wants_up else trend < 0


def _hits(candidates, bars, trend, strategy):
    """Per candidate: (mask of bars with a qualifying burst, B, S) over ``bars``."""
    avg, bsec, mult = strategy.avg_secs, strategy.burst_secs, strategy.multiplier
    out = []
    for c in candidates:
        burst, base_sum = burst_and_baseline(c.series, bars, bsec, avg)
        hit = ((base_sum > 0) & (burst * avg > mult * base_sum * bsec) & (burst >= strategy.min_burst_volume)
               & qualifies_by_trend(c.opt_type, trend, strategy))
        out.append((hit, burst, base_sum))
    return out


def find_signal(spot: np.ndarray, hour_open: float, atm: int, candidates: list[Candidate],
                start: int, end: int, strategy: Strategy) -> Signal | None:
    """The signal of the window [start, end): first bar with a qualifying burst, best candidate."""
    if not candidates:
        return None
    lo = max(start, strategy.burst_secs + strategy.avg_secs - 1)  # warm-up: no index before the open
    size = FIRST_SCAN
    while lo < end:
        hi = min(end, lo + size)
        bars = np.arange(lo, hi)
        found = _hits(candidates, bars, spot[lo:hi] - hour_open, strategy)
        any_hit = np.logical_or.reduce([hit for hit, _, _ in found])
        if any_hit.any():
            col = int(np.argmax(any_hit))
            return _choose(candidates, found, col, int(bars[col]), atm, strategy)
        lo, size = hi, min(size * 4, MAX_SCAN)
    return None


def _choose(candidates, found, col, bar, atm, strategy) -> Signal:
    """Largest B/base at the signal bar; ties: nearer ATM, then CE before PE, then lower strike."""
    best_key, best = None, None
    for i, (c, (hit, burst, base_sum)) in enumerate(zip(candidates, found)):
        if not hit[col]:
            continue
        ratio = (burst[col] * strategy.avg_secs) / (base_sum[col] * strategy.burst_secs)
        key = (-ratio, abs(c.strike - atm), 0 if c.opt_type == "CE" else 1, c.strike)
        if best_key is None or key < best_key:
            best_key, best = key, (i, float(burst[col]), float(base_sum[col]))
    i, burst_volume, baseline_sum = best
    return Signal(bar=bar, candidate=i, burst_volume=burst_volume, baseline_sum=baseline_sum)
