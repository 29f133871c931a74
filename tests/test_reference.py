"""Differential test: the engine equals a plain loop over strategy.md (tests/reference.py), trade for
trade and column for column, with random configurations: on tiny random markets with faulty ticks, and
on a synthetic market at real tick density (core.synth)."""
from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import run_backtest
from core.config import DEFAULTS
from tests.builders import config, ts_array, write_calendar
from tests.reference import reference_trades
from tests.test_properties import DAY, EXP, N_BARS, OPEN, market

SPEC = ["trade_date", "anchor", "expiry", "opt_type", "strike", "side", "entry_ts", "exit_ts", "entry_spot",
        "exit_spot", "delta_used", "entry_opt", "exit_opt", "pnl_pts", "exit_reason"]


def write_faulty_market(root: Path, seed: int) -> None:
    """The random market of test_properties, with vendor faults: duplicates, negative and null
    volumes, null/zero prices, pre-open and post-close ticks, mixed timestamp zones."""
    rng = np.random.default_rng(seed + 99)
    spot, options = market(seed)
    stamps = [OPEN + pd.Timedelta(seconds=i, milliseconds=int(rng.integers(0, 1000))) for i in range(N_BARS)]
    spot_path = root / "spot/BANKNIFTY/202407/date=2024-07-01/ticks.parquet"
    spot_path.parent.mkdir(parents=True, exist_ok=True)
    zone = [None, "UTC", "Asia/Kolkata"][seed % 3]
    pq.write_table(pa.table({"timestamp": ts_array(stamps, "us", zone), "close": pa.array(list(spot), pa.float64())}),
                   spot_path)
    for (opt_type, strike), (vol, price, offsets) in options.items():
        ticks = [OPEN + pd.Timedelta(seconds=i, milliseconds=int(o)) for i, o in enumerate(offsets)]
        closes, vols = list(price), [int(v) for v in vol]
        for _ in range(int(rng.integers(0, 6))):  # exact duplicates
            j = int(rng.integers(0, N_BARS))
            ticks.append(ticks[j]), closes.append(closes[j]), vols.append(vols[j])
        for _ in range(int(rng.integers(0, 6))):  # repairs: negative volume, null volume, bad prices
            j = int(rng.integers(0, N_BARS))
            ticks.append(ticks[j] + pd.Timedelta(microseconds=int(rng.integers(1, 999))))
            closes.append([None, 0.0, -1.0, float(rng.uniform(50, 150))][int(rng.integers(0, 4))])
            vols.append([-5, None, 7][int(rng.integers(0, 3))])
        ticks += [OPEN - pd.Timedelta(minutes=5), OPEN + pd.Timedelta(seconds=N_BARS + 30)]  # outside the session
        closes += [99.0, 101.0]
        vols += [500, 500]
        path = root / f"options/BANKNIFTY/202407/exp={EXP}/type={opt_type}/strike={strike}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        order = rng.permutation(len(ticks)) if seed % 2 else np.arange(len(ticks))  # files need not be sorted
        pq.write_table(pa.table({
            "timestamp": ts_array([ticks[i] for i in order], ["us", "ns", "ms"][seed % 3], zone),
            "close": pa.array([closes[i] for i in order], pa.float64()),
            "vol_delta": pa.array([vols[i] for i in order], pa.int64()),
        }), path)
    write_calendar(root, "BANKNIFTY", [EXP])


def assert_same_trades(got: pd.DataFrame, expected: list[dict]) -> None:
    """The engine's trades equal the reference's, in order, in every column of strategy.md §8."""
    assert len(got) == len(expected)
    for row, exp in zip(got.to_dict("records"), expected):
        for col in SPEC:
            assert row[col] == exp[col], (col, row[col], exp[col])


