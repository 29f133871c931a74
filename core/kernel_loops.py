"""The compiled loops of the batch kernel (core.kernel): first signals and exit scans.

Written as plain loops over float64 arrays with the comparisons of strategy.md in their order, so
they give the same results as the plain-loop reference; numba compiles them (cached on disk).
"""
from __future__ import annotations

import numpy as np
from numba import njit

PREFILTER = 1.0 - 1e-9  # a bar can only hold an exact hit where its ratio exceeds multiplier * PREFILTER


@njit(cache=True)
def window_sums(volume_bars, volume_cum, start, stop, burst_secs, avg_secs, burst, base_sum):  # pragma: no cover
    """B(s) and S(s) of one sparse series for the bars s in [start, stop) (start >= burst + avg - 1), into
    ``burst`` and ``base_sum``: the same entries of ``volume_cum`` as core.signal.burst_and_baseline,
    located by walking the tick bars once instead of searching them."""
    n_ticks = len(volume_bars)
    up = np.searchsorted(volume_bars, start + 1)  # tick bars < s + 1
    mid = np.searchsorted(volume_bars, start + 1 - burst_secs)  # < s + 1 - burst
    low = np.searchsorted(volume_bars, start + 1 - burst_secs - avg_secs)  # < s + 1 - burst - avg
    for i in range(stop - start):
        s = start + i
        while up < n_ticks and volume_bars[up] < s + 1:
            up += 1
        while mid < n_ticks and volume_bars[mid] < s + 1 - burst_secs:
            mid += 1
        while low < n_ticks and volume_bars[low] < s + 1 - burst_secs - avg_secs:
            low += 1
        burst[i] = volume_cum[up] - volume_cum[mid]
        base_sum[i] = volume_cum[mid] - volume_cum[low]


@njit(cache=True)
def first_signals(burst, base_sum, trend, wants_up, rank, best_ratio, running_max, class_of, multipliers,
                   min_volumes, filters, avg_secs, burst_secs):  # pragma: no cover - compiled
    """Per strategy: (index of the first bar with a qualifying burst or -1, chosen candidate)."""
    n_strategies = len(multipliers)
    n_cands, n_bars = burst.shape
    out_bar = np.full(n_strategies, -1, np.int64)
    out_cand = np.full(n_strategies, -1, np.int64)
    for j in range(n_strategies):
        c = class_of[j]
        mult = multipliers[j]
        bound = mult * PREFILTER
        # first bar whose running best ratio exceeds the bound (running_max is non-decreasing)
        lo, hi = 0, n_bars
        while lo < hi:
            mid = (lo + hi) // 2
            if running_max[c, mid] > bound:
                hi = mid
            else:
                lo = mid + 1
        for i in range(lo, n_bars):
            if not best_ratio[c, i] > bound:
                continue
            chosen = -1
            chosen_ratio = 0.0
            for k in range(n_cands):
                b = burst[k, i]
                s = base_sum[k, i]
                if not (s > 0 and b * avg_secs > mult * s * burst_secs and b >= min_volumes[j]):
                    continue
                if filters[j]:
                    if wants_up[c, k]:
                        if not trend[i] > 0:
                            continue
                    elif not trend[i] < 0:
                        continue
                ratio = (b * avg_secs) / (s * burst_secs)
                if chosen < 0 or ratio > chosen_ratio or (ratio == chosen_ratio and rank[k] < rank[chosen]):
                    chosen, chosen_ratio = k, ratio
            if chosen >= 0:
                out_bar[j] = i
                out_cand[j] = chosen
                break
    return out_bar, out_cand


@njit(cache=True)
def scan_exits(pnl, peak, entry_opt, last, stops, trails, activations, targets):  # pragma: no cover
    """Per exit setting: (index of the exit bar on the path, reason code into REASONS)."""
    n = len(stops)
    out_idx = np.empty(n, np.int64)
    out_reason = np.empty(n, np.int64)
    for j in range(n):
        stop_level = -stops[j] * entry_opt
        trail_on = trails[j] > 0
        activation = activations[j] * entry_opt
        trail_gap = trails[j] * entry_opt
        target_level = targets[j] * entry_opt
        idx, reason = last[j], 3
        for t in range(1, last[j] + 1):
            if stops[j] != 0 and pnl[t] <= stop_level:
                idx, reason = t, 0
                break
            if trail_on and peak[t] >= activation and peak[t] - pnl[t] >= trail_gap:
                idx, reason = t, 1
                break
            if targets[j] != 0 and pnl[t] >= target_level:
                idx, reason = t, 2
                break
        out_idx[j] = idx
        out_reason[j] = reason
    return out_idx, out_reason
