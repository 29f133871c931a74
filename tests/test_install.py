"""A regular (non-editable) install works from any folder: configs and tables ship as package data.

The wheel is built from this checkout and installed without dependencies into a fresh virtualenv
whose only link to the test environment is a path file naming its site-packages (so the
dependencies are found, but not the editable checkout). Then a backtest and a tracked sweep run
from an unrelated folder through the installed ``atmburst`` command.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd

from tests.conftest import ROOT


def _run(args, cwd, env, timeout=600):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheel_install_runs_a_backtest_and_a_sweep_from_elsewhere(regression, tmp_path):
    env = {**os.environ, "PYTHONPATH": "", "RAY_USAGE_STATS_ENABLED": "0"}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(tmp_path / "wheel")],
         tmp_path, env)
    (wheel,) = (tmp_path / "wheel").glob("atmburst-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # dependencies only
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], tmp_path, env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([str(python), "-c", "import core, sweep; print(core.__file__); print(sweep.__file__)"],
                 elsewhere, env).stdout
    assert str(ROOT) not in where and str(site) in where  # the installed copy, not the checkout

    atmburst = str(venv / "bin" / "atmburst")
    data = regression.overrides()
    single = _run([atmburst, *data, "results_dir=single", "tracking.enabled=false", "report.enabled=false"],
                  elsewhere, env)
    assert "trades 18" in single.stdout
    trades = pd.read_parquet(elsewhere / "single" / f"trades_{regression.stem}.parquet")
    assert len(trades) == len(regression.expected("default"))
    # The default calendar path is missing here: the calendar shipped in the package is used.
    no_calendar = [o for o in data if not o.startswith("data.calendar_csv")]
    _run([atmburst, *no_calendar, "results_dir=shipped", "tracking.enabled=false", "report.enabled=false"],
         elsewhere, env)
    swept = _run([atmburst, "-m", *data, "signal.multiplier=1.5,3", "ray.num_cpus=1", "report.enabled=false"],
                 elsewhere, env)
    assert "sweep: 2 combinations (0 already done)" in swept.stdout
    assert (elsewhere / "mlflow.db").is_file()
