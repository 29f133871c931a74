"""Building markets: from tick files to each trading day's per-second market.

Data flows one way: discover files -> load + normalise ticks (cached per file and day, core.cache)
-> per-second day grids -> hour windows with their ATM strike and candidate series: the *market*,
which does not depend on the strategy (core.settings' ``market`` part). Days are processed in groups
that share an expiry, so each tick file is read at most once per run and memory is bounded by one
expiry's files, not by the date range. Evaluating a strategy on markets is core.kernel's job.
"""
from __future__ import annotations

import datetime as dt
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .cache import BackgroundWriter, TickCache
from .config import RunConfig, clock_label
from .discover import (data_fingerprint, expiries_from_folders, expiry_series, load_calendar, nearest_expiry,
                       path_date, series_path, spot_files)
from .grid import SparseSeries, day_series, has_valid_price, spot_grid
from .health import Health
from .layout import DayLayout, Window, day_layout
from .market_cache import MarketCache, file_identity, group_key
from .holidays import nse_trading_days_cached
from .ticks import IST_OFFSET_NS, NS, Seconds, TickFileError, merge_seconds

EPOCH = dt.date(1970, 1, 1)
IST_OFFSET_S = IST_OFFSET_NS // NS


def day_number(d: dt.date) -> int:
    return (d - EPOCH).days


def day_date(n: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(n))


@dataclass(frozen=True)
class DayMarket:
    """Everything a strategy needs about one trading day."""

    day: int  # IST days since 1970-01-01
    expiry: dt.date
    open_sec: int
    spot: np.ndarray
    layout: DayLayout  # the hour windows and their candidates' series (core.layout)

    @property
    def windows(self) -> tuple[Window, ...]:
        """The hour windows as Window objects (views of the layout, made on each call)."""
        return self.layout.windows()

    @property
    def trade_date(self) -> dt.date:
        return day_date(self.day)

    def utc_us(self, bar: int) -> int:
        """The bar's second as UTC epoch microseconds."""
        return (self.day * 86_400 + self.open_sec + bar - IST_OFFSET_S) * 1_000_000


class _FileLoader:
    """Loads tick files through the cache, once per run each, and tallies their health.

    Files of one batch are read by a small thread pool (parquet decoding and numpy release
    the GIL); health is tallied afterwards in request order, so reports stay deterministic. With more
    than one thread, the caches are written on a thread of their own (core.cache.BackgroundWriter)
    while the next files are read; ``close`` waits for those writes.
    """

    def __init__(self, cfg: RunConfig, health: Health, threads: int | None = None):
        self.health = health
        self.threads = threads or min(4, os.cpu_count() or 1)
        writer = BackgroundWriter() if self.threads > 1 and cfg.cache_dir is not None else None
        self.cache = TickCache(cfg.cache_dir, cfg.naive_timezone, warn=self.cache_warning, use_threads=self.threads > 1,
                               writer=writer)
        self.failed: set[str] = set()
        self.transient = 0  # read errors that may pass (permission, I/O) met so far
        self._warnings: list[tuple[str, str]] = []

    def load_many(self, requests: list[tuple]) -> list[dict[int, Seconds] | None]:
        todo = [r for r in requests if r[0] not in self.failed]
        if not todo:
            return [None] * len(requests)
        if len(todo) > 1 and self.threads > 1:  # misses are built on the pool, one file per thread; hits are cheap
            with ThreadPoolExecutor(self.threads) as pool:
                results = self.cache.load_many(todo, mapper=pool.map, use_threads=False)
        else:
            results = self.cache.load_many(todo)
        by_path = {}
        for (path, _, _), result in zip(todo, results):
            by_path[path] = self._account(path, result)
        self.flush_warnings(self.health)
        return [by_path.get(r[0]) for r in requests]

    def close(self, health: Health) -> None:
        """Wait for the cache writes handed over so far; their warnings go to ``health``."""
        if self.cache.writer is not None:
            self.cache.writer.close()
        self.flush_warnings(health)

    def flush_warnings(self, health: Health) -> None:
        """Count and keep the cache warnings gathered so far in ``health``."""
        for kind, message in self._warnings:
            health.add(kind, 1, message)
            health.warn(message)
        self._warnings.clear()

    def _account(self, path: str, result) -> dict[int, Seconds] | None:
        if isinstance(result, TickFileError):
            self.failed.add(path)
            self.transient += bool(result.transient)
            self.health.add_file(path, result.kind, 1, str(result))
            return None
        index, got, hit = result
        self.health.add("cache_hits" if hit else "files_read", 1)
        for kind_name, n in index.file_counts.items():
            self.health.add_file(path, kind_name, n, f"{path}: {n} row(s)")
        return got

    def cache_warning(self, kind: str, message: str) -> None:
        if (kind, message) not in self._warnings:  # once per run, however many files meet it
            self._warnings.append((kind, message))


