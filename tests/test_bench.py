"""The benchmark script's own arithmetic (bench/run.py is not run in CI: it takes minutes of dense data).

Importing it here also keeps it importable: a broken bench would otherwise go unnoticed until someone
measures with it.
"""
from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("atmburst_bench", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stolen_percent_is_the_hosts_share_of_the_machines_cpu_time_between_two_readings():
    bench = _bench()
    assert bench.stolen_percent((100, 1_000), (130, 1_200)) == 15.0  # 30 of 200 ticks
    assert bench.stolen_percent((100, 1_000), (100, 1_400)) == 0.0
    assert bench.stolen_percent(None, (100, 1_000)) is None  # no /proc/stat (not Linux)
    assert bench.stolen_percent((100, 1_000), (100, 1_000)) is None  # no time passed


def test_steal_cells_show_each_measurement_and_say_when_it_is_unknown():
    bench = _bench()
    assert bench.steal_cell({"steal": 2.4}) == "2%"
    assert bench.steal_cell({"steal": 24.6}, {"steal": None}) == "25% / n/a"


def test_cpu_ticks_reads_this_machines_counters():
    bench = _bench()
    ticks = bench.cpu_ticks()
    if ticks is None:
        pytest.skip("no /proc/stat on this system")
    stolen, total = ticks
    assert 0 <= stolen <= total and total > 0


def test_the_committed_results_end_with_the_scripts_notes():
    """bench/run.py writes its NOTES under the tables it measures: a note added to bench/RESULTS.md alone
    would be lost by the next bench run, and one added to the script alone would be missing until then."""
    results = (ROOT / "bench" / "RESULTS.md").read_text()
    notes = "\n".join(_bench().NOTES)
    assert results.rstrip("\n").endswith(notes.rstrip("\n"))


def test_tree_memory_from_the_counters_gives_the_resident_memory_of_the_page_table_walk():
    """Every bench line but the sweeps samples each process's counters (statm) rather than walking its
    page tables (smaps_rollup): both must give the tree's resident memory, the counters without PSS."""
    import os
    import subprocess
    import sys

    if not os.path.exists("/proc/self/statm") or not os.path.exists("/proc/self/smaps_rollup"):
        pytest.skip("no /proc/<pid>/statm or smaps_rollup on this system")
    bench = _bench()
    # a process holding 64 MB it has touched, and a child of it holding 32 MB: the tree counts both
    code = ("import subprocess, sys, time; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); "
            "c = subprocess.Popen([sys.executable, '-c', \"import time; b = bytearray(32 << 20); "
            "b[::4096] = b'x' * len(b[::4096]); print('ready', flush=True); time.sleep(60)\"], "
            "stdout=subprocess.PIPE, text=True); c.stdout.readline(); print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        counters_rss, counters_pss = bench.tree_memory_kb(proc.pid, proportional=False)
        walked_rss, walked_pss = bench.tree_memory_kb(proc.pid, proportional=True)
    finally:
        os.killpg(proc.pid, 9)  # the process and its child: a session of their own
        proc.wait()
        proc.stdout.close()
    assert counters_pss == 0 and walked_pss > 0
    assert counters_rss >= 96 * 1024  # both processes' touched memory, in kB
    assert abs(counters_rss - walked_rss) <= 0.05 * walked_rss
