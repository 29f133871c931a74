"""Expiry calendar builder: rules as data, XNSE holidays, known holiday shifts, the shipped CSV."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from core.calendar import build_calendar, main, scheduled_dates
from tests.conftest import ROOT

D = dt.date.fromisoformat


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    return pd.read_csv(ROOT / "meta/expiry_calendar.csv", dtype=str)


def final(frame, symbol, kind, scheduled):
    rows = frame[(frame.Instrument == symbol) & (frame.Expiry_Type == kind) & (frame.Scheduled_Expiry == scheduled)]
    assert len(rows) == 1, (symbol, kind, scheduled)
    return rows.iloc[0]


@pytest.mark.parametrize("symbol,kind,scheduled,expected", [
    ("NIFTY", "Weekly", "2024-04-11", "2024-04-10"),      # Id-ul-Fitr (Thursday holiday -> Wednesday)
    ("NIFTY", "Weekly", "2024-08-15", "2024-08-14"),      # Independence Day
    ("NIFTY", "Monthly", "2023-03-30", "2023-03-29"),     # Ram Navami
    ("BANKNIFTY", "Monthly", "2023-03-30", "2023-03-29"),
    ("BANKNIFTY", "Weekly", "2024-07-17", "2024-07-16"),  # Muharram (Wednesday weekly -> Tuesday)
    ("BANKNIFTY", "Monthly", "2024-12-25", "2024-12-24"),  # Christmas
    ("NIFTY", "Weekly", "2025-10-21", "2025-10-20"),      # Diwali: only a Muhurat evening session
    ("NIFTY", "Monthly", "2026-11-24", "2026-11-23"),     # Guru Nanak Jayanti
    ("NIFTY", "Weekly", "2024-07-04", "2024-07-04"),      # an ordinary Thursday
])
def test_known_expiries(shipped, symbol, kind, scheduled, expected):
    row = final(shipped, symbol, kind, scheduled)
    assert row.Final_Expiry == expected
    moved = (D(scheduled) - D(expected)).days
    assert row.Shifted == ("Yes" if moved else "No") and int(row.Days_Moved_Back) == moved


def test_rule_periods(shipped):
    bn = shipped[shipped.Instrument == "BANKNIFTY"]
    weekly = bn[bn.Expiry_Type == "Weekly"].Scheduled_Expiry
    assert weekly.max() == "2024-11-13"  # BANKNIFTY weeklies discontinued
    assert set(pd.to_datetime(bn[(bn.Expiry_Type == "Monthly") & (bn.Scheduled_Expiry >= "2025-09-30")]
                              .Scheduled_Expiry).dt.day_name()) == {"Tuesday"}
    nifty_weekly = shipped[(shipped.Instrument == "NIFTY") & (shipped.Expiry_Type == "Weekly")]
    assert nifty_weekly.Scheduled_Expiry.min() == "2019-02-14"
    # A monthly expiry is also listed as a weekly one while weeklies exist.
    monthly = final(shipped, "NIFTY", "Monthly", "2024-07-25")
    assert final(shipped, "NIFTY", "Weekly", "2024-07-25").Final_Expiry == monthly.Final_Expiry


def test_every_final_expiry_is_a_regular_session(shipped):
    from core.holidays import nse_trading_days

    sessions = nse_trading_days(D("2018-12-01"), D("2026-12-31"))
    assert all(D(d) in sessions for d in shipped.Final_Expiry)


def test_scheduled_dates_monthly_is_last_weekday_of_month():
    assert scheduled_dates("Monthly", 1, D("2025-09-01"), D("2025-12-31")) == [
        D("2025-09-30"), D("2025-10-28"), D("2025-11-25"), D("2025-12-30")]
    assert scheduled_dates("Weekly", 2, D("2024-07-01"), D("2024-07-20")) == [D("2024-07-03"), D("2024-07-10"),
                                                                               D("2024-07-17")]


def test_shipped_csv_is_what_the_builder_makes(shipped):
    built = build_calendar(D("2019-01-01"), D("2026-12-31"), ["BANKNIFTY", "NIFTY"]).astype(str)
    pd.testing.assert_frame_equal(built.reset_index(drop=True), shipped.reset_index(drop=True), check_dtype=False)


def test_cli_writes_csv(tmp_path, capsys):
    out = tmp_path / "cal.csv"
    assert main(["--from", "2024-07-01", "--to", "2024-07-31", "--out", str(out), "--symbols", "BANKNIFTY"]) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 6 and "moved for holidays" in capsys.readouterr().out
    assert main(["--from", "2024-07-01", "--to", "nope", "--out", str(out)]) == 2


def test_sessions_are_kept_in_the_cache_folder(tmp_path, monkeypatch):
    import core.holidays as holidays

    start, end = dt.date(2024, 7, 1), dt.date(2024, 7, 31)
    fresh = holidays.nse_trading_days_cached(start, end, tmp_path)
    assert fresh == holidays.nse_trading_days(start, end) and dt.date(2024, 7, 17) not in fresh  # Muharram
    (entry,) = (tmp_path / "calendar").glob("xnse-*.json")

    def refuse(*args):
        raise AssertionError("the calendar library was asked again")

    monkeypatch.setattr(holidays, "nse_trading_days", refuse)
    assert holidays.nse_trading_days_cached(start, end, tmp_path) == fresh
    # any other range within the year is answered from the same entry (the year's sessions, cut to the range)
    other_start, other_end = dt.date(2024, 3, 1), dt.date(2024, 12, 31)
    cut = holidays.nse_trading_days_cached(other_start, other_end, tmp_path)
    monkeypatch.undo()
    assert cut == holidays.nse_trading_days(other_start, other_end) and min(cut) >= other_start
    monkeypatch.setattr(holidays, "nse_trading_days", refuse)
    entry.write_bytes(entry.read_bytes()[:-3])  # damaged: asked again and rewritten
    monkeypatch.undo()
    assert holidays.nse_trading_days_cached(start, end, tmp_path) == fresh
    monkeypatch.setattr(holidays, "nse_trading_days", refuse)
    assert holidays.nse_trading_days_cached(start, end, tmp_path) == fresh
