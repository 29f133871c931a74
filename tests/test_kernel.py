"""The batch kernel: a random grid of strategies evaluated in one pass equals the same strategies
evaluated one by one, record for record and bit for bit (signals, entries, exits, health)."""
from __future__ import annotations

import functools
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import Strategy, load_config
from core.config import default_strategy
from core.engine import build_markets, evaluate_markets
from tests.conftest import make_regression_market


@functools.lru_cache(maxsize=1)
def _markets():
    folder = Path(tempfile.mkdtemp(prefix="kernel-market-"))
    market = make_regression_market(folder)
    cfg = load_config(market.config(start="2024-07-01", end="2024-07-02"))
    markets, _ = build_markets(cfg, threads=1)
    return markets


strategy = st.builds(
    Strategy,
    burst_secs=st.sampled_from([30, 20, 60]),
    avg_secs=st.sampled_from([300, 200]),
    multiplier=st.sampled_from([1.0, 1.25, 1.5, 2.0, 3.0, 5.0]),
    min_burst_volume=st.sampled_from([0.0, 300.0]),
    trend_filter=st.booleans(),
    entry_delay_secs=st.sampled_from([0, 1, 3]),
    delta_atm=st.sampled_from([0.5, 0.55]),
    delta_near=st.sampled_from([0.4, 0.35]),
    side=st.sampled_from(["sell", "long"]),
    target_pct=st.sampled_from([0.0, 0.05, 0.15, 0.3]),
    stop_pct=st.sampled_from([0.0, 0.05, 0.15, 0.3]),
    trail_pct=st.sampled_from([0.0, 0.05, 0.1]),
    trail_activate_pct=st.sampled_from([0.0, 0.1]),
    max_hold_secs=st.sampled_from([60, 600, 3600]),
    pnl_mode=st.sampled_from(["delta_proxy", "option_close"]),
    delta_model=st.sampled_from(["fixed", "fixed", "black_scholes"]),
    rate=st.sampled_from([0.0, 0.065, 0.1]),  # within delta.rate's validated range [0, 1]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grid=st.lists(strategy, min_size=2, max_size=10))
def test_a_batch_equals_its_strategies_one_by_one(grid):
    markets = _markets()
    together = evaluate_markets(markets, grid, "BANKNIFTY")
    for s, (trades, health) in zip(grid, together):
        ((alone, alone_health),) = evaluate_markets(markets, [s], "BANKNIFTY")
        assert trades.equals(alone)
        assert health.as_dict() == alone_health.as_dict()


def test_the_batch_is_not_vacuous():
    markets = _markets()
    base = default_strategy()
    grid = [replace(base, multiplier=m, stop_pct=sp) for m in (1.25, 1.5, 3.0) for sp in (0.05, 0.3)]
    results = evaluate_markets(markets, grid, "BANKNIFTY")
    counts = [r.num_rows for r, _ in results]
    assert min(counts) > 0 and len({tuple(r.column("exit_reason").to_pylist()) for r, _ in results}) > 1


def test_a_single_run_does_not_depend_on_how_many_days_share_a_kernel_pass(regression, monkeypatch):
    """run_backtest evaluates DAYS_PER_PASS days per pass: one day per pass and every day in one pass
    give the same trades, health and summary."""
    import core.engine as engine

    cfg = regression.config()
    results = []
    for per_pass in (1, 64):
        monkeypatch.setattr(engine, "DAYS_PER_PASS", per_pass)
        results.append(engine.run_backtest(cfg))
    one_by_one, together = results
    assert one_by_one.trades_table.num_rows > 0
    assert one_by_one.trades_table.equals(together.trades_table)
    assert one_by_one.summary.equals(together.summary)
    assert one_by_one.health == together.health


def test_a_driver_loads_the_compiled_loops_only_until_a_command_has_done_it(tmp_path, monkeypatch):
    """sweep.fanout's driver loads (in a fresh checkout: compiles) the loops while Ray starts, once per
    checkout and cache folder: afterwards its workers load them from numba's cache and the driver leaves
    them alone. The note is keyed by the loops' sources and the numba and Python versions, and is not
    trusted without a cache folder or with numba's cache elsewhere (NUMBA_CACHE_DIR). Where core.aot's
    module serves the loops, the driver loads nothing."""
    from types import SimpleNamespace

    import core.compiled as compiled
    import sweep.fanout as fanout
    from core.kernel import load_loops
    from core.ticks import load_loops as load_normalisation_loops

    from core import aot

    monkeypatch.setattr(aot, "_CHOSEN", [None])  # numba's loops serve (core.aot's module not loaded)
    load_loops()
    load_normalisation_loops()  # numba's cache files of both modules exist, as after any run
    cfg = SimpleNamespace(cache_dir=tmp_path / "cache")  # what the driver reads of a combination's config
    loaded = []

    class Thread:
        def join(self):
            loaded.append("kernel")

    monkeypatch.setattr(fanout, "load_loops_in_background", lambda: Thread())
    monkeypatch.setattr(fanout, "_cache_sessions", lambda cfgs: None)
    assert not compiled.loops_compiled_before(cfg.cache_dir)
    fanout._prepare_local_workers([cfg])
    assert loaded == ["kernel"] and compiled.loops_compiled_before(cfg.cache_dir)
    fanout._prepare_local_workers([cfg])
    assert loaded == ["kernel"]  # not again
    assert not compiled.loops_compiled_before(None)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert not compiled.loops_compiled_before(cfg.cache_dir)
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(compiled.sys, "version", "another Python")
    assert not compiled.loops_compiled_before(cfg.cache_dir)
    monkeypatch.setattr(aot, "_CHOSEN", [object()])  # core.aot's module serves: no process starts numba
    fresh = SimpleNamespace(cache_dir=tmp_path / "another cache")
    fanout._prepare_local_workers([fresh])
    assert loaded == ["kernel"] and not compiled.loops_compiled_before(fresh.cache_dir)


def test_loading_the_loops_skips_numbas_blas_probe_and_leaves_scipy_importable():
    """numba's arraymath probes for a BLAS by importing scipy.linalg when its registries load (a fifth of a
    second or more of a warm run's start). Loading atmburst's loops in a fresh process imports arraymath
    without it: scipy.linalg stays unimported, numba falls back as it does without scipy, and afterwards
    scipy and numba's own linear algebra work as usual in that process."""
    import os
    import subprocess
    import sys

    code = ("import sys; from core.kernel import load_loops; load_loops(); "
            "import numba.np.arraymath as arraymath; "
            "print('scipy.linalg' in sys.modules, arraymath._HAVE_BLAS); "
            "import numpy as np, numba, scipy.linalg, scipy.stats; "
            "a = np.array([[2.0, 1.0], [1.0, 3.0]]); "
            "print(bool(np.allclose(numba.njit(lambda m: np.linalg.inv(m))(a), scipy.linalg.inv(a))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ATMBURST_AOT": "0"})  # numba's loops, not core.aot's module
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "False", "True"]


def test_the_blas_probe_is_refused_to_the_loading_thread_only():
    """While one thread imports arraymath without the probe, another thread importing scipy is not refused:
    the finder answers for the thread that set it, and only until it is done."""
    import threading

    import pytest

    from core.compiled import _RefuseScipy

    finder = _RefuseScipy()
    assert finder.find_spec("scipy.linalg") is None  # not set: inert
    finder.thread = threading.get_ident()
    with pytest.raises(ImportError, match="scipy.linalg.cython_blas"):
        finder.find_spec("scipy.linalg.cython_blas")
    with pytest.raises(ImportError):
        finder.find_spec("scipy")
    assert finder.find_spec("scipyx") is None and finder.find_spec("numpy.linalg") is None
    elsewhere = []
    other = threading.Thread(target=lambda: elsewhere.append(finder.find_spec("scipy.linalg")))
    other.start()
    other.join()
    assert elsewhere == [None]
