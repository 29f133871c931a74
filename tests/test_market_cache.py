"""Market cache: a warm run rebuilds no market, reports the same health, and any change to a file the
markets were built from (or a series file appearing) builds them again."""
from __future__ import annotations

import os

import pandas as pd
import pytest

import core.cache as cache_mod
from core import run_backtest
from core.market_cache import CACHE_KINDS, MAGIC, decode_group, encode_group
from tests.builders import volume_ticks, write_option
from tests.test_rules import DAY, EXP, make_case, small_config, spot_path, volumes

CE = "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike={}.parquet"


@pytest.fixture
def case(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 3}), 100.0),
                                      ("PE", 47000): (volumes(), 90.0)})
    (tmp_path / CE.format(47100)).write_bytes(b"junk")
    return tmp_path


def cfg(root, **extra):
    return small_config(root, cache_dir=str(root / "cache"), **extra)


def entries(root):
    return sorted((root / "cache" / "markets").rglob("*.mkt"))


def refuse_tick_cache(monkeypatch):
    def refuse(self, requests, *args, **kwargs):
        raise AssertionError(f"per-second cache or tick file consulted on a market-cache hit: {requests}")

    monkeypatch.setattr(cache_mod.TickCache, "load_many", refuse)


def test_warm_run_is_served_from_the_market_cache(case, monkeypatch):
    uncached = run_backtest(small_config(case, cache_dir=None))
    cold = run_backtest(cfg(case))
    assert len(entries(case)) == 1
    refuse_tick_cache(monkeypatch)
    warm = run_backtest(cfg(case))
    for run in (cold, warm):
        pd.testing.assert_frame_equal(run.trades, uncached.trades)
        assert run.trades_table.equals(uncached.trades_table)
        assert run.health["problems"] == uncached.health["problems"]
        assert run.health["messages"] == uncached.health["messages"]
    assert warm.health["problems"]["bad_file"] == 1  # the junk CE 47100 is still reported
    assert cold.health["info"]["files_read"] == 3 and warm.health["info"]["files_read"] == 0
    assert warm.health["info"]["cache_hits"] == 3  # every tick file the markets came from
    assert {d: m.spot.tolist() for d, m in warm.markets.items()} == {d: m.spot.tolist() for d, m in cold.markets.items()}


def test_strategy_changes_reuse_the_markets(case, monkeypatch):
    run_backtest(cfg(case))
    refuse_tick_cache(monkeypatch)
    warm = run_backtest(cfg(case, signal__multiplier=1.5, risk__target_pct=0.05))
    monkeypatch.undo()
    expected = run_backtest(small_config(case, cache_dir=None, signal__multiplier=1.5, risk__target_pct=0.05))
    assert warm.trades_table.equals(expected.trades_table)


def test_market_settings_make_a_new_entry(case):
    run_backtest(cfg(case))
    other = run_backtest(cfg(case, routing__strikes_each_side=0))
    assert len(entries(case)) == 2
    expected = run_backtest(small_config(case, cache_dir=None, routing__strikes_each_side=0))
    assert other.trades_table.equals(expected.trades_table)
    assert other.health["problems"] == expected.health["problems"]


def test_replaced_series_file_rebuilds_the_markets(case):
    cold = run_backtest(cfg(case))
    assert cold.trades.iloc[0]["signal_ts"] == pd.Timestamp("2024-07-01 09:16:10", tz="Asia/Kolkata")
    write_option(case, "BANKNIFTY", EXP, "CE", 47000, *volume_ticks(DAY, "09:15:00", volumes({80: 3}), 100.0))
    path = case / CE.format(47000)
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    result = run_backtest(cfg(case))
    assert result.trades.iloc[0]["signal_ts"] == pd.Timestamp("2024-07-01 09:16:20", tz="Asia/Kolkata")
    assert result.health["info"]["files_read"] == 1  # only the replaced file; the others from the per-second cache


def test_series_file_appearing_rebuilds_the_markets(case):
    cold = run_backtest(cfg(case))
    assert cold.health["problems"]["missing_series"] > 0
    write_option(case, "BANKNIFTY", EXP, "CE", 46900, *volume_ticks(DAY, "09:15:00", volumes(), 80.0))  # was missing
    expected = run_backtest(small_config(case, cache_dir=None))
    warm = run_backtest(cfg(case))
    assert warm.health["problems"] == expected.health["problems"]
    assert warm.health["problems"]["missing_series"] < cold.health["problems"]["missing_series"]
    assert warm.trades_table.equals(expected.trades_table)


def test_damaged_entry_is_rebuilt_with_a_warning(case):
    cold = run_backtest(cfg(case))
    (target,) = entries(case)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    warm = run_backtest(cfg(case))
    assert warm.trades_table.equals(cold.trades_table)
    assert warm.health["problems"]["cache_rebuilt"] == 1 and "market cache entry" in warm.health["warnings"][0]
    healed = run_backtest(cfg(case))
    assert healed.health["problems"]["cache_rebuilt"] == 0 and healed.health["info"]["files_read"] == 0


def test_an_empty_entry_is_rebuilt_with_a_warning(case):
    cold = run_backtest(cfg(case))
    (target,) = entries(case)
    target.write_bytes(b"")  # e.g. created by a tool that then ran out of disk
    warm = run_backtest(cfg(case))
    assert warm.trades_table.equals(cold.trades_table)
    assert warm.health["problems"]["cache_rebuilt"] == 1 and "not a sealed cache file" in warm.health["warnings"][0]
    assert run_backtest(cfg(case)).health["info"]["files_read"] == 0


