"""A synthetic NSE index options market at real tick density, in the packed vendor layout.

    python -m core.synth --symbol BANKNIFTY --start 2023-01-02 --end 2023-12-29 --out data --seed 7

Writes ``{out}/packed/options/...``, ``{out}/packed/spot/...``, ``{out}/meta/expiry_calendar.csv``
and ``{out}/packed/SYNTHETIC.json`` (the marker that labels every result made from it).
The model (docs/synthetic_market.md has the parameters and their reasons):

* spot: per-second log returns with a U-shaped intraday volatility profile, drifting
  "trend" segments, Poisson jumps and overnight gaps; about one tick a second;
* option prices: Black-Scholes on the spot of the tick's second with a volatility smile
  and term structure, time to expiry 15:30 IST on the expiry day, half-spread bounce,
  on the 0.05 tick and never below 0.05;
* ticks: Poisson arrivals per second, about 10,000 a day at the money on the nearest
  expiry, thinning with distance from spot and for later expiries, U-shaped in the day;
* volume: whole lots (lot size of the contract), larger in bursts;
* bursts: a self-exciting (Hawkes-like) cascade of events that multiply arrival rates
  for tens of seconds, spread to neighbouring strikes, and are set off more often by
  sharp spot moves (puts on falls, calls on rises).

Everything is drawn from generators seeded by (seed, symbol, day or expiry), so the same
arguments give the same files, whatever the number of worker processes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .bs import YEAR_SECONDS
from .bs import price as bs_price
from .cache import atomic_write_bytes
from .calendar import build_calendar
from .holidays import nse_trading_days
from .lots import lot_size
from .ticks import IST_OFFSET_NS, NS

IST_OFFSET_S = IST_OFFSET_NS // NS

OPEN_SEC, CLOSE_SEC = 9 * 3600 + 15 * 60, 15 * 3600 + 30 * 60
N_SEC = CLOSE_SEC - OPEN_SEC + 1  # 22,501 one-second bars
TICK = 0.05
STRIKE_STEP = {"BANKNIFTY": 100, "NIFTY": 50, "FINNIFTY": 50, "MIDCPNIFTY": 25, "SENSEX": 100, "BANKEX": 100}
START_LEVEL = {"BANKNIFTY": 44_000.0, "NIFTY": 19_000.0, "FINNIFTY": 20_000.0, "MIDCPNIFTY": 10_000.0,
               "SENSEX": 65_000.0, "BANKEX": 50_000.0}


@dataclass(frozen=True)
class Model:
    """Parameters of the synthetic market (see docs/synthetic_market.md)."""

    annual_vol: float = 0.13  # spot volatility, also the ATM implied volatility level
    vol_of_vol: float = 0.15  # day-to-day log change of the volatility level
    intraday_u: float = 1.6  # extra variance at the open (and 0.8x that at the close)
    trend_segment_secs: float = 2_700.0  # mean length of a drift segment
    trend_strength: float = 0.3  # drift over a segment, in daily standard deviations
    jumps_per_day: float = 1.5
    jump_size: float = 0.0015
    gap_sd: float = 0.004
    big_gap_prob: float = 0.07
    big_gap_sd: float = 0.012
    spot_tick_prob: float = 0.97  # chance that a second carries a spot tick
    rate: float = 0.065  # risk-free rate for Black-Scholes
    skew: float = -1.2  # smile: sigma * (1 + skew*k + smile*k^2), k = ln(K/F)
    smile: float = 25.0
    term_boost: float = 0.25  # short-dated vol premium: * (1 + term_boost * exp(-days/3))
    atm_ticks_per_day: float = 10_000.0
    distance_decay_steps: float = 2.5  # arrivals fall by e every this many strikes from spot
    next_expiry_activity: float = 0.35
    far_expiry_activity: float = 0.2
    strikes_beyond_range: int = 8
    burst_rate_per_hour: float = 10.0
    burst_amplitude: float = 3.0  # median multiplier of the arrival rate at a burst's start
    burst_amplitude_sd: float = 0.5
    burst_tau_secs: tuple[float, float] = (15.0, 60.0)
    burst_children: float = 0.5  # mean number of follow-on bursts per burst (self-excitation)
    burst_child_delay_secs: float = 90.0
    burst_spread: float = 0.5  # rate multiplier falls by this factor per strike from the centre
    burst_other_type: float = 0.25  # share of a burst felt by the other option type
    move_trigger: float = 0.002  # per-second burst chance per unit of squared excess 30 s move
    lots_per_tick: float = 0.8  # mean extra lots per tick (more in bursts)
    half_spread_frac: float = 0.0015  # half bid-ask spread as a fraction of premium (min one tick)


def _rng(seed: int, *keys) -> np.random.Generator:
    words = [seed] + [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(words)


def intraday_profile(strength: float) -> np.ndarray:
    """U-shaped weights over the session's seconds, mean 1."""
    t = np.arange(N_SEC, dtype=float)
    u = 1.0 + strength * np.exp(-t / 1_800.0) + 0.8 * strength * np.exp(-(N_SEC - 1 - t) / 1_800.0)
    return u / u.mean()


