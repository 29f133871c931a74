"""The typed schema of a run's settings: every key, its type, its default, and what it shapes.

This is the one source of the defaults. ``core.config.DEFAULTS`` is derived from it, ``conf/``
(Hydra's config groups) is checked against it by a test, and the strategy/market split a sweep
relies on is a property of each section (``PART``), not a list of names kept elsewhere:

* ``market``: what the per-second market is built from (symbol, dates, data, session, routing).
  Two runs that differ in these need different markets.
* ``strategy``: what is evaluated on a market (signal, risk, delta, pnl_mode, execution, costs).
  Combinations that differ only in these share one market in a sweep.
* ``output``: where results go; no influence on any trade.

Keys and meanings: docs/strategy.md section 9.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

MARKET, STRATEGY, OUTPUT = "market", "strategy", "output"


@dataclass
class DataSettings:
    PART: ClassVar[str] = MARKET
    options_dir: str = "./data/packed/options"
    spot_glob: str = "./data/packed/spot/{symbol}/**/*.parquet"
    calendar_csv: str = "./meta/expiry_calendar.csv"  # missing beside the run: the calendar shipped in the package
    naive_timezone: str = "Asia/Kolkata"


@dataclass
class SessionSettings:
    PART: ClassVar[str] = MARKET
    open: str = "09:15:00"
    close: str = "15:30:00"
    anchors: list[str] = field(default_factory=lambda: ["10:00", "11:00", "12:00", "13:00", "14:00", "15:00"])
    window_secs: int = 3600


@dataclass
class RoutingSettings:
    PART: ClassVar[str] = MARKET
    strike_step: dict[str, int] = field(default_factory=lambda: {
        "BANKNIFTY": 100, "NIFTY": 50, "FINNIFTY": 50, "MIDCPNIFTY": 25, "SENSEX": 100, "BANKEX": 100})
    strikes_each_side: int = 1
    expiry_kind: str = "nearest"  # nearest | weekly | monthly


@dataclass
class SignalSettings:
    PART: ClassVar[str] = STRATEGY
    burst_secs: int = 30
    avg_secs: int = 300
    multiplier: float = 1.5
    min_burst_volume: float = 0
    trend_filter: bool = True


@dataclass
class ExecutionSettings:
    PART: ClassVar[str] = STRATEGY
    entry_delay_secs: int = 1
    slippage: float = 0
    slippage_unit: str = "ticks"  # ticks | pct
    lots: int = 1


@dataclass
class DeltaSettings:
    PART: ClassVar[str] = STRATEGY
    name: str = "fixed"  # fixed | black_scholes
    ATM: float = 0.50
    NEAR: float = 0.40
    rate: float = 0.065  # risk-free rate for the Black-Scholes delta


@dataclass
class CostsSettings:
    PART: ClassVar[str] = STRATEGY
    name: str = "nse_discount"  # nse_discount | none
    brokerage_per_order: float = 20
    brokerage_pct: float = 0  # of the order's premium turnover, instead of the flat fee when > 0
    brokerage_cap: float = 0  # cap per order for the percentage (0: none)


@dataclass
class RiskSettings:
    PART: ClassVar[str] = STRATEGY
    side: str = "sell"  # sell | long
    target_pct: float | None = 0.15
    stop_pct: float | None = 0.15
    trail_pct: float | None = 0.10
    trail_activate_pct: float | None = 0.10
    max_hold_secs: int = 3600


@dataclass
class PnlModeSettings:
    PART: ClassVar[str] = STRATEGY
    name: str = "delta_proxy"  # delta_proxy | option_close


def _part(part: str) -> dict:
    return {"part": part}


@dataclass
class Settings:
    """A run's settings; top-level keys carry their part in the field metadata."""

    symbol: str = field(default="BANKNIFTY", metadata=_part(MARKET))
    start: str | None = field(default=None, metadata=_part(MARKET))
    end: str | None = field(default=None, metadata=_part(MARKET))
    data: DataSettings = field(default_factory=DataSettings)
    cache_dir: str | None = field(default="./cache/seconds", metadata=_part(MARKET))  # speed only; keyed by file
    results_dir: str = field(default="./results", metadata=_part(OUTPUT))
    session: SessionSettings = field(default_factory=SessionSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    signal: SignalSettings = field(default_factory=SignalSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    delta: DeltaSettings = field(default_factory=DeltaSettings)
    costs: CostsSettings = field(default_factory=CostsSettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    pnl_mode: PnlModeSettings = field(default_factory=PnlModeSettings)


def defaults() -> dict[str, Any]:
    """Every key with its default, as a plain nested dict (a fresh copy)."""
    return asdict(Settings())


def part_of(key: str) -> str:
    """``market``, ``strategy`` or ``output`` for a top-level key."""
    for f in fields(Settings):
        if f.name == key:
            return f.metadata.get("part") or f.default_factory.PART  # type: ignore[union-attr]
    raise KeyError(key)


def keys_of(part: str) -> tuple[str, ...]:
    """The top-level keys of one part, in schema order."""
    return tuple(f.name for f in fields(Settings) if part_of(f.name) == part)


def section_schema(section: str) -> type | None:
    """The dataclass of a config section (``signal``, ``risk``, ...); None for a plain key."""
    for f in fields(Settings):
        if f.name == section:
            factory = f.default_factory
            return factory if isinstance(factory, type) else None
    raise KeyError(section)
