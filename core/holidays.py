"""NSE trading sessions from the maintained exchange calendar (pandas_market_calendars, XNSE).

Importing the calendar library costs most of a second; ``nse_trading_days_cached`` keeps its answer
per calendar year in the cache folder (keyed by the library versions), so a run over years asked
before does not import it.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from pathlib import Path

REGULAR_OPEN_UTC = dt.time(3, 45)  # 09:15 IST
CALENDAR_PACKAGES = ("pandas_market_calendars", "exchange_calendars")


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


def _versions() -> list[str] | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return [f"{name}=={version(name)}" for name in CALENDAR_PACKAGES]
    except PackageNotFoundError:
        return None


def nse_trading_days_cached(start: dt.date, end: dt.date, cache_dir: Path | None) -> frozenset[dt.date] | None:
    """``nse_trading_days``, kept in ``cache_dir``/calendar per (calendar library versions, calendar year),
    so a run over any range within years asked before does not import the library.

    The entries are sealed and written atomically like every cache file; an unusable one is computed again."""
    versions = _versions()
    if cache_dir is None or versions is None:
        return nse_trading_days(start, end)
    sessions: set[dt.date] = set()
    for year in range(start.year, end.year + 1):
        whole = _year_sessions(year, versions, Path(cache_dir))
        if whole is None:
            return None
        sessions.update(d for d in whole if start <= d <= end)
    return frozenset(sessions)


def _year_sessions(year: int, versions: list[str], cache_dir: Path) -> frozenset[dt.date] | None:
    """The regular sessions of one calendar year, from the cache folder or the calendar library."""
    from .cache import atomic_write_bytes, seal, unseal

    ident = json.dumps({"versions": versions, "year": year})
    target = cache_dir / "calendar" / f"xnse-{hashlib.sha256(ident.encode()).hexdigest()[:32]}.json"
    try:
        return frozenset(dt.date.fromisoformat(d) for d in json.loads(unseal(target.read_bytes()))["sessions"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    sessions = nse_trading_days(dt.date(year, 1, 1), dt.date(year, 12, 31))
    if sessions is not None:
        data = seal(json.dumps({"sessions": sorted(d.isoformat() for d in sessions), **json.loads(ident)}).encode())
        try:
            atomic_write_bytes(target, lambda fh: fh.write(data))
        except OSError:
            pass  # a cache that cannot be written is reported by the per-second cache of the same folder
    return sessions
