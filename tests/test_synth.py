"""The synthetic market: layout and schema, determinism, tick rates, prices, volume, bursts, health."""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core import run_backtest
from core.lots import lot_size
from core.synth import Model, generate, model_price

START, END = dt.date(2024, 7, 1), dt.date(2024, 7, 5)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    manifest = generate("BANKNIFTY", START, END, out, seed=7, workers=2)
    return out, manifest


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.parquet")):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_layout_schema_and_marker(market):
    out, manifest = market
    assert manifest["synthetic"] and json.loads((out / "packed/SYNTHETIC.json").read_text())["seed"] == 7
    files = sorted((out / "packed/options/BANKNIFTY").rglob("*.parquet"))
    assert files and all("exp=" in str(f) and "type=" in str(f) and f.name.startswith("strike=") for f in files)
    schema = pq.read_schema(files[0])
    expected = {"timestamp": pa.timestamp("us", tz="Asia/Kolkata"), "symbol": pa.string(), "opt_type": pa.string(),
                "strike": pa.int32(), "open": pa.float64(), "high": pa.float64(), "low": pa.float64(),
                "close": pa.float64(), "vol_delta": pa.int64(), "expiry": pa.date32(), "expiry_type": pa.string(),
                "is_monthly": pa.int8(), "is_weekly": pa.int8()}
    assert {f.name: f.type for f in schema} == expected
    spot = sorted((out / "packed/spot/BANKNIFTY").rglob("ticks.parquet"))
    assert [p.parent.name for p in spot] == [f"date={d}" for d in pd.bdate_range(START, END).date.astype(str)]
    assert set(pq.read_schema(spot[0]).names) == {"timestamp", "symbol", "open", "high", "low", "close",
                                                   "vol_delta", "trade_date"}
    calendar = pd.read_csv(out / "meta/expiry_calendar.csv")
    assert "2024-07-03" in set(calendar.Final_Expiry)


def test_deterministic_for_a_seed_whatever_the_workers(market, tmp_path):
    out, _ = market
    generate("BANKNIFTY", START, dt.date(2024, 7, 2), tmp_path / "a", seed=7, workers=1)
    generate("BANKNIFTY", START, dt.date(2024, 7, 2), tmp_path / "b", seed=7, workers=2)
    generate("BANKNIFTY", START, dt.date(2024, 7, 2), tmp_path / "c", seed=8, workers=1)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def _ticks_by_distance(out, expiry: str, opt_type: str, day: str) -> pd.Series:
    """Ticks of one day by the strike's distance (in steps) from the spot of the tick's second."""
    spot = pq.read_table(out / f"packed/spot/BANKNIFTY/{day[:4]}{day[5:7]}/date={day}/ticks.parquet").to_pandas()
    spot_by_sec = spot.set_index(spot.timestamp.dt.floor("s")).close
    folder = out / f"packed/options/BANKNIFTY/{expiry[:4]}{expiry[5:7]}/exp={expiry}/type={opt_type}"
    frames = []
    for f in folder.glob("*.parquet"):
        t = pq.read_table(f, columns=["timestamp", "strike"]).to_pandas()
        t = t[t.timestamp.dt.date.astype(str) == day]
        s = spot_by_sec.reindex(t.timestamp.dt.floor("s"), method="ffill").to_numpy()
        frames.append(pd.Series(np.round((t.strike.to_numpy() - s) / 100).astype(int)))
    return pd.concat(frames).value_counts()


def test_tick_rates_peak_at_the_money_and_thin_away(market):
    out, _ = market
    by_distance = _ticks_by_distance(out, "2024-07-03", "CE", "2024-07-02")
    assert 7_000 <= by_distance[0] <= 20_000  # about 10,000 a day at the money, more with bursts
    assert by_distance[4] < by_distance[0] / 3 and by_distance[-4] < by_distance[0] / 3
    next_week = _ticks_by_distance(out, "2024-07-10", "CE", "2024-07-02")
    assert next_week[0] < by_distance[0] / 2  # later expiries trade less
    spot = pq.read_table(out / "packed/spot/BANKNIFTY/202407/date=2024-07-02/ticks.parquet")
    assert 21_000 <= spot.num_rows <= 22_501  # about one spot tick a second


