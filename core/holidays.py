"""NSE trading sessions from the maintained exchange calendar (pandas_market_calendars, XNSE)."""
from __future__ import annotations

import datetime as dt
import functools

REGULAR_OPEN_UTC = dt.time(3, 45)  # 09:15 IST


@functools.lru_cache(maxsize=64)
def nse_trading_days(start: dt.date, end: dt.date) -> frozenset[dt.date] | None:
    """Regular NSE sessions in [start, end]; None if the calendar cannot answer for that range.

    A special session on a holiday (Diwali Muhurat trading, an evening hour) is not a
    regular session: such a day counts as a holiday, for trading and for expiries.
    """
    try:
        import pandas as pd
        import pandas_market_calendars as mcal

        schedule = mcal.get_calendar("XNSE").schedule(start_date=start.isoformat(), end_date=end.isoformat())
        if schedule.empty:  # a weekend or holiday-only range
            return frozenset()
        opens = pd.to_datetime(schedule["market_open"], utc=True)
        regular = (opens.dt.time == REGULAR_OPEN_UTC).to_numpy()
        return frozenset(d.date() for d in schedule.index[regular])
    except Exception:
        return None
