"""Marking an open trade and finding its exit (strategy.md §6-7)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Strategy
from .grid import SparseSeries

OPTION_FLOOR = 0.05


@dataclass(frozen=True)
class Exit:
    bar: int
    reason: str  # stop, trail, target, time
    value: float  # V at the exit bar
    pnl: float  # pnl_pts at the exit bar


def option_values(spot: np.ndarray, series: SparseSeries, bars: np.ndarray, entry_spot: float,
                  entry_opt: float, delta_used: float, direction: int, pnl_mode: str) -> np.ndarray:
    """V(t) for each bar: the delta proxy (floored at 0.05) or the option's own close."""
    if pnl_mode == "option_close":
        return series.close_at(bars)
    return np.maximum(OPTION_FLOOR, entry_opt + delta_used * direction * (spot[bars] - entry_spot))


def simulate_exit(spot: np.ndarray, series: SparseSeries, entry_bar: int, last_bar: int,
                  entry_spot: float, entry_opt: float, delta_used: float, direction: int,
                  strategy: Strategy) -> Exit:
    """First bar in (entry_bar, last_bar] hitting stop, trail or target (in that priority),
    else ``last_bar`` with reason ``time``."""
    sign = -1 if strategy.side == "sell" else 1
    bars = np.arange(entry_bar, last_bar + 1)
    value = option_values(spot, series, bars, entry_spot, entry_opt, delta_used, direction, strategy.pnl_mode)
    pnl = sign * (value - entry_opt)
    peak = np.maximum.accumulate(pnl)
    scan = slice(1, None)  # t = e+1 .. x_max
    hit_stop = np.zeros(len(bars) - 1, bool)
    hit_trail = np.zeros_like(hit_stop)
    hit_target = np.zeros_like(hit_stop)
    if strategy.stop_pct:
        hit_stop = pnl[scan] <= -strategy.stop_pct * entry_opt
    if strategy.trail_pct > 0:
        hit_trail = ((peak[scan] >= strategy.trail_activate_pct * entry_opt)
                     & (peak[scan] - pnl[scan] >= strategy.trail_pct * entry_opt))
    if strategy.target_pct:
        hit_target = pnl[scan] >= strategy.target_pct * entry_opt
    any_hit = hit_stop | hit_trail | hit_target
    if any_hit.any():
        k = int(np.argmax(any_hit))
        reason = "stop" if hit_stop[k] else ("trail" if hit_trail[k] else "target")
        i = k + 1
    else:
        reason, i = "time", len(bars) - 1
    return Exit(bar=int(bars[i]), reason=reason, value=float(value[i]), pnl=float(pnl[i]))
