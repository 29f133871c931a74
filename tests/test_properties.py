"""Property: the engine never looks ahead. Changing ticks after bar T changes no trade's signal
at or before T, no entry at or before T, and no exit at or before T. Also: same inputs and config
give byte-identical trades files."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from core import run_backtest
from tests.builders import config, write_calendar, write_option, write_spot

DAY, EXP = "2024-07-01", "2024-07-03"
N_BARS = 601
OPEN = pd.Timestamp(f"{DAY} 09:15:00", tz="Asia/Kolkata")
SERIES = [("CE", 47000), ("PE", 47000), ("CE", 47100), ("PE", 46900), ("CE", 46900)]


def market(seed: int):
    """Random spot walk, per-second option volumes with bursts, option prices, tick offsets."""
    rng = np.random.default_rng(seed)
    spot = 47000 + np.cumsum(rng.choice([-5.0, 0.0, 5.0], N_BARS))
    options = {}
    for key in SERIES:
        vol = rng.poisson(2, N_BARS) * rng.choice([1, 1, 1, 4], N_BARS)
        price = np.round(np.maximum(0.05, 100 + np.cumsum(rng.normal(0, 1, N_BARS))), 2)
        offsets = rng.integers(0, 1000, N_BARS)
        options[key] = (vol, price, offsets)
    return spot, options


def perturb(spot, options, after_bar: int, seed: int):
    """The same market up to ``after_bar``; different spot, volume and price after it."""
    rng = np.random.default_rng(seed + 1)
    spot = spot.copy()
    spot[after_bar + 1:] += np.cumsum(rng.choice([-20.0, 20.0], N_BARS - after_bar - 1))
    out = {}
    for key, (vol, price, offsets) in options.items():
        vol, price = vol.copy(), price.copy()
        vol[after_bar + 1:] = rng.poisson(6, N_BARS - after_bar - 1)
        price[after_bar + 1:] = np.round(rng.uniform(1, 300, N_BARS - after_bar - 1), 2)
        out[key] = (vol, price, offsets)
    return spot, out


def write_market(root: Path, spot, options) -> dict:
    stamps = [OPEN + pd.Timedelta(seconds=i) for i in range(N_BARS)]
    write_spot(root, "BANKNIFTY", DAY, stamps, list(spot))
    for (opt_type, strike), (vol, price, offsets) in options.items():
        ticks = [OPEN + pd.Timedelta(seconds=i, milliseconds=int(o)) for i, o in enumerate(offsets)]
        write_option(root, "BANKNIFTY", EXP, opt_type, strike, ticks, list(price), list(vol))
    write_calendar(root, "BANKNIFTY", [EXP])
    return config(root, DAY, session__open="09:15:00", session__close="09:25:00",
                  session__anchors=["09:16:00", "09:19:00", "09:22:00"], session__window_secs=180,
                  signal__burst_secs=3, signal__avg_secs=12, signal__multiplier=1.2,
                  risk__target_pct=0.05, risk__stop_pct=0.05, risk__trail_pct=0.02, risk__trail_activate_pct=0.02)


def run(spot, options, **extra):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_market(Path(tmp), spot, options)
        cfg.update(extra)
        return run_backtest(cfg).trades


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cut=st.integers(60, N_BARS - 2),
       pnl_mode=st.sampled_from(["delta_proxy", "option_close"]), side=st.sampled_from(["sell", "long"]))
def test_no_look_ahead(seed, cut, pnl_mode, side):
    spot, options = market(seed)
    spot2, options2 = perturb(spot, options, cut, seed)
    extra = {"pnl_mode": pnl_mode, "risk": {"side": side, "target_pct": 0.05, "stop_pct": 0.05,
                                            "trail_pct": 0.02, "trail_activate_pct": 0.02}}
    a, b = run(spot, options, **extra), run(spot2, options2, **extra)
    t_cut = OPEN + pd.Timedelta(seconds=cut)

    def decided(frame, col, cols):
        rows = frame[frame[col] <= t_cut]
        return rows[["anchor"] + cols].reset_index(drop=True)

    sig = ["signal_ts", "opt_type", "strike", "burst_vol", "base_vol"]
    pd.testing.assert_frame_equal(decided(a, "signal_ts", sig), decided(b, "signal_ts", sig))
    ent = sig + ["entry_ts", "entry_spot", "entry_opt", "delta_used"]
    pd.testing.assert_frame_equal(decided(a, "entry_ts", ent), decided(b, "entry_ts", ent))
    ext = ent + ["exit_ts", "exit_spot", "exit_opt", "pnl_pts", "exit_reason"]
    pd.testing.assert_frame_equal(decided(a, "exit_ts", ext), decided(b, "exit_ts", ext))


def test_property_data_does_trade():
    """Guard against a vacuous property: the random markets above produce trades."""
    spot, options = market(7)
    assert len(run(spot, options)) >= 1


def test_same_inputs_give_byte_identical_files(tmp_path):
    spot, options = market(11)
    cfg = write_market(tmp_path, spot, options)
    first = run_backtest(cfg).write(tmp_path / "a")
    second = run_backtest({**cfg, "cache_dir": str(tmp_path / "cache")}).write(tmp_path / "b")
    third = run_backtest({**cfg, "cache_dir": str(tmp_path / "cache")}).write(tmp_path / "c")
    for key in ("trades", "summary"):
        assert first[key].read_bytes() == second[key].read_bytes() == third[key].read_bytes()
