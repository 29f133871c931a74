"""A day's layout (core.layout): flat arrays that give back the windows they were made from."""
from __future__ import annotations

import numpy as np

from core.grid import SparseSeries
from core.layout import Window, layout_of, tie_ranks
from core.signal import Candidate


def _series(bars, volumes, priced=None):
    bars = np.asarray(bars, np.int64)
    cum = np.concatenate(([0.0], np.cumsum(volumes, dtype=float)))
    price_bars = bars if priced is None else bars[np.asarray(priced)]
    prices = np.concatenate(([np.nan], 100.0 + np.arange(len(price_bars))))
    return SparseSeries(bars, cum, price_bars, prices)


def test_tie_ranks_follow_the_spec_order():
    # nearest the ATM first, then CE before PE, then the lower strike
    cands = [Candidate("PE", 100, None), Candidate("CE", 100, None), Candidate("CE", 200, None),
             Candidate("PE", 0, None), Candidate("CE", 0, None)]
    assert tie_ranks(100, cands) == [1, 0, 3, 4, 2]


def test_layout_gives_back_its_windows_with_shared_series_once():
    ce = Candidate("CE", 100, _series([3, 5, 9], [1, 2, 3]))
    pe = Candidate("PE", 100, _series([4, 9], [5, 6], priced=[False, True]))  # a bar without a valid price
    far = Candidate("CE", 200, _series([], []))
    windows = [Window(36_000, 0, 10, 99.5, 100, (ce, pe)), Window(39_600, 10, 20, 101.0, 100, (far, ce))]
    layout = layout_of(windows)
    assert len(layout.strike) == 3  # ce is shared by both windows: laid out once
    assert layout.win_cands.tolist() == [0, 1, 2, 0]
    assert layout.win_rank.tolist() == [0, 1, 1, 0]
    again = layout.windows()
    assert again[1].candidates[1] is again[0].candidates[0]
    for old, new in zip(windows, again):
        assert (old.anchor_sec, old.start, old.end, old.hour_open, old.atm) == \
            (new.anchor_sec, new.start, new.end, new.hour_open, new.atm)
        for a, b in zip(old.candidates, new.candidates):
            assert (a.opt_type, a.strike) == (b.opt_type, b.strike)
            for name in ("volume_bars", "volume_cum", "price_bars", "prices"):
                np.testing.assert_array_equal(getattr(a.series, name), getattr(b.series, name))
                assert getattr(b.series, name).dtype == (np.int64 if "bars" in name else np.float64)


def test_price_bars_are_shared_only_when_every_series_priced_every_tick_bar():
    ce = Candidate("CE", 100, _series([3, 5], [1, 2]))
    pe = Candidate("PE", 100, _series([4, 9], [5, 6], priced=[False, True]))
    one = layout_of([Window(0, 0, 10, 1.0, 100, (ce,))])
    assert one.price_bars is one.volume_bars
    both = layout_of([Window(0, 0, 10, 1.0, 100, (ce, pe))])
    assert both.price_bars is not both.volume_bars
    assert both.price_bars.tolist() == [3, 5, 9]


def test_a_day_without_windows_has_an_empty_layout():
    layout = layout_of([])
    assert layout.windows() == ()
    assert len(layout.win_cand_off) == 1 and len(layout.volume_bars_off) == 1
