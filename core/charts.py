"""Charts of a run, as PNG bytes (matplotlib, Agg backend; nothing is shown or written here)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]
GREEN, RED, BLUE, GREY = "#1a7f37", "#cf222e", "#0969da", "#6e7781"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _title(ax, text: str, synthetic: bool) -> None:
    ax.set_title(text + ("  [SYNTHETIC DATA]" if synthetic else ""), fontsize=10, loc="left")


def equity_drawdown(trades: pd.DataFrame, synthetic: bool = False) -> bytes:
    """Cumulative pnl_pts by trade, and its drawdown below."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    equity = trades["pnl_pts"].cumsum().to_numpy()
    x = trades["entry_ts"].dt.tz_localize(None).to_numpy()
    top.plot(x, equity, color=BLUE, lw=1.4)
    top.axhline(0, color=GREY, lw=0.6)
    top.set_ylabel("cumulative pnl (pts)")
    _title(top, "Equity", synthetic)
    dd = np.maximum.accumulate(np.maximum(equity, 0)) - equity
    bottom.fill_between(x, -dd, 0, color=RED, alpha=0.4, step="post")
    bottom.set_ylabel("drawdown")
    fig.autofmt_xdate()
    return _png(fig)


def daily_pnl(summary: pd.DataFrame, synthetic: bool = False) -> bytes:
    """One bar per day (0.8 day wide), green above zero and red below.

    The bars are one PolyCollection, not ``ax.bar``'s artist per day: the same picture, drawn in about
    half the time for a year and a tenth for seven years (1.47 s for 1,715 days with ``ax.bar``)."""
    fig, ax = plt.subplots(figsize=(8, 2.8))
    values = summary["pnl_pts"].to_numpy(dtype=float)
    days = mdates.date2num(pd.to_datetime(summary["trade_date"]).to_numpy())
    left, right, zero = days - 0.4, days + 0.4, np.zeros_like(values)
    corners = np.stack([np.column_stack(c) for c in ((left, zero), (left, values), (right, values), (right, zero))], 1)
    bars = PolyCollection(corners, facecolors=np.where(values >= 0, GREEN, RED), edgecolors="none")
    bars.sticky_edges.y.append(0)  # as ax.bar: no margin below a zero base
    ax.add_collection(bars)
    ax.xaxis_date()
    ax.autoscale_view()
    ax.axhline(0, color=GREY, lw=0.6)
    ax.set_ylabel("pnl (pts)")
    _title(ax, "Daily pnl", synthetic)
    fig.autofmt_xdate()
    return _png(fig)


def anchor_weekday_heatmap(trades: pd.DataFrame, synthetic: bool = False) -> bytes:
    """Total pnl_pts by anchor hour (rows) and weekday (columns)."""
    frame = trades.assign(weekday=pd.to_datetime(trades["trade_date"]).dt.day_of_week)
    table = frame.pivot_table(index="anchor", columns="weekday", values="pnl_pts", aggfunc="sum").reindex(
        columns=range(5))
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(table) + 1.4))
    limit = np.nanmax(np.abs(table.to_numpy())) if table.notna().any().any() else 1.0
    image = ax.imshow(table.to_numpy(), cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(5), WEEKDAYS)
    ax.set_yticks(range(len(table)), [a[:5] for a in table.index])
    for (i, j), v in np.ndenumerate(table.to_numpy()):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="total pnl (pts)")
    _title(ax, "Pnl by anchor hour and weekday", synthetic)
    return _png(fig)


def exit_reasons(trades: pd.DataFrame, synthetic: bool = False) -> bytes:
    order = ["stop", "trail", "target", "time"]
    g = trades.groupby("exit_reason")["pnl_pts"].agg(["size", "mean"]).reindex(order).fillna(0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.6))
    left.bar(order, g["size"], color=BLUE)
    left.set_ylabel("trades")
    right.bar(order, g["mean"], color=np.where(g["mean"] >= 0, GREEN, RED))
    right.axhline(0, color=GREY, lw=0.6)
    right.set_ylabel("mean pnl (pts)")
    _title(left, "Exit reasons", synthetic)
    return _png(fig)