configs = st.fixed_dictionaries({
    "side": st.sampled_from(["sell", "long"]),
    "pnl_mode": st.sampled_from(["delta_proxy", "option_close"]),
    "multiplier": st.sampled_from([1.1, 1.3, 2.0]),
    "windows": st.sampled_from([(3, 12), (5, 20), (2, 6)]),
    "target": st.sampled_from([0.0, 0.03, 0.08]),
    "stop": st.sampled_from([0.0, 0.03, 0.08]),
    "trail": st.sampled_from([(0.0, 0.0), (0.02, 0.02), (0.02, 0.0)]),
    "each_side": st.sampled_from([1, 2]),
    "delay": st.integers(0, 3),
    "max_hold": st.sampled_from([20, 100, 3600]),
    "anchors": st.sampled_from([(["09:16:00", "09:19:00", "09:22:00"], 180), (["09:15:30", "09:20:00"], 400)]),
    "trend_filter": st.booleans(),
    "min_volume": st.sampled_from([0, 10]),
})


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c=configs)
def test_engine_equals_plain_loop_reference(seed, c):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_faulty_market(root, seed)
        cfg = config(root, DAY)
        cfg.update({
            "session": {"open": "09:15:00", "close": "09:25:00", "anchors": c["anchors"][0],
                        "window_secs": c["anchors"][1]},
            "routing": {"strikes_each_side": c["each_side"]},
            "signal": {"burst_secs": c["windows"][0], "avg_secs": c["windows"][1], "multiplier": c["multiplier"],
                       "min_burst_volume": c["min_volume"], "trend_filter": c["trend_filter"]},
            "execution": {"entry_delay_secs": c["delay"]},
            "risk": {"side": c["side"], "target_pct": c["target"], "stop_pct": c["stop"], "trail_pct": c["trail"][0],
                     "trail_activate_pct": c["trail"][1], "max_hold_secs": c["max_hold"]},
            "pnl_mode": c["pnl_mode"],
        })
        plain = run_backtest(cfg)
        got = plain.trades
        cached = {**cfg, "cache_dir": str(root / "cache")}
        cold, warm = run_backtest(cached), run_backtest(cached)  # warm: markets decoded from the market cache
        assert warm.health["info"]["files_read"] == 0
        ref_cfg = {**cfg, "delta": {"ATM": 0.5, "NEAR": 0.4}}
        expected = reference_trades(ref_cfg)
    assert_same_trades(got, expected)
    for run in (cold, warm):
        pd.testing.assert_frame_equal(run.trades, got)
        assert run.health["problems"] == plain.health["problems"]
        assert run.health["messages"] == plain.health["messages"]


def test_reference_sees_trades():
    """Guard against a vacuous comparison: the faulty random market does trade."""
    with tempfile.TemporaryDirectory() as tmp:
        write_faulty_market(Path(tmp), 3)
        cfg = config(Path(tmp), DAY, session__open="09:15:00", session__close="09:25:00",
                     session__anchors=["09:16:00", "09:19:00", "09:22:00"], session__window_secs=180,
                     signal__burst_secs=3, signal__avg_secs=12, signal__multiplier=1.2,
                     routing__strikes_each_side=1)
        full = {**cfg, "execution": {"entry_delay_secs": 1},
                "signal": {"burst_secs": 3, "avg_secs": 12, "multiplier": 1.2, "min_burst_volume": 0,
                           "trend_filter": True},
                "risk": {"side": "sell", "target_pct": 0.15, "stop_pct": 0.15, "trail_pct": 0.1,
                         "trail_activate_pct": 0.1, "max_hold_secs": 3600},
                "pnl_mode": "delta_proxy", "delta": {"ATM": 0.5, "NEAR": 0.4}}
        assert len(reference_trades(full)) >= 2
        assert len(run_backtest(cfg).trades) == len(reference_trades(full))


# The same comparison on a synthetic market at real tick density (core.synth): several days, a weekly and
# a monthly expiry, NIFTY's 50-point strikes, and random values of the keys of strategy.md §3-7 that the
# tiny market above does not reach (symbol, strike step, expiry kind, delta, anchors near the close,
# continuous thresholds).
SYNTH_START, SYNTH_END = "2023-03-27", "2023-04-03"  # 2023-03-30 is a holiday; the March monthly moved to the 29th
SYNTH_DAYS = ["2023-03-27", "2023-03-28", "2023-03-29", "2023-03-31", "2023-04-03"]
ANCHORS = [f"{h:02d}:{m:02d}:00" for h in range(9, 16) for m in (0, 20, 40)
           if 9 * 60 + 20 <= h * 60 + m <= 15 * 60 + 20]


