"""Per-second cache: one file per folder of tick files, keyed by file version, atomic, self-healing, and a
warm run opens no tick file."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import struct
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core.cache as cache_mod
from core import run_backtest
from core.cache import BackgroundWriter, TickCache, cache_key
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
    shutil.rmtree(case / "cache" / "markets")  # this test is about the per-second layer
    assert cold.health["info"]["files_read"] == 3  # spot, CE 47000, PE 47000
    assert cold.health["problems"]["bad_file"] == 1  # CE 47100: its failure is cached too

    def refuse(*args, **kwargs):
        raise AssertionError(f"tick file read on a warm run: {args[0]}")

    monkeypatch.setattr(cache_mod, "load_file_days", refuse)
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
    target = TickCache(case / "cache", "Asia/Kolkata").file_for(path, "option")  # the type=CE folder's
    target.write_bytes(target.read_bytes()[:100])  # truncated
    markets = case / "cache" / "markets"  # built markets (core.market_cache) would spare reading the entry
    shutil.rmtree(markets)
    warm = run_backtest(cfg(case))
    pd.testing.assert_frame_equal(warm.trades, cold.trades)
    assert warm.health["problems"]["cache_rebuilt"] == 1 and len(warm.health["warnings"]) == 1
    shutil.rmtree(markets)
    assert run_backtest(cfg(case)).health["problems"]["cache_rebuilt"] == 0  # healed


def _build(args):
    path, cache_dir = args
    _, got, _ = TickCache(cache_dir, "Asia/Kolkata").load(path, "option")
    return float(sum(s.volume.sum() for s in got.values()))


def test_concurrent_builders_leave_a_valid_entry(case):
    path = str(case / "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike=47000.parquet")
    cache_dir = Path(case / "cache2")
    with mp.get_context("spawn").Pool(4) as pool:
        sums = pool.map(_build, [(path, cache_dir)] * 8)
    assert len(set(sums)) == 1
    entries = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert entries == [TickCache(cache_dir, "Asia/Kolkata").file_for(path, "option")]  # one file, no temp files left
    _, got, hit = TickCache(cache_dir, "Asia/Kolkata").load(path, "option")
    assert hit and float(sum(s.volume.sum() for s in got.values())) == sums[0]


def test_interrupted_write_leaves_no_file(case, monkeypatch):
    path = str(case / "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike=47000.parquet")
    cache_dir = case / "cache3"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        TickCache(cache_dir, "Asia/Kolkata").load(path, "option")
    assert not [p for p in cache_dir.rglob("*") if p.is_file()]  # the temp file is gone too
    monkeypatch.undo()
    _, got, hit = TickCache(cache_dir, "Asia/Kolkata").load(path, "option")
    assert not hit and len(got) == 1


def test_only_missing_days_are_built(case):
    path = str(case / "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike=47000.parquet")
    cache = TickCache(case / "cache4", "Asia/Kolkata")
    index, got, hit = cache.load(path, "option", [19000])  # a day without ticks
    assert index.days == {19905} and got == {} and not hit
    _, got, hit = cache.load(path, "option", [19905])
    assert list(got) == [19905] and not hit
    _, got, hit = cache.load(path, "option", [19905, 19000])
    assert list(got) == [19905] and hit


def test_a_folder_has_one_cache_file_that_keeps_every_day_built(tmp_path):
    """A later run that needs another day of the same tick file reads it again and writes the folder's one
    cache file holding the days built before and the new one; a run needing any of them is then served
    from it alone."""
    import numpy as np

    from tests.builders import ist, write_option

    stamps = [ist("2024-07-01", "09:20:00"), ist("2024-07-01", "09:20:00.5"), ist("2024-07-02", "10:00:00")]
    path = str(write_option(tmp_path, "BANKNIFTY", "2024-07-03", "CE", 47000, stamps, [10.0, 10.5, 12.0], [3, 4, 5]))
    cache = TickCache(tmp_path / "cache", "Asia/Kolkata")
    index, got, hit = cache.load(path, "option", [19905])
    assert index.days == {19905, 19906} and list(got) == [19905] and not hit
    index, got, hit = cache.load(path, "option", [19906])
    assert list(got) == [19906] and not hit
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == [cache.file_for(path, "option")]
    _, both, hit = TickCache(tmp_path / "cache", "Asia/Kolkata").load(path, "option", cache_only=True)
    assert hit and sorted(both) == [19905, 19906]
    _, direct, _ = TickCache(None, "Asia/Kolkata").load(path, "option")
    for day in (19905, 19906):
        for name in ("second", "volume", "ticks", "close"):
            assert np.array_equal(getattr(both[day], name), getattr(direct[day], name), equal_nan=True), name
        # an option's entry keeps the second of its price's tick, not the nanosecond (only spot files merge)
        assert np.array_equal(both[day].close_ns // 10**9, direct[day].close_ns // 10**9)
        assert both[day].counts == direct[day].counts
    assert both[19905].volume.tolist() == [7.0] and both[19905].close.tolist() == [10.5]


def test_one_cache_file_per_folder_keeps_every_file_and_drops_stale_parts(tmp_path):
    """Tick files of one folder share one cache file: a later batch adds its files' parts beside the parts
    written before (each then served from the cache alone), and a tick file that changed since has its old
    part dropped when the folder's file is written again. Another folder gets a file of its own."""
    from core.cache import decode_file, read_into_buffer, unseal_view
    from tests.builders import ist, write_option

    stamps = [ist("2024-07-01", "09:20:00"), ist("2024-07-01", "09:20:00.5")]
    a = str(write_option(tmp_path, "BANKNIFTY", "2024-07-03", "CE", 47000, stamps, [10.0, 10.5], [3, 4]))
    b = str(write_option(tmp_path, "BANKNIFTY", "2024-07-03", "CE", 47100, stamps, [20.0, 20.5], [5, 6]))
    p = str(write_option(tmp_path, "BANKNIFTY", "2024-07-03", "PE", 47000, stamps, [30.0, 30.5], [7, 8]))
    cache = TickCache(tmp_path / "cache", "Asia/Kolkata")
    ce = cache.file_for(a, "option")
    assert cache.file_for(b, "option") == ce != cache.file_for(p, "option")

    def parts():
        return set(decode_file(unseal_view(read_into_buffer(ce)))[0])

    assert [r[2] for r in cache.load_many([(a, "option", None), (p, "option", None)])] == [False, False]
    assert parts() == {cache_key(a, "option", "Asia/Kolkata")}
    assert not cache.load(b, "option")[2]  # a second batch: b's part is added, a's kept
    assert parts() == {cache_key(a, "option", "Asia/Kolkata"), cache_key(b, "option", "Asia/Kolkata")}
    fresh = TickCache(tmp_path / "cache", "Asia/Kolkata")
    served = fresh.load_many([(a, "option", None), (b, "option", None), (p, "option", None)], cache_only=True)
    assert [r[2] for r in served] == [True, True, True]
    assert [float(next(iter(r[1].values())).volume.sum()) for r in served] == [7.0, 11.0, 15.0]
    assert len([f for f in (tmp_path / "cache").rglob("*") if f.is_file()]) == 2

    old_a = cache_key(a, "option", "Asia/Kolkata")
    write_option(tmp_path, "BANKNIFTY", "2024-07-03", "CE", 47000, stamps, [10.0, 10.5], [30, 40])
    os.utime(a, ns=(1, 2_000_000_000_000_000_000))
    assert fresh.load(a, "option", cache_only=True) is None  # a new version: not in the cache
    _, got, hit = fresh.load(a, "option")
    assert not hit and float(got[19905].volume.sum()) == 70.0
    assert old_a not in parts() and parts() == {cache_key(a, "option", "Asia/Kolkata"), cache_key(b, "option", "Asia/Kolkata")}


