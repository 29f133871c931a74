"""Fault injection: damaged, unwritable or unreadable caches, passing read errors, full disks,
integer epochs of every unit, bad calendars and globs. Each run must finish with the clean trades
(or stop with one line, exit 2) and count what happened."""
from __future__ import annotations

import datetime as dt
import errno
import os
import stat

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import core.cache as cache_mod
from core import run_backtest
from core.synth import generate


def _entries(cache_dir):
    return [p for p in cache_dir.rglob("*") if p.is_file() and not p.name.startswith(".")]


def test_damaged_cache_entries_are_rebuilt_with_a_warning(regression, tmp_path):
    cache = tmp_path / "cache"
    clean = run_backtest(regression.config(cache_dir=str(cache)))
    entries = _entries(cache)
    per_file = [p for p in entries if p.suffix == ".sec"]  # one per folder of tick files, beside the market cache's
    assert len(per_file) == 5 and len(entries) > len(per_file)  # 3 days' spot folders, the expiry's CE and PE
    for path in entries:  # 16 bytes changed in the middle of every cache file
        data = bytearray(path.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 16] = bytes(b ^ 0x5A for b in data[mid:mid + 16])
        path.write_bytes(bytes(data))
    damaged = run_backtest(regression.config(cache_dir=str(cache)))
    pd.testing.assert_frame_equal(damaged.trades, clean.trades)
    assert damaged.health["problems"]["cache_rebuilt"] >= len(per_file)
    assert any("checksum mismatch" in w for w in damaged.health["warnings"])
    healed = run_backtest(regression.config(cache_dir=str(cache)))
    assert healed.health["problems"]["cache_rebuilt"] == 0 and healed.health["info"]["files_read"] == 0
    pd.testing.assert_frame_equal(healed.trades, clean.trades)


def test_cache_files_and_folders_respect_the_umask(regression, tmp_path):
    old = os.umask(0o022)
    try:
        run_backtest(regression.config(cache_dir=str(tmp_path / "cache"), start="2024-07-01", end="2024-07-01"))
    finally:
        os.umask(old)
    for path in (tmp_path / "cache").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o044 == 0o044, (path, oct(mode))  # readable by the group and others


def test_a_passing_read_error_is_not_remembered(regression, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    clean = run_backtest(regression.config())
    used = [str(p) for p in regression.options_dir.rglob("*.parquet")]
    victim = next(p for p in sorted(used) if "exp=2024-07-03" in p and "44000" in p)
    real = pq.ParquetFile

    def refuse(path, *args, **kwargs):
        if str(path) == victim:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr("core.ticks.pq.ParquetFile", refuse)
    first = run_backtest(regression.config(cache_dir=str(cache)))
    assert first.health["problems"]["bad_file"] == clean.health["problems"]["bad_file"] + 1
    assert any("cannot be read now" in m for m in first.health["messages"]["bad_file"])
    monkeypatch.setattr("core.ticks.pq.ParquetFile", real)
    second = run_backtest(regression.config(cache_dir=str(cache)))
    assert second.health["problems"] == clean.health["problems"]
    pd.testing.assert_frame_equal(second.trades, clean.trades)


@pytest.mark.parametrize("how", ["not_a_folder", "disk_full"])
def test_a_cache_that_cannot_be_written_costs_nothing(regression, tmp_path, monkeypatch, how):
    clean = run_backtest(regression.config())
    if how == "not_a_folder":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        cache_dir = blocker / "cache"  # ENOTDIR for every write
    else:
        cache_dir = tmp_path / "cache"

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(cache_mod, "atomic_write_bytes", full)
    result = run_backtest(regression.config(cache_dir=str(cache_dir)))
    pd.testing.assert_frame_equal(result.trades, clean.trades)
    assert result.health["info"]["cache_unwritable"] == 1
    assert len([w for w in result.health["warnings"] if "cannot be written" in w]) == 1


@pytest.fixture(scope="module")
def one_day(tmp_path_factory):
    out = tmp_path_factory.mktemp("oneday")
    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 1), out, seed=4, workers=1)
    return out


