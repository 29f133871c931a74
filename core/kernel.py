"""The strategy kernel: a batch of strategies evaluated on one market in one pass.

Arrays in, trade records out; no I/O. Work is shared wherever the rules allow:

* burst and baseline sums, B(s) and S(s), are computed once per window and signal family
  (``burst_secs``, ``avg_secs``) and shared by every multiplier, side, trend and volume setting;
* per trend class (side x trend filter) the best qualifying burst ratio of each bar and its running
  maximum bound where a strategy's first signal can be, so finding it is a binary search plus an
  exact check of a bar or two (numba), not a scan of the hour per strategy;
* a trade's value path V(t) and pnl(t) is computed once per distinct entry (bar, series, delta,
  side, P&L mode) and every exit setting is scanned over it together (numba).

Every comparison is the one strategy.md writes, in the same float64 operations and order as the
plain loop (``tests/reference.py``), so each strategy's trades are bit-identical to evaluating it
alone (tested: random batches against one-by-one runs).
"""
from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import numpy as np

from .config import Strategy, clock_label
from .exits import OPTION_FLOOR

REASONS = ("stop", "trail", "target", "time")
EPOCH = dt.date(1970, 1, 1)


def _loops():
    """The compiled loops (core.kernel_loops), imported on first use: numba costs about a second to
    start, which a command that stops on a config error should not pay."""
    from . import kernel_loops

    return kernel_loops


_LOADING = None  # the thread loading the compiled loops: started once per process


def load_loops_in_background():
    """Start loading the compiled loops (numba's cached machine code, about half a second to a second)
    on a thread, once per process, so that a run overlaps it with reading its markets; returns the thread."""
    import threading

    global _LOADING
    if _LOADING is not None:
        return _LOADING

    def load() -> None:
        loops = _loops()
        one = np.zeros((1, 1))
        loops.first_signals(one, one, np.zeros(1), np.zeros((1, 1), np.bool_), np.zeros(1, np.int64), one, one,
                            np.zeros(1, np.int64), np.ones(1), np.zeros(1), np.zeros(1, np.bool_), 1.0, 1.0)
        loops.window_sums(np.zeros(1, np.int64), np.zeros(2), 1, 2, 1, 1, one[0], one[0])
        loops.scan_exits(np.zeros(2), np.zeros(2), 1.0, np.ones(1, np.int64), np.zeros(1), np.zeros(1), np.zeros(1),
                         np.zeros(1))

    _LOADING = threading.Thread(target=load, name="atmburst-load-kernel", daemon=True)
    _LOADING.start()
    return _LOADING


def _trend_classes(strategies: list[Strategy]) -> tuple[list[tuple[bool, bool]], np.ndarray]:
    """Distinct (long side, trend filter) pairs and each strategy's index among them."""
    classes: list[tuple[bool, bool]] = []
    index = np.empty(len(strategies), np.int64)
    for j, s in enumerate(strategies):
        key = (s.side == "long", bool(s.trend_filter))
        if key not in classes:
            classes.append(key)
        index[j] = classes.index(key)
    return classes, index


FIRST_SEGMENT = 240  # bars of a window searched first; later segments double (most first signals come early)


