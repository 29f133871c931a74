from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN = SHARED / "golden"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def golden_dir() -> Path:
    if not (GOLDEN / "data").is_dir():
        pytest.skip("../shared/golden is not present beside this checkout")
    return GOLDEN


def golden_config(golden: Path, **extra) -> dict:
    cfg = {
        "symbol": "BANKNIFTY", "start": "2024-07-01", "end": "2024-07-04",
        "data": {"options_dir": str(golden / "data/packed/options"),
                 "spot_glob": str(golden / "data/packed/spot/{symbol}/**/*.parquet"),
                 "calendar_csv": str(golden / "meta/expiry_calendar.csv")},
        "cache_dir": None,
    }
    cfg.update(extra)
    return cfg
