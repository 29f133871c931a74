"""Money: dated charges to the paisa, lot sizes across change dates, slippage, Black-Scholes delta."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from core import bs, run_backtest
from core.config import default_costs
from core.costs import trade_costs
from core.lots import lot_size
from tests.conftest import CASES
from tests.test_regression import assert_trades_match

D = dt.date.fromisoformat


def one_trade(day: str, expiry: str, side: str, entry: float, exit_: float) -> pa.Table:
    return pa.table({"trade_date": pa.array([D(day)], pa.date32()), "expiry": pa.array([D(expiry)], pa.date32()),
                     "side": [side], "entry_opt": [entry], "exit_opt": [exit_]})


@pytest.mark.parametrize("day,expiry,lot,stt,exch,stamp", [
    # sell 100.00, buy back 80.00 of BANKNIFTY; sell value = 100*lot, buy value = 80*lot
    ("2020-03-02", "2020-03-05", 20, 0.0005, 0.0005, 0.00002),
    ("2022-06-01", "2022-06-02", 25, 0.0005, 0.00053, 0.00003),
    ("2023-06-01", "2023-06-01", 25, 0.000625, 0.000495, 0.00003),
    ("2024-11-04", "2024-11-06", 15, 0.001, 0.0003503, 0.00003),
])
def test_charges_by_period_to_the_paisa(day, expiry, lot, stt, exch, stamp):
    table, problems = trade_costs(one_trade(day, expiry, "sell", 100.0, 80.0), default_costs(), "BANKNIFTY")
    row = table.to_pylist()[0]
    assert not problems and row["lot_size"] == lot and row["qty"] == lot
    sell, buy = 100.0 * lot, 80.0 * lot
    expected = {
        "brokerage_inr": 40.0,
        "stt_inr": round(stt * sell + 1e-9, 2),
        "exchange_inr": round(exch * (sell + buy) + 1e-9, 2),
        "sebi_inr": round(1e-6 * (sell + buy) + 1e-9, 2),
        "stamp_inr": round(stamp * buy + 1e-9, 2),
    }
    expected["gst_inr"] = round(0.18 * (40.0 + expected["exchange_inr"] + expected["sebi_inr"]) + 1e-9, 2)
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, abs=1e-9), key
    charges = sum(expected.values())
    assert row["charges_inr"] == pytest.approx(charges, abs=1e-9)
    assert row["gross_inr"] == pytest.approx(20.0 * lot) and row["net_inr"] == pytest.approx(20.0 * lot - charges)
    assert row["net_pts"] == pytest.approx(20.0 - charges / lot)


def test_worked_example_2024_11_04():
    """The worked example of docs/costs.md: short 15 BANKNIFTY at 100.00, bought back at 80.00."""
    row = trade_costs(one_trade("2024-11-04", "2024-11-06", "sell", 100.0, 80.0), default_costs(), "BANKNIFTY")[0]
    r = row.to_pylist()[0]
    assert (r["stt_inr"], r["exchange_inr"], r["sebi_inr"], r["stamp_inr"], r["gst_inr"], r["charges_inr"]) == \
        (1.5, 0.95, 0.0, 0.04, 7.37, 49.86)


def test_date_outside_every_period_is_named_and_skipped():
    table, problems = trade_costs(one_trade("2018-06-01", "2018-06-07", "sell", 100.0, 80.0), default_costs(),
                                  "BANKNIFTY")
    assert len(problems) == 1 and "2018" in problems[0]
    assert table.column("net_inr").null_count == 1


@pytest.mark.parametrize("symbol,before,after,lots", [
    ("BANKNIFTY", "2020-07-23", "2020-07-30", (20, 25)),
    ("BANKNIFTY", "2023-07-20", "2023-07-27", (25, 15)),
    ("BANKNIFTY", "2024-11-13", "2024-11-20", (15, 30)),
    ("BANKNIFTY", "2025-06-26", "2025-07-31", (30, 35)),
    ("BANKNIFTY", "2025-12-30", "2026-01-27", (35, 30)),
    ("NIFTY", "2021-07-22", "2021-07-29", (75, 50)),
    ("NIFTY", "2024-04-25", "2024-05-02", (50, 25)),
    ("NIFTY", "2024-11-14", "2024-11-21", (25, 75)),
    ("NIFTY", "2025-12-30", "2026-01-06", (75, 65)),
])
def test_lot_sizes_on_both_sides_of_each_change(symbol, before, after, lots):
    assert (lot_size(symbol, D(before)), lot_size(symbol, D(after))) == lots


@pytest.mark.parametrize("side,entry_fill,exit_fill", [("sell", 99.9, 80.1), ("long", 100.1, 79.9)])
def test_slippage_is_against_the_trade(side, entry_fill, exit_fill):
    table, _ = trade_costs(one_trade("2024-11-04", "2024-11-06", side, 100.0, 80.0),
                           default_costs(name="none", slippage=2, slippage_unit="ticks"), "BANKNIFTY")
    row = table.to_pylist()[0]
    assert row["entry_fill"] == pytest.approx(entry_fill) and row["exit_fill"] == pytest.approx(exit_fill)
    sell, buy = (entry_fill, exit_fill) if side == "sell" else (exit_fill, entry_fill)
    assert row["gross_pts"] == pytest.approx(sell - buy)
    pct, _ = trade_costs(one_trade("2024-11-04", "2024-11-06", "sell", 0.1, 1.0),
                         default_costs(name="none", slippage=90, slippage_unit="pct"), "BANKNIFTY")
    assert pct.to_pylist()[0]["entry_fill"] == 0.05  # a sell never fills below 0.05


def test_percentage_brokerage_with_cap():
    table, _ = trade_costs(one_trade("2024-11-04", "2024-11-06", "sell", 100.0, 80.0),
                           default_costs(brokerage_pct=1.0, brokerage_cap=15.0), "BANKNIFTY")
    assert table.to_pylist()[0]["brokerage_inr"] == 15.0 + 12.0  # min(15, 1% of 1500) + min(15, 1% of 1200)


@pytest.mark.parametrize("moneyness", [0.85, 0.95, 1.0, 1.05, 1.2])
@pytest.mark.parametrize("days", [0.02, 1, 7, 35])
@pytest.mark.parametrize("is_call", [True, False])
def test_implied_vol_round_trip(moneyness, days, is_call):
    spot, strike, years, sigma = 45_000.0, 45_000.0 * moneyness, days / 365, 0.18
    premium = float(bs.price(spot, strike, years, sigma, 0.065, is_call))
    iv = bs.implied_vol(premium, spot, strike, years, 0.065, is_call)
    if premium < 0.05:  # worth less than a tick (far from the money, near expiry): NaN or an exact fit
        assert np.isnan(iv) or float(bs.price(spot, strike, years, iv, 0.065, is_call)) == pytest.approx(premium, abs=1e-6)
        return
    intrinsic = max(0.0, (spot - strike * np.exp(-0.065 * years)) * (1 if is_call else -1))
    if premium - intrinsic < 1e-6 * spot:  # no time value left: any low volatility fits
        assert np.isnan(iv) or bs.price(spot, strike, years, iv, 0.065, is_call) == pytest.approx(premium, abs=1e-6)
    else:
        assert bs.price(spot, strike, years, iv, 0.065, is_call) == pytest.approx(premium, rel=1e-7, abs=1e-7)


def test_implied_vol_rejects_impossible_premiums():
    assert np.isnan(bs.implied_vol(10.0, 45_000.0, 44_000.0, 7 / 365, 0.065, True))  # below intrinsic
    assert np.isnan(bs.implied_vol(50_000.0, 45_000.0, 45_000.0, 7 / 365, 0.065, True))  # above the spot
    assert np.isnan(bs.implied_vol(100.0, 45_000.0, 45_000.0, 0.0, 0.065, True))  # expired
    ivs = bs.implied_vol(np.array([300.0, 450.0]), 45_000.0, 45_000.0, 7 / 365, 0.065, np.array([True, False]))
    assert ivs.shape == (2,) and np.isfinite(ivs).all()


def test_costs_none_equals_spec(regression):
    for name, over in CASES.items():
        result = run_backtest(regression.config(costs={"name": "none"}, **over))
        assert_trades_match(result.trades, regression.expected(name))
        assert (result.trades["net_pts"] == result.trades["pnl_pts"]).all()
        assert (result.trades["charges_inr"] == 0).all()


def test_black_scholes_delta(regression):
    result = run_backtest(regression.config(delta={"name": "black_scholes"}))
    deltas = result.trades["delta_used"]
    assert len(result.trades) and ((deltas > 0) & (deltas < 1)).all()
    assert deltas.nunique() > 2  # not the fixed 0.5/0.4
    default = run_backtest(regression.config())
    assert list(result.trades["signal_ts"]) == list(default.trades["signal_ts"])  # same signals, other marks
