"""Statistics of a run's trades, in points (pnl_pts). Formulas are in docs/statistics.md.

All functions are pure over the trades of strategy.md §8 (plus the extra columns ``atm`` and
``days_to_expiry`` the engine adds), as a pandas frame or an arrow table (a sweep finishes each
combination from its arrow table, without a pandas copy). Nothing here prints.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:  # imported where a function needs it: a Ray worker that only builds and evaluates never does
    import pandas as pd

Trades = "pd.DataFrame | pa.Table"  # an annotation: pandas is imported only where a function needs it


def has_column(trades: Trades, name: str) -> bool:
    """Whether ``trades`` (a frame or an arrow table) has column ``name``."""
    return name in (trades.column_names if isinstance(trades, pa.Table) else trades.columns)


def column(trades: Trades, name: str) -> np.ndarray:
    """Column ``name`` of ``trades`` as a numpy array: floats with NaN for missing values, strings as
    Python objects, arrow dates as datetime64[D] (pandas' dates as objects; both print as YYYY-MM-DD)."""
    if isinstance(trades, pa.Table):
        return trades.column(name).to_numpy(zero_copy_only=False)
    return trades[name].to_numpy()

TRADING_DAYS_PER_YEAR = 252
# Statistics where a smaller value is the better one (a ranking sorts these ascending).
LOWER_IS_BETTER = frozenset({"max_drawdown_pts", "longest_losing_streak", "charges_inr"})


def better_first(frame: pd.DataFrame, metric: str, tie: str = "combo") -> pd.DataFrame:
    """``frame`` sorted best first by ``metric`` (ties: ascending ``tie``; undefined values last)."""
    return frame.sort_values([metric, tie], ascending=[metric in LOWER_IS_BETTER, True], na_position="last")


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def drawdown(pnl: np.ndarray) -> tuple[float, int, int]:
    """Max drawdown of the cumulative sum (a positive number of points) and its peak/trough indices."""
    if not len(pnl):
        return 0.0, -1, -1
    equity = np.concatenate(([0.0], np.cumsum(pnl)))
    peaks = np.maximum.accumulate(equity)
    dd = peaks - equity
    trough = int(np.argmax(dd))
    peak = int(np.argmax(equity[: trough + 1] == peaks[trough]))
    return float(dd[trough]), peak - 1, trough - 1  # indices into pnl (-1: before the first trade)


def longest_losing_streak(pnl: np.ndarray) -> int:
    """The most losing trades (pnl < 0) in a row."""
    losing = np.concatenate(([False], np.asarray(pnl) < 0, [False]))
    edges = np.flatnonzero(losing[1:] != losing[:-1])  # starts and ends of the losing runs, alternating
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0


def summary_stats(trades: pd.DataFrame) -> dict:
    """Headline statistics: counts, pnl, win/loss, profit factor, drawdown, daily Sharpe/Sortino."""
    pnl = column(trades, "pnl_pts").astype(float, copy=False) if len(trades) else np.zeros(0)
    n = len(pnl)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    dates = column(trades, "trade_date") if n else []
    daily = _group_sums(dates, pnl)[1] if n else np.zeros(0)
    dd, peak_i, trough_i = drawdown(pnl)
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    daily_sd = float(np.std(daily, ddof=1)) if len(daily) > 1 else float("nan")
    downside = float(np.sqrt(np.mean(np.minimum(daily, 0.0) ** 2))) if len(daily) else float("nan")
    ann = math.sqrt(TRADING_DAYS_PER_YEAR)
    return {
        "trades": n,
        "days_traded": int(len(daily)),
        "total_pnl_pts": float(pnl.sum()),
        "mean_pnl_pts": float(pnl.mean()) if n else 0.0,
        "median_pnl_pts": float(np.median(pnl)) if n else 0.0,
        "win_rate": float(len(wins) / n) if n else 0.0,
        "avg_win_pts": float(wins.mean()) if len(wins) else 0.0,
        "avg_loss_pts": float(losses.mean()) if len(losses) else 0.0,
        "payoff_ratio": _finite(wins.mean() / -losses.mean()) if len(wins) and len(losses) else None,
        "profit_factor": _finite(gross_win / gross_loss) if gross_loss > 0 else None,
        "expectancy_pts": float(pnl.mean()) if n else 0.0,
        "max_drawdown_pts": dd,
        "max_drawdown_from": str(dates[peak_i]) if n and peak_i >= 0 else None,
        "max_drawdown_to": str(dates[trough_i]) if n and trough_i >= 0 else None,
        "longest_losing_streak": longest_losing_streak(pnl),
        "daily_sharpe": _finite(float(daily.mean()) / daily_sd * ann) if len(daily) > 1 and daily_sd > 0 else None,
        "daily_sortino": _finite(float(daily.mean()) / downside * ann) if len(daily) and downside > 0 else None,
        **money_stats(trades),
    }


def money_stats(trades: Trades) -> dict:
    """Gross and net side by side, in rupees and in points after slippage and charges (None when
    any trade could not be costed, e.g. a date outside the charge tables). No trades cost nothing: sums,
    mean and win rate are 0, as their gross counterparts in ``summary_stats``."""
    if not len(trades):
        return {"gross_inr": 0.0, "charges_inr": 0.0, "net_inr": 0.0, "total_net_pts": 0.0, "mean_net_pts": 0.0,
                "net_win_rate": 0.0, "net_profit_factor": None}
    names = ("gross_inr", "charges_inr", "net_inr", "net_pts")
    values = {n: column(trades, n).astype(float) for n in names if has_column(trades, n)}
    if len(values) < len(names) or any(np.isnan(v).any() for v in values.values()):
        return {"gross_inr": None, "charges_inr": None, "net_inr": None, "total_net_pts": None,
                "mean_net_pts": None, "net_win_rate": None, "net_profit_factor": None}
    net = values["net_pts"]
    wins, losses = net[net > 0].sum(), -net[net < 0].sum()
    return {
        "gross_inr": float(values["gross_inr"].sum()),
        "charges_inr": float(values["charges_inr"].sum()),
        "net_inr": float(values["net_inr"].sum()),
        "total_net_pts": float(net.sum()),
        "mean_net_pts": float(net.mean()),
        "net_win_rate": float((net > 0).mean()),
        "net_profit_factor": _finite(wins / losses) if losses > 0 else None,
    }


BREAKDOWN_COLUMNS = ("trades", "total_pnl_pts", "mean_pnl_pts", "win_rate")


def breakdown_columns(trades: Trades, step: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Trades, total and mean pnl and win rate by anchor, option type, exit reason, strike distance
    from ATM (in strike steps) and days to expiry: for each grouping, its sorted labels (under the
    grouping's name) and the BREAKDOWN_COLUMNS, one value per label."""
    if not len(trades):
        return {}
    pnl = column(trades, "pnl_pts").astype(float, copy=False)
    keys = {name: _labels_column(trades, name) for name in ("anchor", "opt_type", "exit_reason")}
    if has_column(trades, "atm") and step:
        keys["strike_distance"] = ((column(trades, "strike") - column(trades, "atm")) // step).astype(int)
    if has_column(trades, "days_to_expiry"):
        keys["days_to_expiry"] = column(trades, "days_to_expiry")
    won = (pnl > 0).astype(float)
    out = {}
    for name, values in keys.items():
        labels, codes = _sorted_codes(values)
        count = np.bincount(codes, minlength=len(labels))
        total = np.bincount(codes, weights=pnl, minlength=len(labels))
        wins = np.bincount(codes, weights=won, minlength=len(labels))
        out[name] = {name: labels, "trades": count, "total_pnl_pts": total, "mean_pnl_pts": total / count,
                     "win_rate": wins / count}
    return out


def breakdowns(trades: Trades, step: int | None = None) -> dict[str, pd.DataFrame]:
    """``breakdown_columns`` as frames indexed by the grouping's labels."""
    import pandas as pd

    return {name: pd.DataFrame({k: columns[k] for k in BREAKDOWN_COLUMNS}, index=pd.Index(columns[name], name=name))
            for name, columns in breakdown_columns(trades, step).items()}


def breakdown_records(trades: Trades, step: int | None = None) -> dict[str, list[dict]]:
    """``breakdown_columns`` as rows {label, trades, total_pnl_pts, mean_pnl_pts, win_rate} of Python
    numbers (``breakdowns(...)[name].reset_index().to_dict(orient="records")``, without pandas)."""
    out = {}
    for name, columns in breakdown_columns(trades, step).items():
        names = (name, *BREAKDOWN_COLUMNS)
        out[name] = [dict(zip(names, row)) for row in zip(*(columns[k].tolist() for k in names))]
    return out


def _labels_column(trades: Trades, name: str) -> np.ndarray | pa.ChunkedArray:
    """Column ``name`` for _sorted_codes: an arrow string column stays arrow (encoded without making
    a Python string per trade)."""
    if isinstance(trades, pa.Table) and pa.types.is_string(trades.schema.field(name).type):
        return trades.column(name)
    return column(trades, name)


def _sorted_codes(values: np.ndarray | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``: the sorted distinct values and each value's index
    among them. Strings (a handful of distinct labels) are hashed rather than sorted as objects: that
    sort took a tenth of finishing a sweep's combination."""
    if isinstance(values, pa.ChunkedArray):
        encoded = values.combine_chunks().dictionary_encode()
        if encoded.null_count:
            return _sorted_codes(values.to_numpy(zero_copy_only=False))
        distinct = encoded.dictionary.to_pylist()
        order = sorted(range(len(distinct)), key=distinct.__getitem__)
        rank = np.empty(len(order), np.intp)
        rank[order] = np.arange(len(order))
        return np.array([distinct[i] for i in order], dtype=object), rank[encoded.indices.to_numpy()]
    if values.dtype != object:
        return np.unique(values, return_inverse=True)
    labels = np.array(sorted(set(values.tolist())), dtype=object)
    position = {label: i for i, label in enumerate(labels.tolist())}
    return labels, np.fromiter(map(position.__getitem__, values.tolist()), dtype=np.intp, count=len(values))


def _group_sums(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct keys, sum of ``values`` per key)."""
    labels, codes = np.unique(keys, return_inverse=True)
    return labels, np.bincount(codes, weights=values, minlength=len(labels))


def metrics_for_tracking(stats: dict) -> dict[str, float]:
    """The numeric statistics, as MLflow metrics (None and dates left out)."""
    return {k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
