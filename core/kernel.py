"""The strategy kernel: a batch of strategies evaluated on one market in one pass.

Arrays in, trade records out; no I/O. A day's windows and candidate series come as flat arrays
(core.layout), and two compiled passes (core.kernel_loops) evaluate every strategy of the batch on
them, sharing work wherever the rules allow:

* burst and baseline sums, B(s) and S(s), are computed once per window and signal family
  (``burst_secs``, ``avg_secs``) and shared by every multiplier, side, trend and volume setting;
* per trend class (side x trend filter) the best qualifying burst ratio of each bar and its running
  maximum bound where a strategy's first signal can be, so finding it is a binary search plus an
  exact check of a bar or two, not a scan of the hour per strategy;
* a trade's value path V(t) and pnl(t) is computed once per distinct entry (bar, series, delta,
  side, P&L mode) and every exit setting is scanned over it together.

Between the two passes Python sees only what needs it: a missing entry price (a health message) and
Black-Scholes deltas (implied volatility per trade). Every comparison is the one strategy.md writes,
in the same float64 operations and order as the plain loop (``tests/reference.py``), so each
strategy's trades are bit-identical to evaluating it alone (tested: random batches against
one-by-one runs).
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np

from .config import Strategy, clock_label
from .compiled import import_numba_without_blas_probe, read_only
from .layout import DayLayout, joined

REASONS = ("stop", "trail", "target", "time")
EPOCH = dt.date(1970, 1, 1)


def _loops():
    """The compiled loops: core.aot's module when it is built, else numba's JIT loops (core.kernel_loops),
    imported on first use."""
    from . import aot

    return aot.serving("kernel_loops")


_LOADING = None  # the thread loading the compiled loops: started once per process


def read_only_layout(layout: DayLayout) -> DayLayout:
    """``layout`` with read-only views of its arrays, as the compiled loops take them (core.compiled)."""
    return DayLayout(**{name: read_only(values) for name, values in layout.arrays().items()})


def load_loops() -> None:
    """Load the compiled loops: the ahead-of-time module (core.aot) when it is built; else numba's JIT
    loops (``load_jit_loops``), after which a builder of the module is started for the next process."""
    from . import aot

    aot.load_or_warm(load_jit_loops)


def load_jit_loops() -> None:
    """Compile or load numba's JIT loops (numba's cached machine code; loading costs a fraction of a
    second to a second, compiling several seconds) by evaluating a two-second day whose burst at bar 1
    enters a trade, so that both compiled passes run with the argument types of every real call."""
    from dataclasses import replace

    from . import kernel_loops
    from .config import default_strategy
    from .grid import SparseSeries
    from .layout import Window, layout_of
    from .markets import DayMarket
    from .signal import Candidate

    bars = np.arange(2, dtype=np.int64)
    series = SparseSeries(bars, np.array([0.0, 1.0, 11.0]), bars, np.array([np.nan, 1.0, 1.0]))
    day = DayMarket(0, EPOCH, 0, np.ones(2), layout_of([Window(0, 0, 2, 1.0, 0, (Candidate("CE", 0, series),))]))
    strategy = replace(default_strategy(), burst_secs=1, avg_secs=1, multiplier=1.0, min_burst_volume=0.0,
                       trend_filter=False, entry_delay_secs=0)
    import_numba_without_blas_probe()  # before the first compiled call loads numba's registries
    _evaluate([day], [strategy], "", None, kernel_loops)


def load_loops_in_background():
    """Start ``load_loops`` on a thread, once per process, so that a run overlaps it with reading its
    markets; returns the thread."""
    import threading

    global _LOADING
    if _LOADING is None:
        _LOADING = threading.Thread(target=load_loops, name="atmburst-load-kernel", daemon=True)
        _LOADING.start()
    return _LOADING


class StrategyArrays:
    """A batch of strategies as per-strategy arrays, with their signal families (strategies sharing
    burst_secs and avg_secs, in order of first appearance) and trend classes (long side x trend filter)."""

    def __init__(self, strategies: list[Strategy]):
        self.strategies = strategies
        families: dict[tuple[int, int], list[int]] = defaultdict(list)
        classes: list[tuple[bool, bool]] = []
        self.strategy_class = np.empty(len(strategies), np.int64)
        for j, s in enumerate(strategies):
            families[(s.burst_secs, s.avg_secs)].append(j)
            key = (s.side == "long", bool(s.trend_filter))
            if key not in classes:
                classes.append(key)
            self.strategy_class[j] = classes.index(key)
        self.family_burst = np.array([b for b, _ in families], np.int64)
        self.family_avg = np.array([a for _, a in families], np.int64)
        self.family_members, self.family_off = joined([np.array(m, np.int64) for m in families.values()], np.int64)
        self.class_long = np.array([long for long, _ in classes], np.bool_)
        self.class_filter = np.array([trend for _, trend in classes], np.bool_)

        def column(name, dtype):
            return np.array([getattr(s, name) for s in strategies], dtype)

        self.multipliers = column("multiplier", np.float64)
        self.min_volumes = column("min_burst_volume", np.float64)
        self.filters = column("trend_filter", np.bool_)
        self.entry_delay = column("entry_delay_secs", np.int64)
        self.delta_atm = column("delta_atm", np.float64)
        self.delta_near = column("delta_near", np.float64)
        self.black_scholes = np.array([s.delta_model == "black_scholes" for s in strategies], np.bool_)
        self.sell = np.array([s.side == "sell" for s in strategies], np.bool_)
        self.sign = np.where(self.sell, -1, 1).astype(np.int64)
        self.option_close = np.array([s.pnl_mode == "option_close" for s in strategies], np.bool_)
        self.max_hold = column("max_hold_secs", np.int64)
        self.stop_pct = column("stop_pct", np.float64)
        self.trail_pct = column("trail_pct", np.float64)
        self.trail_activate_pct = column("trail_activate_pct", np.float64)
        self.target_pct = column("target_pct", np.float64)
        self.burst_secs = column("burst_secs", np.float64)
        self.avg_secs = column("avg_secs", np.float64)


def evaluate_markets_batch(markets, strategies: list[Strategy], symbol: str, delta_for=None):
    """Trades of every strategy over prepared day markets: [(trades, health)] in strategy order, each
    ``trades`` a pyarrow Table in core.outputs.TRADE_SCHEMA, in the order the trades were found.

    ``delta_for(market, entry, candidate, entry_opt, entry_spot, strategy, fallback, health)`` gives
    the Black-Scholes delta for strategies with ``delta_model == 'black_scholes'``.
    """
    return _evaluate(markets, strategies, symbol, delta_for, _loops())


def _evaluate(markets, strategies: list[Strategy], symbol: str, delta_for, loops):
    """``evaluate_markets_batch`` with the given compiled loops (core.aot's or core.kernel_loops)."""
    from .health import Health

    healths = [Health() for _ in strategies]
    batch = StrategyArrays(strategies)
    found = TradeColumns(batch, symbol)
    for market in markets:
        if len(market.layout.win_start):
            _day_trades(market, batch, found, healths, delta_for, loops)
    return list(zip(found.tables(), healths))


def _day_trades(market, batch: StrategyArrays, found: "TradeColumns", healths, delta_for, loops) -> None:
    """Signals, entries and exits of every strategy on one day (two compiled passes), into ``found``."""
    day = read_only_layout(market.layout)
    spot = read_only(market.spot)
    shape = (len(day.win_start), len(batch.strategies))
    signal_bar = np.full(shape, -1, np.int64)
    cand = np.full(shape, -1, np.int64)
    burst, base_sum = np.zeros(shape), np.zeros(shape)
    entry = np.full(shape, -1, np.int64)
    entry_opt, entry_spot = np.full(shape, np.nan), np.full(shape, np.nan)
    b = batch
    loops.day_signals(spot, day.win_start, day.win_end, day.win_hour_open, day.win_cand_off, day.win_cands,
                      day.win_rank, day.is_ce, day.volume_bars, day.volume_bars_off, day.volume_cum,
                      day.volume_cum_off, day.price_bars, day.price_bars_off, day.prices, day.prices_off,
                      b.family_burst, b.family_avg, b.family_members, b.family_off, b.class_long, b.class_filter,
                      b.strategy_class, b.multipliers, b.min_volumes, b.filters, b.entry_delay,
                      signal_bar, cand, burst, base_sum, entry, entry_opt, entry_spot)
    entered = entry >= 0
    if not entered.any():
        return
    priced = entered & ~np.isnan(entry_opt)
    for w, j in zip(*np.nonzero(entered & ~priced)):
        c = cand[w, j]
        healths[j].add("no_option_price", 1, f"{market.trade_date} {clock_label(int(day.win_anchor[w]))} "
                       f"{'CE' if day.is_ce[c] else 'PE'} {day.strike[c]}: no price at entry")
    if not priced.any():
        return
    taken = np.where(priced, cand, 0)
    delta = np.where(day.strike[taken] == day.win_atm[:, None], b.delta_atm, b.delta_near)
    if delta_for is not None and b.black_scholes.any():
        for w, j in zip(*np.nonzero(priced & b.black_scholes)):
            delta[w, j] = delta_for(market, int(entry[w, j]), day.candidate(cand[w, j]), float(entry_opt[w, j]),
                                    float(entry_spot[w, j]), b.strategies[j], float(delta[w, j]), healths[j])
    exit_bar = np.zeros(shape, np.int64)
    reason = np.zeros(shape, np.int64)
    exit_opt, pnl = np.zeros(shape), np.zeros(shape)
    loops.day_exits(spot, day.win_end, day.is_ce, day.price_bars, day.price_bars_off, day.prices,
                    day.prices_off, np.where(priced, entry, -1), cand, entry_opt, entry_spot, delta, b.sign,
                    b.option_close, b.max_hold, b.stop_pct, b.trail_pct, b.trail_activate_pct, b.target_pct,
                    exit_bar, reason, exit_opt, pnl)
    rows, members = np.nonzero(priced)  # window by window, strategies in order
    anchor = np.zeros(shape[0], np.int64)
    for w in np.unique(rows):
        anchor[w] = found.anchors.setdefault(clock_label(int(day.win_anchor[w])), len(found.anchors))
    at = (rows, members)
    series = cand[at]
    us_at_open = market.utc_us(0)
    found.add(members, trade_date=market.day, anchor=anchor[rows], expiry=(market.expiry - EPOCH).days,
              atm=day.win_atm[rows], days_to_expiry=(market.expiry - market.trade_date).days,
              opt_type=np.where(day.is_ce[series], 0, 1), strike=day.strike[series],
              entry_ts=us_at_open + entry[at] * 1_000_000, entry_spot=entry_spot[at], delta_used=delta[at],
              entry_opt=entry_opt[at], exit_ts=us_at_open + exit_bar[at] * 1_000_000,
              exit_spot=market.spot[exit_bar[at]], exit_opt=exit_opt[at], pnl_pts=pnl[at], reason=reason[at],
              signal_ts=us_at_open + signal_bar[at] * 1_000_000, burst_vol=burst[at],
              base_vol=base_sum[at] * b.burst_secs[members] / b.avg_secs[members])


class TradeColumns:
    """Trades of a batch of strategies, gathered as numpy chunks (one per day) and turned into one
    table per strategy at the end, instead of a dict per trade."""

    def __init__(self, batch: StrategyArrays, symbol: str):
        self.strategies = batch.strategies
        self.sell = batch.sell
        self.symbol = symbol
        self.chunks: dict[str, list[np.ndarray]] = defaultdict(list)
        self.anchors: dict[str, int] = {}

    def add(self, members: np.ndarray, **columns) -> None:
        """Trades of ``members`` (strategy indices); each column an array over them or one shared value."""
        n = len(members)
        self.chunks["strategy"].append(members)
        for name, values in columns.items():
            self.chunks[name].append(values if isinstance(values, np.ndarray) else np.full(n, values))

    def tables(self) -> list:
        """One pyarrow Table per strategy (zero-copy slices of one table of the batch)."""
        import pyarrow as pa

        from .arrow_numpy import arrow_array, arrow_strings
        from .outputs import TRADE_SCHEMA, TS

        if not self.chunks:
            return [TRADE_SCHEMA.empty_table() for _ in self.strategies]
        col = {name: np.concatenate(parts) for name, parts in self.chunks.items()}
        order = np.argsort(col["strategy"], kind="stable")  # each strategy's trades in the order found
        col = {name: values[order] for name, values in col.items()}
        counts = np.bincount(col["strategy"], minlength=len(self.strategies))

        def strings(codes, labels):
            return pa.DictionaryArray.from_arrays(arrow_array(np.asarray(codes, np.int32)),
                                                  arrow_strings(labels)).cast(pa.string())

        def timestamps(values):
            return arrow_array(values.astype(np.int64)).cast(TS)

        arrays = {
            "symbol": strings(np.zeros(len(order)), [self.symbol]),
            "trade_date": arrow_array(col["trade_date"].astype(np.int32)).cast(pa.date32()),
            "anchor": strings(col["anchor"], sorted(self.anchors, key=self.anchors.get)),
            "expiry": arrow_array(col["expiry"].astype(np.int32)).cast(pa.date32()),
            "opt_type": strings(col["opt_type"], ["CE", "PE"]),
            "side": strings(np.where(self.sell[col["strategy"]], 0, 1), ["sell", "long"]),
            "exit_reason": strings(col["reason"], list(REASONS)),
            **{name: timestamps(col[name]) for name in ("entry_ts", "exit_ts", "signal_ts")},
            **{name: arrow_array(col[name].astype(np.int64)) for name in ("strike", "atm", "days_to_expiry")},
            **{name: arrow_array(col[name].astype(np.float64)) for name in (
                "entry_spot", "exit_spot", "delta_used", "entry_opt", "exit_opt", "pnl_pts", "burst_vol", "base_vol")},
        }
        table = pa.Table.from_arrays([arrays[f.name] for f in TRADE_SCHEMA], schema=TRADE_SCHEMA)
        starts = np.concatenate(([0], np.cumsum(counts)))
        return [table.slice(int(starts[j]), int(counts[j])) for j in range(len(self.strategies))]
