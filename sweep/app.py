"""The thin shell between a composed config and the core: validate, run, write, print."""
from __future__ import annotations

import sys
from pathlib import Path

from core import ConfigError, run_backtest
from core.console import format_result

# Keys of the Hydra config that steer the shell, not the backtest.
SHELL_KEYS = ("quiet", "tracking", "sweep", "ray")


def split_config(plain: dict) -> tuple[dict, dict]:
    """(engine config, shell settings) from a plain composed config."""
    engine = dict(plain)
    shell = {k: engine.pop(k) for k in SHELL_KEYS if k in engine}
    return engine, shell


def fail(message: str, code: int = 2) -> None:
    """One line on stderr and exit (no traceback)."""
    print(f"atmburst: {message}", file=sys.stderr)
    raise SystemExit(code)


def run_single(engine_cfg: dict, base_dir: Path, quiet: bool = False) -> dict:
    """Run one backtest, write its files, print the account; return the output paths."""
    try:
        result = run_backtest(engine_cfg, base_dir=base_dir)
    except ConfigError as exc:
        fail(f"config error: {exc}")
    paths = result.write()
    if not quiet:
        print(format_result(result, paths))
    return paths
