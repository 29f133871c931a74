"""The seed's command, kept as a thin front door to the atmburst engine.

    python backtests/atm_volume.py --symbol BANKNIFTY --start 2023-11-01 --end 2023-11-10 \
        [--multiplier 2.0] [--spot-glob "./my_spot/{symbol}/*.parquet"]

Writes trades_*.parquet, summary_*.parquet and health_*.json to backtests/results/.
Every other setting is the default of conf/ (strategy.md section 9); use sweep/main.py for the rest.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweep.errors import reported_as_exit_status, set_up_command
from sweep.plan import Job
from sweep.runner import run_single

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="ATM volume-burst backtest (seed command; same engine as sweep/main.py)")
    p.add_argument("--symbol", default="BANKNIFTY")
    p.add_argument("--start", required=True, help="first trade date YYYY-MM-DD")
    p.add_argument("--end", required=True, help="last trade date YYYY-MM-DD (inclusive)")
    p.add_argument("--multiplier", type=float, default=None, help="signal.multiplier (default 1.5)")
    p.add_argument("--spot-glob", default=None, help="data.spot_glob, {symbol} is substituted")
    p.add_argument("--options-dir", default=None, help="data.options_dir")
    p.add_argument("--calendar-csv", default=None, help="data.calendar_csv")
    p.add_argument("--results-dir", default=str(HERE / "results"))
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> dict:
    cfg: dict = {"symbol": args.symbol, "start": args.start, "end": args.end, "results_dir": args.results_dir}
    data = {k: v for k, v in (("spot_glob", args.spot_glob), ("options_dir", args.options_dir),
                              ("calendar_csv", args.calendar_csv)) if v is not None}
    if data:
        cfg["data"] = data
    if args.multiplier is not None:
        cfg["signal"] = {"multiplier": args.multiplier}
    return cfg


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    set_up_command()
    # The seed command writes files only; MLflow tracking is for sweep/main.py.
    with reported_as_exit_status():
        run_single(Job(0, argv, config_from_args(parse_args(argv)), {"tracking": {"enabled": False}}), Path.cwd())


if __name__ == "__main__":
    main()