def test_parts_another_process_wrote_meanwhile_are_kept(tmp_path):
    """Two processes (Ray tasks of neighbouring date chunks) adding to one folder's cache file: the one that
    writes last keeps what the other wrote after this one read the file (other tick files, other days)."""
    from core.cache import decode_file, read_into_buffer, unseal_view
    from tests.builders import ist, write_option

    stamps = [ist("2024-07-01", "09:20:00"), ist("2024-07-02", "09:20:00")]
    a = str(write_option(tmp_path, "BANKNIFTY", "2024-07-03", "CE", 47000, stamps, [10.0, 10.5], [3, 4]))
    b = str(write_option(tmp_path, "BANKNIFTY", "2024-07-03", "CE", 47100, stamps, [20.0, 20.5], [5, 6]))
    first, other = TickCache(tmp_path / "cache", "Asia/Kolkata"), TickCache(tmp_path / "cache", "Asia/Kolkata")

    def meanwhile(build, items):  # runs after this batch read the folder's file, before it writes it
        other.load_many([(b, "option", None), (a, "option", [19906])])
        return map(build, items)

    first.load_many([(a, "option", [19905])], mapper=meanwhile)
    target = first.file_for(a, "option")
    parts, entries = decode_file(unseal_view(read_into_buffer(target)))
    key_a, key_b = cache_key(a, "option", "Asia/Kolkata"), cache_key(b, "option", "Asia/Kolkata")
    assert set(parts) == {key_a, key_b} and sorted(entries[key_a]) == [19905, 19906]
    served = TickCache(tmp_path / "cache", "Asia/Kolkata").load_many([(a, "option", None), (b, "option", None)],
                                                                      cache_only=True)
    assert [r[2] for r in served] == [True, True] and sorted(served[0][1]) == [19905, 19906]