def test_intraday_u_shape(market):
    out, _ = market
    f = out / "packed/options/BANKNIFTY/202407/exp=2024-07-10/type=PE"
    stamps = pd.concat([pq.read_table(p, columns=["timestamp"]).to_pandas().timestamp for p in f.glob("*.parquet")])
    minutes = stamps.dt.hour * 60 + stamps.dt.minute
    edges = ((minutes < 9 * 60 + 45) | (minutes >= 15 * 60)).sum() / (30 + 30)
    middle = ((minutes >= 12 * 60) & (minutes < 13 * 60)).sum() / 60
    assert edges > 1.3 * middle


def test_prices_follow_the_model_on_the_tick_grid(market):
    out, _ = market
    model = Model()
    path = out / "packed/options/BANKNIFTY/202407/exp=2024-07-10/type=CE"
    strike_file = sorted(path.glob("*.parquet"))[len(list(path.glob("*.parquet"))) // 2]
    ticks = pq.read_table(strike_file).to_pandas()
    assert (ticks.close >= 0.05).all()
    assert np.allclose(np.round(ticks.close / 0.05), ticks.close / 0.05, atol=1e-6)
    assert (ticks.vol_delta % lot_size("BANKNIFTY", dt.date(2024, 7, 10)) == 0).all() and (ticks.vol_delta > 0).all()
    # Against Black-Scholes on the spot of the same second: within the half spread plus rounding
    # (the volatility level is the day's, unknown here, so solve it from the median tick first).
    day = ticks[ticks.timestamp.dt.date == dt.date(2024, 7, 2)].iloc[::50]
    spot = pq.read_table(out / "packed/spot/BANKNIFTY/202407/date=2024-07-02/ticks.parquet").to_pandas()
    spot_by_sec = spot.set_index(spot.timestamp.dt.floor("s")).close
    s = spot_by_sec.reindex(day.timestamp.dt.floor("s"), method="ffill").to_numpy()
    expiry_close = pd.Timestamp("2024-07-10 15:30", tz="Asia/Kolkata")
    years = ((expiry_close - day.timestamp).dt.total_seconds() / (365 * 86400)).to_numpy()
    k = float(day.strike.iloc[0])
    levels = np.linspace(0.05, 0.6, 2201)
    errors = [np.median(np.abs(model_price(model, lv, s, k, years, True) - day.close)) for lv in levels]
    level = levels[int(np.argmin(errors))]
    fair = model_price(model, level, s, k, years, True)
    tolerance = np.maximum(0.05, model.half_spread_frac * fair) + 0.05 + 0.01 * fair  # spot rounding, level grid
    assert (np.abs(day.close.to_numpy() - fair) <= tolerance).mean() > 0.97


def test_engine_health_is_clean_and_trades_every_window(market):
    out, _ = market
    cfg = {"symbol": "BANKNIFTY", "start": str(START), "end": str(END), "cache_dir": None,
           "data": {"options_dir": str(out / "packed/options"),
                    "spot_glob": str(out / "packed/spot/{symbol}/**/*.parquet"),
                    "calendar_csv": str(out / "meta/expiry_calendar.csv")}}
    result = run_backtest(cfg)
    assert result.synthetic
    assert not any(result.health["problems"].values()), result.health["problems"]
    per_day = result.trades.groupby("trade_date").size()
    assert len(per_day) == 5 and (per_day == 6).mean() >= 0.8  # a trade in every hour window on most days
    # Bursts exist beyond the default threshold: some signals are well above 3x their baseline.
    assert (result.trades.burst_vol / result.trades.base_vol).max() > 3