class _Spot:
    """Spot per day: dated files (``date=`` in the path) load lazily, others once up front."""

    def __init__(self, cfg: RunConfig, loader: _FileLoader):
        self.loader = loader
        first, last = day_number(cfg.start), day_number(cfg.end)
        self.dated: dict[int, list[str]] = {}
        self.undated: dict[int, list[Seconds]] = {}
        self.undated_paths: list[str] = []
        for path in spot_files(cfg.spot_glob, cfg.start, cfg.end):
            named = path_date(path)
            if named is not None:
                self.dated.setdefault(day_number(named), []).append(path)
            else:
                self.undated_paths.append(path)
        # undated files are read up front, as one batch: one write of their folders' cache files
        for got in loader.load_many([(path, "spot", None) for path in self.undated_paths]):
            for day, part in (got or {}).items():
                if first <= day <= last:
                    self.undated.setdefault(day, []).append(part)

    def days(self) -> list[int]:
        return sorted(set(self.dated) | set(self.undated))

    def paths(self, days: list[int]) -> list[str]:
        """The spot files whose ticks may fall on ``days``."""
        return [path for day in days for path in self.dated.get(day, [])] + self.undated_paths

    def load_days(self, days: list[int]) -> dict[int, tuple[Seconds, list[Seconds]]]:
        """{day: (merged spot aggregates, per-file parts for health counts)} for ``days``."""
        requests = [(path, "spot", [day]) for day in days for path in self.dated.get(day, [])]
        parts: dict[int, list[Seconds]] = {day: [] for day in days}
        for (_, _, (day,)), got in zip(requests, self.loader.load_many(requests)):
            if got and day in got:
                parts[day].append(got[day])
        for day in days:
            parts[day] += self.undated.get(day, [])
        return {day: (merge_seconds(p), p) for day, p in parts.items()}


def expiry_dates(cfg: RunConfig) -> np.ndarray:
    """The expiries a run over ``cfg`` trades (sorted datetime64[D]): its calendar CSV's, or, without one,
    those named by the exp= folders (ConfigError for a calendar that cannot be read)."""
    return _expiries(cfg)[0]


def _expiries(cfg: RunConfig) -> tuple[np.ndarray, bool]:
    """(``expiry_dates``, whether they come from the exp= folders), the calendar file looked for once."""
    if cfg.calendar_csv.is_file():
        return load_calendar(cfg.calendar_csv, cfg.symbol, cfg.expiry_kind), False
    return expiries_from_folders(cfg.options_dir, cfg.symbol), True


def _expiry_dates(cfg: RunConfig, health: Health) -> np.ndarray:
    """``expiry_dates``, with a warning in ``health`` when they come from the folders."""
    found, from_folders = _expiries(cfg)
    if from_folders:
        health.add("calendar_from_folders", 1)
        health.warn(f"expiry calendar {cfg.calendar_csv} not found: using the {len(found)} expiries named by "
                    f"exp= folders under {cfg.options_dir / cfg.symbol} (build one with python -m core.calendar)")
    return found


def _add_day_counts(health: Health, parts: Iterable[Seconds], day: int, what: str) -> None:
    for part in parts:
        for kind, n in part.counts.items():
            health.add(kind, n, f"{what} on {day_date(day)}: {n} row(s)")


def _add_outside_session(health: Health, inside: int, pre_open: int, post_close: int, what: str) -> None:
    """Count a series' ticks inside the session, and those before the open and after the close."""
    health.add("session_ticks", inside)
    if pre_open:
        health.add("pre_open", pre_open, f"{what}: {pre_open} tick(s) before the open")
    if post_close:
        health.add("post_close", post_close, f"{what}: {post_close} tick(s) after the close")


def iter_day_markets(cfg: RunConfig, health: Health, threads: int | None = None,
                     progress: Callable[[int, int], None] | None = None) -> Iterator[DayMarket]:
    """Each trading day's market in date order, loading one expiry's files at a time.

    ``threads``: tick files read at once (default: up to 4, one per core); ``progress(done, total)``
    is told after each group of days. The caches it writes are all written when the iteration ends.
    """
    loader = _FileLoader(cfg, health, threads)
    try:
        yield from _day_markets(cfg, health, loader, progress)
    finally:
        loader.close(health)