def test_group_with_a_transient_read_error_is_not_stored(case, monkeypatch):
    from core.ticks import TickFileError

    real = cache_mod.load_file_days

    def flaky(path, *args, **kwargs):  # reading the tick file fails, this once
        if path.endswith("type=PE/strike=47000.parquet"):
            raise TickFileError("bad_file", f"{path}: permission denied", transient=True)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cache_mod, "load_file_days", flaky)
    first = run_backtest(cfg(case))
    assert first.health["problems"]["bad_file"] == 2 and entries(case) == []
    monkeypatch.undo()
    second = run_backtest(cfg(case))
    assert second.health["problems"]["bad_file"] == 1 and len(entries(case)) == 1


def test_entry_round_trip_keeps_arrays_writable(case):
    from core.config import load_config
    from core.markets import build_markets

    markets, health = build_markets(load_config(cfg(case)))
    data = encode_group(markets, health, [["CE", 47000, None]], 3)
    assert data.startswith(MAGIC)
    back, back_health, consulted, files = decode_group(memoryview(bytearray(data)))
    assert consulted == [["CE", 47000, None]] and files == 3
    assert dict(back_health.counts) == {k: n for k, n in health.counts.items() if k not in CACHE_KINDS and n}
    assert back_health.messages == {k: v for k, v in health.messages.items() if k not in CACHE_KINDS}
    for a, b in zip(markets, back):
        assert (a.day, a.expiry, a.open_sec) == (b.day, b.expiry, b.open_sec)
        assert a.spot.tobytes() == b.spot.tobytes() and b.spot.flags.writeable
        for wa, wb in zip(a.windows, b.windows):
            assert (wa.anchor_sec, wa.start, wa.end, wa.hour_open, wa.atm) == (wb.anchor_sec, wb.start, wb.end,
                                                                              wb.hour_open, wb.atm)
            for ca, cb in zip(wa.candidates, wb.candidates):
                assert (ca.opt_type, ca.strike) == (cb.opt_type, cb.strike)
                for field in ("volume_bars", "volume_cum", "price_bars", "prices"):
                    x, y = getattr(ca.series, field), getattr(cb.series, field)
                    assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    with pytest.raises(ValueError):
        decode_group(memoryview(bytearray(data[:len(data) // 2])))


def test_markets_read_from_the_cache_have_8_byte_aligned_arrays(case):
    """A sealed file's header is 20 bytes: the read places the file so that the arrays after the header
    start on 8-byte boundaries (numpy's fast paths and the compiled loops' typing take aligned arrays)."""
    cold = run_backtest(cfg(case))
    warm = run_backtest(cfg(case))
    assert warm.health["info"]["cache_hits"] and warm.markets
    arrays = [a for m in warm.markets.values() for a in (m.spot, *m.layout.arrays().values()) if a.size]
    assert arrays and all(a.ctypes.data % 8 == 0 and a.flags.aligned for a in arrays)
    assert cold.trades_table.equals(warm.trades_table)


def test_a_transient_error_on_an_undated_spot_file_keeps_every_group_out(case, monkeypatch):
    from core.ticks import TickFileError

    dated = next((case / "spot").rglob("*.parquet"))
    undated = case / "spot" / "BANKNIFTY" / "all_days.parquet"  # no date= in the path: read up front
    undated.write_bytes(dated.read_bytes())  # the same ticks again, merged into the day's spot
    real = cache_mod.load_file_days

    def flaky(path, *args, **kwargs):
        if path == str(undated):
            raise TickFileError("bad_file", f"{path}: I/O error", transient=True)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cache_mod, "load_file_days", flaky)
    first = run_backtest(cfg(case))
    # the day is traded on the dated file alone, but its markets are not kept: the next run reads both
    assert first.health["problems"]["bad_file"] == 2 and len(first.trades) == 1 and entries(case) == []
    monkeypatch.undo()
    second = run_backtest(cfg(case))
    assert second.health["problems"]["bad_file"] == 1 and len(entries(case)) == 1


def test_read_ahead_keeps_order_and_stops_with_its_reader():
    """Market-cache entries are read on a thread two groups ahead: results come in key order, the thread
    reads exactly two keys beyond the one in use, and a run that stops early leaves no reader behind."""
    import threading
    import time

    from core.markets import _read_ahead

    calls = []

    def read(key):
        calls.append(key)
        return key * key

    assert list(_read_ahead(read, list(range(7)))) == [k * k for k in range(7)]
    calls.clear()
    before = set(threading.enumerate())
    reader = _read_ahead(read, list(range(100)))
    assert next(reader) == 0
    started = [t for t in threading.enumerate() if t not in before and t.name.startswith("atmburst-read-ahead")]
    assert len(started) == 1
    for _ in range(500):  # up to 5 s for the thread to read the two keys ahead
        if len(calls) >= 3:
            break
        time.sleep(0.01)
    time.sleep(0.05)
    assert calls == [0, 1, 2]  # two ahead, no more
    reader.close()
    assert not started[0].is_alive()


def test_markets_a_run_keeps_are_not_overwritten_by_later_runs(case):
    """Warm runs read entries into blocks of a pool used again (core.cache.READ_BUFFERS): the markets one
    run keeps (the report's inspected days) are views of their block, which must stay theirs."""
    run_backtest(cfg(case))
    kept = run_backtest(cfg(case))
    assert kept.health["info"]["cache_hits"] and kept.markets
    before = {d: (m.spot.tobytes(), {k: v.tobytes() for k, v in m.layout.arrays().items()})
              for d, m in kept.markets.items()}
    for _ in range(3):  # later warm runs of other markets take blocks while ``kept`` still views its own
        run_backtest(cfg(case, routing__strikes_each_side=0))
    for d, m in kept.markets.items():
        spot, arrays = before[d]
        assert m.spot.tobytes() == spot
        assert {k: v.tobytes() for k, v in m.layout.arrays().items()} == arrays
