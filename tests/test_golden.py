"""The public golden case beside the checkout (collected only when present; CI requires it)."""
from __future__ import annotations

import pandas as pd
import pytest

from core import run_backtest
from tests.conftest import CASES, golden_market
from tests.test_regression import check_case


@pytest.fixture(scope="module")
def golden():
    return golden_market()


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_trades(golden, name, tmp_path):
    check_case(golden, name, tmp_path)


def test_golden_health_counts_the_planted_faults(golden):
    problems = run_backtest(golden.config()).health["problems"]
    assert problems["bad_file"] == 1 and problems["missing_series"] == 1
    assert problems["duplicate_row"] > 0 and problems["negative_volume"] > 0
    assert problems["null_price"] > 0 and problems["nonpositive_price"] > 0
    assert problems["pre_open"] > 0 and problems["post_close"] > 0


def test_golden_calendar_agrees_with_the_shipped_one(golden):
    from core.resources import meta_file

    theirs = pd.read_csv(golden.calendar_csv, dtype=str)
    shipped = pd.read_csv(meta_file("expiry_calendar.csv"), dtype=str)
    assert list(theirs.columns) == list(shipped.columns)
    merged = theirs.merge(shipped, on=["Instrument", "Expiry_Type", "Scheduled_Expiry"], suffixes=("_g", "_s"))
    assert len(merged) == len(theirs)
    # The golden example's calendar ignores the 2024-07-17 Muharram holiday; every other row agrees.
    differ = merged[merged["Final_Expiry_g"] != merged["Final_Expiry_s"]]
    assert list(differ["Scheduled_Expiry"]) == ["2024-07-17"]