def _day_markets(cfg: RunConfig, health: Health, loader: _FileLoader,
                 progress: Callable[[int, int], None] | None) -> Iterator[DayMarket]:
    """``iter_day_markets`` with its file loader."""
    # NSE's sessions (the calendar library's import and computation, 0.13-0.15 s in a run whose cache has
    # not kept them yet) are worked out on a thread while the spot files load
    with ThreadPoolExecutor(1, thread_name_prefix="atmburst-sessions") as pool:
        sessions = pool.submit(nse_trading_days_cached, cfg.start, cfg.end, cfg.cache_dir)
        spot = _Spot(cfg, loader)
        spot_transient = loader.transient
        expiries = _expiry_dates(cfg, health)
        first, last = day_number(cfg.start), day_number(cfg.end)
        spot_days = [d for d in spot.days() if first <= d <= last]
        _count_days_without_spot(cfg, health, set(spot_days), sessions.result())

    groups: dict[dt.date | None, list[int]] = {}
    for d in spot_days:
        groups.setdefault(nearest_expiry(expiries, day_date(d)), []).append(d)

    markets_cache = MarketCache(loader.cache, loader.cache_warning) if cfg.cache_dir is not None else None
    settings = _market_key_settings(cfg)
    order = sorted(groups, key=lambda e: (e is not None, e or dt.date.min))
    keys = {expiry: group_key(settings, expiry, groups[expiry], spot.paths(groups[expiry]))
            if expiry is not None and markets_cache is not None else None for expiry in order}
    entries = _read_ahead(markets_cache.read if markets_cache is not None else None,
                          [key for key in keys.values() if key is not None])
    try:
        done_days = 0
        for expiry in order:
            days = groups[expiry]
            done_days += len(days)
            if progress:
                progress(done_days, len(spot_days))
            key, series_now = keys[expiry], None
            if key is not None:
                series_now = expiry_series(cfg.options_dir, cfg.symbol, expiry)
                hit = markets_cache.load(key, series_now, next(entries))
                if hit is not None:
                    markets, group_health = hit
                    health.merge(group_health)
                    loader.flush_warnings(health)
                    yield from markets
                    continue
            group_health = Health()
            # a passing read error of an undated spot file (read for every group, up front) keeps every group
            # out of the market cache, like one met while building this group
            loader.health, loader.transient = group_health, spot_transient
            markets, consulted = _build_group(cfg, group_health, loader, spot, expiry, days, series_now)
            loader.health = health
            health.merge(group_health)
            if key is not None and not loader.transient:
                files = group_health.counts["cache_hits"] + group_health.counts["files_read"]
                markets_cache.store(key, markets, group_health, consulted, files)
                loader.flush_warnings(health)
            yield from markets
    finally:
        entries.close()  # the read-ahead thread stops with the run, also when it fails


def _read_ahead(read: Callable, keys: list, ahead: int = 2) -> Iterator:
    """``read(key)`` of each key in order, the next ``ahead`` of them running on a thread meanwhile."""
    if not keys:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="atmburst-read-ahead") as pool:
        pending = deque(pool.submit(read, key) for key in keys[:ahead])
        for i in range(len(keys)):
            result = pending.popleft().result()
            if i + ahead < len(keys):
                pending.append(pool.submit(read, keys[i + ahead]))
            yield result


def _market_key_settings(cfg: RunConfig) -> dict:
    """What a day's market depends on besides its files (core.market_cache's key)."""
    s = cfg.session
    return {"symbol": cfg.symbol, "options_dir": str(cfg.options_dir.resolve()), "open": s.open_sec,
            "close": s.close_sec, "anchors": list(s.anchors), "window_secs": s.window_secs,
            "strike_step": cfg.strike_step, "strikes_each_side": cfg.strikes_each_side,
            "naive_timezone": cfg.naive_timezone}


