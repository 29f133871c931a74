"""atmburst core: the ATM volume-burst backtest on NSE index option ticks.

Public API (notebook friendly, no printing, no global state)::

    from core import run_backtest
    result = run_backtest({"symbol": "BANKNIFTY", "start": "2024-07-01", "end": "2024-07-04"})
    result.trades, result.summary, result.health, result.wall_seconds
    result.write("results/")   # trades_*.parquet, summary_*.parquet, health_*.json
"""
from .config import DEFAULTS, ConfigError, RunConfig, Strategy, load_config
from .engine import BacktestResult, DayMarket, evaluate_day, iter_day_markets, run_backtest

__all__ = [
    "DEFAULTS", "ConfigError", "RunConfig", "Strategy", "load_config",
    "BacktestResult", "DayMarket", "evaluate_day", "iter_day_markets", "run_backtest",
]
