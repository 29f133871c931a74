"""Per-second cache: keyed by file version, atomic, self-healing, and a warm run opens no tick file."""
from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pandas as pd
import pytest

import core.cache as cache_mod
from core import run_backtest
from core.cache import cache_key, cached_load, entry_path
from tests.test_rules import make_case, small_config, spot_path, volumes


@pytest.fixture
def case(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 3}), 100.0),
                                      ("PE", 47000): (volumes(), 90.0)})
    (tmp_path / "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike=47100.parquet").write_bytes(b"junk")
    return tmp_path


def cfg(root):
    return small_config(root, cache_dir=str(root / "cache"))


def test_second_run_reads_no_tick_file(case, monkeypatch):
    cold = run_backtest(cfg(case))
    assert cold.health["info"]["files_read"] == 3  # spot, CE 47000, PE 47000
    assert cold.health["problems"]["bad_file"] == 1  # CE 47100: its failure is cached too

    def refuse(*args, **kwargs):
        raise AssertionError(f"tick file read on a warm run: {args[0]}")

    monkeypatch.setattr(cache_mod, "load_seconds", refuse)
    import core.ticks as ticks
    monkeypatch.setattr(ticks, "read_tick_table", refuse)
    warm = run_backtest(cfg(case))
    pd.testing.assert_frame_equal(warm.trades, cold.trades)
    assert warm.health["problems"] == cold.health["problems"]
    assert warm.health["info"]["files_read"] == 0 and warm.health["info"]["cache_hits"] == 3


def test_changed_file_gets_a_new_entry(case):
    run_backtest(cfg(case))
    path = str(case / "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike=47000.parquet")
    before = cache_key(path, "option", "Asia/Kolkata")
    make_case(case, spot_path(), {("CE", 47000): (volumes({80: 3}), 100.0)})
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert cache_key(path, "option", "Asia/Kolkata") != before
    result = run_backtest(cfg(case))
    assert result.trades.iloc[0]["signal_ts"] == pd.Timestamp("2024-07-01 09:16:20", tz="Asia/Kolkata")


def test_unreadable_entry_is_rebuilt_with_a_warning(case):
    cold = run_backtest(cfg(case))
    path = str(case / "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike=47000.parquet")
    target = entry_path(case / "cache", cache_key(path, "option", "Asia/Kolkata"))
    target.write_bytes(target.read_bytes()[:100])  # truncated
    warm = run_backtest(cfg(case))
    pd.testing.assert_frame_equal(warm.trades, cold.trades)
    assert warm.health["problems"]["cache_rebuilt"] == 1 and len(warm.health["warnings"]) == 1
    assert run_backtest(cfg(case)).health["problems"]["cache_rebuilt"] == 0  # healed


def _build(args):
    path, cache_dir = args
    seconds, _ = cached_load(path, "option", "Asia/Kolkata", cache_dir)
    return float(seconds.volume.sum())


def test_concurrent_builders_leave_a_valid_entry(case):
    from pathlib import Path

    path = str(case / "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike=47000.parquet")
    cache_dir = Path(case / "cache2")
    with mp.get_context("spawn").Pool(4) as pool:
        sums = pool.map(_build, [(path, cache_dir)] * 8)
    assert len(set(sums)) == 1
    entries = list(cache_dir.rglob("*"))
    assert [p.suffix for p in entries if p.is_file()] == [".npz"]  # no temp files left
    seconds, hit = cached_load(path, "option", "Asia/Kolkata", cache_dir)
    assert hit and float(seconds.volume.sum()) == sums[0]


def test_interrupted_write_leaves_no_entry(case, monkeypatch):
    path = str(case / "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike=47000.parquet")
    cache_dir = case / "cache3"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        cached_load(path, "option", "Asia/Kolkata", cache_dir)
    assert not [p for p in cache_dir.rglob("*") if p.is_file()]
