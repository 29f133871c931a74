"""The compiled loops ahead of time (core.aot): the same trades and per-second aggregates as numba's JIT
loops, calls checked before they reach machine code that checks nothing, the GIL released while they
run, builders started only where they can help, and runs, cold or warm, that start no numba at all."""
from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyarrow as pa

from core import aot, kernel
from core.compiled import read_only
from core.config import default_strategy
from core.ticks import IST_OFFSET_NS
from tests.test_kernel import _markets, strategy

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler here: core.aot cannot build, numba's JIT loops serve")


def _build(folder: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "core.aot"] + (["--folder", str(folder)] if folder is not None else [])
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


@functools.lru_cache(maxsize=1)
def _built_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="aot-"))
    done = _build(folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def _loops() -> aot.AheadOfTimeLoops:
    loops = aot.load(_built_folder())
    assert loops is not None and loops.path.parent == _built_folder()
    return loops


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grid=st.lists(strategy, min_size=1, max_size=8))
def test_the_ahead_of_time_loops_trade_exactly_as_numbas_jit_loops(grid):
    import core.kernel_loops as kernel_loops

    markets = _markets()
    built = kernel._evaluate(markets, grid, "BANKNIFTY", None, _loops())
    jit = kernel._evaluate(markets, grid, "BANKNIFTY", None, kernel_loops)
    for (trades, health), (jit_trades, jit_health) in zip(built, jit):
        assert trades.equals(jit_trades)
        assert health.as_dict() == jit_health.as_dict()


def test_the_comparison_is_not_vacuous(monkeypatch):
    """The markets have trades, and the built code evaluates them itself: no call goes to numba's loops."""
    import core.kernel_loops as kernel_loops

    def refused(*args):
        raise AssertionError("a call of the built loops went to numba's JIT loop")

    monkeypatch.setattr(kernel_loops, "day_signals", refused)
    monkeypatch.setattr(kernel_loops, "day_exits", refused)
    base = default_strategy()
    grid = [replace(base, multiplier=m, pnl_mode=p) for m in (1.25, 3.0) for p in ("delta_proxy", "option_close")]
    results = kernel._evaluate(_markets(), grid, "BANKNIFTY", None, _loops())
    assert min(trades.num_rows for trades, _ in results) > 0


def _recorded_calls() -> dict[str, tuple]:
    """The arguments of one real call of each loop (a day with trades)."""
    loops, calls = _loops(), {}

    class Recording:
        def __getattr__(self, name):
            def call(*args):
                calls.setdefault(name, args)
                return getattr(loops, name)(*args)
            return call

    kernel._evaluate(_markets(), [default_strategy()], "BANKNIFTY", None, Recording())
    return calls


def test_calls_that_do_not_match_the_built_types_go_to_the_jit_loops(monkeypatch):
    """The module's wrappers would read an int32 array as int64 (or write into read-only memory): such a
    call is sent to numba's loop instead, which types it; a matching call runs the built code."""
    import core.kernel_loops as kernel_loops

    loops, calls = _loops(), _recorded_calls()
    sent: list[str] = []
    monkeypatch.setattr(kernel_loops, "day_exits", lambda *args: sent.append("exits"))
    monkeypatch.setattr(kernel_loops, "day_signals", lambda *args: sent.append("signals"))
    exits = list(calls["day_exits"])
    loops.day_exits(*[a.copy() for a in exits])
    assert sent == []  # the built code ran
    narrow = list(exits)
    narrow[12] = exits[12].astype(np.int32)  # sign
    loops.day_exits(*narrow)
    locked = [a.copy() for a in exits]
    locked[-1].setflags(write=False)  # an output the loop writes
    loops.day_exits(*locked)
    strided = list(exits)
    strided[5] = np.repeat(exits[5], 2)[::2]  # prices: not contiguous
    loops.day_exits(*strided)
    loops.day_exits(*exits[:-1])
    signals = list(calls["day_signals"])
    signals[0] = signals[0].astype(np.float32)
    loops.day_signals(*signals)
    assert sent == ["exits"] * 4 + ["signals"]


def test_scalar_arguments_are_checked_as_numba_types_them(monkeypatch):
    """An int64 argument takes a Python int within int64's range or a numpy int64; a float, a numpy int32,
    a bool or a Python int beyond int64 goes to the JIT loop (which types it, or refuses it)."""
    import core.ticks_loops as ticks_loops

    loops = _loops()
    sent: list = []
    monkeypatch.setattr(ticks_loops, "ist_instants", lambda *args: sent.append(args[1]))
    raw = read_only(np.array([1_719_800_000, 1_719_800_001], np.int64))
    for unit in (10**9, np.int64(10**9)):
        ist, epoch_zero, ascending = loops.ist_instants(raw, unit, 0, IST_OFFSET_NS)
        assert ist.tolist() == [r * 10**9 + IST_OFFSET_NS for r in raw.tolist()] and (epoch_zero, ascending) == (0, True)
    assert sent == []
    for unit in (1e9, np.int32(1), True, 2**63):
        loops.ist_instants(raw, unit, 0, IST_OFFSET_NS)
    assert [type(value) for value in sent] == [float, np.int32, bool, int]


