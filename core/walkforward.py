"""Walk-forward validation of a sweep: choose on a train window, trade the choice on the next test window.

Pure functions over the sweep's per-combination trades; nothing is evaluated again. For each step,
every combination's metric is computed from its trades dated inside the train window only, the best
one is chosen (ties: the lowest combination number, as the sweep's ranking), and its trades dated
inside the following test window become that step's out-of-sample record. A step's choice therefore
never depends on anything dated on or after its train window's end (tested). Formulas and how to
read the output: docs/statistics.md.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .stats import LOWER_IS_BETTER, summary_stats

_LENGTH = re.compile(r"^\s*(\d+)\s*([DWMY])\s*$", re.IGNORECASE)


def parse_length(text, key: str) -> pd.DateOffset:
    """A window length such as ``6M``, ``1M``, ``20D``, ``2W``, ``1Y`` (calendar days, weeks, months,
    years) as a pandas DateOffset; ValueError naming ``key`` otherwise."""
    match = _LENGTH.match(str(text))
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"config key '{key}' must be a length such as 6M, 1M, 20D, 2W or 1Y; got {text!r}")
    n, unit = int(match.group(1)), match.group(2).upper()
    return {"D": pd.DateOffset(days=n), "W": pd.DateOffset(weeks=n), "M": pd.DateOffset(months=n),
            "Y": pd.DateOffset(years=n)}[unit]


@dataclass(frozen=True)
class Step:
    """One walk-forward step: train [train_start, train_end), test [test_start, test_end) (dates, end exclusive)."""

    number: int
    train_start: dt.date
    train_end: dt.date
    test_start: dt.date
    test_end: dt.date


def walk_forward_steps(start: dt.date, end: dt.date, train: str, test: str, anchored: bool) -> list[Step]:
    """Steps covering [start, end] (``end`` inclusive): the first train window begins at ``start``; each
    test window follows its train window; the next step moves on by one test length (its train window
    too when rolling; an anchored train window keeps ``start``). The last test window is cut at ``end``."""
    train_len, test_len = parse_length(train, "validation.train"), parse_length(test, "validation.test")
    stop = pd.Timestamp(end) + pd.DateOffset(days=1)
    steps: list[Step] = []
    train_start = pd.Timestamp(start)
    test_start = train_start + train_len
    while test_start < stop:
        test_end = min(test_start + test_len, stop)
        steps.append(Step(len(steps), train_start.date(), test_start.date(), test_start.date(), test_end.date()))
        test_start = test_start + test_len
        if not anchored:
            train_start = test_start - train_len
    return steps


def _dates(trades: pd.DataFrame) -> np.ndarray:
    return pd.to_datetime(trades["trade_date"]).to_numpy("datetime64[D]") if len(trades) else np.array([], "datetime64[D]")


def _within(trades: pd.DataFrame, dates: np.ndarray, lo: dt.date, hi: dt.date) -> pd.DataFrame:
    mask = (dates >= np.datetime64(lo, "D")) & (dates < np.datetime64(hi, "D"))
    return trades[mask]


def metric_of(trades: pd.DataFrame, metric: str) -> float:
    """``metric`` (a key of core.stats.summary_stats) of some trades; NaN when it is undefined."""
    value = summary_stats(trades).get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def choose(trades_by_combo: list[pd.DataFrame], combos: list[int], lo: dt.date, hi: dt.date, metric: str,
           dates: list[np.ndarray] | None = None) -> tuple[int | None, float]:
    """(position in ``combos`` of the best combination on trades dated in [lo, hi), its metric);
    (None, nan) when no combination has a defined metric there."""
    dates = dates or [_dates(t) for t in trades_by_combo]
    values = np.array([metric_of(_within(t, d, lo, hi), metric) for t, d in zip(trades_by_combo, dates)])
    finite = np.isfinite(values)
    if not finite.any():
        return None, math.nan
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    best = max((i for i in range(len(values)) if finite[i]), key=lambda i: (sign * values[i], -combos[i]))
    return best, float(values[best])


@dataclass
class WalkForward:
    """Out-of-sample trades (columns ``step`` and ``combo`` added), one row per step, and the totals."""

    trades: pd.DataFrame
    steps: pd.DataFrame
    summary: dict


def walk_forward(trades_by_combo: list[pd.DataFrame], combos: list[int], labels: list[str], steps: list[Step],
                 metric: str) -> WalkForward:
    """Walk-forward validation over the combinations' trades (``combos``: their numbers, ``labels``:
    their settings in words)."""
    dates = [_dates(t) for t in trades_by_combo]
    rows, parts = [], []
    for step in steps:
        chosen, in_sample = choose(trades_by_combo, combos, step.train_start, step.train_end, metric, dates)
        row = {"step": step.number, "train_start": step.train_start, "train_end": step.train_end,
               "test_start": step.test_start, "test_end": step.test_end, "combo": None, "settings": None,
               "in_sample": in_sample, "out_of_sample": math.nan, "oos_trades": 0, "oos_pnl_pts": 0.0}
        if chosen is not None:
            oos = _within(trades_by_combo[chosen], dates[chosen], step.test_start, step.test_end)
            row.update(combo=combos[chosen], settings=labels[chosen], out_of_sample=metric_of(oos, metric),
                       oos_trades=len(oos), oos_pnl_pts=float(oos["pnl_pts"].sum()) if len(oos) else 0.0)
            if len(oos):
                parts.append(oos.assign(step=step.number, combo=combos[chosen]))
        rows.append(row)
    steps_frame = pd.DataFrame(rows, columns=["step", "train_start", "train_end", "test_start", "test_end", "combo",
                                              "settings", "in_sample", "out_of_sample", "oos_trades", "oos_pnl_pts"])
    steps_frame["combo"] = steps_frame["combo"].astype("Int64")
    template = trades_by_combo[0].iloc[:0] if trades_by_combo else pd.DataFrame()
    oos_trades = (pd.concat(parts, ignore_index=True) if parts
                  else template.assign(step=pd.Series(dtype="int64"), combo=pd.Series(dtype="int64")))
    stats = summary_stats(oos_trades)
    summary = {"steps": len(steps), "trades": int(stats["trades"]), "total_pnl_pts": stats["total_pnl_pts"],
               metric: metric_of(oos_trades, metric), "distinct_choices": int(steps_frame["combo"].nunique()),
               "daily_sharpe": stats["daily_sharpe"]}
    return WalkForward(oos_trades, steps_frame, summary)
