"""Statistics formulas on a hand-computed trade list, and the report pages' content."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.report import bootstrap_mean_interval, sweep_report
from core.stats import breakdowns, drawdown, summary_stats


def trades_frame(pnl, dates):
    n = len(pnl)
    return pd.DataFrame({
        "trade_date": [dt.date.fromisoformat(d) for d in dates], "pnl_pts": pnl,
        "anchor": ["10:00:00", "11:00:00"] * (n // 2) + ["10:00:00"] * (n % 2),
        "opt_type": ["CE"] * n, "exit_reason": ["stop"] * n, "strike": [47100] * n, "atm": [47000] * n,
        "days_to_expiry": [2] * n,
    })


def test_summary_stats_by_hand():
    t = trades_frame([10.0, -5.0, -5.0, 20.0, -10.0],
                     ["2024-07-01", "2024-07-01", "2024-07-02", "2024-07-03", "2024-07-03"])
    s = summary_stats(t)
    assert s["trades"] == 5 and s["days_traded"] == 3
    assert s["total_pnl_pts"] == 10.0 and s["mean_pnl_pts"] == 2.0 and s["median_pnl_pts"] == -5.0
    assert s["win_rate"] == 0.4 and s["avg_win_pts"] == 15.0 and s["avg_loss_pts"] == pytest.approx(-20 / 3)
    assert s["payoff_ratio"] == pytest.approx(15 / (20 / 3)) and s["profit_factor"] == 30 / 20
    # equity 10, 5, 0, 20, 10: the largest fall is 10 -> 0 (trades 0 to 2), dates 2024-07-01 .. 07-02
    assert s["max_drawdown_pts"] == 10.0
    assert (s["max_drawdown_from"], s["max_drawdown_to"]) == ("2024-07-01", "2024-07-02")
    assert s["longest_losing_streak"] == 2
    daily = np.array([5.0, -5.0, 10.0])
    assert s["daily_sharpe"] == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(252))
    assert s["daily_sortino"] == pytest.approx(daily.mean() / math.sqrt(25 / 3) * math.sqrt(252))


def test_drawdown_from_the_start():
    assert drawdown(np.array([-3.0, 1.0]))[0] == 3.0  # equity starts at 0: a first loss is a drawdown
    assert drawdown(np.array([]))[0] == 0.0


def test_no_losses_gives_null_ratios():
    s = summary_stats(trades_frame([1.0, 2.0], ["2024-07-01", "2024-07-01"]))
    assert s["profit_factor"] is None and s["payoff_ratio"] is None and s["daily_sharpe"] is None


def test_breakdowns_by_strike_distance_and_expiry():
    t = trades_frame([10.0, -5.0, 5.0], ["2024-07-01"] * 3)
    b = breakdowns(t, step=100)
    assert list(b["strike_distance"].index) == [1] and b["strike_distance"].loc[1, "trades"] == 3
    assert b["anchor"].loc["10:00:00", "total_pnl_pts"] == 15.0
    assert b["days_to_expiry"].loc[2, "win_rate"] == pytest.approx(2 / 3)


def test_statistics_of_an_arrow_table_equal_those_of_the_frame():
    """A sweep finishes combinations from arrow tables (core.finish); every statistic, breakdown and
    row of the stats file is the same as from the pandas frame, missing values included."""
    import pyarrow as pa

    from core.stats import breakdown_records, column

    t = trades_frame([10.0, -5.0, float("nan"), 20.0, -10.0, 3.0],
                     ["2024-07-01", "2024-07-01", "2024-07-02", "2024-07-03", "2024-07-03", "2024-07-04"])
    t["exit_reason"] = ["stop", "target", "time", "stop", "trail", "target"]
    t["opt_type"] = ["PE", "CE", "CE", "PE", "CE", "PE"]
    t["days_to_expiry"] = [2, 0, 1, 2, 0, 5]
    for name, values in (("gross_inr", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), ("charges_inr", [0.5] * 6),
                         ("net_inr", [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]), ("net_pts", [0.1] * 6)):
        t[name] = values
    table = pa.Table.from_pandas(t, preserve_index=False)
    assert str(column(table, "trade_date")[0]) == str(column(t, "trade_date")[0]) == "2024-07-01"
    frame_stats, table_stats = summary_stats(t), summary_stats(table)
    assert frame_stats == table_stats or all(  # NaN != NaN: compare as strings
        str(frame_stats[k]) == str(table_stats[k]) for k in frame_stats)
    assert table_stats["gross_inr"] == 21.0 and table_stats["longest_losing_streak"] == 1
    frames = breakdowns(t, step=100)
    assert list(frames["exit_reason"].index) == ["stop", "target", "time", "trail"]
    records = breakdown_records(table, step=100)
    assert records.keys() == frames.keys()
    for name, frame in frames.items():
        assert str(records[name]) == str(frame.reset_index().to_dict(orient="records"))
        pd.testing.assert_frame_equal(breakdowns(table, step=100)[name], frame)
    t.loc[3, "charges_inr"] = float("nan")  # a trade without costs: no money statistics
    assert summary_stats(pa.Table.from_pandas(t, preserve_index=False))["net_inr"] is None
    assert summary_stats(t)["net_inr"] is None


def test_no_trades_cost_nothing_as_they_earn_nothing():
    """A run without trades has a net of 0, as its gross points are 0 (not a missing value that ranks it
    apart from a losing combination); a ratio without trades stays undefined."""
    empty = trades_frame([], [])
    for name in ("gross_inr", "charges_inr", "net_inr", "net_pts"):
        empty[name] = pd.Series(dtype=float)
    stats = summary_stats(empty)
    assert stats["total_pnl_pts"] == stats["net_inr"] == stats["charges_inr"] == stats["total_net_pts"] == 0.0
    assert stats["mean_net_pts"] == stats["net_win_rate"] == stats["win_rate"] == 0.0
    assert stats["net_profit_factor"] is None and stats["profit_factor"] is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([-1.0, 0.0, 2.0, float("nan")]), max_size=30))
def test_longest_losing_streak_counts_losses_in_a_row(pnl):
    from core.stats import longest_losing_streak

    best = run = 0
    for x in pnl:
        run = run + 1 if x < 0 else 0
        best = max(best, run)
    assert longest_losing_streak(np.array(pnl)) == best


def test_output_tables_dictionary_encode_only_their_strings(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.outputs import write_table

    table = pa.table({"label": ["a", "b", "a"], "value": [1.5, 2.5, 1.5], "n": [1, 2, 3]})
    write_table(table, tmp_path / "t.parquet")
    columns = pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(0)
    encodings = {columns.column(i).path_in_schema: columns.column(i).encodings for i in range(3)}
    assert any("DICTIONARY" in e for e in encodings["label"])
    assert not any("DICTIONARY" in e for e in encodings["value"] + encodings["n"])
    assert pq.read_table(tmp_path / "t.parquet").equals(table)


def test_sweep_report_warns_when_edge_is_noise():
    rows = pd.DataFrame({"combo": [0, 1], "signal.multiplier": [1.5, 2.0], "trades": [12, 12],
                         "total_pnl_pts": [5.0, -3.0]})
    page = sweep_report(rows, ["signal.multiplier"], "total_pnl_pts", np.array([5.0, -4.0, 4.0]), False)
    assert "within noise" in page and "only 12 trades" in page and "spans zero" in page
    strong = np.full(40, 3.0) + np.linspace(-0.1, 0.1, 40)
    rows["trades"] = [40, 40]
    page = sweep_report(rows, ["signal.multiplier"], "total_pnl_pts", strong, False)
    assert "within noise" not in page
    lo, hi = bootstrap_mean_interval(strong)
    assert 2.9 < lo < hi < 3.1


def test_the_report_inspects_trades_from_the_markets_the_run_kept(regression, monkeypatch):
    """A run keeps only the days of its best and worst trades (and of asked ids); the inspector's
    data from them equals the data built again from the files, and no market is built for it."""
    import numpy as np

    from core import run_backtest
    from core.markets import day_number
    from core.report import inspect_ids, trade_context
    import core.report as report

    result = run_backtest(regression.config(), inspect=[1])
    trades = result.trades
    ids = inspect_ids(trades, [1])
    days = {day_number(trades.loc[i, "trade_date"]) for i in ids}
    assert set(result.markets) == days and len(days) <= 3
    rebuilt = {i: trade_context(result.config, trades.loc[i]) for i in ids}

    def no_building(*args, **kwargs):
        raise AssertionError("the report built markets again")

    monkeypatch.setattr(report, "iter_day_markets", no_building)
    for i in ids:
        kept = trade_context(result.config, trades.loc[i], result.markets)
        assert kept is not None and rebuilt[i] is not None
        for key in ("bars", "spot", "volume", "burst", "threshold"):
            np.testing.assert_array_equal(kept[key], rebuilt[i][key])


def test_console_money_line_sums_the_costed_trades_and_is_left_out_when_one_is_not():
    import pyarrow as pa

    from core.config import load_config
    from core.console import format_result
    from core.engine import BacktestResult

    t = trades_frame([10.0, -4.0], ["2024-07-01", "2024-07-02"])
    t["gross_inr"], t["charges_inr"] = [1500.0, -600.0], [40.25, 39.5]
    t["net_inr"] = t["gross_inr"] - t["charges_inr"]
    t["net_pts"] = [9.7, -4.3]
    cfg = load_config({"symbol": "BANKNIFTY", "start": "2024-07-01", "end": "2024-07-02"}, check_paths=False)
    health = {"problems": {}, "warnings": []}

    def text(frame):
        return format_result(BacktestResult(pa.Table.from_pandas(frame, preserve_index=False), pa.table({"d": [1]}),
                                            health, 0.5, cfg))

    assert f"gross Rs 900.00  charges Rs 79.75  net Rs 820.25" in text(t)
    uncosted = t.assign(charges_inr=[40.25, np.nan], net_inr=[1459.75, np.nan])
    assert "money" not in text(uncosted) and "trades 2" in text(uncosted)


def test_console_says_when_the_range_holds_no_trading_day():
    """A range of weekends and holidays has nothing to test: the console says so instead of a bare 0 trades;
    a range with trading days but no trade does not get the line, nor a money line of zeros."""
    import pyarrow as pa

    from core.config import load_config
    from core.console import format_result
    from core.engine import BacktestResult

    cfg = load_config({"symbol": "BANKNIFTY", "start": "2024-07-06", "end": "2024-07-07"}, check_paths=False)
    none = trades_frame([], [])
    for name in ("gross_inr", "charges_inr", "net_inr", "net_pts"):
        none[name] = pd.Series(dtype=float)

    def text(trading_days):
        health = {"problems": {}, "warnings": [], "info": {"trading_days": trading_days}}
        return format_result(BacktestResult(pa.Table.from_pandas(none, preserve_index=False), pa.table({"d": [1]}),
                                            health, 0.1, cfg))

    assert "no NSE trading day from 2024-07-06 to 2024-07-07" in text(0)
    assert "no NSE trading day" not in text(2) and "trades 0" in text(2) and "money" not in text(2)
    from core.report import run_report  # the report says it as well

    def page(trading_days):
        return run_report(cfg, none, none.iloc[:0], {"problems": {}, "warnings": [], "info": {"trading_days": trading_days}},
                          False, {})

    assert "No NSE trading day from 2024-07-06 to 2024-07-07" in page(0) and "No NSE trading day" not in page(2)