def spot_paths(symbol: str, days: list[dt.date], seed: int, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """Per-second spot (days x N_SEC) and the daily volatility level (annualised)."""
    rng = _rng(seed, symbol, "spot")
    level = START_LEVEL.get(symbol, 20_000.0)
    profile = intraday_profile(model.intraday_u)
    out = np.empty((len(days), N_SEC))
    vols = np.empty(len(days))
    log_vol = math.log(model.annual_vol)
    for i, _day in enumerate(days):
        log_vol = 0.8 * log_vol + 0.2 * math.log(model.annual_vol) + rng.normal(0, model.vol_of_vol)
        vol = math.exp(log_vol)
        vols[i] = vol
        daily_sd = vol / math.sqrt(252.0)
        if i:
            gap_sd = model.big_gap_sd if rng.random() < model.big_gap_prob else model.gap_sd
            level *= math.exp(rng.normal(0, gap_sd))
        sec_sd = daily_sd / math.sqrt(N_SEC) * np.sqrt(profile)
        steps = rng.normal(0, 1, N_SEC) * sec_sd
        # Trend segments: a drift held for an exponential length of time.
        t = 0
        while t < N_SEC:
            length = max(60, int(rng.exponential(model.trend_segment_secs)))
            steps[t:t + length] += rng.normal(0, model.trend_strength * daily_sd) / length
            t += length
        jumps = rng.poisson(model.jumps_per_day)
        if jumps:
            steps[rng.integers(1, N_SEC, jumps)] += rng.normal(0, model.jump_size, jumps)
        steps[0] = 0.0
        out[i] = level * np.exp(np.cumsum(steps))
        level = out[i, -1]
    return out, vols


def implied_sigma(model: Model, level: float, spot, strike, years):
    """The smile and term structure: ATM level, skew and curvature in k = ln(K/F)."""
    fwd = spot * np.exp(model.rate * years)
    k = np.log(strike / fwd)
    days = years * 365.0
    sigma = level * (1.0 + model.term_boost * np.exp(-days / 3.0)) * (1.0 + model.skew * k + model.smile * k * k)
    return np.clip(sigma, 0.5 * level, 4.0 * level)


def model_price(model: Model, level, spot, strike, years, is_call):
    """Black-Scholes value under the model's smile (before spread and tick rounding)."""
    return bs_price(spot, strike, years, implied_sigma(model, level, spot, strike, years), model.rate, is_call)


def to_tick(price: np.ndarray) -> np.ndarray:
    """On the 0.05 grid, never below 0.05."""
    return np.maximum(TICK, np.round(np.round(price / TICK) * TICK, 2))


def burst_multiplier(rng, model: Model, spot: np.ndarray, strikes: np.ndarray, activity: float) -> np.ndarray:
    """Arrival-rate multiplier (2 types x strikes x seconds) from a self-exciting burst cascade."""
    mult = np.ones((2, len(strikes), N_SEC))
    profile = intraday_profile(model.intraday_u)
    # Spontaneous bursts, U-shaped in the day like the rest of the flow.
    rate = model.burst_rate_per_hour * activity / 3_600.0 * profile
    starts = list(np.flatnonzero(rng.random(N_SEC) < rate))
    types = list(rng.integers(0, 2, len(starts)))
    # Bursts set off by sharp spot moves: puts on falls, calls on rises.
    move = np.zeros(N_SEC)
    move[30:] = spot[30:] - spot[:-30]
    sd = np.std(move[30:]) or 1.0
    excess = np.maximum(0.0, np.abs(move) / sd - 1.5)
    triggered = np.flatnonzero(rng.random(N_SEC) < model.move_trigger * activity * excess ** 2)
    for t in triggered:
        starts.append(int(t))
        favoured = 1 if move[t] < 0 else 0  # 0 = CE, 1 = PE
        types.append(favoured if rng.random() < 0.75 else 1 - favoured)
    queue = [(int(t), int(k), None) for t, k in zip(starts, types)]
    events = []
    while queue:
        t, kind, centre = queue.pop()
        if centre is None:
            centre = int(np.argmin(np.abs(strikes - spot[t]))) + int(rng.choice([-2, -1, 0, 0, 0, 1, 2]))
        centre = int(np.clip(centre, 0, len(strikes) - 1))
        events.append((t, kind, centre))
        for _ in range(rng.poisson(model.burst_children)):
            child_t = t + int(rng.exponential(model.burst_child_delay_secs)) + 1
            if child_t < N_SEC:
                child_kind = kind if rng.random() < 0.8 else 1 - kind
                queue.append((child_t, child_kind, centre + int(rng.choice([-1, 0, 0, 1]))))
    distance = np.arange(len(strikes))
    for t, kind, centre in sorted(events):
        amp = math.exp(rng.normal(math.log(model.burst_amplitude), model.burst_amplitude_sd))
        tau = rng.uniform(*model.burst_tau_secs)
        end = min(N_SEC, t + int(6 * tau))
        decay = amp * np.exp(-np.arange(end - t) / tau)
        spread = model.burst_spread ** np.abs(distance - centre)
        mult[kind, :, t:end] += spread[:, None] * decay[None, :]
        mult[1 - kind, :, t:end] += model.burst_other_type * spread[:, None] * decay[None, :]
    return mult


@dataclass(frozen=True)
class ExpiryJob:
    symbol: str
    expiry: dt.date
    expiry_type: str  # weekly | monthly
    days: tuple[dt.date, ...]
    activities: tuple[float, ...]
    vol_levels: tuple[float, ...]
    spot: np.ndarray  # len(days) x N_SEC
    seed: int
    out: str
    model: Model


def _day_epoch_us(day: dt.date) -> int:
    return ((day - dt.date(1970, 1, 1)).days * 86_400 + OPEN_SEC - IST_OFFSET_S) * 1_000_000


def generate_expiry(job: ExpiryJob) -> int:
    """Write every series file of one expiry; returns the number of ticks written."""
    model, step = job.model, STRIKE_STEP[job.symbol]
    lo = math.floor(job.spot.min() / step) - model.strikes_beyond_range
    hi = math.ceil(job.spot.max() / step) + model.strikes_beyond_range
    strikes = np.arange(lo, hi + 1) * step
    lot = lot_size(job.symbol, job.expiry)
    expiry_close_us = _day_epoch_us(job.expiry) + (CLOSE_SEC - OPEN_SEC) * 1_000_000
    profile = intraday_profile(model.intraday_u)
    per_series: dict[tuple[int, int], list[dict]] = {}
    total = 0
    for i, day in enumerate(job.days):
        rng = _rng(job.seed, job.symbol, job.expiry, day)
        spot = job.spot[i]
        mult = burst_multiplier(rng, model, spot, strikes, job.activities[i])
        dist = np.abs(strikes[:, None] - spot[None, :]) / step
        base = (model.atm_ticks_per_day / N_SEC) * job.activities[i] * np.exp(-dist / model.distance_decay_steps) * profile
        for kind in (0, 1):
            lam = base * mult[kind]
            counts = rng.poisson(lam)
            empty = np.flatnonzero(counts.sum(axis=1) == 0)  # every series trades every day of its life
            counts[empty, rng.integers(0, N_SEC, len(empty))] = 1
            flat = counts.ravel()
            cell = np.repeat(np.arange(flat.size), flat)
            k_idx, sec = np.divmod(cell, N_SEC)
            n = len(cell)
            offset_us = rng.integers(0, 1_000_000, n)
            order = np.lexsort((offset_us, sec, k_idx))
            k_idx, sec, offset_us = k_idx[order], sec[order], offset_us[order]
            ts = _day_epoch_us(day) + sec * 1_000_000 + offset_us
            years = np.maximum((expiry_close_us - ts) / 1e6 / YEAR_SECONDS, 60.0 / YEAR_SECONDS)
            fair = model_price(model, job.vol_levels[i], spot[sec], strikes[k_idx].astype(float), years, kind == 0)
            half = np.maximum(TICK, model.half_spread_frac * fair)
            price = to_tick(fair + half * rng.choice([-1.0, 1.0], n))
            extra = rng.poisson(model.lots_per_tick * np.sqrt(mult[kind, k_idx, sec]))
            volume = (1 + extra).astype(np.int64) * lot
            bounds = np.searchsorted(k_idx, np.arange(len(strikes) + 1))
            for j in range(len(strikes)):
                a, b = bounds[j], bounds[j + 1]
                if a < b:
                    per_series.setdefault((kind, j), []).append({"ts": ts[a:b], "close": price[a:b], "vol": volume[a:b]})
            total += n
    for (kind, j), chunks in per_series.items():
        _write_series(job, "CE" if kind == 0 else "PE", int(strikes[j]), chunks)
    return total


def _write_series(job: ExpiryJob, opt_type: str, strike: int, chunks: list[dict]) -> None:
    ts = np.concatenate([c["ts"] for c in chunks])
    close = np.concatenate([c["close"] for c in chunks])
    vol = np.concatenate([c["vol"] for c in chunks])
    n = len(ts)
    monthly = job.expiry_type == "monthly"
    table = pa.table({
        "timestamp": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="Asia/Kolkata")),
        "symbol": pa.array([job.symbol] * n, pa.string()),
        "opt_type": pa.array([opt_type] * n, pa.string()),
        "strike": pa.array(np.full(n, strike, np.int32)),
        "open": close, "high": close, "low": close, "close": close,
        "vol_delta": pa.array(vol, pa.int64()),
        "expiry": pa.array([job.expiry] * n, pa.date32()),
        "expiry_type": pa.array([job.expiry_type] * n, pa.string()),
        "is_monthly": pa.array(np.full(n, int(monthly), np.int8)),
        "is_weekly": pa.array(np.full(n, int(not monthly), np.int8)),
    })
    path = (Path(job.out) / "packed" / "options" / job.symbol / f"{job.expiry:%Y%m}" / f"exp={job.expiry:%Y-%m-%d}"
            / f"type={opt_type}" / f"strike={strike}.parquet")
    atomic_write_bytes(path, lambda fh: pq.write_table(table, fh, compression="snappy"))