def test_read_buffers_are_used_again_only_once_nothing_views_them():
    import numpy as np

    pool = cache_mod.BufferPool(keep_bytes=8 << 20)
    first = pool.take(1000)
    first[:] = 7
    address = first.ctypes.data
    decoded = np.frombuffer(memoryview(first)[8:], np.uint8)  # as core.market_cache decodes an entry
    del first
    other = pool.take(1000)  # the block is still viewed by ``decoded``: a new one
    assert other.ctypes.data != address and not np.shares_memory(other, decoded)
    other[:] = 0
    assert (decoded == 7).all()
    del decoded
    again = pool.take(900)  # nothing views the first block now: it is used again
    assert again.ctypes.data == address and len(again) == 900
    del other, again
    assert pool.idle_bytes() == 2 << 20  # two blocks of a MiB
    big = pool.take(5 << 20)  # no idle block is big enough: a new one
    del big
    assert pool.idle_bytes() == 7 << 20
    small = pool.take(100)  # the 5 MiB block is idle but far too big for 100 bytes
    assert pool.idle_bytes() == 6 << 20
    del small
    pool.take(9 << 20)  # dropped at once: idle blocks beyond keep_bytes are freed, the biggest first
    assert pool.idle_bytes() == 7 << 20
    held = pool.take(100)
    pool.clear()
    assert pool.idle_bytes() == 0
    del held  # a block in use when the pool was cleared comes back when it is let go
    assert pool.idle_bytes() == 1 << 20


def test_the_background_writer_keeps_order_and_hands_warnings_over_where_it_collects():
    """Writes run in the order handed over; each job's warning reaches ``warn`` on the calling thread only
    when its job is collected: when the bytes waiting would pass the limit, at ``wait_for``, at ``close``."""
    done, warned = [], []
    writer = BackgroundWriter(limit_bytes=10)

    def job(name, warning=None):
        def run():
            time.sleep(0.02)
            done.append((name, threading.current_thread() is not threading.main_thread()))
            return warning
        return run

    def warn(kind, message):
        warned.append((message, threading.current_thread() is threading.main_thread()))

    writer.submit(Path("a"), 6, job("a", ("cache_unwritable", "from a")), warn)
    writer.submit(Path("b"), 6, job("b", ("cache_unwritable", "from b")), warn)  # 12 > 10: a is collected first
    assert warned == [("from a", True)]
    writer.submit(Path("c"), 1, job("c"), warn)
    writer.wait_for(Path("elsewhere"))  # nothing of it pending: collects nothing
    assert warned == [("from a", True)]
    writer.wait_for(Path("b"))
    assert warned == [("from a", True), ("from b", True)] and [n for n, _ in done][:2] == ["a", "b"]
    writer.submit(Path("d"), 1, job("d", ("cache_unwritable", "from d")), warn)
    writer.close()
    assert done == [("a", True), ("b", True), ("c", True), ("d", True)]
    assert warned == [("from a", True), ("from b", True), ("from d", True)]


def test_a_failing_background_write_is_raised_where_it_is_collected():
    def broken():
        raise RuntimeError("a bug in a write")

    writer = BackgroundWriter()
    writer.submit(Path("a"), 1, broken, lambda kind, message: None)
    with pytest.raises(RuntimeError, match="a bug in a write"):
        writer.close()