def _config(root, **extra):
    cfg = {"symbol": "BANKNIFTY", "start": "2024-07-01", "end": "2024-07-01", "cache_dir": None,
           "data": {"options_dir": str(root / "packed/options"),
                    "spot_glob": str(root / "packed/spot/{symbol}/**/*.parquet"),
                    "calendar_csv": str(root / "meta/expiry_calendar.csv")}}
    cfg.update(extra)
    return cfg


def _rewrite_timestamps(root, encode) -> None:
    for path in [*root.joinpath("packed/spot").rglob("*.parquet"), *root.joinpath("packed/options").rglob("*.parquet")]:
        table = pq.read_table(path)
        ns = table.column("timestamp").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        pq.write_table(table.set_column(0, "timestamp", encode(ns)), path)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_integer_epochs_of_every_unit_give_the_same_trades(one_day, tmp_path, unit):
    import shutil

    divisor = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    # The same instants as tz-aware timestamps of that unit (whole seconds merge ticks into duplicates,
    # so the reference is the data at that precision, not the original).
    reference, ints = tmp_path / "reference", tmp_path / "ints"
    shutil.copytree(one_day, reference)
    shutil.copytree(one_day, ints)
    _rewrite_timestamps(reference, lambda ns: pa.array(pa.compute.divide(ns, divisor), pa.int64()).cast(
        pa.timestamp(unit, tz="UTC")))
    _rewrite_timestamps(ints, lambda ns: pa.array(pa.compute.divide(ns, divisor), pa.int64()))
    expected = run_backtest(_config(reference))
    got = run_backtest(_config(ints))
    assert len(expected.trades) > 0 and got.health["problems"]["bad_file"] == 0
    pd.testing.assert_frame_equal(got.trades, expected.trades)
    assert got.health["problems"] == expected.health["problems"]
    if unit in ("us", "ns"):  # the synthetic ticks are whole microseconds: exactly the original
        pd.testing.assert_frame_equal(got.trades, run_backtest(_config(one_day)).trades)


def test_a_bad_calendar_row_is_a_config_error(one_day, tmp_path):
    from core import ConfigError

    calendar = tmp_path / "cal.csv"
    frame = pd.read_csv(one_day / "meta/expiry_calendar.csv", dtype=str)
    frame.loc[0, "Final_Expiry"] = "2024-13-45"
    frame.to_csv(calendar, index=False)
    cfg = _config(one_day)
    cfg["data"]["calendar_csv"] = str(calendar)
    with pytest.raises(ConfigError, match="2024-13-45"):
        run_backtest(cfg)


def test_a_calendar_row_with_more_fields_than_its_header_is_a_config_error(one_day, tmp_path):
    # pandas' reader took such a file's first column as an index and shifted every field by one: no
    # expiries, silently
    from core import ConfigError

    lines = (one_day / "meta/expiry_calendar.csv").read_text().splitlines()
    fields = len(lines[0].split(","))
    calendar = tmp_path / "cal.csv"
    calendar.write_text("\n".join([lines[0], *[line + ",extra" for line in lines[1:]]]) + "\n")
    cfg = _config(one_day)
    cfg["data"]["calendar_csv"] = str(calendar)
    with pytest.raises(ConfigError, match=f"row 2 of its non-blank lines has {fields + 1} fields, the header {fields}"):
        run_backtest(cfg)


def test_without_a_calendar_the_expiries_come_from_the_folders_with_a_warning(one_day, tmp_path):
    # The synthetic folders name the calendar's expiries, so the trades are the same; the run says where
    # its expiries came from, once.
    from core import load_config
    from core.markets import expiry_dates

    cfg = _config(one_day)
    cfg["data"]["calendar_csv"] = str(tmp_path / "no_such_calendar.csv")
    got, expected = run_backtest(cfg), run_backtest(_config(one_day))
    assert got.health["info"]["calendar_from_folders"] == 1
    assert [w for w in got.health["warnings"] if "no_such_calendar.csv not found" in w]
    assert expected.health["info"]["calendar_from_folders"] == 0 and len(expected.trades) > 0
    pd.testing.assert_frame_equal(got.trades, expected.trades)
    folders = expiry_dates(load_config(cfg))
    assert len(folders) > 0 and set(folders) <= set(expiry_dates(load_config(_config(one_day))))