def _build_group(cfg: RunConfig, health: Health, loader: _FileLoader, spot: _Spot, expiry: dt.date | None,
                 days: list[int], series_now: dict | None) -> tuple[list[DayMarket], list]:
    """Markets of the days that share ``expiry`` (none without one), and the series consulted."""
    session = cfg.session
    plans = []
    spot_by_day = spot.load_days(days)
    for d in days:
        merged, parts = spot_by_day.pop(d)
        if not has_valid_price(merged, d, session):
            if day_date(d).weekday() < 5:
                why = ("spot ticks present but none with a valid price in the session (check the spot file "
                       "for that day)" if parts else "its spot file could not be used (see bad_file or "
                       "missing_column for why)")
                health.add("missing_spot_day", 1, f"{day_date(d)}: {why}")
            continue
        health.add("trading_days", 1)
        spot_close, part = spot_grid(merged, d, session)
        _count_spot_outliers(health, merged.close[part.rows], d)
        _add_day_counts(health, parts, d, "spot")
        _add_outside_session(health, part.inside, part.pre_open, part.post_close, f"spot on {day_date(d)}")
        if expiry is None:
            health.add("no_expiry", 1, f"{day_date(d)}: no {cfg.symbol} expiry on or after this date in "
                       f"{cfg.calendar_csv} (extend the calendar)")
            continue
        plans.append((d, spot_close, _plan_windows(cfg, spot_close, health, d)))
    if expiry is None or not plans:
        return [], []
    files = series_now if series_now is not None else expiry_series(cfg.options_dir, cfg.symbol, expiry)
    return _markets_for_expiry(cfg, health, loader, expiry, plans, files)


def _plan_windows(cfg: RunConfig, spot: np.ndarray, health: Health, day: int) -> list[tuple]:
    """(anchor_sec, start, end, hour_open, atm, keys) per window with a spot price at its anchor."""
    session, step, n = cfg.session, cfg.strike_step, cfg.strikes_each_side
    out = []
    for anchor in session.anchors:
        start = anchor - session.open_sec
        end = min(anchor + session.window_secs, session.close_sec + 1) - session.open_sec
        hour_open = float(spot[start])
        if math.isnan(hour_open):
            health.add("no_spot_at_anchor", 1, f"{day_date(day)} {clock_label(anchor)}: no spot price yet")
            continue
        atm = int(math.floor(hour_open / step + 0.5) * step)
        keys = [(opt_type, atm + i * step) for i in range(-n, n + 1) for opt_type in ("CE", "PE")]
        out.append((anchor, start, end, hour_open, atm, keys))
    return out


def _markets_for_expiry(cfg: RunConfig, health: Health, loader: _FileLoader, expiry: dt.date, plans: list,
                        files: dict) -> tuple[list[DayMarket], list]:
    days_by_key: dict[tuple[str, int], set[int]] = {}
    for day, _, windows in plans:
        for w in windows:
            for key in w[5]:
                days_by_key.setdefault(key, set()).add(day)
    # the version of every series consulted, taken before reading (core.market_cache checks it later)
    consulted = [[key[0], key[1], file_identity(files[key]) if key in files else None] for key in sorted(days_by_key)]
    present = [key for key in sorted(days_by_key) if key in files]
    results = loader.load_many([(files[key], "option", sorted(days_by_key[key])) for key in present])
    loaded: dict[tuple[str, int], dict[int, Seconds] | None] = dict.fromkeys(days_by_key)
    loaded.update(zip(present, results))
    markets = []
    for day, spot, windows in plans:
        with_ticks: dict[tuple[str, int], Seconds] = {}  # the series of the day with ticks on it
        for key in sorted({k for w in windows for k in w[5]}):
            by_day = loaded[key]
            seconds = by_day.get(day) if by_day is not None else None
            if seconds is None or not len(seconds.second):
                label = f"{cfg.symbol} {expiry} {key[0]} {key[1]}"
                if key not in files:
                    health.add("missing_series", 1, f"{label}: no file "
                               f"{series_path(cfg.options_dir, cfg.symbol, expiry, *key)} (needed on {day_date(day)})")
                elif by_day is not None:  # (None: the file could not be read, which its load counted)
                    health.add("missing_series", 1, f"{label}: no ticks on {day_date(day)}")
                continue
            with_ticks[key] = seconds
        # the layout's candidates in the order the windows first offer them
        index: dict[tuple[str, int], int] = {}
        built = []
        for anchor, start, end, hour_open, atm, keys in windows:
            offered = [k for k in keys if k in with_ticks]
            for k in offered:
                index.setdefault(k, len(index))
            if offered:
                built.append((anchor, start, end, hour_open, atm, [index[k] for k in offered]))
        laid_out = list(index)
        series = day_series([with_ticks[k] for k in laid_out], day, cfg.session)
        for key in sorted(with_ticks):
            j = index[key]
            label = f"{cfg.symbol} {expiry} {key[0]} {key[1]}"
            _count_prices_above_bound(health, series.series(j), spot, key, f"{label} on {day_date(day)} ({files[key]})")
            _add_day_counts(health, [with_ticks[key]], day, label)
            _add_outside_session(health, int(series.inside[j]), int(series.pre_open[j]), int(series.post_close[j]),
                                 f"{label} on {day_date(day)}")
        for anchor, start, end, hour_open, atm, keys in windows:
            health.add("windows", 1)
            if not any(k in with_ticks for k in keys):
                health.add("no_candidates", 1, f"{day_date(day)} {clock_label(anchor)}: no option series with data")
        markets.append(DayMarket(day, expiry, cfg.session.open_sec, spot, day_layout(laid_out, series, built)))
    return markets, consulted


