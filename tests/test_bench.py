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
