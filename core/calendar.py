"""NSE index option expiry calendar, built from expiry rules kept as data and the XNSE holidays.

    python -m core.calendar --from 2019-01-01 --to 2026-12-31 --out meta/expiry_calendar.csv

The rules (``meta/expiry_rules.csv``) give, per instrument and expiry type, the scheduled
weekday over a range of scheduled expiry dates (sources in docs/calendar.md).
A weekly expiry is every such weekday; a monthly one the last such weekday of its month.
When the scheduled day is not a regular NSE session, the expiry moves back to the previous
regular session. Other instruments are added as rows of the rules file, not as code.
"""
from __future__ import annotations

import argparse
import calendar as pycal
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

from .holidays import nse_trading_days
from .resources import meta_file

RULES_CSV = meta_file("expiry_rules.csv")
WEEKDAYS = {name: i for i, name in enumerate(pycal.day_name)}
COLUMNS = ["Instrument", "Expiry_Type", "Contract_Month", "Scheduled_Expiry", "Scheduled_Day", "Final_Expiry",
           "Final_Day", "Final_Day_Label", "Shifted", "Days_Moved_Back", "Holiday_on_Scheduled?", "Rule"]


def load_rules(path: Path = RULES_CSV) -> pd.DataFrame:
    """Rules table: Instrument, Expiry_Type (Weekly/Monthly), Weekday, From, To (empty: onward)."""
    rules = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("Instrument", "Expiry_Type", "Weekday", "From", "To"):
        if col not in rules.columns:
            raise ValueError(f"{path}: missing column {col}")
    bad = set(rules["Weekday"]) - set(WEEKDAYS)
    if bad:
        raise ValueError(f"{path}: unknown weekday(s) {sorted(bad)}")
    return rules


def scheduled_dates(expiry_type: str, weekday: int, first: dt.date, last: dt.date) -> list[dt.date]:
    """Scheduled expiries in [first, last]: every ``weekday`` (Weekly) or the last one of each month (Monthly)."""
    out = []
    if expiry_type.lower() == "weekly":
        d = first + dt.timedelta(days=(weekday - first.weekday()) % 7)
        while d <= last:
            out.append(d)
            d += dt.timedelta(days=7)
        return out
    year, month = first.year, first.month
    while dt.date(year, month, 1) <= last:
        end = dt.date(year, month, pycal.monthrange(year, month)[1])
        d = end - dt.timedelta(days=(end.weekday() - weekday) % 7)
        if first <= d <= last:
            out.append(d)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def build_calendar(start: dt.date, end: dt.date, instruments: list[str] | None = None,
                   rules: pd.DataFrame | None = None) -> pd.DataFrame:
    """Expiry rows with scheduled dates in [start, end], sorted by instrument, final expiry, type."""
    rules = load_rules() if rules is None else rules
    sessions = nse_trading_days(start - dt.timedelta(days=30), end)
    if sessions is None:
        raise RuntimeError("the XNSE calendar of pandas_market_calendars is not available")
    rows = []
    for rule in rules.itertuples(index=False):
        if instruments and rule.Instrument.upper() not in instruments:
            continue
        first = max(start, dt.date.fromisoformat(rule.From))
        last = min(end, dt.date.fromisoformat(rule.To)) if rule.To else end
        for sched in scheduled_dates(rule.Expiry_Type, WEEKDAYS[rule.Weekday], first, last):
            final = sched
            while final not in sessions:
                final -= dt.timedelta(days=1)
            moved = (sched - final).days
            rows.append({
                "Instrument": rule.Instrument.upper(),
                "Expiry_Type": rule.Expiry_Type.capitalize(),
                "Contract_Month": f"{sched:%Y-%m}",
                "Scheduled_Expiry": sched.isoformat(),
                "Scheduled_Day": f"{sched:%A}",
                "Final_Expiry": final.isoformat(),
                "Final_Day": f"{final:%A}",
                "Final_Day_Label": f"{final:%A}" if not moved else f"{final:%A} (moved from {sched:%A})",
                "Shifted": "Yes" if moved else "No",
                "Days_Moved_Back": moved,
                "Holiday_on_Scheduled?": moved > 0,
                "Rule": f"{rule.Instrument.upper()} {rule.Expiry_Type.lower()}",
            })
    frame = pd.DataFrame(rows, columns=COLUMNS)
    order = {"Monthly": 0, "Weekly": 1}
    frame["_t"] = frame["Expiry_Type"].map(order)
    frame = frame.sort_values(["Instrument", "Final_Expiry", "_t"], kind="stable").drop(columns="_t")
    return frame.reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the NSE index option expiry calendar CSV")
    p.add_argument("--from", dest="start", default="2019-01-01")
    p.add_argument("--to", dest="end", default="2026-12-31")
    p.add_argument("--out", default="meta/expiry_calendar.csv")
    p.add_argument("--symbols", default="BANKNIFTY,NIFTY", help="comma-separated instruments of the rules file")
    p.add_argument("--rules", default=str(RULES_CSV))
    args = p.parse_args(argv)
    try:
        start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
        frame = build_calendar(start, end, [s.strip().upper() for s in args.symbols.split(",")],
                               load_rules(Path(args.rules)))
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"atmburst calendar: {exc}", file=sys.stderr)
        return 2
    from .cache import atomic_write_bytes

    out = Path(args.out)
    atomic_write_bytes(out, lambda fh: fh.write(frame.to_csv(index=False).encode()))
    shifted = int((frame["Shifted"] == "Yes").sum())
    print(f"wrote {len(frame)} expiries ({shifted} moved for holidays) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