def _tick_table(data) -> tuple[pa.Table, str, bool, list | None]:
    """A tick file as a vendor might write it (see test_normalise): any unit and zone, ties, duplicates,
    bad prices and volumes, null volumes now and then, rows out of order or near the epoch; with the
    zone naive timestamps are read in, whether it has volume, and the days asked for."""
    n = data.draw(st.integers(1, 80))
    unit = data.draw(st.sampled_from(["s", "ms", "us", "ns"]))
    tz = data.draw(st.sampled_from(["Asia/Kolkata", "UTC", None]))
    naive = data.draw(st.sampled_from(["Asia/Kolkata", "UTC", "America/New_York"]))
    per_unit = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    choices = data.draw(st.lists(st.integers(0, 3 * 86_400 * per_unit), min_size=1, max_size=10))
    raw = sorted(1_719_800_000 * per_unit + data.draw(st.sampled_from(choices)) for _ in range(n))
    unusual = data.draw(st.sampled_from(["none"] * 4 + ["unsorted", "epoch", "null volume", "float volume"]))
    if unusual == "unsorted":
        raw = raw[::-1]
    if unusual == "epoch":
        raw[data.draw(st.integers(0, n - 1))] = 0
    close = data.draw(st.lists(st.sampled_from([100.0, 100.05, 0.0, -1.0, float("nan"), 99.95]), min_size=n, max_size=n))
    volume = data.draw(st.lists(st.sampled_from([0, 1, 2, -3, 7]), min_size=n, max_size=n))
    if unusual == "null volume":
        volume_column = pa.array([None if k % 3 == 0 else v for k, v in enumerate(volume)], pa.int64())
    elif unusual == "float volume":
        volume_column = pa.array([v + 0.5 for v in volume], pa.float64())
    else:
        volume_column = pa.array(volume, pa.int64())
    has_volume = data.draw(st.booleans())
    columns = {"timestamp": pa.array(raw, pa.int64()).cast(pa.timestamp(unit, tz=tz)), "close": pa.array(close)}
    if has_volume:
        columns["vol_delta"] = volume_column
    days = data.draw(st.sampled_from([None, "every other"]))
    return pa.table(columns), naive, has_volume, days


def _normalised(table: pa.Table, naive: str, has_volume: bool, days) -> list:
    """Everything ``file_days`` gives, as bytes and values, by the compiled pass where it applies and by the
    general path (prepare_rows, then days_seconds)."""
    import core.ticks as ticks
    from core.cache import encode_entry

    every = sorted(ticks.file_days(table, naive, has_volume).days)
    wanted = every[::2] if days == "every other" else None
    out = []
    for path in ("as chosen", "general"):
        fused = ticks._file_days_fused
        if path == "general":
            ticks._file_days_fused = lambda *args: None
        try:
            got = ticks.file_days(table, naive, has_volume, wanted)
        finally:
            ticks._file_days_fused = fused
        out.append((sorted(got.days), got.file_counts, {day: ([getattr(s, name).tobytes() for name in
                    ("second", "volume", "ticks", "close", "close_ns")], s.counts, bytes(encode_entry(s, day)))
                    for day, s in got.seconds.items()}))
    return out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_normalisation_through_the_module_equals_numbas_jit_loops(data, monkeypatch_loops):
    """Tick files through the module's ``file_seconds``, ``ist_instants`` and ``aggregate_rows`` give the
    per-second aggregates and counts of numba's JIT loops bit for bit, and the cache entries its
    ``entry_columns`` encodes from them the same bytes; the module's own code ran (a call sent to numba's
    loops fails the test)."""
    table, naive, has_volume, days = _tick_table(data)
    monkeypatch_loops(None)
    jit = _normalised(table, naive, has_volume, days)
    monkeypatch_loops(_loops(), refuse_jit=True)
    assert _normalised(table, naive, has_volume, days) == jit


@pytest.fixture
def monkeypatch_loops(monkeypatch):
    """Set the loops this process serves (core.aot.serving): the module's, or None for numba's JIT loops;
    with ``refuse_jit``, any call of numba's normalisation loops fails the test."""
    import core.cache_loops as cache_loops
    import core.ticks_loops as ticks_loops

    originals = {(module, name): getattr(module, name) for module, names in
                 ((ticks_loops, ("file_seconds", "ist_instants", "aggregate_rows")), (cache_loops, ("entry_columns",)))
                 for name in names}

    def refused(*args):
        raise AssertionError("a call of the built loops went to numba's JIT loop")

    def choose(loops, refuse_jit=False):
        monkeypatch.setattr(aot, "_CHOSEN", [loops])
        for (module, name), loop in originals.items():
            monkeypatch.setattr(module, name, refused if refuse_jit else loop)

    return choose


