"""The repository stands alone: without the golden case beside it nothing is skipped for missing data,
and no file of the repository needs anything outside it."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def _pytest(args, env):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_clone_without_golden_runs_everything_and_skips_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ATMBURST_REQUIRE_GOLDEN"}
    env["ATMBURST_GOLDEN"] = str(tmp_path / "absent")
    collected = _pytest(["--collect-only", "-q", "tests"], env)
    assert collected.returncode == 0 and "test_regression.py" in collected.stdout
    assert "test_golden" not in collected.stdout  # not collected, so never skipped
    proc = _pytest(["-q", "-rs", "tests/test_regression.py", "tests/test_calendar.py"], env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary
    env["ATMBURST_REQUIRE_GOLDEN"] = "1"  # as CI runs: the golden case must be there
    proc = _pytest(["-q", "--collect-only", "tests"], env)
    assert proc.returncode != 0 and "ATMBURST_REQUIRE_GOLDEN" in proc.stdout + proc.stderr


def test_no_file_refers_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    allowed = {"tests/conftest.py", ".ci/run", "tests/test_standalone.py"}  # where the optional golden case is
    offenders = []
    for name in files:
        path = ROOT / name
        if name in allowed or not path.is_file() or path.suffix in (".png", ".parquet"):
            continue
        text = path.read_text(errors="ignore")
        if "../shared" in text or "shared/SPEC" in text or "shared/golden" in text:
            offenders.append(name)
    assert not offenders, offenders
