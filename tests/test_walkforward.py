"""Walk-forward validation (core.walkforward): windows, choices, no look-ahead, and a sweep end to end."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.walkforward import parse_length, walk_forward, walk_forward_steps

D = dt.date


def daily_trades(start: D, days: int, drift: float, seed: int, noise: float = 1.0) -> pd.DataFrame:
    """One trade a weekday: pnl = drift + noise."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=days).date
    return pd.DataFrame({"trade_date": dates, "pnl_pts": drift + noise * rng.standard_normal(len(dates))})


def test_steps_roll_or_anchor_and_cover_the_range():
    rolling = walk_forward_steps(D(2023, 1, 1), D(2023, 12, 31), "6M", "1M", anchored=False)
    assert len(rolling) == 6
    assert (rolling[0].train_start, rolling[0].train_end, rolling[0].test_end) == (D(2023, 1, 1), D(2023, 7, 1), D(2023, 8, 1))
    assert (rolling[1].train_start, rolling[1].test_start) == (D(2023, 2, 1), D(2023, 8, 1))
    assert rolling[-1].test_end == D(2024, 1, 1)  # cut at the end date (inclusive)
    anchored = walk_forward_steps(D(2023, 1, 1), D(2023, 12, 31), "6M", "1M", anchored=True)
    assert {s.train_start for s in anchored} == {D(2023, 1, 1)}
    assert [s.test_start for s in anchored] == [s.test_start for s in rolling]
    # test windows tile the rest of the range without gaps or overlaps
    assert all(a.test_end == b.test_start for a, b in zip(rolling, rolling[1:]))
    days = walk_forward_steps(D(2024, 7, 1), D(2024, 7, 3), "1D", "1D", anchored=False)
    assert [(s.train_start, s.test_start) for s in days] == [(D(2024, 7, 1), D(2024, 7, 2)), (D(2024, 7, 2), D(2024, 7, 3))]
    assert walk_forward_steps(D(2024, 7, 1), D(2024, 7, 3), "1M", "1D", anchored=False) == []


@pytest.mark.parametrize("text", ["6", "M", "0M", "-1M", "6Q", "", None, "1.5M"])
def test_bad_lengths_are_refused_by_name(text):
    with pytest.raises(ValueError, match="validation.train"):
        parse_length(text, "validation.train")


def test_a_planted_regime_switch_is_followed_in_each_period():
    """Combination 1 earns in the first half, combination 2 in the second, 3-5 are noise: the choice is 1
    while the train window lies in the first half and 2 once it lies in the second."""
    start, days = D(2022, 1, 3), 520
    half = pd.bdate_range(start, periods=days).date[days // 2]
    combos = []
    for c in range(5):
        t = daily_trades(start, days, 0.0, seed=c)
        first = t["trade_date"] < half
        if c == 1:
            t.loc[first, "pnl_pts"] += 3.0
        if c == 2:
            t.loc[~first, "pnl_pts"] += 3.0
        combos.append(t)
    steps = walk_forward_steps(start, D(2023, 12, 29), "3M", "1M", anchored=False)
    result = walk_forward(combos, [0, 1, 2, 3, 4], [f"c{c}" for c in range(5)], steps, "total_pnl_pts")
    table = result.steps
    in_first = table[pd.to_datetime(table["train_end"]).dt.date <= half]
    in_second = table[pd.to_datetime(table["train_start"]).dt.date >= half]
    assert len(in_first) >= 3 and len(in_second) >= 3
    assert set(in_first["combo"]) == {1} and set(in_second["combo"]) == {2}
    # the out-of-sample record is the chosen combination's trades in each test window, nothing else
    for row in table.itertuples():
        got = result.trades[result.trades["step"] == row.step]
        assert (got["combo"] == row.combo).all()
        own = combos[row.combo]
        window = own[(own["trade_date"] >= row.test_start) & (own["trade_date"] < row.test_end)]
        np.testing.assert_array_equal(got["pnl_pts"].to_numpy(), window["pnl_pts"].to_numpy())
    assert result.summary["trades"] == len(result.trades) and result.summary["distinct_choices"] >= 2


def test_lower_is_better_metrics_choose_the_smallest():
    calm = daily_trades(D(2024, 1, 1), 60, 0.5, seed=1, noise=0.1)
    wild = daily_trades(D(2024, 1, 1), 60, 1.0, seed=2, noise=20.0)
    steps = walk_forward_steps(D(2024, 1, 1), D(2024, 3, 22), "1M", "1M", anchored=False)
    chosen = walk_forward([wild, calm], [0, 1], ["wild", "calm"], steps, "max_drawdown_pts").steps["combo"]
    assert set(chosen) == {1}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-50, 50), step_pick=st.integers(0, 4))
def test_no_look_ahead_changing_anything_after_a_train_window_never_changes_its_choice(seed, shift, step_pick):
    start = D(2023, 1, 2)
    combos = [daily_trades(start, 260, 0.0, seed=seed + c) for c in range(6)]
    steps = walk_forward_steps(start, D(2023, 12, 29), "4M", "1M", anchored=bool(seed % 2))
    step = steps[step_pick]
    before = walk_forward(combos, list(range(6)), list("abcdef"), steps, "total_pnl_pts").steps
    rng = np.random.default_rng(seed)
    changed = []
    for t in combos:  # every trade dated on or after the train window's end: new values, some removed
        t = t.copy()
        later = t["trade_date"] >= step.train_end
        t.loc[later, "pnl_pts"] = shift * rng.standard_normal(int(later.sum()))
        changed.append(t[~later | (rng.random(len(t)) > 0.3)])
    after = walk_forward(changed, list(range(6)), list("abcdef"), steps, "total_pnl_pts").steps
    for k in range(step_pick + 1):  # this step's choice and every earlier one
        assert before.loc[k, "combo"] == after.loc[k, "combo"]
        assert before.loc[k, "in_sample"] == after.loc[k, "in_sample"]
