"""A plain-loop reference of strategy.md, written independently of the engine, for differential tests.

Deliberately simple: one Python loop per rule, direct sums instead of prefix sums, dicts
instead of arrays. It covers what the tests feed it (packed layout, timestamps pyarrow reads as
datetimes, the keys of strategy.md §3-7 including the symbol, its strike step and the expiry kind)
and nothing more.
"""
from __future__ import annotations

import datetime as dt
import glob
import math
import os

import pandas as pd
import pyarrow.parquet as pq

IST = "Asia/Kolkata"
STRIKE_STEP = {"BANKNIFTY": 100, "NIFTY": 50, "FINNIFTY": 50, "MIDCPNIFTY": 25, "SENSEX": 100, "BANKEX": 100}


def _clock(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    return parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0)


def _read_ticks(path: str, with_volume: bool) -> list[tuple]:
    """Rows (ist_ns, file_row, close, vol) after strategy.md §1.4's drops (null time, duplicates)."""
    table = pq.read_table(path)
    ts = pd.Series(table.column("timestamp").to_pandas())
    if ts.dt.tz is None:
        ts = ts.dt.tz_localize(IST)
    ist = ts.dt.tz_convert(IST)
    closes = table.column("close").to_pylist()
    vols = table.column("vol_delta").to_pylist() if with_volume else [0] * len(closes)
    rows, seen = [], set()
    for i, (t, c, v) in enumerate(zip(ist, closes, vols)):
        if pd.isna(t):
            continue
        c = float("nan") if c is None else float(c)
        key = (t.value, "nan" if math.isnan(c) else c, v)
        if key in seen:
            continue
        seen.add(key)
        rows.append((t, i, c, v))
    return rows


def _bars(rows, day: dt.date, open_sec: int, close_sec: int):
    """vol[s], close[s] (carried forward) of one day, strategy.md §2."""
    n = close_sec - open_sec + 1
    vol = [0.0] * n
    last_price: dict[int, float] = {}
    for t, _, c, v in sorted(rows, key=lambda r: (r[0].value, r[1])):
        if t.date() != day:
            continue
        s = t.hour * 3600 + t.minute * 60 + t.second - open_sec
        if not 0 <= s < n:
            continue
        vol[s] += max(0.0, float(v or 0))
        if not math.isnan(c) and c > 0:
            last_price[s] = c
    close, current = [], float("nan")
    for s in range(n):
        current = last_price.get(s, current)
        close.append(current)
    return vol, close