def _count_prices_above_bound(health: Health, series: SparseSeries, spot: np.ndarray, key: tuple[str, int],
                              where: str) -> None:
    """Count the seconds whose close breaks a no-arbitrage bound: a call's price never exceeds the spot
    (the spot at that second; none is checked before the day's first spot price), a put's never exceeds
    its strike. Such a close is a bad tick or a file in other units; it is counted, not dropped, since
    strategy.md section 1.4 drops only null, NaN and non-positive closes."""
    opt_type, strike = key
    prices = series.prices[1:]
    bound = spot[series.price_bars] if opt_type == "CE" else float(strike)
    above = prices > bound
    n = int(np.count_nonzero(above))
    if n:
        health.add("option_price_above_bound", n, f"{where}: {n} second(s) with a close above the "
                   f"{'spot' if opt_type == 'CE' else 'strike'} (highest {float(prices[above].max()):g}), which no "
                   f"{opt_type} can trade at; check the file's close column and its units")


SPOT_OUTLIER = 0.20  # a spot close this far from the day's median is no index level of that session


def _count_spot_outliers(health: Health, closes: np.ndarray, day: int) -> None:
    """Count the spot seconds of ``day`` (``closes``: the closes set by its ticks in the session) more
    than SPOT_OUTLIER from the day's median: a bad tick or a misplaced digit, since no session spans such
    a range (the market-wide circuit breakers halt all equity and derivatives trading for the rest of
    the day once NIFTY or SENSEX moves 20% from the previous close; docs/engine.md). Counted, not
    dropped: strategy.md section 1.4 drops only null, NaN and non-positive closes."""
    priced = closes[~np.isnan(closes)]
    if not len(priced):
        return
    median = float(np.median(priced))
    far = np.abs(priced / median - 1.0) > SPOT_OUTLIER
    n = int(np.count_nonzero(far))
    if n:
        health.add("spot_price_outlier", n, f"spot on {day_date(day)}: {n} second(s) priced more than "
                   f"{SPOT_OUTLIER:.0%} from the day's median {median:g} (lowest {float(priced[far].min()):g}, "
                   f"highest {float(priced[far].max()):g}); check the spot file for that day")


def _count_days_without_spot(cfg: RunConfig, health: Health, spot_days: set[int],
                             sessions: frozenset[dt.date] | None) -> None:
    """Weekdays in range with no spot file: holidays (not in NSE's ``sessions``) are info, missing NSE
    sessions are problems; without ``sessions`` (no calendar), every such weekday is a problem."""
    d = cfg.start
    while d <= cfg.end:
        if d.weekday() < 5 and day_number(d) not in spot_days:
            if sessions is not None and d not in sessions:
                health.add("holidays_skipped", 1)
            else:
                health.add("missing_spot_day", 1, f"{d}: no spot ticks for {cfg.symbol} "
                           f"(no file matched by the spot glob for this NSE trading day)")
        d += dt.timedelta(days=1)


def is_synthetic(cfg: RunConfig) -> bool:
    """Whether the options folder was written by core.synth (its SYNTHETIC.json marker)."""
    return any((folder / "SYNTHETIC.json").is_file() for folder in (cfg.options_dir, cfg.options_dir.parent))


def run_fingerprint(cfg: RunConfig) -> str:
    """Fingerprint of the data a run over ``cfg`` may read (spot files, series of its expiries, calendar)."""
    expiries = expiry_dates(cfg)
    lo = int(np.searchsorted(expiries, np.datetime64(cfg.start, "D"), "left"))
    hi = int(np.searchsorted(expiries, np.datetime64(cfg.end, "D"), "left")) + 1
    used = [e.astype(dt.date) for e in expiries[lo:hi]]
    return data_fingerprint(spot_files(cfg.spot_glob, cfg.start, cfg.end), cfg.options_dir, cfg.symbol, used,
                            cfg.calendar_csv)


def build_markets(cfg: RunConfig, threads: int | None = None) -> tuple[list[DayMarket], Health]:
    """All day markets of ``cfg``'s date range (one date chunk of a sweep) and their data health."""
    health = Health()
    return list(iter_day_markets(cfg, health, threads)), health
