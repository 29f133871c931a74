"""The one-command demo: make two weeks of synthetic BANKNIFTY ticks, sweep the multiplier on them.

    python -m sweep.demo [--out demo] [--start 2024-07-01] [--end 2024-07-12]

The data is SYNTHETIC (core.synth) and every output says so. The sweep runs through the same
command a user types (python sweep/main.py -m signal.multiplier=1.5,2,3 ...), with Ray and MLflow,
so the demo shows the real interface.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from sweep.errors import outlive_closed_output

ROOT = Path(__file__).resolve().parents[1]


def ensure_data(out: Path, symbol: str, start: str, end: str, seed: int) -> dict:
    """Generate the synthetic market unless the same one is already there."""
    from core.synth import generate

    marker = out / "data" / "packed" / "SYNTHETIC.json"
    if marker.is_file():
        manifest = json.loads(marker.read_text())
        if (manifest.get("symbol"), manifest.get("start"), manifest.get("end"), manifest.get("seed")) == (
                symbol, start, end, seed):
            print(f"synthetic market already in {out / 'data'} (delete it to regenerate)")
            return manifest
    manifest = generate(symbol, dt.date.fromisoformat(start), dt.date.fromisoformat(end), out / "data", seed)
    print(f"made a SYNTHETIC {symbol} market {start}..{end}: {manifest['trading_days']} trading days, "
          f"{manifest['option_ticks']:,} option ticks in {manifest['seconds']:.1f} s -> {out / 'data'}")
    return manifest


def sweep_command(out: Path, symbol: str, start: str, end: str, extra: list[str]) -> list[str]:
    """The card's sweep, on the demo data, tracked in a store inside the demo folder."""
    data = out / "data"
    return [sys.executable, str(ROOT / "sweep" / "main.py"), "-m", "signal.multiplier=1.5,2,3",
            f"symbol={symbol}", f"start={start}", f"end={end}",
            f"data.options_dir={data / 'packed' / 'options'}",
            f"data.spot_glob='{data / 'packed' / 'spot'}/{{symbol}}/**/*.parquet'",
            f"data.calendar_csv={data / 'meta' / 'expiry_calendar.csv'}",
            f"cache_dir={out / 'cache'}", f"hydra.sweep.dir={out / 'runs'}",
            f"tracking.uri=sqlite:///{out / 'mlflow.db'}", f"tracking.artifacts={out / 'mlartifacts'}",
            "sweep.resume=false", *extra]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="atmburst demo on a synthetic market")
    p.add_argument("--out", default="demo")
    p.add_argument("--symbol", default="BANKNIFTY")
    p.add_argument("--start", default="2024-07-01")
    p.add_argument("--end", default="2024-07-12")
    p.add_argument("--seed", type=int, default=7)
    args, extra = p.parse_known_args(argv)
    outlive_closed_output()
    out = Path(args.out).resolve()
    started = time.perf_counter()
    ensure_data(out, args.symbol.upper(), args.start, args.end, args.seed)
    cmd = sweep_command(out, args.symbol.upper(), args.start, args.end, extra)
    print("running:", " ".join(cmd[1:]), flush=True)
    code = subprocess.call(cmd, cwd=Path.cwd())
    if code:
        return code
    # The sweep itself printed where the comparison page, the best report and the MLflow UI are.
    print(f"\ndemo done in {time.perf_counter() - started:.1f} s on SYNTHETIC data ({out / 'data'}); "
          f"files per combination in {out / 'runs'}/<n>/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