def window_signals(spot: np.ndarray, window, strategies: list[Strategy]) -> list[tuple[int, int, float, float] | None]:
    """Per strategy (all of one signal family): (signal bar, candidate index, B, S) or None.

    The window's bars are searched in segments of growing length, each for the strategies still
    without a signal, so an early signal does not pay for B(s) and S(s) over the whole hour. The
    first qualifying bar of a strategy is the same whatever the segments (each is searched in full,
    in order)."""
    first = strategies[0]
    lo = max(window.start, first.burst_secs + first.avg_secs - 1)  # warm-up: no index before the open
    out: list[tuple[int, int, float, float] | None] = [None] * len(strategies)
    if lo >= window.end or not window.candidates:
        return out
    classes, class_of = _trend_classes(strategies)
    is_ce = np.array([c.opt_type == "CE" for c in window.candidates])
    n_cands = len(window.candidates)
    order = sorted(range(n_cands), key=lambda k: (abs(window.candidates[k].strike - window.atm),
                                                  0 if window.candidates[k].opt_type == "CE" else 1,
                                                  window.candidates[k].strike))
    rank = np.empty(n_cands, np.int64)
    rank[order] = np.arange(n_cands)
    wants_up = np.array([is_ce == long_side for long_side, _ in classes]).reshape(len(classes), n_cands)
    multipliers = np.array([s.multiplier for s in strategies], np.float64)
    min_volumes = np.array([s.min_burst_volume for s in strategies], np.float64)
    filters = np.array([s.trend_filter for s in strategies], np.bool_)
    pending = np.arange(len(strategies))
    start, length = lo, FIRST_SEGMENT
    while start < window.end and len(pending):
        stop = min(window.end, start + length)
        found_bar, found_cand, bars, burst, base_sum = _segment_signals(
            spot, window, first, start, stop, classes, class_of[pending], wants_up, rank, multipliers[pending],
            min_volumes[pending], filters[pending])
        for j, i, k in zip(pending.tolist(), found_bar.tolist(), found_cand.tolist()):
            if i >= 0:
                out[j] = (int(bars[i]), k, float(burst[k, i]), float(base_sum[k, i]))
        pending = pending[found_bar < 0]
        start, length = stop, 2 * length
    return out


def _segment_signals(spot, window, family: Strategy, start: int, stop: int, classes, class_of, wants_up, rank,
                     multipliers, min_volumes, filters):
    """First signals of some strategies within bars [start, stop) of a window (indices into the segment)."""
    burst_secs, avg_secs = family.burst_secs, family.avg_secs
    bars = np.arange(start, stop)
    n_cands = len(window.candidates)
    burst = np.empty((n_cands, len(bars)))
    base_sum = np.empty((n_cands, len(bars)))
    loops = _loops()
    for k, cand in enumerate(window.candidates):
        loops.window_sums(cand.series.volume_bars, cand.series.volume_cum, start, stop, burst_secs, avg_secs,
                          burst[k], base_sum[k])
    trend = spot[start:stop] - window.hour_open
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(base_sum > 0, (burst * avg_secs) / (base_sum * burst_secs), -np.inf)
    best_ratio = np.empty((len(classes), len(bars)))
    for c, (_, trend_filter) in enumerate(classes):
        if trend_filter:
            allowed = np.where(wants_up[c][:, None], (trend > 0)[None, :], (trend < 0)[None, :])
            best_ratio[c] = np.where(allowed, ratio, -np.inf).max(axis=0)
        else:
            best_ratio[c] = ratio.max(axis=0)
    running_max = np.maximum.accumulate(best_ratio, axis=1)
    found_bar, found_cand = loops.first_signals(
        burst, base_sum, trend, wants_up, rank, best_ratio, running_max, class_of, multipliers, min_volumes,
        filters, float(avg_secs), float(burst_secs))
    return found_bar, found_cand, bars, burst, base_sum