def pnl_histogram(trades: pd.DataFrame, synthetic: bool = False) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.hist(trades["pnl_pts"], bins=40, color=BLUE, alpha=0.85)
    ax.axvline(0, color=GREY, lw=0.8)
    ax.set_xlabel("pnl per trade (pts)")
    _title(ax, "Distribution of trade pnl", synthetic)
    return _png(fig)


def trade_inspector(trade: pd.Series, bars: np.ndarray, times: pd.DatetimeIndex, spot: np.ndarray,
                    volume: np.ndarray, burst: np.ndarray, threshold: np.ndarray, hour_open: float,
                    synthetic: bool = False) -> bytes:
    """Why a trade fired: spot with the hour open, the option's per-second volume, its 30 s burst
    volume against the threshold (multiplier x baseline), and the signal, entry and exit."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    x = times.tz_localize(None)
    top.plot(x, spot, color=BLUE, lw=1)
    top.axhline(hour_open, color=GREY, ls="--", lw=0.8, label=f"hour open {hour_open:.2f}")
    for ts, colour, label in ((trade["signal_ts"], "#8250df", "signal"), (trade["entry_ts"], GREEN, "entry"),
                              (trade["exit_ts"], RED, f"exit ({trade['exit_reason']})")):
        t = pd.Timestamp(ts).tz_localize(None)
        top.axvline(t, color=colour, lw=1, label=label)
        bottom.axvline(t, color=colour, lw=1)
    top.set_ylabel("spot")
    top.legend(fontsize=7, loc="best")
    _title(top, f"Trade {trade.name}: {trade['side']} {trade['opt_type']} {trade['strike']} on {trade['trade_date']} "
                f"{trade['anchor'][:5]}, pnl {trade['pnl_pts']:.2f} pts", synthetic)
    bottom.fill_between(x, volume, step="mid", color=GREY, alpha=0.5, lw=0, label="volume per second")
    bottom.plot(x, burst, color=BLUE, lw=1, label="burst volume B(s)")
    bottom.plot(x, threshold, color=RED, lw=1, ls="--", label="threshold multiplier x base(s)")
    bottom.set_ylabel("option volume")
    bottom.legend(fontsize=7, loc="upper right")
    fig.autofmt_xdate()
    return _png(fig)


def metric_heatmap(table: pd.DataFrame, metric: str, x_label: str, y_label: str) -> bytes:
    """A metric over two swept parameters (rows: y, columns: x)."""
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(table) + 1.6))
    values = table.to_numpy(dtype=float)
    limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    image = ax.imshow(values, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(table.shape[0]), [str(i) for i in table.index])
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(f"{metric} by {y_label} and {x_label}", fontsize=10, loc="left")
    return _png(fig)


def walk_forward_equity(oos: pd.DataFrame, best: pd.DataFrame, steps: pd.DataFrame, synthetic: bool = False) -> bytes:
    """The stitched out-of-sample equity (each test window traded by its step's choice) beside the
    in-sample best combination's equity over the whole period; test windows shaded alternately."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for frame, color, label in ((best, GREY, "in-sample best combination (chosen on the whole period)"),
                                (oos, BLUE, "walk-forward, out of sample")):
        if len(frame):
            daily = frame.groupby(pd.to_datetime(frame["trade_date"]))["pnl_pts"].sum().sort_index()
            ax.step(daily.index.to_numpy(), daily.cumsum().to_numpy(), where="post", color=color, lw=1.4, label=label)
    for i, row in enumerate(steps.itertuples()):
        if i % 2 == 0:
            ax.axvspan(pd.Timestamp(row.test_start), pd.Timestamp(row.test_end), color=GREY, alpha=0.08, lw=0)
    ax.axhline(0, color=GREY, lw=0.6)
    ax.set_ylabel("cumulative pnl (pts)")
    ax.legend(fontsize=8, loc="upper left")
    _title(ax, "Walk-forward: out-of-sample equity vs the in-sample winner", synthetic)
    fig.autofmt_xdate()
    return _png(fig)
