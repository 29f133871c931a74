"""Run configuration: defaults, validation, and the typed settings the engine reads.

The keys and defaults are those of strategy.md section 9, typed once in ``core.settings``;
``conf/`` mirrors them for Hydra (a test checks every group option against that schema). Any mapping works as input: a plain dict, or an OmegaConf
object. Validation happens before any work and raises :class:`ConfigError` with one
line naming the key and what is accepted.
"""
from __future__ import annotations

import copy
import datetime as dt
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .settings import MARKET, defaults, keys_of

if TYPE_CHECKING:
    from .costs import CostSettings

DEFAULTS: dict[str, Any] = defaults()  # every key and its default, from the typed schema (core.settings)
DEFAULT_CALENDAR = DEFAULTS["data"]["calendar_csv"]  # missing beside the run: the calendar shipped in the package

PNL_MODES = ("delta_proxy", "option_close")
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9_-]*")
SIDES = {"sell": "sell", "long": "long", "buy": "long"}
EXPIRY_KINDS = ("nearest", "weekly", "monthly")


class ConfigError(ValueError):
    """A config key or data path is wrong; the message names it and what is accepted."""


@dataclass(frozen=True)
class Session:
    """Trading session in seconds after midnight IST; anchors sorted ascending."""

    open_sec: int
    close_sec: int
    anchors: tuple[int, ...]
    window_secs: int

    @property
    def n_bars(self) -> int:
        return self.close_sec - self.open_sec + 1


@dataclass(frozen=True)
class Strategy:
    """Everything a sweep may vary without rebuilding the per-second market (defaults:
    ``default_strategy()``, from core.settings)."""

    burst_secs: int
    avg_secs: int
    multiplier: float
    min_burst_volume: float
    trend_filter: bool
    entry_delay_secs: int
    delta_atm: float
    delta_near: float
    side: str
    target_pct: float
    stop_pct: float
    trail_pct: float
    trail_activate_pct: float
    max_hold_secs: int
    pnl_mode: str
    delta_model: str  # fixed | black_scholes
    rate: float  # risk-free rate for the Black-Scholes delta


@dataclass(frozen=True)
class RunConfig:
    """A validated run: where the data is, which market to build, which strategy to test."""

    symbol: str
    start: dt.date
    end: dt.date
    options_dir: Path
    spot_glob: str
    calendar_csv: Path
    naive_timezone: str
    cache_dir: Path | None
    results_dir: Path
    session: Session
    strike_step: int
    strikes_each_side: int
    expiry_kind: str
    strategy: Strategy
    raw: dict
    costs: "CostSettings | None" = None  # sizing, slippage and charges (core.costs)

    @property
    def market_settings(self) -> dict:
        """The settings the per-second market is built from (the ``market`` part of core.settings);
        runs equal in these can share one market."""
        return {key: self.raw[key] for key in keys_of(MARKET)}

    def with_range(self, start: dt.date, end: dt.date) -> "RunConfig":
        """The same run over a sub-range of dates (used for date chunks)."""
        from dataclasses import replace

        return replace(self, start=start, end=end)


def to_plain(config: Any) -> dict:
    """A plain nested dict from a dict or an OmegaConf object (interpolations resolved)."""
    if config is None:
        return {}
    omegaconf = sys.modules.get("omegaconf")  # an OmegaConf object exists only once omegaconf is imported
    if omegaconf is not None and isinstance(config, omegaconf.DictConfig):  # (a plain dict need not import it)
        return omegaconf.OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(config).__name__}")
    return {k: (to_plain(v) if isinstance(v, Mapping) else copy.deepcopy(v)) for k, v in config.items()}


def merged_with_defaults(config: Any) -> dict:
    """DEFAULTS overlaid by ``config``; unknown keys raise ConfigError naming the key."""
    user = to_plain(config)
    # ``pnl_mode`` may be given as a plain string: pnl_mode="option_close".
    if isinstance(user.get("pnl_mode"), str):
        user["pnl_mode"] = {"name": user["pnl_mode"]}
    out = copy.deepcopy(DEFAULTS)
    _overlay(out, user, prefix="")
    return out


# Keys whose value is a free mapping (its own keys are data, not config keys).
_FREE_MAPPINGS = {"routing.strike_step"}


def _overlay(base: dict, user: dict, prefix: str) -> None:
    for key, value in user.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"unknown config key '{dotted}' (known at this level: {', '.join(sorted(base))})")
        if isinstance(base[key], dict) and dotted not in _FREE_MAPPINGS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{dotted}' must be a mapping, got {value!r}")
            _overlay(base[key], dict(value), prefix=dotted + ".")
        elif dotted in _FREE_MAPPINGS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{dotted}' must be a mapping of SYMBOL: step, got {value!r}")
            base[key] = {str(k).upper(): v for k, v in value.items()}
        else:
            base[key] = value