def write_spot_day(out: Path, symbol: str, day: dt.date, path: np.ndarray, rng: np.random.Generator,
                   model: Model) -> None:
    keep = rng.random(N_SEC) < model.spot_tick_prob
    keep[0] = True
    sec = np.flatnonzero(keep)
    ts = _day_epoch_us(day) + sec * 1_000_000 + rng.integers(0, 1_000_000, len(sec))
    close = np.round(np.round(path[sec] / TICK) * TICK, 2)
    n = len(sec)
    table = pa.table({
        "timestamp": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="Asia/Kolkata")),
        "symbol": pa.array([symbol] * n, pa.string()),
        "open": close, "high": close, "low": close, "close": close,
        "vol_delta": pa.array(np.zeros(n, np.int64)),
        "trade_date": pa.array([day] * n, pa.date32()),
    })
    target = out / "packed" / "spot" / symbol / f"{day:%Y%m}" / f"date={day:%Y-%m-%d}" / "ticks.parquet"
    atomic_write_bytes(target, lambda fh: pq.write_table(table, fh, compression="snappy"))


def expiry_jobs(symbol: str, days: list[dt.date], spot: np.ndarray, vols: np.ndarray, seed: int, out: Path,
                model: Model, calendar) -> list[ExpiryJob]:
    """One job per expiry whose life (last 2 weeks weekly, 5 weeks monthly) meets the days."""
    kinds: dict[dt.date, str] = {}
    for row in calendar.itertuples(index=False):
        e = dt.date.fromisoformat(row.Final_Expiry)
        kinds[e] = "monthly" if row.Expiry_Type == "Monthly" or kinds.get(e) == "monthly" else "weekly"
    expiries = sorted(kinds)
    index = {d: i for i, d in enumerate(days)}
    jobs = []
    for e in expiries:
        life = 35 if kinds[e] == "monthly" else 14
        live = [d for d in days if e - dt.timedelta(days=life) < d <= e]
        if not live:
            continue
        acts = []
        for d in live:
            rank = sum(1 for x in expiries if d <= x < e)  # 0 = nearest expiry on that day
            acts.append(1.0 if rank == 0 else (model.next_expiry_activity if rank == 1 else model.far_expiry_activity))
        rows = [index[d] for d in live]
        jobs.append(ExpiryJob(symbol, e, kinds[e], tuple(live), tuple(acts), tuple(float(vols[r]) for r in rows),
                              spot[rows], seed, str(out), model))
    return jobs