def value_path(spot: np.ndarray, series, entry: int, end: int, entry_spot: float, entry_opt: float,
               delta_used: float, direction: int, sign: int, pnl_mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """V(t), pnl(t) and peak(t) for t = entry .. end-1 (strategy.md §7)."""
    bars = np.arange(entry, end)
    if pnl_mode == "option_close":
        value = series.close_at(bars)
    else:
        value = np.maximum(OPTION_FLOOR, entry_opt + delta_used * direction * (spot[bars] - entry_spot))
    pnl = sign * (value - entry_opt)
    return value, pnl, np.maximum.accumulate(pnl)


def evaluate_markets_batch(markets, strategies: list[Strategy], symbol: str, delta_for=None):
    """Trades of every strategy over prepared day markets: [(trades, health)] in strategy order, each
    ``trades`` a pyarrow Table in core.outputs.TRADE_SCHEMA, in the order the trades were found.

    ``delta_for(market, entry, candidate, entry_opt, entry_spot, strategy, fallback, health)`` gives
    the Black-Scholes delta for strategies with ``delta_model == 'black_scholes'``.
    """
    from .health import Health

    healths = [Health() for _ in strategies]
    families: dict[tuple[int, int], list[int]] = defaultdict(list)
    for j, s in enumerate(strategies):
        families[(s.burst_secs, s.avg_secs)].append(j)
    found = TradeColumns(strategies, symbol)
    for market in markets:
        for window in market.windows:
            signals: list = [None] * len(strategies)
            for members in families.values():
                for j, sig in zip(members, window_signals(market.spot, window, [strategies[j] for j in members])):
                    signals[j] = sig
            _window_trades(market, window, strategies, signals, found, healths, delta_for)
    return list(zip(found.tables(), healths))


class TradeColumns:
    """Trades of a batch of strategies, gathered as numpy chunks (one per shared value path) and
    turned into one table per strategy at the end, instead of a dict per trade."""

    def __init__(self, strategies: list[Strategy], symbol: str):
        self.strategies = strategies
        self.symbol = symbol
        self.chunks: dict[str, list[np.ndarray]] = defaultdict(list)
        self.anchors: dict[str, int] = {}
        self.sell = np.array([s.side == "sell" for s in strategies], bool)
        self.burst_secs = np.array([s.burst_secs for s in strategies], np.float64)
        self.avg_secs = np.array([s.avg_secs for s in strategies], np.float64)
        self.stop_pct = np.array([s.stop_pct for s in strategies], np.float64)
        self.trail_pct = np.array([s.trail_pct for s in strategies], np.float64)
        self.trail_activate_pct = np.array([s.trail_activate_pct for s in strategies], np.float64)
        self.target_pct = np.array([s.target_pct for s in strategies], np.float64)
        self.max_hold = np.array([s.max_hold_secs for s in strategies], np.int64)

    def add(self, members: np.ndarray, **columns) -> None:
        """Trades of ``members`` (strategy indices); each column an array over them or one shared value."""
        n = len(members)
        self.chunks["strategy"].append(members)
        for name, values in columns.items():
            self.chunks[name].append(values if isinstance(values, np.ndarray) else np.full(n, values))

    def tables(self) -> list:
        """One pyarrow Table per strategy (zero-copy slices of one table of the batch)."""
        import pyarrow as pa

        from .outputs import TRADE_SCHEMA, TS

        if not self.chunks:
            return [TRADE_SCHEMA.empty_table() for _ in self.strategies]
        col = {name: np.concatenate(parts) for name, parts in self.chunks.items()}
        order = np.argsort(col["strategy"], kind="stable")  # each strategy's trades in the order found
        col = {name: values[order] for name, values in col.items()}
        counts = np.bincount(col["strategy"], minlength=len(self.strategies))

        def strings(codes, labels):
            return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, np.int32)),
                                                  pa.array(labels, pa.string())).cast(pa.string())

        def timestamps(values):
            return pa.array(values.astype(np.int64)).cast(TS)

        arrays = {
            "symbol": strings(np.zeros(len(order)), [self.symbol]),
            "trade_date": pa.array(col["trade_date"].astype(np.int32)).cast(pa.date32()),
            "anchor": strings(col["anchor"], sorted(self.anchors, key=self.anchors.get)),
            "expiry": pa.array(col["expiry"].astype(np.int32)).cast(pa.date32()),
            "opt_type": strings(col["opt_type"], ["CE", "PE"]),
            "side": strings(np.where(self.sell[col["strategy"]], 0, 1), ["sell", "long"]),
            "exit_reason": strings(col["reason"], list(REASONS)),
            **{name: timestamps(col[name]) for name in ("entry_ts", "exit_ts", "signal_ts")},
            **{name: pa.array(col[name].astype(np.int64)) for name in ("strike", "atm", "days_to_expiry")},
            **{name: pa.array(col[name].astype(np.float64)) for name in (
                "entry_spot", "exit_spot", "delta_used", "entry_opt", "exit_opt", "pnl_pts", "burst_vol", "base_vol")},
        }
        table = pa.Table.from_arrays([arrays[f.name] for f in TRADE_SCHEMA], schema=TRADE_SCHEMA)
        starts = np.concatenate(([0], np.cumsum(counts)))
        return [table.slice(int(starts[j]), int(counts[j])) for j in range(len(self.strategies))]


