"""Marking an open trade (strategy.md §7): the option value V(t) used for P&L.

The exit scan itself (stop, trail, target, time) runs in the batch kernel, core.kernel.
"""
from __future__ import annotations

OPTION_FLOOR = 0.05  # the delta proxy never values an option below one tick
