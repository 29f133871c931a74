"""Sweeps: Ray fan-out, equality with single runs, MLflow child runs, resume, the cluster path."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys

import pandas as pd
import pytest

from core import run_backtest
from core.synth import generate
from tests.conftest import ROOT

STEM = "BANKNIFTY_2024-07-01_2024-07-03"


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweepdata")
    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 3), out, seed=3, workers=1)
    return out


def data_args(market):
    return ["start=2024-07-01", "end=2024-07-03", f"data.options_dir={market}/packed/options",
            f"data.spot_glob='{market}/packed/spot/{{symbol}}/**/*.parquet'",
            f"data.calendar_csv={market}/meta/expiry_calendar.csv", f"cache_dir={market}/cache"]


def engine_config(market, **over):
    cfg = {"symbol": "BANKNIFTY", "start": "2024-07-01", "end": "2024-07-03", "cache_dir": None,
           "data": {"options_dir": f"{market}/packed/options",
                    "spot_glob": f"{market}/packed/spot/{{symbol}}/**/*.parquet",
                    "calendar_csv": f"{market}/meta/expiry_calendar.csv"}}
    cfg.update(over)
    return cfg


def sweep(cwd, *args, check=True):
    env = {**os.environ, "PYTHONPATH": "", "RAY_USAGE_STATS_ENABLED": "0"}
    if "-m" in args:  # Hydra wants the flag before the overrides
        args = ("-m", *[a for a in args if a != "-m"])
    proc = subprocess.run([sys.executable, str(ROOT / "sweep/main.py"), *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"sweep failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def child_runs(cwd):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    exp = client.get_experiment_by_name("atmburst")
    runs = client.search_runs([exp.experiment_id])
    return client, [r for r in runs if "mlflow.parentRunId" in r.data.tags], [r for r in runs if
                                                                            "mlflow.parentRunId" not in r.data.tags]


def test_sweep_logs_one_child_run_per_combo_and_equals_single_runs(market, tmp_path):
    # 8 combinations on a brand-new store, chunked by single days, two Ray workers.
    args = data_args(market) + ["-m", "signal.multiplier=1.5,2,3,4", "risk=sell,long", "sweep.chunk=1",
                                "ray.num_cpus=2"]
    proc = sweep(tmp_path, *args)
    assert "sweep: 8 combinations (0 already done)" in proc.stdout
    client, children, parents = child_runs(tmp_path)
    assert len(children) == 8 and len(parents) == 1
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["atmburst.complete"] == "true"
        assert run.data.params["symbol"] == "BANKNIFTY" and "signal.multiplier" in run.data.params
        assert {"trades", "total_pnl_pts", "win_rate", "profit_factor", "max_drawdown_pts",
                "health.bad_file"} <= set(run.data.metrics) or run.data.metrics["trades"] == 0
        assert run.data.tags["data_fingerprint"] and run.data.tags["date_range"] == "2024-07-01..2024-07-03"
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {f"trades_{STEM}.parquet", f"summary_{STEM}.parquet", f"health_{STEM}.json",
                f"config_{STEM}.yaml"} <= names
        # Bit for bit what a single run with the same settings gives.
        params = run.data.params
        single = run_backtest(engine_config(market, signal={"multiplier": float(params["signal.multiplier"])},
                                            risk={"side": params["risk.side"]}))
        local = client.download_artifacts(run.info.run_id, f"trades_{STEM}.parquet", str(tmp_path / run.info.run_id))
        swept = pd.read_parquet(local)
        pd.testing.assert_frame_equal(swept, single.trades)
        assert run.data.metrics["trades"] == len(single.trades) > 0


def test_resume_skips_finished_combos(market, tmp_path):
    sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,2", "ray.num_cpus=1")
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,2,2.5", "ray.num_cpus=1")
    assert "sweep: 3 combinations (2 already done)" in proc.stdout
    assert proc.stdout.count("already done (MLflow run") == 2
    _, children, parents = child_runs(tmp_path)
    assert len(children) == 3 and len(parents) == 2
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,2", "sweep.resume=false", "ray.num_cpus=1")
    assert "(0 already done)" in proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cluster_path_and_tracking_off(market, tmp_path):
    ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable))
    port = _free_port()
    # A one-machine cluster on loopback (Ray would otherwise advertise the host's network address).
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    start = subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                            "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                           capture_output=True, text=True, env=env, timeout=180)
    assert start.returncode == 0, start.stderr
    try:
        proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,3", f"ray.address=127.0.0.1:{port}",
                     "tracking.enabled=false")
        assert "sweep: 2 combinations" in proc.stdout
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, env=env, timeout=120)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()
    outputs = sorted((tmp_path / "multirun").rglob(f"trades_{STEM}.parquet"))
    assert len(outputs) == 2
    single = run_backtest(engine_config(market, signal={"multiplier": 3.0}))
    pd.testing.assert_frame_equal(pd.read_parquet(outputs[1]), single.trades)


def test_bad_combination_stops_before_any_work(market, tmp_path):
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,-1", "tracking.enabled=false", check=False)
    assert proc.returncode == 2 and "signal.multiplier" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("trades_*.parquet"))
