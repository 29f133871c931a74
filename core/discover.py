"""Find the data a run needs: spot files, option series files, expiry dates (strategy.md §1.1-1.3)."""
from __future__ import annotations

import csv
import datetime as dt
import glob
import os
import re
from pathlib import Path

import numpy as np

from .config import ConfigError

_DATE_IN_PATH = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_EXP_DIR = re.compile(r"^exp=(\d{4}-\d{2}-\d{2})$")
_STRIKE_FILE = re.compile(r"^strike=(\d+)(?:\.0+)?\.parquet$")

CALENDAR_COLUMNS = ("Instrument", "Final_Expiry", "Expiry_Type")


def path_date(path: str) -> dt.date | None:
    """The date a path names with ``date=YYYY-MM-DD`` (the default spot layout), if any."""
    m = _DATE_IN_PATH.search(path)
    if not m:
        return None
    try:
        return dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None


def spot_files(spot_glob: str, start: dt.date, end: dt.date) -> list[str]:
    """Spot files matched by ``spot_glob``, sorted; files whose path names a ``date=``
    outside [start, end] are skipped without being opened."""
    files = sorted(f for f in glob.glob(spot_glob, recursive=True) if os.path.isfile(f))
    if not files:
        raise ConfigError(f"data.spot_glob matched no files: {spot_glob} (check the path and the {{symbol}} placeholder)")
    kept = []
    for f in files:
        d = path_date(f)
        if d is not None and not (start <= d <= end):
            continue
        kept.append(f)
    return kept


def series_path(options_dir: Path, symbol: str, expiry: dt.date, opt_type: str, strike: int) -> Path:
    """Path of one option series in the packed layout."""
    return (options_dir / symbol / f"{expiry:%Y%m}" / f"exp={expiry:%Y-%m-%d}"
            / f"type={opt_type}" / f"strike={strike}.parquet")


def expiry_series(options_dir: Path, symbol: str, expiry: dt.date) -> dict[tuple[str, int], str]:
    """Every series file of one expiry: (opt_type, strike) -> path (one directory listing per type)."""
    out: dict[tuple[str, int], str] = {}
    base = options_dir / symbol / f"{expiry:%Y%m}" / f"exp={expiry:%Y-%m-%d}"
    for opt_type in ("CE", "PE"):
        folder = base / f"type={opt_type}"
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            m = _STRIKE_FILE.match(entry.name)
            if m:
                out[(opt_type, int(m.group(1)))] = entry.path
    return out


def expiries_from_folders(options_dir: Path, symbol: str) -> np.ndarray:
    """Expiry dates named by ``exp=`` folders (used when the calendar CSV is missing)."""
    found = set()
    root = options_dir / symbol
    for month in sorted(os.scandir(root), key=lambda e: e.name) if root.is_dir() else []:
        if not month.is_dir():
            continue
        for sub in os.scandir(month.path):
            m = _EXP_DIR.match(sub.name)
            if m and sub.is_dir():
                found.add(dt.date.fromisoformat(m.group(1)))
    return np.array(sorted(found), dtype="datetime64[D]")


def read_calendar_rows(csv_path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV file as text, blank lines skipped; ConfigError when it cannot be read or a
    row has more fields than the header (a row with fewer is padded with empty fields)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            lines = [row for row in csv.reader(fh) if any(field.strip() for field in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"data.calendar_csv {csv_path}: cannot read it as CSV ({exc})") from None
    if not lines:
        raise ConfigError(f"data.calendar_csv {csv_path}: cannot read it as CSV (the file is empty)")
    header, rows = lines[0], lines[1:]
    for number, row in enumerate(rows, start=2):
        if len(row) > len(header):
            raise ConfigError(f"data.calendar_csv {csv_path}: cannot read it as CSV (row {number} of its non-blank "
                              f"lines has {len(row)} fields, the header {len(header)})")
    return header, [row + [""] * (len(header) - len(row)) for row in rows]


def parse_expiry_dates(text: list[str]) -> list[dt.date | None]:
    """Dates written YYYY-MM-DD, or failing that in another spelling pandas reads (e.g. with a time, or
    03-Jul-2024: the date part); None where neither reads."""
    dates: list[dt.date | None] = []
    for value in text:
        try:
            dates.append(dt.datetime.strptime(value, "%Y-%m-%d").date())
        except ValueError:
            dates.append(None)
    unread = [i for i, d in enumerate(dates) if d is None]
    if unread:  # rare: pandas (imported only here) for other spellings
        import pandas as pd

        parsed = pd.to_datetime(pd.Series([text[i] for i in unread], dtype=object), errors="coerce", format="mixed")
        for i, stamp in zip(unread, parsed):
            dates[i] = None if pd.isna(stamp) else stamp.date()
    return dates


def load_calendar(csv_path: Path, symbol: str, expiry_kind: str) -> np.ndarray:
    """Sorted unique ``Final_Expiry`` dates of ``symbol`` (of one ``Expiry_Type`` unless nearest)."""
    header, rows = read_calendar_rows(csv_path)
    missing = [c for c in CALENDAR_COLUMNS if c not in header]
    if missing:
        raise ConfigError(f"data.calendar_csv {csv_path}: missing column(s) {', '.join(missing)} "
                          f"(needs {', '.join(CALENDAR_COLUMNS)})")
    instrument, final, kind = (header.index(c) for c in CALENDAR_COLUMNS)
    rows = [r for r in rows if r[instrument].strip().upper() == symbol
            and (expiry_kind == "nearest" or r[kind].strip().lower() == expiry_kind)]
    text = [r[final] for r in rows]
    dates = parse_expiry_dates([t.strip() for t in text])
    bad = [t for t, d in zip(text, dates) if d is None]
    if bad:
        raise ConfigError(f"data.calendar_csv {csv_path}: Final_Expiry {bad[0]!r} is not a date YYYY-MM-DD")
    return np.unique(np.array(dates, dtype="datetime64[D]"))


def data_fingerprint(spot: list[str], options_dir: Path, symbol: str, expiries: list[dt.date],
                     calendar_csv: Path) -> str:
    """Hash of the names, sizes and modification times of the files a run may read."""
    import hashlib

    h = hashlib.sha256()
    paths = list(spot) + [str(calendar_csv)]
    for expiry in expiries:
        paths += sorted(expiry_series(options_dir, symbol, expiry).values())
    for path in paths:
        try:
            st = os.stat(path)
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path}|missing\n".encode())
    return h.hexdigest()[:16]


def nearest_expiry(expiries: np.ndarray, day: dt.date) -> dt.date | None:
    """Smallest expiry on or after ``day`` (strategy.md §3), or None."""
    i = int(np.searchsorted(expiries, np.datetime64(day, "D"), "left"))
    return expiries[i].astype(dt.date) if i < len(expiries) else None