def test_the_modules_loops_release_the_gil():
    """While the module's ``file_seconds`` runs on a 4-million-row file, another Python thread keeps
    running: the longest pause between its steps is a small part of the call, not the whole call (as it
    is in every call when a wrapper keeps the GIL)."""
    import threading
    import time

    loops = _loops()
    n = 4_000_000
    raw = read_only(np.arange(n, dtype=np.int64) * 1_000 + 1_700_000_000_000_000_000)
    wanted = read_only(np.arange(19_675, 19_677, dtype=np.int64))
    arguments = (raw, 1, 0, IST_OFFSET_NS, read_only(np.full(n, 100.0)), read_only(np.ones(n, np.int64)), wanted)
    stamps: list[float] = []
    running = threading.Event()
    running.set()

    def step():
        while running.is_set():
            stamps.append(time.perf_counter())

    other = threading.Thread(target=step)
    other.start()
    try:
        time.sleep(0.05)
        calls = []
        for _ in range(3):
            begun = time.perf_counter()
            status = loops.file_seconds(*arguments, np.zeros((2, 5), np.int64))[0]
            calls.append((begun, time.perf_counter()))
            assert status == 0
    finally:
        running.clear()
        other.join()
    pauses = []  # per call: its longest pause of the other thread, as a share of the call
    for begun, ended in calls:
        inside = np.array([begun] + [t for t in stamps if begun <= t <= ended] + [ended])
        pauses.append(np.diff(inside).max() / (ended - begun))
    assert min(pauses) < 0.5, pauses  # the best of three: the OS may pause the thread once in a while


def test_loading_is_refused_when_disabled_or_not_built(tmp_path, monkeypatch):
    assert aot.load(tmp_path) is None  # nothing built there
    _built_folder()
    monkeypatch.setenv(aot.ENV, "0")
    assert aot.load(_built_folder()) is None
    monkeypatch.setenv(aot.ENV, "1")
    assert aot.load(_built_folder()) is not None


def test_a_builder_is_started_only_where_it_can_help(tmp_path, monkeypatch):
    """Once per process, and not when disabled, already built, or failed before for this key."""
    started = []
    monkeypatch.setattr(aot.subprocess, "Popen", lambda command, **kw: started.append(command) or "builder")
    target = (tmp_path / "m.so", tmp_path / "m.json")
    monkeypatch.setattr(aot, "module_paths", lambda folder=None: target)

    def attempt():
        monkeypatch.setattr(aot, "_STARTED", [])
        aot.build_in_background()
        return len(started)

    assert attempt() == 1 and started[0][1:] == ["-m", "core.aot", "--quiet"]
    aot.build_in_background()
    assert len(started) == 1  # once per process
    monkeypatch.setenv(aot.ENV, "0")
    assert attempt() == 1
    monkeypatch.delenv(aot.ENV)
    aot._failed_marker(target[0]).write_text("no compiler")
    assert attempt() == 1
    aot._failed_marker(target[0]).unlink()
    target[0].write_bytes(b"built")
    assert attempt() == 1
    target[0].unlink()
    assert attempt() == 2


def test_a_build_that_fails_leaves_a_note_and_the_next_build_clears_it(tmp_path):
    import os

    broken = _build(tmp_path, env={**os.environ, "CC": str(tmp_path / "no-such-compiler")})
    path = aot.module_paths(tmp_path)[0]
    assert broken.returncode == 1 and "not built" in broken.stderr
    assert aot._failed_marker(path).is_file() and not path.exists()
    assert aot.load(tmp_path) is None
    done = _build(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert path.is_file() and not aot._failed_marker(path).exists()
    assert json.loads(aot.module_paths(tmp_path)[1].read_text()).keys() == set(aot.EXPORTED)


def test_runs_with_the_module_built_start_no_numba(regression, tmp_path):
    """What the module is for: a process that normalises tick files (a cold run) or reads its markets from
    the market cache (a warm run) does it without importing numba, and trades exactly as a process that
    uses numba's JIT loops."""
    from tests.conftest import fresh_process_json

    assert _build().returncode == 0  # this checkout's module, where runs look for it

    def run(cache: str, **env):
        cfg = json.dumps(regression.config(cache_dir=str(tmp_path / cache)))
        code = ("import hashlib, json, sys; from core import run_backtest; "
                f"r = run_backtest(json.loads({cfg!r})); "
                "print(json.dumps([hashlib.sha256(r.trades.to_csv().encode()).hexdigest(), len(r.trades), "
                "json.dumps(r.health, sort_keys=True, default=str), "
                "sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'llvmlite'})]))")
        return fresh_process_json(code, env)

    cold, warm = run("module"), run("module")
    jit_cold, jit_warm = run("jit", ATMBURST_AOT="0"), run("jit", ATMBURST_AOT="0")
    assert cold[1] > 0 and cold[3] == [] and warm[3] == []
    assert jit_cold[3] == jit_warm[3] == ["llvmlite", "numba"]
    assert cold[:2] == warm[:2] == jit_cold[:2] == jit_warm[:2]
    assert cold[2] == jit_cold[2]  # the data health of normalising the files, counted the same
