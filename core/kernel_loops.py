"""The compiled loops of the batch kernel (core.kernel): a day's signals and entries (``day_signals``)
and its exits (``day_exits``), for a batch of strategies at once.

Written as plain loops over float64 arrays with the comparisons of strategy.md in their order and
numpy's float semantics (np.maximum's NaN, the same operand order), so they give the same results as
the plain-loop reference; numba compiles them (cached on disk, no fastmath, releasing the GIL as
core.aot's module of them does).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .exits import OPTION_FLOOR

PREFILTER = 1.0 - 1e-9  # a bar can only hold an exact hit where its ratio exceeds multiplier * PREFILTER
FIRST_SEGMENT = 240  # bars of a window searched first; later segments double (most first signals come early)


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _maximum(a, b):  # pragma: no cover - compiled
    """np.maximum of two floats: NaN if either is NaN, else the larger (``a`` on a tie)."""
    return a if (a >= b or a != a) else b


@njit(cache=True, nogil=True)
def day_signals(spot, win_start, win_end, win_hour_open, win_cand_off, win_cands, win_rank, cand_is_ce,
                volume_bars, volume_bars_off, volume_cum, volume_cum_off, price_bars, price_bars_off, prices,
                prices_off, family_burst, family_avg, family_members, family_off, class_long, class_filter,
                strategy_class, multipliers, min_volumes, filters, entry_delay,
                out_bar, out_cand, out_burst, out_base, out_entry, out_entry_opt, out_entry_spot):  # pragma: no cover
    """First signals and entries of every strategy in every window of one day (strategy.md §4-6).

    Per window and signal family (``family_members[family_off[f]:family_off[f + 1]]``: the strategies
    sharing burst_secs and avg_secs) the window's bars are searched in segments of growing length, each
    for the strategies still without a signal, so an early signal does not pay for B(s) and S(s) over
    the whole hour; each segment is searched in full and in order, so the first qualifying bar is the
    same whatever the segments. Candidates are the day's series ``win_cands[win_cand_off[w]:...]`` (with
    their tie-break rank). Writes, per (window, strategy): the signal bar or -1, the chosen day
    candidate, B and S there, and the entry bar (-1 when the entry falls at or after the window's end)
    with the option's close and spot there."""
    n_classes = len(class_long)
    for w in range(len(win_start)):
        c0 = win_cand_off[w]
        n_cands = win_cand_off[w + 1] - c0
        end = win_end[w]
        wants_up = np.empty((n_classes, n_cands), np.bool_)
        rank = np.empty(n_cands, np.int64)
        for k in range(n_cands):
            rank[k] = win_rank[c0 + k]
            for c in range(n_classes):
                wants_up[c, k] = cand_is_ce[win_cands[c0 + k]] == class_long[c]
        for f in range(len(family_burst)):
            burst_secs, avg_secs = family_burst[f], family_avg[f]
            pending = family_members[family_off[f]:family_off[f + 1]].copy()
            n_pending = len(pending)
            start = max(win_start[w], burst_secs + avg_secs - 1)  # warm-up: no index before the open
            if n_cands == 0:
                n_pending = 0
            length = FIRST_SEGMENT
            while start < end and n_pending > 0:
                stop = min(end, start + length)
                n_bars = stop - start
                burst = np.empty((n_cands, n_bars))
                base_sum = np.empty((n_cands, n_bars))
                for k in range(n_cands):
                    cand = win_cands[c0 + k]
                    window_sums(volume_bars[volume_bars_off[cand]:volume_bars_off[cand + 1]],
                                volume_cum[volume_cum_off[cand]:volume_cum_off[cand + 1]], start, stop, burst_secs,
                                avg_secs, burst[k], base_sum[k])
                trend = spot[start:stop] - win_hour_open[w]
                best_ratio = np.full((n_classes, n_bars), -np.inf)
                for i in range(n_bars):
                    for k in range(n_cands):
                        s = base_sum[k, i]
                        ratio = (burst[k, i] * avg_secs) / (s * burst_secs) if s > 0 else -np.inf
                        for c in range(n_classes):
                            if class_filter[c]:
                                allowed = trend[i] > 0 if wants_up[c, k] else trend[i] < 0
                                value = ratio if allowed else -np.inf
                            else:
                                value = ratio
                            best_ratio[c, i] = value if k == 0 else _maximum(best_ratio[c, i], value)
                running_max = best_ratio.copy()
                for c in range(n_classes):
                    for i in range(1, n_bars):
                        running_max[c, i] = _maximum(running_max[c, i - 1], running_max[c, i])
                chosen = pending[:n_pending]
                found_bar, found_cand = first_signals(
                    burst, base_sum, trend, wants_up, rank, best_ratio, running_max, strategy_class[chosen],
                    multipliers[chosen], min_volumes[chosen], filters[chosen], float(avg_secs), float(burst_secs))
                kept = 0
                for q in range(n_pending):
                    j = pending[q]
                    i, k = found_bar[q], found_cand[q]
                    if i < 0:
                        pending[kept] = j
                        kept += 1
                        continue
                    cand = win_cands[c0 + k]
                    out_bar[w, j] = start + i
                    out_cand[w, j] = cand
                    out_burst[w, j] = burst[k, i]
                    out_base[w, j] = base_sum[k, i]
                    entry = start + i + entry_delay[j]
                    if entry < end:
                        out_entry[w, j] = entry
                        bars = price_bars[price_bars_off[cand]:price_bars_off[cand + 1]]
                        out_entry_opt[w, j] = prices[prices_off[cand] + np.searchsorted(bars, entry, "right")]
                        out_entry_spot[w, j] = spot[entry]
                n_pending = kept
                start, length = stop, 2 * length


@njit(cache=True, nogil=True)
def day_exits(spot, win_end, cand_is_ce, price_bars, price_bars_off, prices, prices_off, entry, cand, entry_opt,
              entry_spot, delta_used, sign, option_close, max_hold, stops, trails, activations, targets,
              out_exit_bar, out_reason, out_exit_opt, out_pnl):  # pragma: no cover - compiled
    """Exits of every entered trade of one day (strategy.md §7): per window, the value path V(t), pnl(t)
    and its running peak are computed once per distinct (entry bar, candidate, delta, side, P&L mode) and
    every exit setting sharing it is scanned over it. A trade is (window, strategy) with ``entry >= 0``
    and a price at entry."""
    n_windows, n_strategies = entry.shape
    group_of = np.empty(n_strategies, np.int64)
    for w in range(n_windows):
        end = win_end[w]
        n_groups = 0
        first_member = np.empty(n_strategies, np.int64)
        for j in range(n_strategies):
            group_of[j] = -1
            e = entry[w, j]
            if e < 0 or entry_opt[w, j] != entry_opt[w, j]:
                continue
            for g in range(n_groups):
                m = first_member[g]
                if (entry[w, m] == e and cand[w, m] == cand[w, j] and delta_used[w, m] == delta_used[w, j]
                        and sign[m] == sign[j] and option_close[m] == option_close[j]):
                    group_of[j] = g
                    break
            if group_of[j] < 0:
                first_member[n_groups] = j
                group_of[j] = n_groups
                n_groups += 1
        for g in range(n_groups):
            m = first_member[g]
            e, series = entry[w, m], cand[w, m]
            opt0, spot0 = entry_opt[w, m], entry_spot[w, m]
            n = end - e
            value = np.empty(n)
            if option_close[m]:
                bars = price_bars[price_bars_off[series]:price_bars_off[series + 1]]
                p = np.searchsorted(bars, e, "right")
                for t in range(n):
                    while p < len(bars) and bars[p] <= e + t:
                        p += 1
                    value[t] = prices[prices_off[series] + p]
            else:
                slope = delta_used[w, m] * (1 if cand_is_ce[series] else -1)
                for t in range(n):
                    value[t] = _maximum(OPTION_FLOOR, opt0 + slope * (spot[e + t] - spot0))
            pnl = np.empty(n)
            peak = np.empty(n)
            for t in range(n):
                pnl[t] = sign[m] * (value[t] - opt0)
                peak[t] = pnl[t] if t == 0 else _maximum(peak[t - 1], pnl[t])
            for j in range(m, n_strategies):
                if group_of[j] != g:
                    continue
                last = min(max_hold[j], end - 1 - e)
                idx, reason = exit_of(pnl, peak, opt0, last, stops[j], trails[j], activations[j], targets[j])
                out_exit_bar[w, j] = e + idx
                out_reason[w, j] = reason
                out_exit_opt[w, j] = value[idx]
                out_pnl[w, j] = pnl[idx]


@njit(cache=True, nogil=True)
def exit_of(pnl, peak, entry_opt, last, stop, trail, activation_pct, target):  # pragma: no cover - compiled
    """(index of the exit bar on the path, reason code into core.kernel.REASONS) of one exit setting:
    the first bar t in 1..last hitting the stop, else the trail, else the target; time at ``last``."""
    stop_level = -stop * entry_opt
    trail_on = trail > 0
    activation = activation_pct * entry_opt
    trail_gap = trail * entry_opt
    target_level = target * entry_opt
    for t in range(1, last + 1):
        if stop != 0 and pnl[t] <= stop_level:
            return t, 0
        if trail_on and peak[t] >= activation and peak[t] - pnl[t] >= trail_gap:
            return t, 1
        if target != 0 and pnl[t] >= target_level:
            return t, 2
    return last, 3
