"""The burst signal, the trend filter and the choice of the trade (SPEC 4-5)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Strategy


@dataclass(frozen=True)
class Candidate:
    """One option series on one day, as the signal sees it."""

    opt_type: str  # "CE" or "PE"
    strike: int
    volume_cum: np.ndarray  # prefix sums of per-bar volume, length n_bars + 1
    close: np.ndarray  # forward-filled close per bar


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


def burst_and_baseline(volume_cum: np.ndarray, bars: np.ndarray, burst_secs: int, avg_secs: int):
    """B(s), S(s) for each bar s, and whether every index lies inside the day (warm-up)."""
    warm = bars - burst_secs - avg_secs + 1 >= 0
    safe = np.where(warm, bars, burst_secs + avg_secs - 1)
    upper = volume_cum[..., safe + 1]
    mid = volume_cum[..., safe + 1 - burst_secs]
    lower = volume_cum[..., safe + 1 - burst_secs - avg_secs]
    return upper - mid, mid - lower, warm


def qualifies_by_trend(opt_types: np.ndarray, trend: np.ndarray, strategy: Strategy) -> np.ndarray:
    """Candidate x bar mask of the trend filter: a short CE needs a falling market, and so on."""
    if not strategy.trend_filter:
        return np.ones((len(opt_types), len(trend)), bool)
    up, down = trend > 0, trend < 0
    is_ce = (opt_types == "CE")[:, None]
    if strategy.side == "sell":
        return np.where(is_ce, down[None, :], up[None, :])
    return np.where(is_ce, up[None, :], down[None, :])


def find_signal(spot: np.ndarray, hour_open: float, atm: int, candidates: list[Candidate],
                start: int, end: int, strategy: Strategy) -> Signal | None:
    """The signal of the window [start, end): first bar with a qualifying burst, best candidate."""
    if not candidates or end <= start:
        return None
    bars = np.arange(start, end)
    cums = np.stack([c.volume_cum for c in candidates])
    burst, base_sum, warm = burst_and_baseline(cums, bars, strategy.burst_secs, strategy.avg_secs)
    avg, bsec, mult = strategy.avg_secs, strategy.burst_secs, strategy.multiplier
    is_burst = (warm[None, :] & (base_sum > 0) & (burst * avg > mult * base_sum * bsec)
                & (burst >= strategy.min_burst_volume))
    opt_types = np.array([c.opt_type for c in candidates])
    hits = is_burst & qualifies_by_trend(opt_types, spot[bars] - hour_open, strategy)
    any_hit = hits.any(axis=0)
    if not any_hit.any():
        return None
    col = int(np.argmax(any_hit))
    best_key, best = None, -1
    for i in np.flatnonzero(hits[:, col]):
        ratio = (burst[i, col] * avg) / (base_sum[i, col] * bsec)
        c = candidates[i]
        key = (-ratio, abs(c.strike - atm), 0 if c.opt_type == "CE" else 1, c.strike)
        if best_key is None or key < best_key:
            best_key, best = key, int(i)
    return Signal(bar=int(bars[col]), candidate=best,
                  burst_volume=float(burst[best, col]), baseline_sum=float(base_sum[best, col]))
