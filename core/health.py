"""Data-health report: every dropped or repaired row, skipped file, window or day, by kind.

Counts are plain integers keyed by a stable name; a few example messages per kind name
the file or day and say what to do. Nothing here prints.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# name -> what it means, in words a trader reads in the report.
PROBLEMS: dict[str, str] = {
    "null_timestamp": "tick rows with an empty or unparseable timestamp (dropped)",
    "epoch_zero_timestamp": "tick rows stamped 1970-01-01, a vendor placeholder (dropped)",
    "duplicate_row": "exact duplicate tick rows (dropped)",
    "pre_open": "ticks before the session open on a traded day (ignored)",
    "post_close": "ticks after the session close on a traded day (ignored)",
    "null_price": "ticks with an empty, NaN or non-numeric close (price not used, volume kept)",
    "nonpositive_price": "ticks with close <= 0 (price not used, volume kept)",
    "null_volume": "ticks with an empty or non-numeric vol_delta (counted as 0)",
    "negative_volume": "ticks with a negative vol_delta (counted as 0)",
    "bad_file": "tick files that could not be read (skipped)",
    "missing_column": "tick files without a needed column (skipped)",
    "missing_series": "candidate option series with no file or no ticks that day (dropped)",
    "missing_spot_day": "NSE trading days in the range with no spot ticks (not traded)",
    "no_expiry": "trading days with no expiry on or after them in the calendar (not traded)",
    "no_spot_at_anchor": "hour windows with no spot price at the anchor (skipped)",
    "no_candidates": "hour windows where no candidate series had data (skipped)",
    "spot_price_outlier": "spot seconds more than 20% from the day's median, a range no session spans "
                          "(used as they are)",
    "option_price_above_bound": "option seconds whose close no option can trade at: a call above the spot, "
                                "a put above its strike (used as they are)",
    "no_option_price": "signals whose option had no price at the entry bar (no trade)",
    "cache_rebuilt": "per-second cache entries that were unreadable and rebuilt",
    "no_cost_data": "trades whose lot size or charge rate is not in the tables (costs left empty)",
    "iv_fallback": "entries where no implied volatility fits the premium (fixed delta used)",
}

# Facts worth knowing that are not problems with the data.
INFO: dict[str, str] = {
    "trading_days": "days traded (at least one valid spot tick in the session)",
    "windows": "hour windows evaluated",
    "holidays_skipped": "weekdays in the range that are NSE holidays",
    "files_read": "tick files read this run",
    "cache_hits": "tick files served from the per-second cache",
    "calendar_from_folders": "expiries taken from exp= folders because the calendar CSV is missing",
    "cache_unwritable": "runs that could not write the per-second cache (went on without it)",
    "session_ticks": "ticks inside the session on traded days (spot and the candidate series)",
}

def nothing_tested(health: dict, start, end) -> str | None:
    """The sentence for a run whose range (``start`` to ``end``) held no NSE trading day (``health``: a
    run's health json), or None."""
    if health.get("info", {}).get("trading_days") != 0:
        return None
    return f"no NSE trading day from {start} to {end} (weekends and exchange holidays only): nothing was tested"


# Below this many ticks outside the session, a run is too small to tell a shifted clock from a few stray ticks.
CLOCK_SHIFT_MIN_TICKS = 1000


def clock_shift_warning(counts: dict, session_open: str, session_close: str, naive_timezone: str) -> str | None:
    """A warning when most ticks of the traded days fall outside the session (``counts``: a run's
    ``pre_open``, ``post_close`` and ``session_ticks``), the sign of timestamps read in the wrong zone
    (naive UTC read as IST puts the session at 03:45-10:00; IST read as UTC at 14:45-21:00), with the
    setting that likely fixes it; None otherwise."""
    before, after, inside = (int(counts.get(k, 0)) for k in ("pre_open", "post_close", "session_ticks"))
    outside = before + after
    if outside < CLOCK_SHIFT_MIN_TICKS or outside <= inside:
        return None
    share = f"{outside:,} of the {outside + inside:,} ticks on traded days ({100 * outside / (outside + inside):.0f}%)"
    naive_is_ist = naive_timezone in ("Asia/Kolkata", "Asia/Calcutta")
    if before >= after:
        where = f"before the session opens ({session_open} IST): the timestamps look earlier than IST"
        fix = ("if the files hold UTC times without a zone, set data.naive_timezone=UTC" if naive_is_ist else
               f"check data.naive_timezone ({naive_timezone}) against the zone the files' times are in")
    else:
        where = f"after the session closes ({session_close} IST): the timestamps look later than IST"
        fix = ("check that the files' times carry the right zone, or hold IST wall times without one" if naive_is_ist
               else "if the files hold IST times without a zone, set data.naive_timezone=Asia/Kolkata")
    return (f"{share} fall {where}; naive timestamps are read as data.naive_timezone ({naive_timezone}) and "
            f"zoned ones are converted: {fix}, then run again (this run used only the ticks inside the session)")

MAX_MESSAGES_PER_KIND = 5
# Kinds that say whether something happened at all: merging chunk reports keeps the largest.
FLAGS = {"calendar_from_folders", "cache_unwritable"}


@dataclass
class Health:
    """Mutable tally for one run; merge the tallies of chunks with ``merge``."""

    counts: Counter = field(default_factory=Counter)
    messages: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # (tick file, kind) -> the count it added (``add_file``): what a file met again adds nothing
    file_counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, kind: str, n: int = 1, message: str | None = None) -> None:
        if n <= 0:
            return
        if kind not in PROBLEMS and kind not in INFO:
            raise KeyError(f"unknown health kind {kind!r}")
        self.counts[kind] += int(n)
        if message:
            bucket = self.messages.setdefault(kind, [])
            if len(bucket) < MAX_MESSAGES_PER_KIND and message not in bucket:
                bucket.append(message)

    def add_file(self, path: str, kind: str, n: int = 1, message: str | None = None) -> None:
        """``add`` for a count of a whole tick file (its verdict when unreadable, its rows that fall on no
        day): the same file met again, by this tally or by one merged into it (another date chunk of a
        sweep that reads the file too), is counted once, as in a single run."""
        if n <= 0 or (path, kind) in self.file_counts:
            return
        self.file_counts[(path, kind)] = int(n)
        self.add(kind, n, message)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def merge(self, other: "Health") -> None:
        for kind, n in other.counts.items():
            self.counts[kind] = max(self.counts[kind], n) if kind in FLAGS else self.counts[kind] + n
        for key, n in other.file_counts.items():
            if key in self.file_counts:
                self.counts[key[1]] -= n  # a file both tallies counted (add_file): once
            else:
                self.file_counts[key] = n
        for kind, msgs in other.messages.items():
            bucket = self.messages.setdefault(kind, [])
            for m in msgs:
                if len(bucket) < MAX_MESSAGES_PER_KIND and m not in bucket:
                    bucket.append(m)
        for w in other.warnings:
            self.warn(w)

    def problems(self) -> dict[str, int]:
        return {k: int(self.counts[k]) for k in PROBLEMS if self.counts.get(k)}

    def as_dict(self) -> dict:
        """JSON-ready report: problem counts (all kinds, zeros included), info, messages."""
        return {
            "problems": {k: int(self.counts.get(k, 0)) for k in PROBLEMS},
            "info": {k: int(self.counts.get(k, 0)) for k in INFO},
            "messages": {k: list(v) for k, v in sorted(self.messages.items())},
            "warnings": list(self.warnings),
            "explain": {**PROBLEMS, **INFO},
        }
