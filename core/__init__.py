"""atmburst core: the ATM volume-burst backtest on NSE index option ticks.

Public API (notebook friendly, no printing, no global state)::

    from core import run_backtest
    result = run_backtest({"symbol": "BANKNIFTY", "start": "2024-07-01", "end": "2024-07-04"})
    result.trades, result.summary, result.health, result.wall_seconds
    result.write("results/")   # trades_*.parquet, summary_*.parquet, health_*.json
"""
import os as _os

from .config import DEFAULTS, ConfigError, RunConfig, Strategy, load_config
from .engine import BacktestResult, DayMarket, evaluate_day, iter_day_markets, run_backtest

if not _os.environ.get("ATMBURST_LEAN_WORKER"):
    # A run's first conversion to or from numpy (arrow's) imports pandas, 0.13-0.2 s: here, with the engine,
    # instead of inside the first run. Not in a sweep's Ray workers (sweep.fanout sets the variable), which
    # build and evaluate markets and never need it.
    import pandas  # noqa: F401

__all__ = [
    "DEFAULTS", "ConfigError", "RunConfig", "Strategy", "load_config",
    "BacktestResult", "DayMarket", "evaluate_day", "iter_day_markets", "run_backtest",
]
