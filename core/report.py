"""Self-contained HTML reports (images embedded, no network, readable on a phone).

``run_report`` builds the page of one run; ``sweep_report`` the comparison page of a sweep.
Both return HTML text; the shell writes it.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import math

import numpy as np
import pandas as pd

from . import charts
from .config import RunConfig
from .markets import day_number, iter_day_markets
from .health import Health, nothing_tested
from .signal import burst_and_baseline
from .stats import breakdowns, summary_stats, better_first

CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1000px;
padding:12px;color:#1f2328;line-height:1.4}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin-top:1.4em;border-bottom:1px solid #d0d7de}
.synthetic{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px;font-weight:600}
.warn{background:#ffebe9;border:1px solid #cf222e;padding:6px 10px;border-radius:6px}
ul.warn{list-style:none}.examples{font-size:.85em;color:#57606a;word-break:break-all}summary{cursor:pointer}
.cards{display:flex;flex-wrap:wrap;gap:8px}.card{border:1px solid #d0d7de;border-radius:6px;padding:6px 10px;
min-width:120px}.card b{display:block;font-size:1.2em}
img{max-width:100%;height:auto}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:right}
th{background:#f6f8fa;cursor:pointer}td:first-child,th:first-child{text-align:left}
.pos{color:#1a7f37}.neg{color:#cf222e}
"""

SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){th.addEventListener('click', function(){
var t=th.closest('table'), b=t.tBodies[0], rows=Array.from(b.rows), asc=th.dataset.asc!=='1';
rows.sort(function(a,c){var x=a.cells[col].dataset.v||a.cells[col].innerText, y=c.cells[col].dataset.v||c.cells[col].innerText;
var nx=parseFloat(x), ny=parseFloat(y); var r=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y); return asc?r:-r;});
rows.forEach(function(r){b.appendChild(r)}); th.dataset.asc=asc?'1':'0';});});
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:,.2f}"
    return html.escape(str(v))


SIGNED = ("pnl", "sharpe", "sortino", "expectancy", "value")


def _table(frame: pd.DataFrame, sortable: bool = False, index: bool = True) -> str:
    """An HTML table; gains and losses coloured in columns of signed amounts, whole numbers kept whole."""
    frame = frame.reset_index() if index else frame
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    signed = [any(w in str(c) for w in SIGNED) for c in frame.columns]
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for v, colour in zip(row, signed):
            if isinstance(v, (float, np.floating, int, np.integer)) and not isinstance(v, bool) and math.isfinite(v):
                cls = (' class="pos"' if v > 0 else (' class="neg"' if v < 0 else "")) if colour else ""
                text = f"{int(v):,}" if float(v).is_integer() and not colour else _fmt(float(v))
                cells.append(f'<td{cls} data-v="{v}">{text}</td>')
            else:
                cells.append(f"<td>{_fmt(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>{body}"
            f"<script>{SORT_JS}</script></body></html>")


def trade_context(cfg: RunConfig, trade: pd.Series, markets: dict | None = None) -> dict | None:
    """Per-second data around one trade (its window): from the day's market the run kept
    (``markets``: IST day number -> DayMarket, BacktestResult.markets), else built again for that day
    from the data and cache (a result read back from its files, e.g. a sweep's best combination)."""
    day = trade["trade_date"]
    day = day if isinstance(day, dt.date) else pd.Timestamp(day).date()
    market = (markets or {}).get(day_number(day))
    if market is None:
        built = list(iter_day_markets(cfg.with_range(day, day), Health()))
        if not built:
            return None
        market = built[0]
    anchor = sum(int(x) * m for x, m in zip(str(trade["anchor"]).split(":"), (3600, 60, 1)))
    window = next((w for w in market.windows if w.anchor_sec == anchor), None)
    if window is None:
        return None
    cand = next((c for c in window.candidates if c.opt_type == trade["opt_type"] and c.strike == trade["strike"]), None)
    if cand is None:
        return None
    s = cfg.strategy
    first = max(window.start - s.avg_secs, 0)
    bars = np.arange(first, window.end)
    volume = cand.series.volume_before(bars + 1) - cand.series.volume_before(bars)
    warm = bars - s.burst_secs - s.avg_secs + 1 >= 0
    burst, base_sum = burst_and_baseline(cand.series, np.maximum(bars, s.burst_secs + s.avg_secs - 1),
                                         s.burst_secs, s.avg_secs)
    threshold = np.where(warm, s.multiplier * base_sum * s.burst_secs / s.avg_secs, np.nan)
    start = pd.Timestamp(market.utc_us(int(bars[0])), unit="us", tz="UTC")
    times = pd.date_range(start, periods=len(bars), freq="s").tz_convert("Asia/Kolkata")
    return {"bars": bars, "times": times, "spot": market.spot[bars], "volume": volume,
            "burst": np.where(warm, burst, np.nan), "threshold": threshold, "hour_open": window.hour_open}


