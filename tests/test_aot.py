"""The batch kernel's loops compiled ahead of time (core.aot): the same trades as numba's JIT loops,
calls checked before they reach machine code that checks nothing, builders started only where they
can help, and a warm run that starts no numba at all."""
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

from core import aot, kernel
from core.config import default_strategy
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


def test_a_warm_run_with_the_module_built_starts_no_numba(regression, tmp_path):
    """What the module is for: a process whose markets come from the market cache evaluates them without
    importing numba, and trades exactly as a process that uses numba's JIT loops."""
    import os

    assert _build().returncode == 0  # this checkout's module, where runs look for it
    cfg = json.dumps(regression.config(cache_dir=str(tmp_path / "cache")))
    code = ("import hashlib, json, sys; from core import run_backtest; "
            f"r = run_backtest(json.loads({cfg!r})); "
            "print(json.dumps([hashlib.sha256(r.trades.to_csv().encode()).hexdigest(), len(r.trades), "
            "sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'llvmlite'})]))")

    def run(**env):
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                              env={**os.environ, **env})
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.splitlines()[-1])

    cold = run()  # builds the caches (normalising ticks starts numba)
    warm, jit = run(), run(ATMBURST_AOT="0")
    assert cold[1] > 0 and cold[2] == ["llvmlite", "numba"]
    assert warm == [cold[0], cold[1], []]
    assert jit == [cold[0], cold[1], ["llvmlite", "numba"]]
