"""Money: lot sizes, slippage and dated Indian charges, per trade and per leg.

The strategy's trade (entry, exit, pnl_pts) is decided on marks without costs; this step prices its
two fills and charges. Slippage moves each fill against the trade: a sell fills lower, a buy
higher, by `execution.slippage` ticks (0.05) or percent of premium; a sell never fills below
0.05. Charges use the rates in force on the trade date (``meta/charges.csv``, with sources):
STT on the sell leg's premium, exchange transaction charges and the SEBI fee on premium
turnover, stamp duty on the buy leg, GST on brokerage + exchange + SEBI, and brokerage per
executed order (flat, or a percentage with an optional cap). Each charge is rounded half up to
the paisa per trade. With `costs=none` and no slippage, `net_pts` equals `pnl_pts` exactly.
"""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .lots import lot_size
from .resources import meta_file

CHARGES_CSV = meta_file("charges.csv")
TICK = 0.05
CHARGE_KINDS = ("brokerage", "stt", "exchange", "sebi", "stamp", "gst")
EPOCH = dt.date(1970, 1, 1)
RATE_KINDS = ("stt", "exchange", "sebi", "stamp", "gst")
COST_FIELDS = [
    ("lot_size", pa.int64()), ("qty", pa.int64()), ("entry_fill", pa.float64()), ("exit_fill", pa.float64()),
    ("gross_pts", pa.float64()), ("gross_inr", pa.float64()),
    *[(f"{k}_inr", pa.float64()) for k in CHARGE_KINDS],
    ("charges_inr", pa.float64()), ("net_inr", pa.float64()), ("net_pts", pa.float64()),
]


@dataclass(frozen=True)
class CostSettings:
    """How trades are sized and charged (config groups ``costs`` and keys ``execution.*``; defaults:
    ``core.config.default_costs()``, from core.settings)."""

    name: str  # nse_discount | none
    brokerage_per_order: float
    brokerage_pct: float  # of the order's premium turnover, instead of the flat fee when > 0
    brokerage_cap: float  # cap per order for the percentage (0: none)
    lots: int
    slippage: float
    slippage_unit: str  # ticks | pct


@functools.lru_cache(maxsize=4)
def charge_table(path: str = str(CHARGES_CSV)) -> dict[str, list[tuple[dt.date, dt.date | None, float]]]:
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    out: dict[str, list] = {}
    for row in frame.itertuples(index=False):
        to = dt.date.fromisoformat(row.To) if row.To else None
        out.setdefault(row.Charge, []).append((dt.date.fromisoformat(row.From), to, float(row.Rate)))
    return out


@functools.lru_cache(maxsize=65536)
def rate(charge: str, day: dt.date) -> float:
    """The rate of ``charge`` in force on ``day``; ValueError naming the date when none is."""
    for start, end, value in charge_table().get(charge, []):
        if start <= day and (end is None or day <= end):
            return value
    raise ValueError(f"no {charge} rate in {CHARGES_CSV.name} for {day}; add the period with its source")


def paisa(x: np.ndarray) -> np.ndarray:
    """Rounded half up to 0.01 (with a guard against binary representation just below a half)."""
    return np.floor(np.asarray(x, float) * 100.0 + 0.5 + 1e-9) / 100.0


def slipped(price: np.ndarray, selling: np.ndarray, settings: CostSettings) -> np.ndarray:
    """Fill prices: against the trade by the slippage; a sell never below 0.05."""
    if not settings.slippage:
        return price
    amount = settings.slippage * TICK if settings.slippage_unit == "ticks" else price * settings.slippage / 100.0
    return np.where(selling, np.maximum(TICK, price - amount), price + amount)


