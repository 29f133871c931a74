"""The backtest: evaluate a strategy on built markets (core.markets) with the batch kernel
(core.kernel), then costs (core.costs), the daily summary and the result a caller writes.

``run_backtest`` is the single run; sweeps build markets once and call ``evaluate_markets`` for a
batch of strategies. Both go through the same kernel, so there is one implementation of the rules.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:  # imported where a function needs it: a Ray worker that only builds and evaluates never does
    import pandas as pd

from . import bs
from .config import RunConfig, Strategy, clock_label, load_config
from .costs import trade_costs
from .health import Health, clock_shift_warning
from .kernel import evaluate_markets_batch, load_loops_in_background
from .markets import (IST_OFFSET_S, DayMarket, build_markets, day_number, is_synthetic, iter_day_markets,
                      run_fingerprint)
from .outputs import output_paths, summary_table, trades_table, write_run_files, write_table
from .signal import Candidate

__all__ = ["BacktestResult", "DayMarket", "build_markets", "evaluate_day", "evaluate_markets", "iter_day_markets",
           "results_from_trades", "run_backtest", "run_fingerprint"]

NSE_OPEN_SEC, NSE_CLOSE_SEC = 9 * 3600 + 15 * 60, 15 * 3600 + 30 * 60  # the index options' normal market hours


@dataclass
class BacktestResult:
    """Trades and daily summary (arrow tables, and pandas views made on first use), data-health report
    and wall time."""

    trades_table: pa.Table = field(repr=False)
    summary_table: pa.Table = field(repr=False)
    health: dict
    wall_seconds: float
    config: RunConfig
    synthetic: bool = False  # the data carries the SYNTHETIC.json marker of core.synth
    markets: dict = field(default_factory=dict, repr=False)  # IST day -> DayMarket kept for the trade inspector

    # A sweep publishes most combinations from the arrow tables alone (core.finish); converting both
    # tables to pandas cost about 4 ms a combination, a tenth of finishing one.
    @cached_property
    def trades(self) -> pd.DataFrame:
        """The trades (strategy.md §8, with costs) as a pandas frame."""
        return self.trades_table.to_pandas()  # imports pandas (arrow's conversion)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """The daily summary as a pandas frame."""
        return self.summary_table.to_pandas()

    def write(self, results_dir: str | Path | None = None, extra: dict[str, Callable] | None = None
              ) -> dict[str, Path]:
        """Write trades, summary and health files (and ``extra``: file name -> ``write(fileobj)``) as one
        set (core.outputs.write_file_set; the health json, written last, lists every file's digest) and
        return their paths. OSError (e.g. a full disk) is raised with nothing new left behind."""
        folder = Path(results_dir) if results_dir is not None else self.config.results_dir
        paths = output_paths(folder, self.config.symbol, self.config.start, self.config.end)
        label = {b"atmburst.data": b"SYNTHETIC" if self.synthetic else b"user"}
        trades = self.trades_table.replace_schema_metadata(label)
        summary = self.summary_table.replace_schema_metadata(label)
        health = {"synthetic_data": self.synthetic, **self.health, "wall_seconds": round(self.wall_seconds, 3)}
        files = {paths["trades"].name: lambda fh: write_table(trades, fh),
                 paths["summary"].name: lambda fh: write_table(summary, fh), **(extra or {})}
        written = write_run_files(paths, files, health)
        return {**paths, **{name: path for name, path in written.items() if path not in paths.values()}}


EXPIRY_CLOSE_SEC = 15 * 3600 + 30 * 60  # options expire at 15:30 IST


def _black_scholes_delta(market: DayMarket, entry: int, cand: Candidate, entry_opt: float, entry_spot: float,
                         strategy: Strategy, fallback: float, health: Health | None) -> float:
    """|delta| of the option at entry from its implied volatility; ``fallback`` when none fits."""
    expiry_utc = (day_number(market.expiry) * 86_400 + EXPIRY_CLOSE_SEC - IST_OFFSET_S)
    years = (expiry_utc - market.utc_us(entry) / 1e6) / bs.YEAR_SECONDS
    is_call = cand.opt_type == "CE"
    sigma = float(bs.implied_vol(entry_opt, entry_spot, cand.strike, years, strategy.rate, is_call))
    if not math.isfinite(sigma):
        if health is not None:
            health.add("iv_fallback", 1, f"{market.trade_date} {cand.opt_type} {cand.strike} at {entry_opt}: "
                       f"no volatility fits (fixed delta {fallback} used)")
        return fallback
    return abs(float(bs.delta(entry_spot, cand.strike, years, sigma, strategy.rate, is_call)))


def evaluate_day(market: DayMarket, strategy: Strategy, symbol: str, health: Health | None = None) -> pa.Table:
    """Trades of one day under ``strategy`` (at most one per window, strategy.md §4-7), as a table in
    core.outputs.TRADE_SCHEMA, without costs."""
    ((trades, day_health),) = evaluate_markets_batch([market], [strategy], symbol, _black_scholes_delta)
    if health is not None:
        health.merge(day_health)
    return trades


def results_from_trades(parts: list[pa.Table], health: Health, cfg: RunConfig, wall: float,
                        synthetic: bool | None = None) -> BacktestResult:
    """Trades (``parts``: tables of core.kernel, joined and sorted, with their costs), daily summary and
    health as a BacktestResult (``synthetic``: whether the data is core.synth's; looked up in the
    options folder when not given)."""
    trades, problems = trade_costs(trades_table(parts), cfg.costs, cfg.symbol)
    for message in problems:
        health.add("no_cost_data", 1, message)
    if cfg.session.open_sec <= NSE_OPEN_SEC and cfg.session.close_sec >= NSE_CLOSE_SEC:
        # a session narrower than NSE's leaves most ticks outside by choice, so only a full one can tell
        shifted = clock_shift_warning(health.counts, clock_label(cfg.session.open_sec),
                                      clock_label(cfg.session.close_sec), cfg.naive_timezone)
        if shifted:
            health.warn(shifted)
    summary = summary_table(trades)
    return BacktestResult(trades_table=trades, summary_table=summary, health=health.as_dict(),
                          wall_seconds=wall, config=cfg,
                          synthetic=is_synthetic(cfg) if synthetic is None else synthetic)


def evaluate_markets(markets: Iterable[DayMarket], strategies: list[Strategy], symbol: str
                     ) -> list[tuple[pa.Table, Health]]:
    """Trades (without costs) and evaluation health of each of ``strategies`` over prepared markets, in
    one pass of the batch kernel (core.kernel)."""
    return evaluate_markets_batch(list(markets), list(strategies), symbol, _black_scholes_delta)


class _InspectedDays:
    """Keeps, while a run streams through its days, the markets of the days a report will inspect:
    the day(s) of the best and of the worst trade by ``pnl_pts`` (ties kept) and of the trade ids
    asked for (row numbers of the trades file, which is in date order). At most a few days are held."""

    def __init__(self, asked: Iterable[int]):
        self.asked = {int(i) for i in asked}
        self.markets: dict[int, DayMarket] = {}
        self.best, self.worst = -math.inf, math.inf
        self.best_days: set[int] = set()
        self.worst_days: set[int] = set()
        self.asked_days: set[int] = set()
        self.before = 0  # trades of earlier days

    def see(self, market: DayMarket, trades: pa.Table) -> None:
        n = trades.num_rows
        first, self.before = self.before, self.before + n
        pnl = trades.column("pnl_pts").to_numpy(zero_copy_only=False).astype(float) if n else None
        if pnl is None or np.isnan(pnl).all():
            return
        day, high, low = market.day, float(np.nanmax(pnl)), float(np.nanmin(pnl))
        if high > self.best:
            self.best, self.best_days = high, {day}
        elif high == self.best:
            self.best_days.add(day)
        if low < self.worst:
            self.worst, self.worst_days = low, {day}
        elif low == self.worst:
            self.worst_days.add(day)
        if any(first <= i < first + n for i in self.asked):
            self.asked_days.add(day)
        wanted = self.best_days | self.worst_days | self.asked_days
        if day in wanted:
            self.markets[day] = market
        self.markets = {d: m for d, m in self.markets.items() if d in wanted}


DAYS_PER_PASS = 16  # days of markets per pass of the kernel in a single run: one trade table per pass, not per day


def run_backtest(config, base_dir: str | Path | None = None,
                 progress: Callable[[int, int], None] | None = None, inspect: Iterable[int] = ()) -> BacktestResult:
    """Run one backtest. ``config``: a dict or OmegaConf with the keys of strategy.md §9 (or a RunConfig);
    ``progress(days done, days)`` is told as the run goes; the result keeps the markets of the days of
    its best and worst trades and of the trade ids in ``inspect`` (for the report's trade inspector)."""
    started = time.perf_counter()
    cfg = config if isinstance(config, RunConfig) else load_config(config, base_dir)
    health = Health()
    load_loops_in_background()  # numba's start overlaps the reading of the first markets
    inspected = _InspectedDays(inspect)
    parts: list[pa.Table] = []
    batch: list[DayMarket] = []

    def evaluate_batch() -> None:
        ((trades, batch_health),) = evaluate_markets_batch(batch, [cfg.strategy], cfg.symbol, _black_scholes_delta)
        health.merge(batch_health)
        parts.append(trades)
        days = trades.column("trade_date").to_numpy(zero_copy_only=False).astype("datetime64[D]").astype(np.int64)
        for market in batch:  # trades come in the order of the markets
            lo, hi = np.searchsorted(days, market.day, "left"), np.searchsorted(days, market.day, "right")
            inspected.see(market, trades.slice(int(lo), int(hi - lo)))
        batch.clear()

    for market in iter_day_markets(cfg, health, progress=progress):
        batch.append(market)
        if len(batch) == DAYS_PER_PASS:
            evaluate_batch()
    if batch:
        evaluate_batch()
    result = results_from_trades(parts, health, cfg, time.perf_counter() - started)
    result.markets = inspected.markets
    return result
