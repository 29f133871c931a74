"""Charts draw what they say they draw."""
from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

from core import charts


def _pixels(png: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")


def _daily_pnl_with_ax_bar(summary: pd.DataFrame) -> bytes:
    """The daily pnl chart as ax.bar draws it (one artist per day): the picture daily_pnl must match."""
    fig, ax = charts.plt.subplots(figsize=(8, 2.8))
    values = summary["pnl_pts"].to_numpy()
    ax.bar(pd.to_datetime(summary["trade_date"]).to_numpy(), values,
           color=np.where(values >= 0, charts.GREEN, charts.RED), width=0.8)
    ax.axhline(0, color=charts.GREY, lw=0.6)
    ax.set_ylabel("pnl (pts)")
    charts._title(ax, "Daily pnl", False)
    fig.autofmt_xdate()
    return charts._png(fig)


@pytest.mark.parametrize("values", [[12.5], [12.5, 3.0, 7.0], [-4.0, 0.0, 9.5, -120.25, 60.0, 1.0, -1.0]])
def test_daily_pnl_bars_are_the_picture_of_ax_bar(values):
    days = pd.bdate_range("2024-07-01", periods=len(values)).date
    summary = pd.DataFrame({"trade_date": days, "pnl_pts": values})
    assert np.array_equal(_pixels(charts.daily_pnl(summary)), _pixels(_daily_pnl_with_ax_bar(summary)))


def test_daily_pnl_of_a_year_is_the_picture_of_ax_bar():
    rng = np.random.default_rng(3)
    days = [d for d in pd.bdate_range("2023-01-02", "2023-12-29").date if d != dt.date(2023, 1, 26)]
    summary = pd.DataFrame({"trade_date": days, "pnl_pts": np.round(rng.normal(0, 80, len(days)), 2)})
    assert np.array_equal(_pixels(charts.daily_pnl(summary)), _pixels(_daily_pnl_with_ax_bar(summary)))
