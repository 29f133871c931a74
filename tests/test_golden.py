"""The public golden case of ../shared/golden: both configs of its README give the expected trades."""
from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core import run_backtest
from core.outputs import TRADE_SCHEMA
from tests.conftest import golden_config

SPEC_COLUMNS = ["symbol", "trade_date", "anchor", "expiry", "opt_type", "strike", "side", "entry_ts", "exit_ts",
                "entry_spot", "exit_spot", "delta_used", "entry_opt", "exit_opt", "pnl_pts", "exit_reason"]

CASES = {
    "default": {},
    "long_option_close_m2.5": {"risk": {"side": "long"}, "pnl_mode": {"name": "option_close"},
                               "signal": {"multiplier": 2.5}},
}


def assert_trades_match(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(got) == len(expected)
    for col in SPEC_COLUMNS + ["signal_ts", "burst_vol", "base_vol"]:
        a, b = got[col].reset_index(drop=True), expected[col].reset_index(drop=True)
        if a.dtype.kind == "f":
            assert ((a - b).abs() <= 1e-6).all(), col
        else:
            assert list(a) == list(b), col


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_trades(golden_dir, name, tmp_path):
    overrides = CASES[name]
    result = run_backtest(golden_config(golden_dir, cache_dir=str(tmp_path / "cache"), **overrides))
    expected = pd.read_parquet(golden_dir / "expected" / f"trades_{name}.parquet")
    assert_trades_match(result.trades, expected)
    # Written files carry the exact SPEC 8 schema.
    paths = result.write(tmp_path / "out")
    schema = pq.read_schema(paths["trades"])
    for col in SPEC_COLUMNS:
        assert schema.field(col).type == TRADE_SCHEMA.field(col).type, col
    # Warm run from the cache gives the same trades and the same health report.
    warm = run_backtest(golden_config(golden_dir, cache_dir=str(tmp_path / "cache"), **overrides))
    pd.testing.assert_frame_equal(warm.trades, result.trades)
    assert warm.health["problems"] == result.health["problems"]
    assert warm.health["info"]["files_read"] == 0 and warm.health["info"]["cache_hits"] > 0


def test_golden_health_counts_the_planted_faults(golden_dir):
    problems = run_backtest(golden_config(golden_dir)).health["problems"]
    assert problems["bad_file"] == 1 and problems["missing_series"] == 1
    assert problems["duplicate_row"] > 0 and problems["negative_volume"] > 0
    assert problems["null_price"] > 0 and problems["nonpositive_price"] > 0
    assert problems["pre_open"] > 0 and problems["post_close"] > 0
