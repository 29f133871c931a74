"""Short plain-text account of a run, for the command line (formatting only, no printing)."""
from __future__ import annotations

import numpy as np

from .engine import BacktestResult
from .health import nothing_tested
from .stats import column, money_stats


def headline(result: BacktestResult) -> dict:
    """Trades, total/mean pnl_pts, win rate, days traded, wall time."""
    pnl = column(result.trades_table, "pnl_pts").astype(float, copy=False)
    n = int(len(pnl))
    known = ~np.isnan(pnl)
    total = float(np.where(known, pnl, 0.0).sum())  # pandas' sum and mean: missing values skipped
    return {
        "trades": n,
        "total_pnl_pts": total if n else 0.0,
        "mean_pnl_pts": (total / known.sum() if known.any() else float("nan")) if n else 0.0,
        "win_rate": float((pnl > 0).mean()) if n else 0.0,
        "days_traded": int(result.summary_table.num_rows),
        "wall_seconds": float(result.wall_seconds),
    }


def format_health(health: dict) -> str:
    """The data-health lines of a run's health json: each problem met with its first example, then the
    warnings."""
    problems = {k: v for k, v in health["problems"].items() if v}
    lines = []
    if problems:
        explain, examples = health.get("explain", {}), health.get("messages", {})
        lines.append("  data health (details in the health json):")
        for kind, n in problems.items():
            example = (examples.get(kind) or [""])[0]
            lines.append(f"    {n} {explain.get(kind, kind)}" + (f"; e.g. {example}" if example else ""))
    else:
        lines.append("  data health: no problems")
    for w in health.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def format_parts(result: BacktestResult, paths: dict | None = None, label: str = "", time_label: str = "wall"
                 ) -> tuple[str, str, str]:
    """``format_result``'s lines in three parts: the headline and money lines, the data health
    (``format_health``), and the outputs line ("" without ``paths``)."""
    cfg, h = result.config, headline(result)
    if result.synthetic:
        label = "[SYNTHETIC DATA] " + label
    lines = [
        f"atmburst {label}{cfg.symbol} {cfg.start}..{cfg.end}  side={cfg.strategy.side} "
        f"pnl_mode={cfg.strategy.pnl_mode} multiplier={cfg.strategy.multiplier:g}",
        f"  trades {h['trades']}  days traded {h['days_traded']}  total pnl_pts {h['total_pnl_pts']:.2f}  "
        f"mean {h['mean_pnl_pts']:.2f}  win rate {100 * h['win_rate']:.1f}%  {time_label} {h['wall_seconds']:.2f} s",
    ]
    untested = nothing_tested(result.health, cfg.start, cfg.end)
    if untested:
        lines.append(f"  {untested}")
    money = money_stats(result.trades_table)
    if money["net_inr"] is not None and h["trades"]:
        lines.append(f"  money ({cfg.costs.name}, {cfg.costs.lots} lot(s)): gross Rs {money['gross_inr']:,.2f}  "
                     f"charges Rs {money['charges_inr']:,.2f}  net Rs {money['net_inr']:,.2f}")
    outputs = f"  outputs: {paths['trades'].parent}/  ({', '.join(p.name for p in paths.values())})" if paths else ""
    return "\n".join(lines), format_health(result.health), outputs


def format_result(result: BacktestResult, paths: dict | None = None, label: str = "", time_label: str = "wall") -> str:
    """A few lines: the headline numbers, non-zero health problems, warnings, output paths.
    ``time_label`` names what ``result.wall_seconds`` measured (a sweep reports each combination's
    own evaluation time)."""
    return "\n".join(part for part in format_parts(result, paths, label, time_label) if part)


def format_stats(stats: dict, by_anchor: list[dict] | None = None) -> str:
    """The statistics as an aligned table (and pnl by anchor hour, if given: core.stats.breakdown_records'
    rows)."""
    def fmt(v):
        if v is None:
            return "-"
        return f"{v:,.2f}" if isinstance(v, float) else str(v)

    rows = [(k.replace("_", " "), fmt(v)) for k, v in stats.items()]
    width = max(len(k) for k, _ in rows)
    half = (len(rows) + 1) // 2
    lines = []
    for i in range(half):
        left = f"{rows[i][0]:<{width}} {rows[i][1]:>12}"
        right = f"{rows[i + half][0]:<{width}} {rows[i + half][1]:>12}" if i + half < len(rows) else ""
        lines.append(f"  {left}    {right}".rstrip())
    if by_anchor:
        lines.append("  by anchor: " + "  ".join(f"{r['anchor'][:5]} {r['total_pnl_pts']:+.1f} ({int(r['trades'])})"
                                            for r in by_anchor))
    return "\n".join(lines)
