"""Shared fixtures: the project's own regression market, and the optional public golden case.

The regression market is made at test time by ``core.synth`` (3 days, seed 11) with the vendor
faults of ``core.synth.inject_faults``; its expected trades are committed in
``tests/fixtures/regression``. The golden case beside the checkout (``../shared/golden``, or
``$ATMBURST_GOLDEN``) is an extra case: its tests are collected only when it is there, and CI
sets ``ATMBURST_REQUIRE_GOLDEN=1`` so that its absence fails instead.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("ATMBURST_GOLDEN") or ROOT.parent / "shared" / "golden")
REGRESSION_EXPECTED = ROOT / "tests" / "fixtures" / "regression"

# Both cases are run with each of these configurations (all else default).
CASES = {
    "default": {},
    "long_option_close_m2.5": {"risk": {"side": "long"}, "pnl_mode": {"name": "option_close"},
                               "signal": {"multiplier": 2.5}},
}
CASE_OVERRIDES = {"default": [], "long_option_close_m2.5": ["risk=long", "pnl_mode=option_close",
                                                            "signal.multiplier=2.5"]}


@dataclass(frozen=True)
class Market:
    """A packed market on disk and the trades expected from it."""

    name: str
    options_dir: Path
    spot_dir: Path
    calendar_csv: Path
    expected_dir: Path
    start: str
    end: str

    @property
    def stem(self) -> str:
        return f"BANKNIFTY_{self.start}_{self.end}"

    def config(self, **extra) -> dict:
        cfg = {"symbol": "BANKNIFTY", "start": self.start, "end": self.end,
               "data": {"options_dir": str(self.options_dir),
                        "spot_glob": str(self.spot_dir / "{symbol}/**/*.parquet"),
                        "calendar_csv": str(self.calendar_csv)},
               "cache_dir": None}
        cfg.update(extra)
        return cfg

    def overrides(self) -> list[str]:
        """The same data settings as Hydra overrides."""
        return [f"start={self.start}", f"end={self.end}", f"data.options_dir={self.options_dir}",
                f"data.spot_glob='{self.spot_dir}/{{symbol}}/**/*.parquet'",
                f"data.calendar_csv={self.calendar_csv}"]

    def expected(self, case: str):
        import pandas as pd

        parquet = self.expected_dir / f"trades_{case}.parquet"
        if parquet.is_file():
            return pd.read_parquet(parquet)
        return read_expected_csv(self.expected_dir / f"trades_{case}.csv")


def fresh_process_json(code: str, env: dict | None = None):
    """Run ``code`` in a fresh Python process from the checkout (``env`` added to this environment) and
    return the JSON value its last printed line holds; a failing process fails the test with its stderr."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def read_expected_csv(path: Path):
    """Expected trades kept as CSV (floats written with repr, so they read back exactly)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={"anchor": str, "opt_type": str, "side": str, "exit_reason": str,
                                     "symbol": str})
    for col in ("trade_date", "expiry"):
        frame[col] = pd.to_datetime(frame[col]).dt.date
    for col in ("entry_ts", "exit_ts", "signal_ts"):
        frame[col] = pd.to_datetime(frame[col]).dt.tz_convert("Asia/Kolkata").dt.as_unit("us")
    return frame


def make_regression_market(out: Path) -> Market:
    """Generate the regression market into ``out`` (deterministic)."""
    from core.synth import generate, inject_faults

    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 3), out, seed=11, workers=1)
    inject_faults(out, seed=11)
    return regression_market_at(out)


def regression_market_at(out: Path) -> Market:
    return Market("regression", out / "packed/options", out / "packed/spot", out / "meta/expiry_calendar.csv",
                  REGRESSION_EXPECTED, "2024-07-01", "2024-07-03")


def golden_market() -> Market:
    return Market("golden", GOLDEN / "data/packed/options", GOLDEN / "data/packed/spot",
                  GOLDEN / "meta/expiry_calendar.csv", GOLDEN / "expected", "2024-07-01", "2024-07-04")


def golden_present() -> bool:
    return (GOLDEN / "data").is_dir()


@pytest.fixture(scope="session")
def regression(tmp_path_factory) -> Market:
    return make_regression_market(tmp_path_factory.mktemp("regression"))


def pytest_ignore_collect(collection_path, config):
    """Golden tests exist only where the golden case does (CI requires it)."""
    if collection_path.name == "test_golden.py" and not golden_present():
        if os.environ.get("ATMBURST_REQUIRE_GOLDEN") == "1":
            raise pytest.UsageError(f"ATMBURST_REQUIRE_GOLDEN=1 but the golden case is not at {GOLDEN}")
        return True
    return None