def _window_trades(market, window, strategies, signals, found: TradeColumns, healths, delta_for) -> None:
    """Entries, shared value paths and batched exit scans of one window."""
    paths: dict[tuple, list[int]] = defaultdict(list)
    entries: dict[int, tuple] = {}
    prices: dict[tuple[int, int], float] = {}
    for j, (strategy, sig) in enumerate(zip(strategies, signals)):
        if sig is None:
            continue
        bar, k, burst_volume, baseline_sum = sig
        entry = bar + strategy.entry_delay_secs
        if entry >= window.end:
            continue
        cand = window.candidates[k]
        entry_opt = prices.get((entry, k))
        if entry_opt is None:
            entry_opt = prices[(entry, k)] = float(cand.series.close_at(np.array([entry]))[0])
        if math.isnan(entry_opt):
            healths[j].add("no_option_price", 1, f"{market.trade_date} {clock_label(window.anchor_sec)} "
                           f"{cand.opt_type} {cand.strike}: no price at entry")
            continue
        entry_spot = float(market.spot[entry])
        delta_used = strategy.delta_atm if cand.strike == window.atm else strategy.delta_near
        if strategy.delta_model == "black_scholes" and delta_for is not None:
            delta_used = delta_for(market, entry, cand, entry_opt, entry_spot, strategy, delta_used, healths[j])
        sign = -1 if strategy.side == "sell" else 1
        key = (entry, k, float(delta_used), sign, strategy.pnl_mode)
        paths[key].append(j)
        entries[j] = (bar, burst_volume, baseline_sum, entry_opt, entry_spot)
    if not paths:
        return
    # What every trade of this window shares.
    trade_date, expiry = market.trade_date, market.expiry
    anchor = found.anchors.setdefault(clock_label(window.anchor_sec), len(found.anchors))
    shared = {"trade_date": market.day, "anchor": anchor, "expiry": (expiry - EPOCH).days, "atm": int(window.atm),
              "days_to_expiry": (expiry - trade_date).days}
    us_at_open = market.utc_us(0)
    for (entry, k, delta_used, sign, pnl_mode), members in paths.items():
        cand = window.candidates[k]
        direction = 1 if cand.opt_type == "CE" else -1
        entry_opt, entry_spot = entries[members[0]][3], entries[members[0]][4]
        value, pnl, peak = value_path(market.spot, cand.series, entry, window.end, entry_spot, entry_opt,
                                      delta_used, direction, sign, pnl_mode)
        chosen = np.array(members, np.int64)
        last = np.minimum(found.max_hold[chosen], window.end - 1 - entry)
        idx, reason = _loops().scan_exits(pnl, peak, entry_opt, last, found.stop_pct[chosen], found.trail_pct[chosen],
                                          found.trail_activate_pct[chosen], found.target_pct[chosen])
        signal_bar = np.array([entries[j][0] for j in members], np.int64)
        baseline_sum = np.array([entries[j][2] for j in members], np.float64)
        exit_bar = entry + idx
        found.add(chosen, **shared, opt_type=0 if direction == 1 else 1, strike=int(cand.strike),
                  entry_ts=us_at_open + entry * 1_000_000, entry_spot=entry_spot, delta_used=delta_used,
                  entry_opt=entry_opt, exit_ts=us_at_open + exit_bar * 1_000_000, exit_spot=market.spot[exit_bar],
                  exit_opt=value[idx], pnl_pts=pnl[idx], reason=reason, signal_ts=us_at_open + signal_bar * 1_000_000,
                  burst_vol=np.array([entries[j][1] for j in members], np.float64),
                  base_vol=baseline_sum * found.burst_secs[chosen] / found.avg_secs[chosen])
