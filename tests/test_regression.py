"""The project's own regression market (synthetic, with vendor faults): both configurations give the
committed trades, with the exact output schema, the same from a warm cache, and every planted fault
counted. The same checks run on the public golden case in test_golden.py when it is present."""
from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core import run_backtest
from core.outputs import TRADE_SCHEMA
from tests.conftest import CASES, Market

SPEC_COLUMNS = ["symbol", "trade_date", "anchor", "expiry", "opt_type", "strike", "side", "entry_ts", "exit_ts",
                "entry_spot", "exit_spot", "delta_used", "entry_opt", "exit_opt", "pnl_pts", "exit_reason"]
EXTRA_COLUMNS = ["signal_ts", "burst_vol", "base_vol"]


def assert_trades_match(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(got) == len(expected)
    for col in SPEC_COLUMNS + EXTRA_COLUMNS:
        a, b = got[col].reset_index(drop=True), expected[col].reset_index(drop=True)
        if a.dtype.kind == "f":
            assert ((a - b).abs() <= 1e-6).all(), col
        else:
            assert list(a) == list(b), col


def check_case(market: Market, name: str, tmp_path) -> pd.DataFrame:
    """Trades of ``name`` on ``market`` equal the expected ones, cold and warm; returns them."""
    overrides = CASES[name]
    result = run_backtest(market.config(cache_dir=str(tmp_path / "cache"), **overrides))
    assert_trades_match(result.trades, market.expected(name))
    paths = result.write(tmp_path / "out")
    schema = pq.read_schema(paths["trades"])
    for col in SPEC_COLUMNS:
        assert schema.field(col).type == TRADE_SCHEMA.field(col).type, col
    warm = run_backtest(market.config(cache_dir=str(tmp_path / "cache"), **overrides))
    pd.testing.assert_frame_equal(warm.trades, result.trades)
    assert warm.health["problems"] == result.health["problems"]
    assert warm.health["info"]["files_read"] == 0 and warm.health["info"]["cache_hits"] > 0
    return result.trades


@pytest.mark.parametrize("name", sorted(CASES))
def test_regression_trades(regression, name, tmp_path):
    trades = check_case(regression, name, tmp_path)
    assert len(trades) >= 10 and trades["trade_date"].nunique() == 3


def test_regression_health_counts_every_planted_fault(regression):
    problems = run_backtest(regression.config()).health["problems"]
    for kind in ("bad_file", "missing_series", "duplicate_row", "negative_volume", "null_volume", "null_price",
                 "nonpositive_price", "pre_open", "post_close", "null_timestamp", "epoch_zero_timestamp"):
        assert problems[kind] > 0, kind
    assert problems["bad_file"] == 1
