"""One hand-computed tiny tick set per rule of strategy.md §2-7, each asserting the exact trade or its absence.

Common set-up (unless a test says otherwise): session 09:15:00-09:25:00 (601 bars), one window
anchored at 09:16:00 (bar 60) lasting 300 s (bars 60..359), burst_secs=2, avg_secs=4, multiplier 1.5,
entry delay 1 s. Every option trades volume 1 each second, so S(s)=4, base(s)=2 and B(s)=2; a
volume of 3 at bar s makes B(s)=4 > 1.5*2: a burst at s and, through bar s-1's volume 1, at no earlier bar.
"""
from __future__ import annotations

import pandas as pd
import pytest

from core import run_backtest
from tests.builders import config, per_second_spot, volume_ticks, write_calendar, write_option, write_spot

DAY, EXP = "2024-07-01", "2024-07-03"
N_BARS = 601
OPEN = pd.Timestamp(f"{DAY} 09:15:00", tz="Asia/Kolkata")


def bar_ts(bar: int) -> pd.Timestamp:
    return OPEN + pd.Timedelta(seconds=bar)


def spot_path(hour_open: float = 47010.0, after: float = 47000.0, moves: dict | None = None) -> list[float]:
    """Spot = hour_open up to the anchor (bar 60), then ``after``; ``moves`` {bar: value} from that bar on."""
    values = [hour_open] * 61 + [after] * (N_BARS - 61)
    for bar, value in sorted((moves or {}).items()):
        values[bar:] = [value] * (N_BARS - bar)
    return values


def volumes(bursts: dict[int, int] | None = None, base: int = 1) -> list[int]:
    v = [base] * N_BARS
    for bar, vol in (bursts or {}).items():
        v[bar] = vol
    return v


def make_case(root, spot_values, series: dict, expiries=(EXP,)):
    stamps, vals = per_second_spot(DAY, "09:15:00", spot_values)
    write_spot(root, "BANKNIFTY", DAY, stamps, vals)
    for (opt_type, strike), (vols, closes) in series.items():
        write_option(root, "BANKNIFTY", EXP, opt_type, strike, *volume_ticks(DAY, "09:15:00", vols, closes))
    write_calendar(root, "BANKNIFTY", list(expiries))


def small_config(root, **over):
    base = dict(session__open="09:15:00", session__close="09:25:00", session__anchors=["09:16:00"],
                session__window_secs=300, signal__burst_secs=2, signal__avg_secs=4)
    base.update(over)
    return config(root, DAY, **base)


def trades_of(root, **over) -> pd.DataFrame:
    return run_backtest(small_config(root, **over)).trades


def test_basic_short_ce_trade_all_fields(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 3}), 100.0)})
    t = trades_of(tmp_path)
    assert len(t) == 1
    row = t.iloc[0]
    assert row["symbol"] == "BANKNIFTY" and str(row["trade_date"]) == DAY and row["anchor"] == "09:16:00"
    assert str(row["expiry"]) == EXP and row["opt_type"] == "CE" and row["strike"] == 47000
    assert row["side"] == "sell" and row["signal_ts"] == bar_ts(70)
    assert row["entry_ts"] == bar_ts(71) and row["exit_ts"] == bar_ts(359)  # window end - 1: time exit
    assert row["entry_spot"] == 47000.0 and row["delta_used"] == 0.5 and row["entry_opt"] == 100.0
    assert row["exit_reason"] == "time" and row["pnl_pts"] == 0.0 and row["exit_opt"] == 100.0
    assert row["burst_vol"] == 4.0 and row["base_vol"] == 2.0


def test_burst_exactly_at_threshold_does_not_fire(tmp_path):
    # vol 2 at bar 70: B=3, B*avg=12 == 1.5*S*burst=12 -> not strictly greater.
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 2}), 100.0)})
    assert trades_of(tmp_path).empty
    assert len(trades_of(tmp_path, signal__multiplier=1.49)) == 1


def test_min_burst_volume(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 3}), 100.0)})
    assert trades_of(tmp_path, signal__min_burst_volume=5).empty
    assert len(trades_of(tmp_path, signal__min_burst_volume=4)) == 1


def test_zero_baseline_never_fires(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 50}, base=0), 100.0)})
    assert trades_of(tmp_path).empty


def test_warm_up_needs_every_index_inside_the_session(tmp_path):
    # Window anchored at the open: bars 3 and 4 need bars before the open (4-2-4+1 < 0), so a burst
    # there gives no signal (and later bars see it inside their baseline); bar 5 is the first allowed.
    spot = [47010.0] + [47000.0] * (N_BARS - 1)
    make_case(tmp_path, spot, {("CE", 47000): (volumes({3: 9}), 100.0)})
    assert trades_of(tmp_path, session__anchors=["09:15:00"]).empty
    make_case(tmp_path, spot, {("CE", 47000): (volumes({5: 3}), 100.0)})
    t = trades_of(tmp_path, session__anchors=["09:15:00"])
    assert list(t["signal_ts"]) == [bar_ts(5)]