@pytest.fixture(scope="module")
def synthetic_market(tmp_path_factory) -> Path:
    from core.synth import generate

    out = tmp_path_factory.mktemp("synth_reference")
    generate("NIFTY", dt.date.fromisoformat(SYNTH_START), dt.date.fromisoformat(SYNTH_END), out, seed=3, workers=1)
    return out


def synthetic_config(root: Path, start: str, end: str, **sections) -> dict:
    cfg = config(root / "packed", start, end)
    cfg["symbol"] = "NIFTY"
    cfg["data"]["calendar_csv"] = str(root / "meta" / "expiry_calendar.csv")
    cfg.update(sections)
    return cfg


def thresholds():
    return st.one_of(st.just(0.0), st.sampled_from([0.05, 0.1, 0.15, 0.2]),
                     st.floats(0.01, 0.6).map(lambda x: round(x, 3)))


synthetic_configs = st.fixed_dictionaries({
    "days": st.sampled_from([(SYNTH_START, SYNTH_END), ("2023-03-29", "2023-03-31"), ("2023-04-03", "2023-04-03")]),
    "anchors": st.lists(st.sampled_from(ANCHORS + ["15:29:50"]), min_size=1, max_size=5, unique=True),
    "window_secs": st.sampled_from([60, 900, 3600, 7200]),
    "routing": st.fixed_dictionaries({"strikes_each_side": st.integers(0, 2),
                                      "strike_step": st.sampled_from([{"NIFTY": 50}, {"NIFTY": 100}]),
                                      "expiry_kind": st.sampled_from(["nearest", "weekly", "monthly"])}),
    "signal": st.fixed_dictionaries({"burst_secs": st.sampled_from([5, 10, 30, 60]),
                                     "avg_secs": st.sampled_from([30, 120, 300, 600]),
                                     "multiplier": st.one_of(st.sampled_from([1.0, 1.5, 2.0, 3.0]),
                                                             st.floats(1.0, 5.0).map(lambda x: round(x, 3))),
                                     "min_burst_volume": st.sampled_from([0, 500, 5000]),
                                     "trend_filter": st.booleans()}),
    "execution": st.fixed_dictionaries({"entry_delay_secs": st.sampled_from([0, 1, 2, 30])}),
    "risk": st.fixed_dictionaries({"side": st.sampled_from(["sell", "long", "buy"]), "target_pct": thresholds(),
                                   "stop_pct": thresholds(), "trail_pct": thresholds(),
                                   "trail_activate_pct": thresholds(),
                                   "max_hold_secs": st.sampled_from([1, 60, 600, 3600])}),
    "pnl_mode": st.sampled_from(["delta_proxy", "option_close"]),
    "delta": st.fixed_dictionaries({"ATM": st.floats(0.3, 0.7).map(lambda x: round(x, 2)),
                                    "NEAR": st.floats(0.1, 0.5).map(lambda x: round(x, 3))}),
})


@settings(max_examples=8, deadline=None)  # about 3 s each: the reference is a plain loop over real density
@given(c=synthetic_configs)
def test_engine_equals_plain_loop_reference_on_a_synthetic_market(synthetic_market, c):
    cfg = synthetic_config(synthetic_market, *c["days"],
                           session={"open": "09:15:00", "close": "15:30:00", "anchors": sorted(c["anchors"]),
                                    "window_secs": c["window_secs"]},
                           **{k: c[k] for k in ("routing", "signal", "execution", "risk", "pnl_mode", "delta")})
    assert_same_trades(run_backtest(cfg).trades, reference_trades(cfg))


def test_the_synthetic_market_trades_and_the_reference_agrees(synthetic_market):
    """Guard against a vacuous comparison above: the shipped defaults trade most windows of the market,
    and on every day of it."""
    cfg = synthetic_config(synthetic_market, SYNTH_START, SYNTH_END,
                           routing={"strikes_each_side": 1}, delta={"ATM": 0.5, "NEAR": 0.4}, pnl_mode="delta_proxy",
                           **{k: dict(DEFAULTS[k]) for k in ("session", "signal", "execution", "risk")})
    got = run_backtest(cfg).trades
    assert len(got) >= 20 and {str(d) for d in got["trade_date"]} == set(SYNTH_DAYS)
    assert_same_trades(got, reference_trades(cfg))