def generate(symbol: str, start: dt.date, end: dt.date, out: Path, seed: int = 7, workers: int | None = None,
             model: Model = Model()) -> dict:
    """Write the synthetic market for [start, end]; returns a manifest (also written as SYNTHETIC.json)."""
    symbol = symbol.upper()
    if symbol not in STRIKE_STEP:
        raise ValueError(f"unknown symbol {symbol}; known: {', '.join(STRIKE_STEP)}")
    started = time.perf_counter()
    sessions = nse_trading_days(start, end)
    if sessions is None:
        raise RuntimeError("the XNSE calendar of pandas_market_calendars is not available")
    days = sorted(sessions)
    if not days:
        raise ValueError(f"no NSE trading day between {start} and {end}")
    calendar = build_calendar(start, end + dt.timedelta(days=70), [symbol])
    out = Path(out)
    (out / "meta").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "meta" / "expiry_calendar.csv", lambda fh: fh.write(calendar.to_csv(index=False).encode()))
    spot, vols = spot_paths(symbol, days, seed, model)
    for i, day in enumerate(days):
        write_spot_day(out, symbol, day, spot[i], _rng(seed, symbol, "spot-ticks", day), model)
    jobs = expiry_jobs(symbol, days, spot, vols, seed, out, model, calendar)
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            ticks = sum(pool.map(generate_expiry, jobs))
    else:
        ticks = sum(generate_expiry(job) for job in jobs)
    manifest = {
        "synthetic": True,
        "note": "SYNTHETIC market made by atmburst core.synth: not real prices or volumes",
        "symbol": symbol, "start": start.isoformat(), "end": end.isoformat(), "seed": seed,
        "trading_days": len(days), "expiries": len(jobs), "option_ticks": int(ticks),
        "spot_ticks_per_day": round(N_SEC * model.spot_tick_prob),
        "seconds": round(time.perf_counter() - started, 2), "model": asdict(model),
    }
    atomic_write_bytes(out / "packed" / "SYNTHETIC.json", lambda fh: fh.write(json.dumps(manifest, indent=2).encode()))
    return manifest