@pytest.mark.parametrize("side,opt_type,after,trades", [
    ("sell", "CE", 47000.0, 1), ("sell", "CE", 47020.0, 0), ("sell", "CE", 47010.0, 0),
    ("sell", "PE", 47020.0, 1), ("sell", "PE", 47000.0, 0),
    ("long", "CE", 47020.0, 1), ("long", "CE", 47000.0, 0),
    ("long", "PE", 47000.0, 1), ("long", "PE", 47020.0, 0), ("buy", "PE", 47000.0, 1),
])
def test_trend_filter_both_sides(tmp_path, side, opt_type, after, trades):
    make_case(tmp_path, spot_path(after=after), {(opt_type, 47000): (volumes({70: 3}), 100.0)})
    got = trades_of(tmp_path, risk__side=side)
    assert len(got) == trades
    if trades:
        assert got.iloc[0]["side"] == ("long" if side == "buy" else side)


def test_trend_filter_off_lets_every_burst_qualify(tmp_path):
    make_case(tmp_path, spot_path(after=47020.0), {("CE", 47000): (volumes({70: 3}), 100.0)})
    assert trades_of(tmp_path).empty
    assert len(trades_of(tmp_path, signal__trend_filter=False)) == 1


def test_tie_break_nearer_atm_then_ce_then_lower_strike(tmp_path):
    same = volumes({70: 3})
    make_case(tmp_path, spot_path(), {("CE", 47100): (same, 90.0), ("CE", 47000): (same, 100.0)})
    assert trades_of(tmp_path).iloc[0]["strike"] == 47000  # nearer to ATM
    make_case(tmp_path, spot_path(), {("PE", 47000): (same, 90.0), ("CE", 47000): (same, 100.0)})
    assert trades_of(tmp_path, signal__trend_filter=False).iloc[0]["opt_type"] == "CE"  # CE before PE
    make_case(tmp_path, spot_path(), {("CE", 47100): (same, 90.0), ("CE", 46900): (same, 110.0),
                                       ("CE", 47000): (volumes(), 100.0)})
    assert trades_of(tmp_path).iloc[0]["strike"] == 46900  # lower strike


def test_larger_ratio_beats_nearer_strike(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47100): (volumes({70: 5}), 90.0),
                                       ("CE", 47000): (volumes({70: 3}), 100.0)})
    row = trades_of(tmp_path).iloc[0]
    assert row["strike"] == 47100 and row["delta_used"] == 0.4 and row["burst_vol"] == 6.0


@pytest.mark.parametrize("hour_open,atm_delta", [(47050.0, 0.5), (47049.95, 0.4), (47150.0, 0.4)])
def test_atm_rounds_half_up(tmp_path, hour_open, atm_delta):
    # 47050 -> ATM 47100 (exact half rounds up); 47049.95 -> 47000; 47150 -> 47200.
    make_case(tmp_path, spot_path(hour_open=hour_open, after=hour_open - 20),
              {("CE", 47100): (volumes({70: 3}), 100.0)})
    t = trades_of(tmp_path)
    assert len(t) == 1 and t.iloc[0]["delta_used"] == atm_delta


def test_candidates_reach_strikes_each_side(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47200): (volumes({70: 3}), 100.0)})
    assert trades_of(tmp_path).empty
    t = trades_of(tmp_path, routing__strikes_each_side=2)
    assert list(t["strike"]) == [47200]


def test_entry_delay_past_window_end_means_no_trade(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({359: 3}), 100.0)})
    assert trades_of(tmp_path).empty  # entry bar 360 == window end
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({358: 3}), 100.0)})
    t = trades_of(tmp_path)
    assert list(t["entry_ts"]) == [bar_ts(359)] and list(t["exit_ts"]) == [bar_ts(359)]
    assert list(t["exit_reason"]) == ["time"]
    assert len(trades_of(tmp_path, execution__entry_delay_secs=2)) == 0


def test_last_window_ends_after_the_close_bar(tmp_path):
    # Anchor 09:24:00 with a 3600 s window: the window ends after the 09:25:00 bar (600).
    make_case(tmp_path, spot_path(moves={540: 47010.0, 541: 47000.0}), {("CE", 47000): (volumes({599: 3}), 100.0)})
    t = trades_of(tmp_path, session__anchors=["09:24:00"], session__window_secs=3600)
    assert list(t["entry_ts"]) == [bar_ts(600)] and list(t["exit_ts"]) == [bar_ts(600)]
    make_case(tmp_path, spot_path(moves={540: 47010.0, 541: 47000.0}), {("CE", 47000): (volumes({600: 3}), 100.0)})
    assert trades_of(tmp_path, session__anchors=["09:24:00"], session__window_secs=3600).empty


def test_one_trade_per_window_first_signal_wins(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 3, 200: 9}), 100.0)})
    t = trades_of(tmp_path)
    assert list(t["signal_ts"]) == [bar_ts(70)]