def inspector_png(cfg: RunConfig, trades: pd.DataFrame, trade_id: int, synthetic: bool,
                  markets: dict | None = None) -> bytes | None:
    """The trade inspector chart of one trade (``markets``: as for trade_context)."""
    if trade_id not in trades.index:
        return None
    trade = trades.loc[trade_id]
    ctx = trade_context(cfg, trade, markets)
    if ctx is None:
        return None
    return charts.trade_inspector(trade, ctx["bars"], ctx["times"], ctx["spot"], ctx["volume"], ctx["burst"],
                                  ctx["threshold"], ctx["hour_open"], synthetic)


def run_charts(trades: pd.DataFrame, summary: pd.DataFrame, synthetic: bool) -> dict[str, bytes]:
    """The run's charts by file stem (empty when there are no trades)."""
    if trades.empty:
        return {}
    return {
        "equity": charts.equity_drawdown(trades, synthetic),
        "daily_pnl": charts.daily_pnl(summary, synthetic),
        "anchor_weekday": charts.anchor_weekday_heatmap(trades, synthetic),
        "exit_reasons": charts.exit_reasons(trades, synthetic),
        "pnl_histogram": charts.pnl_histogram(trades, synthetic),
    }


def inspect_ids(trades: pd.DataFrame, asked: list[int]) -> list[int]:
    """Trades to inspect: the best, the worst, and any asked for by id (row number in the trades file)."""
    if trades.empty:
        return []
    ids = [int(trades["pnl_pts"].idxmax()), int(trades["pnl_pts"].idxmin())] + [int(i) for i in asked]
    return list(dict.fromkeys(i for i in ids if i in trades.index))


def run_report(cfg: RunConfig, trades: pd.DataFrame, summary: pd.DataFrame, health: dict, synthetic: bool,
               images: dict[str, bytes]) -> str:
    """The report page of one run."""
    stats = summary_stats(trades)
    s = cfg.strategy
    parts = [f"<h1>atmburst: {html.escape(cfg.symbol)} {cfg.start} to {cfg.end}</h1>"]
    if synthetic:
        parts.append('<p class="synthetic">SYNTHETIC DATA: made by core.synth, not real prices or volumes.</p>')
    parts.append(f"<p>side {html.escape(s.side)}, pnl mode {html.escape(s.pnl_mode)}, multiplier {s.multiplier:g}, burst {s.burst_secs} s over "
                 f"{s.avg_secs} s, target {s.target_pct:g}, stop {s.stop_pct:g}, trail {s.trail_pct:g} "
                 f"(from {s.trail_activate_pct:g}), max hold {s.max_hold_secs} s.</p>")
    cards = [("trades", stats["trades"]), ("days traded", stats["days_traded"]),
             ("total pnl (pts)", stats["total_pnl_pts"]), ("mean pnl (pts)", stats["mean_pnl_pts"]),
             ("win rate", f"{100 * stats['win_rate']:.1f}%"), ("profit factor", stats["profit_factor"]),
             ("max drawdown (pts)", stats["max_drawdown_pts"]), ("daily Sharpe", stats["daily_sharpe"]),
             ("gross (Rs)", stats["gross_inr"]), ("charges (Rs)", stats["charges_inr"]), ("net (Rs)", stats["net_inr"])]
    parts.append('<div class="cards">' + "".join(f'<div class="card">{html.escape(k)}<b>{_fmt(v)}</b></div>'
                                                 for k, v in cards) + "</div>")
    untested = nothing_tested(health, cfg.start, cfg.end)
    if untested:
        parts.append(f'<p class="warn">{html.escape(untested[:1].upper() + untested[1:])}.</p>')
    problems = {k: v for k, v in health.get("problems", {}).items() if v}
    warnings = "".join(f'<p class="warn">Warning: {html.escape(w)}</p>' for w in health.get("warnings", []))
    if problems:
        explain, examples = health.get("explain", {}), health.get("messages", {})

        def item(kind: str, n: int) -> str:
            line = f"{html.escape(kind)}: {n} ({html.escape(explain.get(kind, ''))})"
            shown = "".join(f"<li>{html.escape(m)}</li>" for m in examples.get(kind, []))
            if not shown:
                return f"<li>{line}</li>"
            return f'<li><details><summary>{line}</summary><ul class="examples">{shown}</ul></details></li>'

        parts.append('<h2>Data health</h2>' + warnings + '<ul class="warn">'
                     + "".join(item(k, v) for k, v in problems.items())
                     + "</ul><p>Open a kind for up to five examples naming the file or day; every count is in the "
                     "health json.</p>")
    else:
        parts.append("<h2>Data health</h2>" + warnings + "<p>No problems found in the data this run used.</p>")
    listing = pd.DataFrame({"value": {k.replace("_", " "): _fmt(v) for k, v in stats.items()}}).rename_axis("statistic")
    parts.append("<h2>Statistics</h2>" + _table(listing, index=True))
    for name, png in images.items():
        if not name.startswith("trade_"):
            parts.append(f"<h2>{html.escape(name.replace('_', ' ').capitalize())}</h2>{_img(png, name)}")
    for name, table in breakdowns(trades, cfg.strike_step).items():
        parts.append(f"<h2>By {html.escape(name.replace('_', ' '))}</h2>{_table(table)}")
    inspected = [(n, p) for n, p in images.items() if n.startswith("trade_")]
    if inspected:
        parts.append("<h2>Trade inspector</h2>" + "".join(_img(p, n) for n, p in inspected))
    if not trades.empty:
        cols = ["trade_date", "anchor", "opt_type", "strike", "side", "entry_ts", "exit_ts", "entry_opt", "exit_opt",
                "pnl_pts", "exit_reason"]
        listing = trades[cols].copy()
        for c in ("entry_ts", "exit_ts"):
            listing[c] = listing[c].dt.strftime("%H:%M:%S")
        parts.append(f"<h2>Trades ({len(trades)})</h2>" + _table(listing.rename_axis("id"), sortable=True))
    return _page(f"atmburst {cfg.symbol} {cfg.start}..{cfg.end}", "\n".join(parts))


