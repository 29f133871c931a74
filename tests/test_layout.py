"""A day's layout (core.layout): flat arrays that give back the windows they were made from, and the cut of
a day's series to the session grid that fills them (core.grid.day_series)."""
from __future__ import annotations

from dataclasses import fields

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import Session
from core.grid import SparseSeries, day_series, sparse_series
from core.layout import DayLayout, Window, day_layout, layout_of, tie_ranks
from core.signal import Candidate
from core.ticks import Seconds

DAY = 19_500  # 2023-05-23
OPEN, CLOSE = 9 * 3600 + 15 * 60, 9 * 3600 + 15 * 60 + 20  # a session of 21 bars
SESSION = Session(OPEN, CLOSE, (OPEN,), 3600)


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
    assert tie_ranks(100, [(c.opt_type, c.strike) for c in cands]) == [1, 0, 3, 4, 2]


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


def _seconds(rows) -> Seconds:
    """Seconds of (second, volume, ticks, close) rows (seconds ascending)."""
    second, volume, ticks, close = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    return Seconds(np.array(second, np.int64), np.array(volume, np.float64), np.array(ticks, np.int64),
                   np.array(close, np.float64), np.zeros(len(rows), np.int64))


def _cut_by_loop(rows):
    """One series cut to SESSION's grid on DAY by a plain loop: (bars, running volume with a leading 0, the
    bars that set a price, those prices with a leading NaN, ticks before the open, after the close, inside)."""
    bars, cum, price_bars, prices = [], [0.0], [], [np.nan]
    pre = post = inside = 0
    for second, volume, ticks, close in rows:
        day, of_day = divmod(second, 86_400)
        if day != DAY:
            continue
        if of_day < OPEN:
            pre += ticks
        elif of_day > CLOSE:
            post += ticks
        else:
            inside += ticks
            bars.append(of_day - OPEN)
            cum.append(volume if len(cum) == 1 else cum[-1] + volume)  # numpy's cumsum: the first value as is
            if close == close:  # not NaN
                price_bars.append(of_day - OPEN)
                prices.append(close)
    return bars, cum, price_bars, prices, pre, post, inside


# per-second rows of one series: seconds around DAY's session (the day before, before the open, inside,
# after the close, the day after), fractional volumes (their sums depend on the order of adding) and closes
# that may be NaN
SECOND_OF_DAY = st.sampled_from([-5, 0, OPEN - 1]) | st.integers(OPEN - 2, CLOSE + 2) | st.sampled_from(
    [CLOSE + 3, 86_399, 86_400, 86_405])
SERIES = st.lists(st.tuples(SECOND_OF_DAY, st.floats(0, 1e6, allow_subnormal=False), st.integers(1, 5),
                            st.none() | st.floats(0.05, 5e4)), max_size=30, unique_by=lambda row: row[0]).map(
    lambda rows: sorted((DAY * 86_400 + s, v, t, np.nan if c is None else c) for s, v, t, c in rows))


@settings(max_examples=150, deadline=None)
@given(st.lists(SERIES, max_size=5))
def test_day_series_cuts_each_series_as_a_plain_loop_does(many):
    cut = day_series([_seconds(rows) for rows in many], DAY, SESSION)
    assert len(cut.volume_bars_off) == len(many) + 1
    for j, rows in enumerate(many):
        bars, cum, price_bars, prices, pre, post, inside = _cut_by_loop(rows)
        series = cut.series(j)
        assert series.volume_bars.dtype == series.price_bars.dtype == np.int64
        assert series.volume_bars.tolist() == bars and series.price_bars.tolist() == price_bars
        np.testing.assert_array_equal(series.volume_cum, np.array(cum))  # bit for bit: the same additions
        np.testing.assert_array_equal(series.prices, np.array(prices))
        assert (cut.pre_open[j], cut.post_close[j], cut.inside[j]) == (pre, post, inside)
    every_bar_priced = all(c == c for rows in many for s, _, _, c in rows if OPEN <= s % 86_400 <= CLOSE
                           and s // 86_400 == DAY)
    assert (cut.price_bars is cut.volume_bars) == every_bar_priced


def _same_layout(got: DayLayout, expected: DayLayout) -> None:
    for f in fields(DayLayout):
        a, b = getattr(got, f.name), getattr(expected, f.name)
        assert a.dtype == b.dtype, f.name
        np.testing.assert_array_equal(a, b, err_msg=f.name)
    assert (got.price_bars is got.volume_bars) == (expected.price_bars is expected.volume_bars)


def test_day_layout_of_the_cut_series_is_layout_of_the_windows():
    first = DAY * 86_400 + OPEN
    ce = [(first - 3, 2.0, 1, 10.0), (first + 1, 0.1, 2, 11.0), (first + 4, 0.2, 1, 12.0), (first + 30, 5.0, 3, 9.0)]
    pe = [(first + 2, 0.3, 1, np.nan), (first + 5, 0.7, 1, 20.0)]  # a second without a valid price
    far = [(first + 40, 1.0, 1, 3.0)]  # ticks only after the close: a series with no bars
    keys = [("CE", 100), ("PE", 100), ("CE", 200)]
    parts = [_seconds(ce), _seconds(pe), _seconds(far)]
    windows = [(36_000, 0, 10, 99.5, 100, [0, 1]), (39_600, 10, 21, 151.0, 200, [2, 0])]
    cands = [Candidate(o, k, sparse_series(p, DAY, SESSION)) for (o, k), p in zip(keys, parts)]
    expected = layout_of([Window(a, s, e, h, atm, tuple(cands[i] for i in members))
                          for a, s, e, h, atm, members in windows])
    _same_layout(day_layout(keys, day_series(parts, DAY, SESSION), windows), expected)
    assert expected.volume_bars.tolist() == [1, 4, 2, 5]
    assert expected.volume_cum.tolist() == [0.0, 0.1, 0.1 + 0.2, 0.0, 0.3, 0.3 + 0.7, 0.0]
    assert expected.win_rank.tolist() == [0, 1, 0, 1]
    # every bar priced: the price bars are the volume bars, both ways
    _same_layout(day_layout(keys[:1], day_series(parts[:1], DAY, SESSION), [windows[0][:5] + ([0],)]),
                 layout_of([Window(36_000, 0, 10, 99.5, 100, (cands[0],))]))
    _same_layout(day_layout([], day_series([], DAY, SESSION), []), layout_of([]))