# Exits. Short CE 47000 at 100 with delta 0.5: pnl = -0.5 * (spot - 47000); 15 pts = a 30 pt spot move.
def _exit_case(tmp_path, moves, closes=100.0, **over):
    make_case(tmp_path, spot_path(moves=moves), {("CE", 47000): (volumes({70: 3}), closes)})
    t = trades_of(tmp_path, **over)
    assert len(t) == 1
    return t.iloc[0]


def test_exit_stop(tmp_path):
    row = _exit_case(tmp_path, {80: 47030.0})
    assert (row["exit_reason"], row["exit_ts"], row["exit_opt"], row["pnl_pts"]) == ("stop", bar_ts(80), 115.0, -15.0)
    assert row["exit_spot"] == 47030.0


def test_exit_target(tmp_path):
    row = _exit_case(tmp_path, {80: 46970.0})
    assert (row["exit_reason"], row["exit_ts"], row["exit_opt"], row["pnl_pts"]) == ("target", bar_ts(80), 85.0, 15.0)


def test_exit_trail(tmp_path):
    row = _exit_case(tmp_path, {80: 46980.0, 90: 47000.0})
    assert (row["exit_reason"], row["exit_ts"], row["pnl_pts"]) == ("trail", bar_ts(90), 0.0)


def test_trail_needs_activation(tmp_path):
    # Peak 9.5 < 10 activation: giving it all back is no trail exit.
    row = _exit_case(tmp_path, {80: 46981.0, 90: 47000.0})
    assert row["exit_reason"] == "time"


def test_stop_has_priority_over_trail(tmp_path):
    row = _exit_case(tmp_path, {80: 46980.0, 90: 47040.0})
    assert (row["exit_reason"], row["exit_ts"], row["pnl_pts"]) == ("stop", bar_ts(90), -20.0)


def test_zero_pct_disables_a_rule(tmp_path):
    assert _exit_case(tmp_path, {80: 46980.0, 90: 47000.0}, risk__trail_pct=0)["exit_reason"] == "time"
    assert _exit_case(tmp_path, {80: 47030.0}, risk__stop_pct=0)["exit_reason"] == "time"
    assert _exit_case(tmp_path, {80: 46970.0}, risk__target_pct=None, risk__trail_pct=0)["exit_reason"] == "time"


def test_delta_proxy_floor(tmp_path):
    row = _exit_case(tmp_path, {80: 46600.0}, risk__target_pct=0, risk__trail_pct=0)
    assert row["exit_reason"] == "time" and row["exit_opt"] == 0.05 and row["pnl_pts"] == pytest.approx(99.95, abs=1e-12)


def test_option_close_marks_with_the_option_price(tmp_path):
    closes = [100.0] * 85 + [80.0] * (N_BARS - 85)
    row = _exit_case(tmp_path, {}, closes=closes, pnl_mode="option_close")
    assert (row["exit_reason"], row["exit_ts"], row["exit_opt"], row["pnl_pts"]) == ("target", bar_ts(85), 80.0, 20.0)


def test_max_hold(tmp_path):
    row = _exit_case(tmp_path, {}, risk__max_hold_secs=10)
    assert (row["exit_reason"], row["exit_ts"]) == ("time", bar_ts(81))


def test_long_side_pnl_sign(tmp_path):
    make_case(tmp_path, spot_path(after=47020.0, moves={80: 47050.0}), {("CE", 47000): (volumes({70: 3}), 100.0)})
    row = trades_of(tmp_path, risk__side="long").iloc[0]
    # long CE: V = 100 + 0.5 * (47050 - 47020) = 115 -> pnl +15 -> target.
    assert (row["exit_reason"], row["pnl_pts"], row["exit_opt"]) == ("target", 15.0, 115.0)


def test_signal_without_option_price_is_no_trade(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 3}), [None] * N_BARS)})
    result = run_backtest(small_config(tmp_path))
    assert result.trades.empty
    assert result.health["problems"]["no_option_price"] == 1


def test_no_trading_day_writes_empty_typed_files(tmp_path):
    """A weekend-only range: no error, both files written, empty, with the strategy.md §8 schema."""
    import pyarrow.parquet as pq

    from core.outputs import SUMMARY_SCHEMA, TRADE_SCHEMA

    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 3}), 100.0)})
    result = run_backtest({**small_config(tmp_path), "start": "2024-07-06", "end": "2024-07-07"})
    paths = result.write(tmp_path / "out")
    trades, summary = pq.read_table(paths["trades"]), pq.read_table(paths["summary"])
    assert trades.num_rows == 0 and summary.num_rows == 0
    for field in TRADE_SCHEMA:
        assert trades.schema.field(field.name).type == field.type
    assert summary.schema.remove_metadata() == SUMMARY_SCHEMA
    assert result.health["problems"]["missing_spot_day"] == 0  # weekends are not missing days
