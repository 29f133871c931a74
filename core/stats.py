"""Statistics of a run's trades, in points (pnl_pts). Formulas are in docs/statistics.md.

All functions are pure over the trades frame of strategy.md §8 (plus the extra columns ``atm`` and
``days_to_expiry`` the engine adds). Nothing here prints.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

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
    best = run = 0
    for x in pnl:
        run = run + 1 if x < 0 else 0
        best = max(best, run)
    return best


def summary_stats(trades: pd.DataFrame) -> dict:
    """Headline statistics: counts, pnl, win/loss, profit factor, drawdown, daily Sharpe/Sortino."""
    pnl = trades["pnl_pts"].to_numpy(dtype=float) if len(trades) else np.zeros(0)
    n = len(pnl)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    daily = _group_sums(trades["trade_date"].to_numpy(), pnl)[1] if n else np.zeros(0)
    dd, peak_i, trough_i = drawdown(pnl)
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    daily_sd = float(np.std(daily, ddof=1)) if len(daily) > 1 else float("nan")
    downside = float(np.sqrt(np.mean(np.minimum(daily, 0.0) ** 2))) if len(daily) else float("nan")
    ann = math.sqrt(TRADING_DAYS_PER_YEAR)
    dates = trades["trade_date"].to_numpy() if n else []
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


def money_stats(trades: pd.DataFrame) -> dict:
    """Gross and net side by side, in rupees and in points after slippage and charges (None when
    any trade could not be costed, e.g. a date outside the charge tables)."""
    names = ("gross_inr", "charges_inr", "net_inr", "net_pts")
    if not len(trades) or any(n not in trades for n in names) or trades[list(names)].isna().any().any():
        return {"gross_inr": None, "charges_inr": None, "net_inr": None, "total_net_pts": None,
                "mean_net_pts": None, "net_win_rate": None, "net_profit_factor": None}
    net = trades["net_pts"].to_numpy(dtype=float)
    wins, losses = net[net > 0].sum(), -net[net < 0].sum()
    return {
        "gross_inr": float(trades["gross_inr"].sum()),
        "charges_inr": float(trades["charges_inr"].sum()),
        "net_inr": float(trades["net_inr"].sum()),
        "total_net_pts": float(net.sum()),
        "mean_net_pts": float(net.mean()),
        "net_win_rate": float((net > 0).mean()),
        "net_profit_factor": _finite(wins / losses) if losses > 0 else None,
    }


def breakdowns(trades: pd.DataFrame, step: int | None = None) -> dict[str, pd.DataFrame]:
    """Trades, total and mean pnl and win rate by anchor, option type, exit reason, strike distance
    from ATM (in strike steps) and days to expiry."""
    if not len(trades):
        return {}
    pnl = trades["pnl_pts"].to_numpy(dtype=float)
    keys = {"anchor": trades["anchor"].to_numpy(), "opt_type": trades["opt_type"].to_numpy(),
            "exit_reason": trades["exit_reason"].to_numpy()}
    if "atm" in trades and step:
        keys["strike_distance"] = ((trades["strike"].to_numpy() - trades["atm"].to_numpy()) // step).astype(int)
    if "days_to_expiry" in trades:
        keys["days_to_expiry"] = trades["days_to_expiry"].to_numpy()
    out = {}
    for name, values in keys.items():
        labels, codes = np.unique(values.astype(object) if values.dtype == object else values, return_inverse=True)
        count = np.bincount(codes, minlength=len(labels))
        total = np.bincount(codes, weights=pnl, minlength=len(labels))
        wins = np.bincount(codes, weights=(pnl > 0).astype(float), minlength=len(labels))
        out[name] = pd.DataFrame({"trades": count, "total_pnl_pts": total, "mean_pnl_pts": total / count,
                                  "win_rate": wins / count}, index=pd.Index(labels, name=name))
    return out


def _group_sums(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct keys, sum of ``values`` per key)."""
    labels, codes = np.unique(keys, return_inverse=True)
    return labels, np.bincount(codes, weights=values, minlength=len(labels))


def metrics_for_tracking(stats: dict) -> dict[str, float]:
    """The numeric statistics, as MLflow metrics (None and dates left out)."""
    return {k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