def overfit_lines(stats: dict) -> list[str]:
    """The overfitting statistics of a sweep in plain words, one line each."""
    from .overfit import verdict

    lines = []
    combinations, trials, days = stats.get("combinations", stats.get("trials")), stats.get("trials"), stats.get("days")
    if trials is not None and trials < 2:
        same = (f"none of the {combinations} combinations traded" if not days else
                f"all {combinations} combinations have the same P&L on each of the {days} days")
        return [f"PBO and deflated Sharpe: not computed: {same}, so there is no winner to test."]
    if stats.get("pbo") is None and days is not None and days < 4:
        lines.append(f"PBO: not computed: it needs at least 4 days on which a combination traded ({days} here).")
    if stats.get("deflated_sharpe") is None and days is not None and days < 3:
        lines.append(f"Deflated Sharpe: not computed: it needs at least 3 days on which a combination traded "
                     f"({days} here).")
    if stats.get("pbo") is not None:
        lines.append(f"PBO {stats['pbo']:.2f}: {verdict(stats['pbo'])} "
                     f"({stats['splits']:,} train/test splits of {stats['days']} days in {stats['blocks']} blocks).")
    if stats.get("deflated_sharpe") is not None:
        significant = "significant" if stats["deflated_sharpe"] >= 0.95 else "not significant"
        lines.append(f"Deflated Sharpe {stats['deflated_sharpe']:.2f}: the probability that the best combination's "
                     f"Sharpe ({stats['best_sharpe']:.3f} a day) beats the best of {_trials(stats)} "
                     f"without skill ({stats['expected_max_sharpe']:.3f} expected); {significant} at 95%.")
    return lines


def _trials(stats: dict) -> str:
    """'N combinations', or 'N distinct combinations (of M: ...)' when some repeat another's daily P&L."""
    trials, combinations = stats["trials"], stats.get("combinations", stats["trials"])
    if combinations <= trials:
        return f"{trials} combinations"
    return (f"{trials} distinct combinations (of {combinations}: the others have the same daily P&L as one of "
            f"them)")