def reference_trades(cfg: dict) -> list[dict]:
    sess, sig, risk = cfg["session"], cfg["signal"], cfg["risk"]
    open_sec, close_sec = _clock(sess["open"]), _clock(sess["close"])
    anchors = sorted(_clock(a) for a in sess["anchors"])
    symbol = cfg["symbol"].upper()
    routing = cfg["routing"]
    step = {**STRIKE_STEP, **(routing.get("strike_step") or {})}[symbol]
    n_side, kind = routing["strikes_each_side"], routing.get("expiry_kind", "nearest")
    burst, avg, mult = sig["burst_secs"], sig["avg_secs"], sig["multiplier"]
    side = "long" if risk["side"] in ("long", "buy") else "sell"
    sign = -1 if side == "sell" else 1
    cal = pd.read_csv(cfg["data"]["calendar_csv"], dtype=str)
    cal = cal[cal["Instrument"].str.strip().str.upper() == symbol]
    if kind != "nearest":
        cal = cal[cal["Expiry_Type"].str.strip().str.lower() == kind]
    expiries = sorted({dt.date.fromisoformat(d.strip()) for d in cal["Final_Expiry"]})
    start, end = dt.date.fromisoformat(cfg["start"]), dt.date.fromisoformat(cfg["end"])
    option_rows: dict[str, list | None] = {}  # path -> its rows (None: unreadable), read once per call

    def series_rows(path: str) -> list | None:
        if path not in option_rows:
            try:
                option_rows[path] = _read_ticks(path, True)
            except (OSError, ValueError, KeyError):  # not parquet (arrow's errors), or a column missing:
                # the candidate is dropped (strategy.md §3)
                option_rows[path] = None
        return option_rows[path]

    spot_rows = []
    for path in sorted(glob.glob(cfg["data"]["spot_glob"].replace("{symbol}", symbol), recursive=True)):
        spot_rows += _read_ticks(path, with_volume=False)
    trades = []
    day = start
    while day <= end:
        spot_vol, spot = _bars(spot_rows, day, open_sec, close_sec)
        del spot_vol
        if all(math.isnan(x) for x in spot):
            day += dt.timedelta(days=1)
            continue
        expiry = next((e for e in expiries if e >= day), None)
        for anchor in anchors if expiry else []:
            a = anchor - open_sec
            end_k = min(anchor + sess["window_secs"], close_sec + 1) - open_sec
            hour_open = spot[a]
            if math.isnan(hour_open):
                continue
            atm = int(math.floor(hour_open / step + 0.5) * step)
            cands = []
            for i in range(-n_side, n_side + 1):
                for opt_type in ("CE", "PE"):
                    k = atm + i * step
                    path = os.path.join(cfg["data"]["options_dir"], symbol, f"{expiry:%Y%m}",
                                        f"exp={expiry}", f"type={opt_type}", f"strike={k}.parquet")
                    if not os.path.exists(path) or series_rows(path) is None:
                        continue
                    rows = [r for r in series_rows(path) if r[0].date() == day]
                    if not rows:
                        continue
                    cands.append((opt_type, k, *_bars(rows, day, open_sec, close_sec)))
            chosen = None
            for s in range(a, end_k):
                if s - burst - avg + 1 < 0:
                    continue
                trend = spot[s] - hour_open
                hits = []
                for opt_type, k, vol, close in cands:
                    b = sum(vol[s - burst + 1: s + 1])
                    base_sum = sum(vol[s - burst - avg + 1: s - burst + 1])
                    if not (base_sum > 0 and b * avg > mult * base_sum * burst and b >= sig["min_burst_volume"]):
                        continue
                    if sig["trend_filter"]:
                        wants_up = (opt_type == "CE") == (side == "long")
                        if not (trend > 0 if wants_up else trend < 0):
                            continue
                    ratio = (b * avg) / (base_sum * burst)
                    hits.append(((-ratio, abs(k - atm), 0 if opt_type == "CE" else 1, k), opt_type, k, close, s))
                if hits:
                    chosen = min(hits, key=lambda h: h[0])
                    break
            if chosen is None:
                continue
            _, opt_type, k, close, s_star = chosen
            e = s_star + cfg["execution"]["entry_delay_secs"]
            if e >= end_k or math.isnan(close[e]):
                continue
            entry_opt, entry_spot = close[e], spot[e]
            delta_used = cfg["delta"]["ATM"] if k == atm else cfg["delta"]["NEAR"]
            direction = 1 if opt_type == "CE" else -1

            def value(t):
                if cfg["pnl_mode"] == "option_close":
                    return close[t]
                return max(0.05, entry_opt + delta_used * direction * (spot[t] - entry_spot))

            x_max = min(e + risk["max_hold_secs"], end_k - 1)
            peak = sign * (value(e) - entry_opt)
            exit_bar, reason = x_max, "time"
            for t in range(e + 1, x_max + 1):
                pnl = sign * (value(t) - entry_opt)
                peak = max(peak, pnl)
                if risk["stop_pct"] and pnl <= -risk["stop_pct"] * entry_opt:
                    exit_bar, reason = t, "stop"
                    break
                if risk["trail_pct"] and risk["trail_pct"] > 0 and peak >= (risk["trail_activate_pct"] or 0) * entry_opt \
                        and peak - pnl >= risk["trail_pct"] * entry_opt:
                    exit_bar, reason = t, "trail"
                    break
                if risk["target_pct"] and pnl >= risk["target_pct"] * entry_opt:
                    exit_bar, reason = t, "target"
                    break
            base = pd.Timestamp(day, tz=IST) + pd.Timedelta(seconds=open_sec)
            trades.append({
                "trade_date": day, "anchor": f"{anchor // 3600:02d}:{anchor % 3600 // 60:02d}:{anchor % 60:02d}",
                "expiry": expiry, "opt_type": opt_type, "strike": k, "side": side,
                "entry_ts": base + pd.Timedelta(seconds=e), "exit_ts": base + pd.Timedelta(seconds=exit_bar),
                "entry_spot": entry_spot, "exit_spot": spot[exit_bar], "delta_used": delta_used,
                "entry_opt": entry_opt, "exit_opt": value(exit_bar), "pnl_pts": sign * (value(exit_bar) - entry_opt),
                "exit_reason": reason,
            })
        day += dt.timedelta(days=1)
    return sorted(trades, key=lambda t: (t["entry_ts"], t["anchor"]))