def test_a_folder_read_again_waits_for_its_write_on_the_background_writer(case, monkeypatch):
    """A batch that reads a folder's cache file while its earlier write is still on the writer's thread
    waits for that write, so it is served from it instead of reading the tick file again."""
    path = str(case / "options/BANKNIFTY/202407/exp=2024-07-03/type=CE/strike=47000.parquet")
    original = cache_mod.atomic_write_bytes

    def slow(target, write):
        time.sleep(0.3)
        original(target, write)

    monkeypatch.setattr(cache_mod, "atomic_write_bytes", slow)
    cache = TickCache(case / "cache5", "Asia/Kolkata", writer=BackgroundWriter())
    (_, first, hit), = cache.load_many([(path, "option", None)])
    assert not hit
    (_, again, hit), = cache.load_many([(path, "option", None)])
    assert hit and sorted(again) == sorted(first)
    cache.writer.close()


def test_writing_the_caches_in_the_background_changes_no_byte_and_no_count(regression, tmp_path):
    """Markets built with one file thread (every write done in turn) and with two (the writes on the
    background writer) leave the same cache files, byte for byte, and the same health."""
    from core.config import load_config
    from core.engine import build_markets

    def run(threads, folder):
        cfg = load_config(regression.config(cache_dir=str(tmp_path / folder)))
        markets, health = build_markets(cfg, threads=threads)
        files = {p.relative_to(tmp_path / folder): p.read_bytes()
                 for p in (tmp_path / folder).rglob("*") if p.is_file()}
        return len(markets), health.as_dict(), files

    one, two = run(1, "one"), run(2, "two")
    assert one[0] > 0 and len(one[2]) > 2
    assert one == two



def test_entries_have_the_documented_layout_and_the_seal_is_the_standard_crc32():
    """encode_entry writes MAGIC, header length, padded JSON header, then each column in the narrowest type
    that holds it exactly, padded to 8 bytes; the seal's checksum is zlib's CRC-32, so a cache file sealed
    by either implementation reads, and a flipped bit does not."""
    import json
    import struct
    import zlib

    import numpy as np

    from core.cache import MAGIC, NO_PRICE, decode_entry, encode_entry, seal, unseal_view
    from core.ticks import Seconds

    day = 19_000
    second = day * 86_400 + np.array([33_300, 33_301, 40_000], np.int64)
    close = np.array([101.05, np.nan, 99.5])
    close_ns = np.where(np.isnan(close), -1, second * 1_000_000_000 + np.array([5, 0, 999_999_999]))
    pad = lambda raw: raw + b"\0" * (-len(raw) % 8)  # noqa: E731
    for volume, vol_type in ((np.array([3.0, 0.0, 75.0]), "|u1"), (np.array([3.0, 0.0, 750.0]), "<u2"),
                             (np.array([3.0, 0.1, 75.0]), "<f8"), (np.array([3.0, 0.5, 75.0]), "<f4")):
        seconds = Seconds(second, volume, np.array([2, 1, 7], np.int64), close, close_ns, {"null_price": 1})
        data = encode_entry(seconds, day)
        columns = {"close": "<i4", "volume": vol_type, "second": "<u2", "ticks": "|u1", "sub_ns": "<i4"}
        header = json.dumps({"n": 3, "counts": {"null_price": 1}, "first_second": 33_300, "close_scale": 20,
                             "columns": columns}).encode()
        header += b" " * (-(len(MAGIC) + 4 + len(header)) % 8)
        expected = b"".join([MAGIC, struct.pack("<I", len(header)), header,
                             pad(np.array([2021, NO_PRICE, 1990], np.int32).tobytes()),
                             pad(volume.astype(vol_type).tobytes()), pad(np.array([0, 1, 6_700], np.uint16).tobytes()),
                             pad(np.array([2, 1, 7], np.uint8).tobytes()),
                             pad(np.array([5, -1, 999_999_999], np.int32).tobytes())])
        assert bytes(data) == expected
        back = decode_entry(data, day)
        for name in ("second", "volume", "ticks", "close", "close_ns"):
            np.testing.assert_array_equal(getattr(back, name), getattr(seconds, name))
        sealed = seal(bytes(data))
        assert struct.unpack_from("<QI", sealed, 8) == (len(data), zlib.crc32(data))
        assert bytes(unseal_view(sealed)) == bytes(data)
        damaged = bytearray(sealed)
        damaged[-5] ^= 0x10
        with pytest.raises(ValueError, match="checksum"):
            unseal_view(damaged)
        with pytest.raises(ValueError, match="truncated"):
            decode_entry(data[:-8], day)