@functools.lru_cache(maxsize=65536)
def _pair_terms(symbol: str, charged: bool, pair: int) -> tuple[float, tuple[float, ...], str | None]:
    """(lot size, the RATE_KINDS rates (0 when not ``charged``), None) of the trades of one (trade
    date, expiry) ``pair`` (days since 1970: date * 100,000 + expiry); (0, zeros, the reason) when
    its lot size or a rate is unknown. Cached: a sweep costs the same days for every combination."""
    day, expiry = EPOCH + dt.timedelta(days=pair // 100_000), EPOCH + dt.timedelta(days=pair % 100_000)
    try:
        return float(lot_size(symbol, expiry)), tuple(rate(k, day) if charged else 0.0 for k in RATE_KINDS), None
    except ValueError as exc:
        return 0.0, (0.0,) * len(RATE_KINDS), f"{symbol} trade on {day}: {exc}; its costs are left empty"


def trade_costs(trades: pa.Table, settings: CostSettings, symbol: str) -> tuple[pa.Table, list[str]]:
    """``trades`` with the cost columns appended, and a message per trade that could not be costed.

    A trade whose lot size or charge rate is unknown keeps its strategy columns and gets null costs.
    Vectorised over trades; each element follows the same float operations, in the same order, as
    the per-trade formula of docs/costs.md (so a trade's costs never depend on the others).
    """
    n = trades.num_rows
    cols: dict[str, np.ndarray] = {name: np.full(n, np.nan) for name, _ in COST_FIELDS}
    problems: list[str] = []
    if n:
        day_numbers = trades.column("trade_date").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        expiry_numbers = trades.column("expiry").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        pairs, pair_of = np.unique(day_numbers * 100_000 + expiry_numbers, return_inverse=True)
        side_sell = np.asarray(pc.equal(trades.column("side"), "sell").to_numpy(zero_copy_only=False), bool)
        entry = trades.column("entry_opt").to_numpy()
        exit_ = trades.column("exit_opt").to_numpy()
        entry_fill = slipped(entry, side_sell, settings)  # a short sells at entry
        exit_fill = slipped(exit_, ~side_sell, settings)  # ... and buys back at exit
        sell_px = np.where(side_sell, entry_fill, exit_fill)
        buy_px = np.where(side_sell, exit_fill, entry_fill)
        cols["entry_fill"], cols["exit_fill"] = entry_fill, exit_fill
        cols["gross_pts"] = sell_px - buy_px
        terms = [_pair_terms(symbol, settings.name != "none", pair) for pair in pairs.tolist()]
        pair_lots = np.array([t[0] for t in terms], float)
        pair_rates = {k: np.array([t[1][i] for t in terms], float) for i, k in enumerate(RATE_KINDS)}
        pair_costed = np.array([t[2] is None for t in terms], bool)
        reasons = {p: t[2] for p, t in enumerate(terms) if t[2] is not None}
        lots, costed = pair_lots[pair_of], pair_costed[pair_of]
        rates = {k: v[pair_of] for k, v in pair_rates.items()}
        problems = [reasons[p] for p in pair_of[~costed].tolist()]  # one per trade, in trade order
        qty = lots * settings.lots
        sell_value, buy_value = sell_px * qty, buy_px * qty
        if settings.name == "none":
            brokerage = np.zeros(n)
        elif settings.brokerage_pct > 0:
            per_sell = sell_value * settings.brokerage_pct / 100.0
            per_buy = buy_value * settings.brokerage_pct / 100.0
            if settings.brokerage_cap > 0:
                per_sell = np.minimum(per_sell, settings.brokerage_cap)
                per_buy = np.minimum(per_buy, settings.brokerage_cap)
            brokerage = paisa(per_sell + per_buy)
        else:
            brokerage = np.full(n, 2 * settings.brokerage_per_order)
        stt = paisa(rates["stt"] * sell_value)
        exchange = paisa(rates["exchange"] * (sell_value + buy_value))
        sebi = paisa(rates["sebi"] * (sell_value + buy_value))
        stamp = paisa(rates["stamp"] * buy_value)
        gst = paisa(rates["gst"] * (brokerage + exchange + sebi))
        charges = brokerage + stt + exchange + sebi + stamp + gst
        with np.errstate(invalid="ignore", divide="ignore"):
            values = {"lot_size": lots, "qty": qty, "gross_inr": cols["gross_pts"] * qty,
                      **{f"{name}_inr": v for name, v in zip(CHARGE_KINDS, (brokerage, stt, exchange, sebi, stamp, gst))},
                      "charges_inr": charges}
            values["net_inr"] = values["gross_inr"] - charges
            values["net_pts"] = cols["gross_pts"] - charges / qty
        for name, v in values.items():
            cols[name] = np.where(costed, v, np.nan)
    out = trades
    for name, typ in COST_FIELDS:
        values = cols[name]
        mask = np.isnan(values)
        if typ == pa.int64():
            arr = pa.array(np.where(mask, 0, values).astype(np.int64), typ, mask=mask)
        else:
            arr = pa.array(values, typ, mask=mask)
        out = out.append_column(pa.field(name, typ), arr)
    return out, problems
