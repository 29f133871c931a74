"""One day's hour windows and candidate series as a few flat arrays (``DayLayout``).

The layout is how a built day is held, cached (core.market_cache) and evaluated (the compiled passes
of core.kernel): a handful of arrays per day instead of four small arrays per candidate series, so
reading a day from the cache and handing it to the kernel costs no per-series work. Window and
Candidate objects (what the report and the Black-Scholes delta look at) are views of it, made on
demand.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .grid import SeriesArrays, offsets_of
from .signal import Candidate


@dataclass(frozen=True)
class Window:
    """One hour window of a day: bars [start, end), its hour open, ATM and candidates."""

    anchor_sec: int
    start: int
    end: int
    hour_open: float
    atm: int
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class DayLayout(SeriesArrays):
    """A day's windows and their candidate series as flat arrays.

    Candidate ``i`` (``is_ce[i]``, ``strike[i]``) is one option series of the day: its tick bars are
    ``volume_bars[volume_bars_off[i]:volume_bars_off[i + 1]]``, their running volume sums (with a
    leading 0) ``volume_cum[volume_cum_off[i]:...]``, the bars that set a price ``price_bars[...]`` and
    those prices (with a leading NaN) ``prices[...]`` (core.grid.SeriesArrays). Window ``w`` runs
    over bars [``win_start[w]``, ``win_end[w]``) and offers the candidates
    ``win_cands[win_cand_off[w]:win_cand_off[w + 1]]`` in its own order, with their tie-break ranks
    ``win_rank`` (strategy.md §5: nearest the ATM, then CE before PE, then the lower strike)."""

    is_ce: np.ndarray  # bool per candidate
    strike: np.ndarray  # int64 per candidate
    win_anchor: np.ndarray  # int64 anchor second of the day per window
    win_start: np.ndarray  # int64
    win_end: np.ndarray  # int64
    win_hour_open: np.ndarray  # float64
    win_atm: np.ndarray  # int64
    win_cand_off: np.ndarray  # int64, windows + 1
    win_cands: np.ndarray  # int64 candidate indices
    win_rank: np.ndarray  # int64, aligned with win_cands

    def candidate(self, i: int) -> Candidate:
        """Candidate ``i`` as a Candidate whose series are views of the layout's arrays."""
        return Candidate("CE" if self.is_ce[i] else "PE", int(self.strike[i]), self.series(i))

    def windows(self) -> tuple[Window, ...]:
        """The windows as Window objects (a candidate shared by two windows is one object)."""
        cands = [self.candidate(i) for i in range(len(self.strike))]
        return tuple(Window(int(self.win_anchor[w]), int(self.win_start[w]), int(self.win_end[w]),
                            float(self.win_hour_open[w]), int(self.win_atm[w]),
                            tuple(cands[i] for i in self.win_cands[self.win_cand_off[w]:self.win_cand_off[w + 1]]))
                     for w in range(len(self.win_start)))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by field name (what core.market_cache stores)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def joined(arrays: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    """(the arrays end to end as ``dtype``, the offset of each: len(arrays) + 1 entries)."""
    offsets = offsets_of([len(a) for a in arrays])
    return (np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)), offsets


def tie_ranks(atm: int, keys: list[tuple[str, int]]) -> list[int]:
    """Each (opt_type, strike)'s rank in strategy.md §5's order: nearest the ATM, CE before PE, lower strike."""
    order = sorted(range(len(keys)), key=lambda k: (abs(keys[k][1] - atm), 0 if keys[k][0] == "CE" else 1, keys[k][1]))
    rank = [0] * len(keys)
    for r, k in enumerate(order):
        rank[k] = r
    return rank


def layout_of(windows: list[Window]) -> DayLayout:
    """The layout of a day's windows (their candidates' series copied into the flat arrays)."""
    index: dict[int, int] = {}
    cands: list[Candidate] = []
    members = []
    for window in windows:
        for cand in window.candidates:
            if id(cand) not in index:
                index[id(cand)] = len(cands)
                cands.append(cand)
        members.append([index[id(cand)] for cand in window.candidates])
    series = [c.series for c in cands]
    volume_bars, volume_bars_off = joined([s.volume_bars for s in series], np.int64)
    volume_cum, volume_cum_off = joined([s.volume_cum for s in series], np.float64)
    if all(s.price_bars is s.volume_bars or np.array_equal(s.price_bars, s.volume_bars) for s in series):
        price_bars, price_bars_off = volume_bars, volume_bars_off  # every bar with ticks set a price: shared
    else:
        price_bars, price_bars_off = joined([s.price_bars for s in series], np.int64)
    prices, prices_off = joined([s.prices for s in series], np.float64)
    flat = SeriesArrays(volume_bars, volume_bars_off, volume_cum, volume_cum_off, price_bars, price_bars_off, prices,
                        prices_off)
    return day_layout([(c.opt_type, c.strike) for c in cands], flat,
                      [(w.anchor_sec, w.start, w.end, w.hour_open, w.atm, m) for w, m in zip(windows, members)])


def day_layout(keys: list[tuple[str, int]], series: SeriesArrays, windows: list[tuple]) -> DayLayout:
    """The layout of a day from its candidates' ``keys`` ((opt_type, strike) each), their ``series`` laid end
    to end in the same order (core.grid.day_series, or ``layout_of``'s join), and its ``windows``:
    (anchor_sec, start, end, hour_open, atm, the indices of its candidates in its own order) each. For the
    markets' day_series, the same layout as ``layout_of`` of the Window objects (tested), without a
    SparseSeries or Candidate per series."""
    win_cands = [i for *_, members in windows for i in members]
    win_rank = [r for *_, atm, members in windows for r in tie_ranks(atm, [keys[i] for i in members])]
    win_cand_off = offsets_of([len(members) for *_, members in windows])
    return DayLayout(
        is_ce=np.array([opt_type == "CE" for opt_type, _ in keys], np.bool_),
        strike=np.array([strike for _, strike in keys], np.int64),
        **{f.name: getattr(series, f.name) for f in fields(SeriesArrays)},
        win_anchor=np.array([w[0] for w in windows], np.int64), win_start=np.array([w[1] for w in windows], np.int64),
        win_end=np.array([w[2] for w in windows], np.int64), win_hour_open=np.array([w[3] for w in windows], np.float64),
        win_atm=np.array([w[4] for w in windows], np.int64), win_cand_off=win_cand_off,
        win_cands=np.array(win_cands, np.int64), win_rank=np.array(win_rank, np.int64))