def parse_clock(value: Any, key: str) -> int:
    """Seconds after midnight for 'HH:MM' or 'HH:MM:SS' (or a datetime.time)."""
    if isinstance(value, dt.time):
        return value.hour * 3600 + value.minute * 60 + value.second
    if isinstance(value, str):
        parts = value.strip().split(":")
        if len(parts) in (2, 3) and all(p.isdigit() for p in parts):
            h, m = int(parts[0]), int(parts[1])
            s = int(parts[2]) if len(parts) == 3 else 0
            if 0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60:
                return h * 3600 + m * 60 + s
    raise ConfigError(f"config key '{key}' must be a time 'HH:MM' or 'HH:MM:SS' in quotes, got {value!r}")


def clock_label(seconds: int) -> str:
    """'HH:MM:SS' for seconds after midnight."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _date(value: Any, key: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    if value is None:
        raise ConfigError(f"config key '{key}' is required: a date YYYY-MM-DD (e.g. {key}=2024-07-01)")
    raise ConfigError(f"config key '{key}' must be a date YYYY-MM-DD, got {value!r}")


def _int(value: Any, key: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise ConfigError(f"config key '{key}' must be a whole number, got {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ConfigError(f"config key '{key}' must be >= {minimum}, got {out}")
    return out


def _num(value: Any, key: str, *, positive: bool = False, allow_null: bool = False,
         upper: float | None = None) -> float:
    if value is None and allow_null:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
    out = float(value)
    if positive and out <= 0:
        raise ConfigError(f"config key '{key}' must be > 0, got {value!r}")
    if out < 0:
        raise ConfigError(f"config key '{key}' must be >= 0, got {value!r}")
    if upper is not None and out > upper:
        raise ConfigError(f"config key '{key}' must be <= {upper}, got {value!r}")
    return out


def _choice(value: Any, key: str, choices) -> str:
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}; got {value!r}")
    return value.strip().lower()


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")


def _resolve(path: Any, key: str, base_dir: Path) -> Path:
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ConfigError(f"config key '{key}' must be a path, got {path!r}")
    p = Path(str(path)).expanduser()
    return p if p.is_absolute() else (base_dir / p)


def _calendar(value: Any, base: Path) -> Path:
    """The calendar CSV; the default path falls back to the calendar shipped with the package."""
    path = _resolve(value, "data.calendar_csv", base)
    if str(value) == DEFAULT_CALENDAR and not path.is_file():
        from .resources import meta_file

        return meta_file("expiry_calendar.csv")
    return path


def strategy_from(raw: dict) -> Strategy:
    """The validated strategy part of a merged config."""
    sig, risk, delta = raw["signal"], raw["risk"], raw["delta"]
    pnl = raw["pnl_mode"]
    if not isinstance(pnl, Mapping) or "name" not in pnl:
        raise ConfigError("config key 'pnl_mode' must be delta_proxy or option_close (pnl_mode=option_close)")
    delta_model = _choice(delta["name"], "delta.name", ("fixed", "black_scholes"))
    side = risk["side"]
    if not isinstance(side, str) or side.strip().lower() not in SIDES:
        raise ConfigError(f"config key 'risk.side' must be one of sell, long, buy; got {side!r}")
    return Strategy(
        burst_secs=_int(sig["burst_secs"], "signal.burst_secs", 1),
        avg_secs=_int(sig["avg_secs"], "signal.avg_secs", 1),
        multiplier=_num(sig["multiplier"], "signal.multiplier", positive=True),
        min_burst_volume=_num(sig["min_burst_volume"], "signal.min_burst_volume", allow_null=True),
        trend_filter=_bool(sig["trend_filter"], "signal.trend_filter"),
        entry_delay_secs=_int(raw["execution"]["entry_delay_secs"], "execution.entry_delay_secs", 0),
        delta_atm=_num(delta["ATM"], "delta.ATM", upper=1.0),
        delta_near=_num(delta["NEAR"], "delta.NEAR", upper=1.0),
        side=SIDES[side.strip().lower()],
        target_pct=_num(risk["target_pct"], "risk.target_pct", allow_null=True),
        stop_pct=_num(risk["stop_pct"], "risk.stop_pct", allow_null=True),
        trail_pct=_num(risk["trail_pct"], "risk.trail_pct", allow_null=True),
        trail_activate_pct=_num(risk["trail_activate_pct"], "risk.trail_activate_pct", allow_null=True),
        max_hold_secs=_int(risk["max_hold_secs"], "risk.max_hold_secs", 0),
        pnl_mode=_choice(pnl["name"], "pnl_mode", PNL_MODES),
        delta_model=delta_model,
        rate=_num(delta["rate"], "delta.rate", allow_null=True, upper=1.0),
    )


def default_strategy(**changes) -> Strategy:
    """The default strategy (core.settings), with ``changes`` applied."""
    from dataclasses import replace

    return replace(strategy_from(DEFAULTS), **changes)


def default_costs(**changes) -> "CostSettings":
    """The default sizing, slippage and charges (core.settings), with ``changes`` applied."""
    from dataclasses import replace

    return replace(costs_from(DEFAULTS), **changes)


def costs_from(raw: dict):
    """The validated sizing, slippage and charge settings of a merged config."""
    from .costs import CostSettings

    costs, execution = raw["costs"], raw["execution"]
    return CostSettings(
        name=_choice(costs["name"], "costs.name", ("nse_discount", "none")),
        brokerage_per_order=_num(costs["brokerage_per_order"], "costs.brokerage_per_order", allow_null=True),
        brokerage_pct=_num(costs["brokerage_pct"], "costs.brokerage_pct", allow_null=True, upper=100.0),
        brokerage_cap=_num(costs["brokerage_cap"], "costs.brokerage_cap", allow_null=True),
        lots=_int(execution["lots"], "execution.lots", 1),
        slippage=_num(execution["slippage"], "execution.slippage", allow_null=True),
        slippage_unit=_choice(execution["slippage_unit"], "execution.slippage_unit", ("ticks", "pct")),
    )


def load_config(config: Any, base_dir: str | Path | None = None, *, check_paths: bool = True) -> RunConfig:
    """Validate ``config`` (merged over DEFAULTS) into a RunConfig; relative paths resolve
    against ``base_dir`` (default: the current directory)."""
    raw = merged_with_defaults(config)
    base = Path(base_dir) if base_dir is not None else Path.cwd()

    symbol = raw["symbol"]
    if not isinstance(symbol, str) or not symbol.strip():
        raise ConfigError(f"config key 'symbol' must be a name such as BANKNIFTY, got {symbol!r}")
    symbol = symbol.strip().upper()
    if not _SYMBOL.fullmatch(symbol):
        raise ConfigError(f"config key 'symbol' must be letters, digits, '-' or '_' (it names folders and files), "
                          f"got {raw['symbol']!r}")
    start, end = _date(raw["start"], "start"), _date(raw["end"], "end")
    if end < start:
        raise ConfigError(f"config key 'end' ({end}) must not be before 'start' ({start})")

    sess = raw["session"]
    open_sec = parse_clock(sess["open"], "session.open")
    close_sec = parse_clock(sess["close"], "session.close")
    if close_sec <= open_sec:
        raise ConfigError(f"config key 'session.close' ({sess['close']}) must be after session.open ({sess['open']})")
    anchors_raw = sess["anchors"]
    if not isinstance(anchors_raw, (list, tuple)) or not anchors_raw:
        raise ConfigError(f"config key 'session.anchors' must be a non-empty list of 'HH:MM' times, got {anchors_raw!r}")
    anchors = sorted({parse_clock(a, "session.anchors") for a in anchors_raw})
    for a in anchors:
        if not open_sec <= a <= close_sec:
            raise ConfigError(
                f"config key 'session.anchors' has {clock_label(a)}, outside the session "
                f"{clock_label(open_sec)}-{clock_label(close_sec)}"
            )
    session = Session(open_sec, close_sec, tuple(anchors), _int(sess["window_secs"], "session.window_secs", 1))

    routing = raw["routing"]
    steps = routing["strike_step"] or {}
    if symbol not in steps:
        raise ConfigError(
            f"config key 'routing.strike_step' has no step for symbol {symbol}; "
            f"add one, e.g. routing.strike_step.{symbol}=50 (known: {', '.join(sorted(steps))})"
        )
    step = _int(steps[symbol], f"routing.strike_step.{symbol}", 1)

    data = raw["data"]
    tz = data["naive_timezone"]
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(str(tz))
    except Exception:
        raise ConfigError(f"config key 'data.naive_timezone' must be an IANA zone such as Asia/Kolkata, got {tz!r}") from None
    spot_glob = data["spot_glob"]
    if not isinstance(spot_glob, str) or not spot_glob.strip():
        raise ConfigError(f"config key 'data.spot_glob' must be a glob pattern, got {spot_glob!r}")
    spot_glob = spot_glob.replace("{symbol}", symbol)
    if not Path(spot_glob).expanduser().is_absolute():
        spot_glob = str(base / spot_glob)

    cache_dir = raw["cache_dir"]
    cfg = RunConfig(
        symbol=symbol,
        start=start,
        end=end,
        options_dir=_resolve(data["options_dir"], "data.options_dir", base),
        spot_glob=spot_glob,
        calendar_csv=_calendar(data["calendar_csv"], base),
        naive_timezone=str(tz),
        cache_dir=None if cache_dir in (None, "", False) else _resolve(cache_dir, "cache_dir", base),
        results_dir=_resolve(raw["results_dir"], "results_dir", base),
        session=session,
        strike_step=step,
        strikes_each_side=_int(routing["strikes_each_side"], "routing.strikes_each_side", 0),
        expiry_kind=_choice(routing["expiry_kind"], "routing.expiry_kind", EXPIRY_KINDS),
        strategy=strategy_from(raw),
        raw=raw,
        costs=costs_from(raw),
    )
    if check_paths:
        if not cfg.options_dir.is_dir():
            raise ConfigError(f"data folder 'data.options_dir' not found: {cfg.options_dir} (point it at the packed options folder)")
        if not (cfg.options_dir / symbol).is_dir():
            raise ConfigError(f"no options for {symbol}: folder {cfg.options_dir / symbol} not found (check 'data.options_dir' and 'symbol')")
    return cfg