# Timestamp encodings real vendor dumps use; option files cycle through them.
FAULT_FORMATS = ("ist_us", "utc_ns", "naive_ist_ms", "int_ns", "int_ms", "iso_string", "int_us")


def _encode_timestamps(utc_ns: np.ndarray, fmt: str) -> pa.Array:
    if fmt == "ist_us":
        return pa.array(utc_ns // 1_000, pa.int64()).cast(pa.timestamp("us", tz="Asia/Kolkata"))
    if fmt == "utc_ns":
        return pa.array(utc_ns, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    if fmt == "naive_ist_ms":  # naive wall time in IST
        return pa.array((utc_ns + IST_OFFSET_NS) // 1_000_000, pa.int64()).cast(pa.timestamp("ms"))
    if fmt == "int_ns":
        return pa.array(utc_ns, pa.int64())
    if fmt == "int_ms":
        return pa.array(utc_ns // 1_000_000, pa.int64())
    if fmt == "int_us":
        return pa.array(utc_ns // 1_000, pa.int64())
    if fmt == "iso_string":
        stamps = (utc_ns + IST_OFFSET_NS).astype("datetime64[ns]").astype(str)
        return pa.array([f"{t}+05:30" for t in stamps], pa.string())
    raise ValueError(fmt)


def _faulty_table(table: pa.Table, fmt: str, rng: np.random.Generator, with_volume: bool, heavy: bool) -> pa.Table:
    """The used columns of ``table`` re-encoded with ``fmt``, with duplicates, bad rows and stray ticks."""
    utc_ns = np.asarray(table.column("timestamp").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()), np.int64)
    close = np.asarray(table.column("close"), np.float64).astype(object)
    vol = (np.asarray(table.column("vol_delta"), np.int64).astype(object) if with_volume
           else np.zeros(len(utc_ns), object))
    n = len(utc_ns)
    ts = list(utc_ns)
    close, vol = list(close), list(vol)
    nulls: list[int] = []
    if n:
        picks = rng.integers(0, n, 6)
        for j in picks[:3]:  # exact duplicates
            ts.append(ts[j]), close.append(close[j]), vol.append(vol[j])
        if heavy:
            for j, (c, v) in zip(picks[3:], [(None, -40), (0.0, 15), (-1.0, None)]):  # repaired rows
                ts.append(ts[j] + 1_000), close.append(c), vol.append(v)
            day0 = (utc_ns[0] + IST_OFFSET_NS) // (86_400 * NS) * 86_400 * NS - IST_OFFSET_NS
            stray = [(day0 + (9 * 3600 + 5 * 60) * NS, 101.0, 900),   # before the open
                     (day0 + (15 * 3600 + 40 * 60) * NS, 99.0, 900),  # after the close
                     (0, 100.0, 5)]                                   # epoch-zero placeholder
            for t, c, v in stray:
                ts.append(t), close.append(c), vol.append(v)
            nulls.append(len(ts))
            ts.append(0), close.append(100.0), vol.append(7)  # null timestamp (masked below)
    order = rng.permutation(len(ts)) if heavy else np.arange(len(ts))  # files need not be sorted
    ts_arr = np.array(ts, np.int64)[order]
    stamp = _encode_timestamps(ts_arr, fmt)
    mask = np.isin(order, nulls)
    if mask.any():
        stamp = pa.array(stamp.to_pylist(), stamp.type, mask=mask)
    columns = {"timestamp": stamp, "close": pa.array([close[i] for i in order], pa.float64())}
    if with_volume:
        columns["vol_delta"] = pa.array([vol[i] for i in order], pa.int64())
    return pa.table(columns)


def inject_faults(out: Path, seed: int = 0) -> dict:
    """Rewrite a market made by :func:`generate` with the faults of real vendor dumps.

    Option files cycle through timestamp encodings (tz-aware IST or UTC, naive IST, integer epochs
    in ns, us and ms, ISO strings) and get exact duplicates; every other file also gets repaired
    rows (negative, null volume; null, zero, negative prices), ticks before the open and after the
    close, an epoch-zero row, a null timestamp, and is shuffled. Spot files get the same treatment.
    In the nearest expiry one series near the money is deleted and one is overwritten with bytes
    that are not parquet. Deterministic for a given market and seed; returns what was done.
    """
    out = Path(out)
    rng = _rng(seed, "faults")
    options = sorted((out / "packed" / "options").rglob("*.parquet"))
    spots = sorted((out / "packed" / "spot").rglob("*.parquet"))
    done = {"rewritten": 0, "deleted": [], "corrupted": []}
    for i, path in enumerate(spots):
        table = pq.read_table(path, columns=["timestamp", "close"])
        faulty = _faulty_table(table, ("naive_ist_ms", "int_ns", "utc_ns")[i % 3], rng, False, heavy=True)
        atomic_write_bytes(path, lambda fh, t=faulty: pq.write_table(t, fh))
        done["rewritten"] += 1
    for i, path in enumerate(options):
        table = pq.read_table(path, columns=["timestamp", "close", "vol_delta"])
        faulty = _faulty_table(table, FAULT_FORMATS[i % len(FAULT_FORMATS)], rng, True, heavy=i % 2 == 0)
        atomic_write_bytes(path, lambda fh, t=faulty: pq.write_table(t, fh))
        done["rewritten"] += 1
    first_expiry = min({p.parent.parent for p in options}, default=None)
    if first_expiry is not None:
        calls = sorted(first_expiry.glob("type=CE/*.parquet"), key=lambda p: int(p.stem.split("=")[1]))
        puts = sorted(first_expiry.glob("type=PE/*.parquet"), key=lambda p: int(p.stem.split("=")[1]))
        if calls:
            junk = calls[len(calls) // 2]
            atomic_write_bytes(junk, lambda fh: fh.write(b"PAR1 this is not a parquet file"))
            done["corrupted"].append(str(junk.relative_to(out)))
        if puts:
            gone = puts[len(puts) // 2 + 1 if len(puts) > 1 else 0]
            gone.unlink()
            done["deleted"].append(str(gone.relative_to(out)))
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a synthetic NSE index options market (packed layout)")
    p.add_argument("--symbol", default="BANKNIFTY")
    p.add_argument("--start", required=True)
    p.add_argument("--end", required=True)
    p.add_argument("--out", default="data")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument("--faults", action="store_true", help="inject the faults of real vendor dumps (inject_faults)")
    args = p.parse_args(argv)
    try:
        manifest = generate(args.symbol, dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end),
                            Path(args.out), args.seed, args.workers)
        if args.faults:
            faults = inject_faults(Path(args.out), args.seed)
            print(f"faults injected: {faults['rewritten']} files rewritten, deleted {faults['deleted']}, "
                  f"corrupted {faults['corrupted']}")
    except (ValueError, RuntimeError) as exc:
        print(f"atmburst synth: {exc}", file=sys.stderr)
        return 2
    print(f"SYNTHETIC {manifest['symbol']} {manifest['start']}..{manifest['end']}: {manifest['trading_days']} days, "
          f"{manifest['expiries']} expiries, {manifest['option_ticks']:,} option ticks in {manifest['seconds']} s "
          f"-> {args.out}/packed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