def _bits(values):
    import numpy as np

    values = np.asarray(values)
    return values.dtype.str, values.view(f"u{values.dtype.itemsize}").tolist()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_an_entry_gives_back_every_value_bit_for_bit(data):
    """Whatever the values (prices off the 0.05 grid, NaN, -0.0, huge, fractional or negative volumes, many
    ticks, seconds across the whole day), decode_entry(encode_entry(x)) is x, bit for bit."""
    import numpy as np

    from core.cache import decode_entry, encode_entry
    from core.ticks import Seconds

    day = data.draw(st.integers(17_000, 21_000))
    n = data.draw(st.integers(0, 40))
    seconds_of_day = sorted(data.draw(st.lists(st.integers(0, 86_399), min_size=n, max_size=n, unique=True)))
    second = day * 86_400 + np.array(seconds_of_day, np.int64)
    grid_price = st.integers(1, 2_000_000).map(lambda k: k / 20)
    price = st.one_of(grid_price, st.integers(1, 10 ** 6).map(lambda k: k / 100), st.just(float("nan")),
                      st.floats(0.01, 1e12), st.just(1e8), st.just(-0.0))
    close = np.array(data.draw(st.lists(price, min_size=n, max_size=n)), np.float64)
    volume = np.array(data.draw(st.lists(st.one_of(st.integers(0, 300), st.integers(0, 70_000), st.integers(0, 2 ** 40),
                                                   st.floats(-1e9, 1e9), st.just(-0.0), st.just(float("nan"))),
                                         min_size=n, max_size=n)), np.float64)
    ticks = np.array(data.draw(st.lists(st.one_of(st.integers(1, 300), st.integers(1, 2 ** 40)), min_size=n, max_size=n)),
                     np.int64)
    with_sub_ns = data.draw(st.booleans())
    sub = np.array(data.draw(st.lists(st.integers(0, 999_999_999), min_size=n, max_size=n)), np.int64)
    close_ns = np.where(np.isnan(close), -1, second * 1_000_000_000 + (sub if with_sub_ns else 0))
    seconds = Seconds(second, volume, ticks, close, close_ns, {"duplicate_row": 2} if n % 2 else {})
    data_bytes = encode_entry(seconds, day, with_sub_ns)
    back = decode_entry(data_bytes, day)
    for name in ("second", "volume", "ticks", "close", "close_ns"):
        assert _bits(getattr(back, name)) == _bits(getattr(seconds, name)), name
    assert back.counts == seconds.counts
    # and each column is stored in the first of its candidate types that gives it back bit for bit
    header = json.loads(bytes(data_bytes[12:12 + struct.unpack_from("<I", data_bytes, 8)[0]]))
    after_first = second - (second[0] if n else day * 86_400)
    assert header["close_scale"] == _first_exact_scale(close)
    assert header["columns"]["close"] == ("<i4" if header["close_scale"] else "<f8")
    assert header["columns"]["volume"] == _first_exact(volume, ("u1", "u2", "u4", "f4", "f8"))
    assert header["columns"]["second"] == _first_exact(after_first, ("u2", "i4", "i8"))
    assert header["columns"]["ticks"] == _first_exact(ticks, ("u1", "u2", "i4", "i8"))


def _first_exact(values, candidates) -> str:
    """The first candidate type (numpy's astype, in range for integers) whose values cast back are ``values``'
    bits; the reference of the encoder's choice."""
    import numpy as np

    for name in candidates:
        dtype = np.dtype(name)
        limits = np.iinfo(dtype) if dtype.kind in "ui" else None
        if limits and len(values) and not (limits.min <= values.min() and values.max() <= limits.max):
            continue
        with np.errstate(all="ignore"):
            if _bits(values.astype(dtype).astype(values.dtype)) == _bits(values):
                return dtype.str
    raise AssertionError("the last candidate is the values' own type")


def _first_exact_scale(close) -> int | None:
    """The first of 20 and 100 whose rounded int32 multiples, divided back, are the closes' bits (NaN only as
    numpy's NaN); the reference of the encoder's choice."""
    import numpy as np

    for scale in (20, 100):
        nan = np.isnan(close)
        with np.errstate(all="ignore"):
            scaled = np.rint(np.where(nan, 0.0, close) * scale)
        if len(close) and not (np.abs(scaled).max() < 2 ** 31 - 1):
            continue
        back = np.where(nan, np.nan, scaled.astype(np.int32) / scale)
        if _bits(back) == _bits(close):
            return scale
    return None
