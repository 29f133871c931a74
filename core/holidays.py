"""NSE trading sessions from the maintained exchange calendar (pandas_market_calendars, XNSE)."""
from __future__ import annotations

import datetime as dt
import functools


@functools.lru_cache(maxsize=64)
def nse_trading_days(start: dt.date, end: dt.date) -> frozenset[dt.date] | None:
    """Regular NSE sessions in [start, end]; None if the calendar cannot answer for that range.

    Special sessions on holidays (Diwali Muhurat trading) are not counted as sessions.
    """
    try:
        import pandas_market_calendars as mcal

        cal = mcal.get_calendar("XNSE")
        days = cal.valid_days(start_date=start.isoformat(), end_date=end.isoformat())
    except Exception:
        return None
    return frozenset(d.date() for d in days)
