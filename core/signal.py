"""What the signal sees of a window: its candidates, and B(s) and S(s) of one series (strategy.md §4).

The search for the first qualifying burst and the choice between candidates (§4-5) run in the
batch kernel, core.kernel, for one strategy or many."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import SparseSeries


@dataclass(frozen=True)
class Candidate:
    """One option series on one day, as the signal sees it."""

    opt_type: str  # "CE" or "PE"
    strike: int
    series: SparseSeries


def burst_and_baseline(series: SparseSeries, bars: np.ndarray, burst_secs: int, avg_secs: int):
    """B(s) and S(s) for each bar s (valid only where s - burst - avg + 1 >= 0)."""
    first, last = int(bars[0]), int(bars[-1])
    if len(bars) == last - first + 1 and first + 1 - burst_secs - avg_secs >= 0:  # a run of bars (a window)
        start = first + 1 - burst_secs - avg_secs
        before = series.volume_before_each(start, last + 2)  # volume_before(start .. last + 1)
        upper = before[bars + 1 - start]
        mid = before[bars + 1 - burst_secs - start]
        lower = before[bars + 1 - burst_secs - avg_secs - start]
    else:
        upper = series.volume_before(bars + 1)
        mid = series.volume_before(bars + 1 - burst_secs)
        lower = series.volume_before(bars + 1 - burst_secs - avg_secs)
    return upper - mid, mid - lower
