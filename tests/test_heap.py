"""The garbage-collector settings of the shell (sweep.heap): only the shell freezes, and the
command's final collection is skipped."""
from __future__ import annotations

import gc
import subprocess
import sys

from core import run_backtest
from tests.conftest import ROOT


def test_a_run_through_the_library_never_freezes_the_callers_heap(regression):
    # A notebook's objects must stay collectable: core never calls gc.freeze.
    gc.unfreeze()
    result = run_backtest(regression.config())
    assert len(result.trades) > 0
    assert gc.get_freeze_count() == 0


CYCLE_AT_EXIT = """
import sys
from sweep.heap import no_collection_at_exit
if sys.argv[1] == "frozen":
    no_collection_at_exit()
    no_collection_at_exit()  # once per process
class Node:
    def __del__(self):
        print("collected", flush=True)
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle: only the collector can free it
del a, b
"""


def test_the_command_skips_the_interpreters_final_collection():
    def run(mode: str) -> str:
        return subprocess.run([sys.executable, "-c", CYCLE_AT_EXIT, mode], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout

    assert "collected" in run("plain")  # the interpreter's final collection frees the cycle ...
    assert run("frozen") == ""  # ... which the command skips: the cycle is frozen by then