def walk_forward_lines(wf: dict) -> list[str]:
    """The walk-forward result in plain words, one line each (``wf``: sweep.publish's summary)."""
    if not wf:
        return []
    metric = wf["metric"]
    same = wf.get("in_sample_best_same_days")
    lines = [f"Walk-forward ({wf['steps']} steps, train {wf['train']}, test {wf['test']}, "
             f"{'anchored' if wf['anchored'] else 'rolling'}, chosen by {metric}): out of sample "
             f"{wf['total_pnl_pts']:,.1f} pnl_pts over {wf['trades']:,} trades"
             + (f", against {same:,.1f} for the in-sample winner on the same test days" if same is not None else "")
             + f"; {wf['distinct_choices']} distinct choice(s)."]
    if same is not None and same > 0:
        kept = wf["total_pnl_pts"] / same
        lines.append(f"Walk-forward efficiency {kept:.2f}: the share of the in-sample winner's result a trader "
                     f"choosing only from the past would have kept (1 = all of it, 0 or less = none).")
    return lines


def walk_forward_section(wf: dict, steps: pd.DataFrame, chart: bytes | None) -> str:
    """The walk-forward part of the sweep report."""
    body = "".join(f"<li>{html.escape(line)}</li>" for line in walk_forward_lines(wf))
    table = steps.rename(columns={"in_sample": f"in-sample {wf['metric']}", "out_of_sample": f"out-of-sample {wf['metric']}"})
    return ("<h2>Walk-forward validation (out of sample)</h2><ul>" + body + "</ul>"
            + (_img(chart, "walk-forward equity") if chart else "")
            + _table(table, index=False))


def bootstrap_mean_interval(pnl: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of the mean (fixed seed: deterministic)."""
    if len(pnl) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = pnl[rng.integers(0, len(pnl), (n, len(pnl)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def sweep_report(rows: pd.DataFrame, swept: list[str], metric: str, best_pnl: np.ndarray | None,
                 synthetic: bool, overfit: dict | None = None, walk_forward: str = "") -> str:
    """Comparison page of a sweep: how much of the winner is luck, a heatmap of ``metric`` over two
    swept parameters and a sortable table.

    ``rows``: one row per combination with the swept parameters and the metrics; ``best_pnl``:
    the trade pnl of the best combination (for the noise check); ``overfit``: the statistics of
    :func:`overfit_lines`' input (PBO, deflated Sharpe, trials, ...); ``walk_forward``: the HTML of
    :func:`walk_forward_section` (empty without walk-forward validation).
    """
    parts = [f"<h1>atmburst sweep: {len(rows)} combinations</h1>"]
    if synthetic:
        parts.append('<p class="synthetic">SYNTHETIC DATA: made by core.synth, not real prices or volumes.</p>')
    ranked = better_first(rows, metric) if "combo" in rows else rows
    if len(ranked) and metric in ranked:
        best = ranked.iloc[0]
        label = ", ".join(f"{k}={best[k]}" for k in swept) or "the only combination"
        parts.append(f"<p>Best by {html.escape(metric)}: <b>{html.escape(label)}</b> ({_fmt(float(best[metric]))}).</p>")
        reasons = []
        if best.get("trades", 0) < 30:
            reasons.append(f"only {int(best.get('trades', 0))} trades (fewer than 30)")
        if best_pnl is not None and len(best_pnl) >= 2:
            lo, hi = bootstrap_mean_interval(best_pnl)
            if lo <= 0 <= hi:
                reasons.append(f"the 95% bootstrap interval of its mean pnl per trade, [{lo:.2f}, {hi:.2f}], spans zero")
        if reasons:
            parts.append('<p class="warn">Its edge is within noise: ' + "; ".join(html.escape(r) for r in reasons)
                         + ". Do not read the ranking as a result.</p>")
    if overfit:
        parts.append("<h2>How much of the winner is luck</h2><ul>"
                     + "".join(f"<li>{html.escape(line)}</li>" for line in overfit_lines(overfit))
                     + "</ul><p>Formulas and how to read them: docs/statistics.md.</p>")
    parts.append(walk_forward)
    if len(swept) >= 2:
        x, y = swept[0], swept[1]
        table = rows.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
        parts.append("<h2>Heatmap</h2>" + _img(charts.metric_heatmap(table, metric, x, y), "heatmap"))
        if len(swept) > 2:
            parts.append(f"<p>Mean over the other swept parameters ({html.escape(', '.join(swept[2:]))}).</p>")
    parts.append("<h2>All combinations (click a column to sort)</h2>" + _table(ranked, sortable=True, index=False))
    return _page("atmburst sweep", "\n".join(parts))
