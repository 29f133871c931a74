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
    upper = series.volume_before(bars + 1)
    mid = series.volume_before(bars + 1 - burst_secs)
    lower = series.volume_before(bars + 1 - burst_secs - avg_secs)
    return upper - mid, mid - lower