def test_a_full_results_disk_is_one_line_and_leaves_no_partial_set(regression, tmp_path, monkeypatch, capsys):
    import core.outputs as outputs
    from sweep.errors import UserError, reported_as_exit_status
    from sweep.plan import Job
    from sweep.runner import run_single

    real, calls = outputs._write_temp, []

    def fill_up(folder, name, data):
        calls.append(name)
        if len(calls) == 2:  # the trades file fits, the summary does not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(folder, name, data)

    monkeypatch.setattr(outputs, "_write_temp", fill_up)
    out = tmp_path / "results"
    job = Job(0, [], regression.config(results_dir=str(out)), {"tracking": {"enabled": False}, "quiet": True})
    with pytest.raises(UserError, match="No space left on device"):  # library code raises ...
        run_single(job, tmp_path)
    assert not [p for p in out.rglob("*")]
    capsys.readouterr()
    calls.clear()
    with pytest.raises(SystemExit) as stop, reported_as_exit_status():  # ... the entry point says it in one line
        run_single(job, tmp_path)
    assert stop.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "No space left on device" in err[0] and str(out) in err[0] and "free space" in err[0]
    assert not [p for p in out.rglob("*")]  # no trades without its summary and health, no temp file
    # a folder that cannot be made is not a full disk: the advice says so
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    with pytest.raises(UserError, match="check that the folder can be created and written") as caught:
        run_single(Job(0, [], regression.config(results_dir=str(blocked / "results")),
                       {"tracking": {"enabled": False}, "quiet": True}), tmp_path)
    assert "free space" not in str(caught.value)
    monkeypatch.setattr(outputs, "_write_temp", real)
    run_single(job, tmp_path)
    import json

    health = json.loads(next(out.glob("health_*.json")).read_text())
    assert {"trades_BANKNIFTY_2024-07-01_2024-07-03.parquet", "summary_BANKNIFTY_2024-07-01_2024-07-03.parquet",
            "stats_BANKNIFTY_2024-07-01_2024-07-03.json"} <= set(health["outputs"])


def test_symbol_cannot_reach_outside_the_data_or_results_folders(regression):
    from core import ConfigError

    for symbol in ("../../x", "BANK/NIFTY", "a b", ""):
        with pytest.raises(ConfigError, match="symbol"):
            run_backtest(regression.config(symbol=symbol))


def test_strings_from_config_and_data_are_escaped_in_reports():
    from core.report import sweep_report

    payload = "<script>alert(1)</script>"
    frame = pd.DataFrame({"combo": [0, 1], "data.spot_glob": [payload, "x"], "trades": [3, 4],
                          "total_pnl_pts": [1.0, 2.0]})
    page = sweep_report(frame, ["data.spot_glob"], "total_pnl_pts", None, False)
    assert payload not in page and "&lt;script&gt;" in page


def test_a_file_counted_by_two_tallies_is_counted_once_when_they_merge():
    # Two date chunks of a sweep that read the same tick file each count its rows of no day and its
    # unreadable verdict; merged, the run's health counts them once, and other counts add up.
    from core.health import Health

    chunks = [Health(), Health()]
    for health in chunks:
        health.add_file("spot.parquet", "null_timestamp", 4, "spot.parquet: 4 row(s)")
        health.add_file("broken.parquet", "bad_file", 1, "broken.parquet: not parquet")
        health.add_file("spot.parquet", "null_timestamp", 4)  # met again by the same tally: nothing added
        health.add("duplicate_row", 2)
    chunks[1].add_file("other.parquet", "null_timestamp", 1)
    merged = Health()
    for health in chunks:
        merged.merge(health)
    assert merged.counts["null_timestamp"] == 5 and merged.counts["bad_file"] == 1
    assert merged.counts["duplicate_row"] == 4
    assert merged.messages["null_timestamp"] == ["spot.parquet: 4 row(s)"]
