"""Sweeps: Ray fan-out, equality with single runs, MLflow child runs, resume, the cluster path."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core import run_backtest
from core.synth import generate, inject_faults
from tests.conftest import ROOT, fresh_process_json

STEM = "BANKNIFTY_2024-07-01_2024-07-03"


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweepdata")
    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 3), out, seed=3, workers=1)
    return out


def data_args(market, end="2024-07-03"):
    return ["start=2024-07-01", f"end={end}", f"data.options_dir={market}/packed/options",
            f"data.spot_glob='{market}/packed/spot/{{symbol}}/**/*.parquet'",
            f"data.calendar_csv={market}/meta/expiry_calendar.csv", f"cache_dir={market}/cache"]


def engine_config(market, **over):
    cfg = {"symbol": "BANKNIFTY", "start": "2024-07-01", "end": "2024-07-03", "cache_dir": None,
           "data": {"options_dir": f"{market}/packed/options",
                    "spot_glob": f"{market}/packed/spot/{{symbol}}/**/*.parquet",
                    "calendar_csv": f"{market}/meta/expiry_calendar.csv"}}
    cfg.update(over)
    return cfg


def sweep(cwd, *args, check=True, env_extra=None):
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": "", "RAY_USAGE_STATS_ENABLED": "0", **(env_extra or {})}
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
    # 8 combinations on a brand-new store, chunked by single days, two Ray workers: at most FUSE_MAX, so each
    # chunk is evaluated in its build task (the batch path: the sweep.batch=1 tests below).
    args = data_args(market) + ["-m", "signal.multiplier=1.5,2,3,4", "risk=sell,long", "sweep.chunk=1",
                                "ray.num_cpus=2"]
    proc = sweep(tmp_path, *args)
    assert "sweep: 8 combinations (0 already done)" in proc.stdout
    client, children, parents = child_runs(tmp_path)
    assert len(children) == 8 and len(parents) == 1
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    # How much of the winner is luck: on the console and on the parent run (3 days: too few for PBO).
    parent = parents[0].data.metrics
    assert parent["overfit.trials"] == 8 and 0.0 <= parent["overfit.deflated_sharpe"] <= 1.0
    assert "Deflated Sharpe" in proc.stdout and "beats the best of 8 combinations" in proc.stdout
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["atmburst.complete"] == "true"
        assert run.data.params["symbol"] == "BANKNIFTY" and "signal.multiplier" in run.data.params
        assert {"trades", "total_pnl_pts", "win_rate", "profit_factor", "max_drawdown_pts",
                "health.problems"} <= set(run.data.metrics) or run.data.metrics["trades"] == 0
        # health counts: their total always, each count only when not zero (the health JSON has all)
        health_file = client.download_artifacts(run.info.run_id, f"health_{STEM}.json", str(tmp_path / run.info.run_id))
        health = json.loads(Path(health_file).read_text())["problems"]
        logged = {k[len("health."):]: v for k, v in run.data.metrics.items() if k.startswith("health.")}
        assert logged == {**{k: float(v) for k, v in health.items() if v}, "problems": float(sum(health.values()))}
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


def test_a_chunked_sweep_reads_each_file_once_and_reports_the_health_of_a_single_run(tmp_path):
    # Faulty data over two expiry groups (2024-07-01..03 trade the 07-03 expiry, 07-04..05 the 07-10 one),
    # cut into day chunks on two Ray workers: the chunks follow the expiry groups, so no option file is
    # read by two chunks, and the health (unreadable files, rows of no day) is the single run's, not
    # counted once per chunk that met the file (it was: bad_file 3 for 1, null_timestamp 19 for 10).
    faulty = tmp_path / "faulty"
    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 5), faulty, seed=5, workers=1)
    inject_faults(faulty, seed=1)
    proc = sweep(tmp_path / "run", "-m", *data_args(faulty, end="2024-07-05"), "signal.multiplier=1.5,3",
                 "sweep.chunk=1", "ray.num_cpus=2", "tracking.enabled=false", "report.enabled=false")
    assert "sweep: 2 combinations (0 already done)" in proc.stdout
    cfg = engine_config(faulty, end="2024-07-05")
    healths = sorted((tmp_path / "run" / "multirun").rglob("health_*.json"))
    assert len(healths) == 2
    for path in healths:
        swept = json.loads(path.read_text())
        multiplier = float(next(path.parent.glob("config_*.yaml")).read_text().split("multiplier:")[1].split()[0])
        single = run_backtest({**cfg, "signal": {"multiplier": multiplier}})
        assert swept["problems"] == single.health["problems"], multiplier
        assert swept["problems"]["bad_file"] == 1 and swept["problems"]["null_timestamp"] > 0
        assert swept["info"]["files_read"] == single.health["info"]["files_read"]
        trades = pd.read_parquet(next(path.parent.glob("trades_*.parquet")))
        pd.testing.assert_frame_equal(trades, single.trades)


def test_date_chunks_merge_to_the_health_of_a_single_run_with_a_spot_file_every_chunk_reads(tmp_path):
    # One spot file without a date in its path holds every day and three rows of no day (null timestamps):
    # every date chunk reads it, and the merged health counts those rows once, as a single run does.
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from core import load_config
    from core.health import Health
    from core.markets import build_markets, expiry_dates
    from sweep.plan import date_chunks

    data = tmp_path / "data"
    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 5), data, seed=4, workers=1)
    spot = pa.concat_tables([pq.read_table(p) for p in sorted((data / "packed" / "spot").rglob("*.parquet"))])
    stamps = spot.column("timestamp").combine_chunks()
    no_day = pc.if_else(pa.array([i < 3 for i in range(len(spot))]), pa.scalar(None, stamps.type), stamps)
    (data / "undated").mkdir()
    pq.write_table(spot.set_column(spot.schema.get_field_index("timestamp"), "timestamp", no_day),
                   data / "undated" / "BANKNIFTY.parquet")
    raw = engine_config(data, end="2024-07-05")
    raw["data"]["spot_glob"] = f"{data}/undated/{{symbol}}.parquet"
    cfg = load_config(raw)
    single = run_backtest(cfg)
    chunks = date_chunks(cfg.start, cfg.end, 1, expiry_dates(cfg))
    assert len(chunks) == 2
    merged = Health()
    for a, b in chunks:
        merged.merge(build_markets(cfg.with_range(a, b))[1])
    assert single.health["problems"]["null_timestamp"] == 3
    evaluated = {"no_option_price", "iv_fallback", "no_cost_data"}  # counted by evaluating, not by building
    assert merged.problems() == {k: v for k, v in single.health["problems"].items() if v and k not in evaluated}


def test_a_sweep_without_ray_runs_in_process_and_equals_single_runs(market, tmp_path):
    # ray.enabled=false: no Ray is started (the closing line has no Ray start); every combination is still
    # an MLflow child run, bit for bit a single run with the same settings, whatever key it varies.
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,3", "pnl_mode=delta_proxy,option_close",
                 "ray.enabled=false", "report.enabled=false")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("sweep: "))
    assert line.startswith("sweep: 4 combinations (0 already done)") and "ray start" not in line, line
    client, children, parents = child_runs(tmp_path)
    assert len(children) == 4 and len(parents) == 1
    for run in children:
        params = run.data.params
        single = run_backtest(engine_config(market, signal={"multiplier": float(params["signal.multiplier"])},
                                            pnl_mode={"name": params["pnl_mode.name"]}))
        local = client.download_artifacts(run.info.run_id, f"trades_{STEM}.parquet", str(tmp_path / run.info.run_id))
        pd.testing.assert_frame_equal(pd.read_parquet(local), single.trades)
        assert run.data.metrics["trades"] == len(single.trades) > 0
    # The same settings through Ray give the same bytes.
    ray_run = sweep(tmp_path / "ray", *data_args(market), "-m", "signal.multiplier=3", "pnl_mode=option_close",
                    "ray.num_cpus=1", "tracking.enabled=false", "report.enabled=false")
    assert "ray start" in ray_run.stdout
    # One worker cannot save anything against this process, so the console suggests going without Ray;
    # the sweep without Ray started none and says nothing of it.
    assert "Ray's start (" in ray_run.stdout and "ray.enabled=false runs a sweep of this size" in ray_run.stdout
    assert "Ray's start" not in proc.stdout
    here = list((tmp_path / "multirun").rglob(f"trades_{STEM}.parquet"))
    there = next((tmp_path / "ray" / "multirun").rglob(f"trades_{STEM}.parquet")).read_bytes()
    assert sum(p.read_bytes() == there for p in here) == 1


def test_a_sweep_prints_a_data_health_block_once_while_it_stays_the_same(market, tmp_path):
    # Combinations on one market share its data health: the block is printed in full for the first, then
    # one line naming it; a market without problems keeps its one line. Each health json is still whole.
    faulty = tmp_path / "faulty"
    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 3), faulty, seed=5, workers=1)
    inject_faults(faulty, seed=1)
    grid = ("-m", "signal.multiplier=1.5,2,3", "ray.enabled=false", "tracking.enabled=false", "report.enabled=false")
    proc = sweep(tmp_path / "faulty_run", *data_args(faulty), *grid)
    lines = proc.stdout.splitlines()
    assert sum(ln == "  data health (details in the health json):" for ln in lines) == 1
    first = next(ln for ln in lines if ln.startswith("atmburst ") and " #" in ln).split(" #")[1].split(" ")[0]
    assert sum(ln == f"  data health: as for #{first} above (the same counts)" for ln in lines) == 2
    healths = [json.loads(p.read_text()) for p in (tmp_path / "faulty_run" / "multirun").rglob("health_*.json")]
    assert len(healths) == 3 and all(h["problems"] == healths[0]["problems"] for h in healths)
    assert sum(healths[0]["problems"].values()) > 0

    clean = sweep(tmp_path / "clean_run", *data_args(market), *grid).stdout.splitlines()
    assert sum(ln == "  data health: no problems" for ln in clean) == 3
    assert not any("as for #" in ln for ln in clean)

    # More combinations than report.console_rows: progress by tenths instead of each combination, the
    # first combination with a new data-health block still in full, and only the best rows of the table.
    brief = sweep(tmp_path / "brief_run", *data_args(faulty), "-m", "signal.multiplier=1.5,2,3,4", "risk=sell,long",
                  "ray.enabled=false", "tracking.enabled=false", "report.console_rows=3").stdout
    lines = brief.splitlines()
    assert sum(ln == "  data health (details in the health json):" for ln in lines) == 1
    assert sum(ln.startswith("  outputs: ") for ln in lines) == 1 and "as for #" not in brief
    progress = [ln for ln in lines if " combinations done in " in ln]
    assert [ln.split()[0] for ln in progress] == [f"{k}/8" for k in range(1, 9)]
    folder = tmp_path / "brief_run" / "multirun"
    assert progress[-1].split("; each one's files in a folder of ")[1].startswith(str(folder))
    header = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["combo"])
    ranked = pd.read_parquet(brief.split("comparison table: ", 1)[1].split()[0]).sort_values(
        ["total_pnl_pts", "combo"], ascending=[False, True])
    assert [int(ln.split()[0]) for ln in lines[header + 1:header + 4]] == list(ranked["combo"][:3])
    assert lines[header + 4] == ("  ... and 5 more combination(s) ranked below these by total_pnl_pts: every one is "
                                 "in the comparison page and table (report.console_rows=3)")
    assert len(list(folder.rglob("health_*.json"))) == 8


def test_resume_skips_finished_combos(market, tmp_path):
    sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,2", "ray.num_cpus=1", "report.enabled=false")
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,2,2.5", "ray.num_cpus=1",
                 "validation=walk_forward", "validation.train=1D", "validation.test=1D")
    assert "sweep: 3 combinations (2 already done)" in proc.stdout
    assert "Downloading artifacts" not in proc.stdout + proc.stderr  # no MLflow progress bars on the console
    # Walk-forward over all three, the two resumed ones read back from MLflow: one choice per day after the first.
    steps = pd.read_parquet(next(tmp_path.glob("multirun/**/walk_forward_steps.parquet")))
    assert list(steps["test_start"]) == [dt.date(2024, 7, 2), dt.date(2024, 7, 3)]
    assert set(steps["combo"].dropna()) <= {0, 1, 2} and steps["combo"].notna().all()
    oos_file = next(tmp_path.glob(f"multirun/**/oos_trades_{STEM}.parquet"))
    import pyarrow.parquet as pq

    assert pq.read_schema(oos_file).metadata[b"atmburst.data"] == b"SYNTHETIC"
    oos = pd.read_parquet(oos_file)
    assert {"exit_reason", "entry_opt", "net_inr", "step", "combo"} <= set(oos.columns)  # whole trade rows
    assert len(oos) == steps["oos_trades"].sum() > 0 and set(oos["trade_date"]) <= {dt.date(2024, 7, 2), dt.date(2024, 7, 3)}
    assert "Walk-forward (2 steps, train 1D, test 1D, rolling, chosen by total_pnl_pts)" in proc.stdout
    _, _, parents = child_runs(tmp_path)
    latest = max(parents, key=lambda r: r.info.start_time).data.metrics
    assert latest["oos.steps"] == 2 and latest["oos.trades"] == len(oos)
    assert latest["oos.total_pnl_pts"] == pytest.approx(oos["pnl_pts"].sum())
    assert proc.stdout.count("already done (MLflow run") == 2
    # The skipped combinations still count in the comparison table, the report and the ranking.
    table_path = proc.stdout.split("comparison table: ", 1)[1].split()[0]
    table = pd.read_parquet(table_path)
    assert sorted(table["signal.multiplier"]) == [1.5, 2.0, 2.5] and int(table["resumed"].sum()) == 2
    assert "3 combinations" in open(table_path.replace("sweep_comparison.parquet", "sweep_report.html")).read()
    _, children, parents = child_runs(tmp_path)
    assert len(children) == 3 and len(parents) == 2
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,2", "sweep.resume=false", "ray.num_cpus=1",
                 "report.enabled=false")
    assert "(0 already done)" in proc.stdout


def test_a_combination_given_twice_runs_once_and_counts_once(market, tmp_path):
    """The same settings twice (a value repeated, or written 2 and 2.0) are one combination: run once, one
    MLflow child run, one row of the comparison, one trial of the overfitting statistics."""
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,2,2.0,1.5", "ray.enabled=false")
    assert "sweep: 4 combinations (0 already done, 2 repeated)" in proc.stdout
    assert "#2 signal.multiplier=2.0: the same settings as #1, not run again" in proc.stdout
    assert "#3 signal.multiplier=1.5: the same settings as #0, not run again" in proc.stdout
    _, children, parents = child_runs(tmp_path)
    assert len(children) == 2 and parents[0].data.metrics["overfit.trials"] == 2
    table = pd.read_parquet(proc.stdout.split("comparison table: ", 1)[1].split()[0])
    assert sorted(table["combo"]) == [0, 1]
    # A later sweep finds its first 2 already done (MLflow) and its second 2 a repeat of the first.
    again = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=2,2", "ray.enabled=false",
                  "report.enabled=false")
    assert "sweep: 2 combinations (1 already done, 1 repeated)" in again.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_cluster_address_where_nothing_answers_is_one_line_exit_2_at_once(market, tmp_path):
    # Ray itself retries an unreachable address for minutes (measured: still retrying after 12 min).
    from sweep.errors import UserError
    from sweep.fanout import check_reachable

    port = _free_port()  # nothing listens here
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(UserError, match=f"nothing answers at ray.address={address}"):
            check_reachable(address, timeout=2)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_reachable(f"127.0.0.1:{listening.getsockname()[1]}", timeout=2)  # something answers: Ray's turn
    check_reachable("auto")  # not HOST:PORT: left to Ray
    from sweep.net import host_port

    assert host_port("ray://head:10001") == ("head", 10001) and host_port("https://mlflow.example/x") == \
        ("mlflow.example", 443) and host_port("head:abc") is None
    from sweep.fanout import on_this_machine
    from sweep.plan import Job

    def local(address):
        return on_this_machine(Job(0, [], {}, {"ray": {"address": address}}))

    assert all(local(a) for a in (None, "127.0.0.1:6379", "localhost:6379", "[::1]:6379", "ray://127.0.0.1:10001"))
    assert not any(local(a) for a in ("auto", "head:6379", "ray://10.0.0.5:10001", "127.0.0.1:abc"))
    # The same for an MLflow server: its client retried one for over four minutes before the store
    # was given up (tracking off with a warning); now the store fails at once.
    from sweep.tracking import Tracker

    with pytest.raises(ConnectionError, match=f"nothing answers at http://127.0.0.1:{port}"):
        Tracker({"uri": f"http://127.0.0.1:{port}"}, tmp_path)
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,3", f"ray.address=127.0.0.1:{port}",
                 "tracking.enabled=false", "report.enabled=false", check=False)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines[-1].startswith(f"atmburst: nothing answers at ray.address=127.0.0.1:{port}"), lines


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
        # ray.address=null is a private Ray even while another cluster runs here: it must not join it
        # (joining would also refuse ray.num_cpus).
        private = sweep(tmp_path / "private", *data_args(market), "-m", "signal.multiplier=1.5,3", "ray.num_cpus=2",
                        "tracking.enabled=false", "report.enabled=false")
        assert "sweep: 2 combinations" in private.stdout
        # `ray start` turns token authentication on when this machine has a token; its drivers must too
        # (RAY_AUTH_MODE, as Ray documents it).
        auth = {"RAY_AUTH_MODE": "token"} if os.path.exists(os.path.expanduser("~/.ray/auth_token")) else {}
        check = subprocess.run([sys.executable, "-c", (
            "import ray; ray.init(address='127.0.0.1:%d', logging_level='ERROR'); "
            "from ray._private.state import state; print('JOBS', len(state.job_table()))") % port],
            capture_output=True, text=True, env={**env, **auth}, timeout=120)
        assert "JOBS 1" in check.stdout, check.stdout + check.stderr  # only the checker itself
        proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,3", f"ray.address=127.0.0.1:{port}",
                     "tracking.enabled=false", env_extra=auth)
        assert "sweep: 2 combinations" in proc.stdout
        if auth:  # a driver without the cluster's token authentication: Ray gives up after ~20 s; one line
            wrong = sweep(tmp_path / "no_auth", *data_args(market), "-m", "signal.multiplier=1.5",
                          f"ray.address=127.0.0.1:{port}", "tracking.enabled=false", "report.enabled=false",
                          check=False, env_extra={"RAY_AUTH_MODE": "disabled"})
            lines = [ln for ln in wrong.stderr.strip().splitlines() if ln.strip()]
            assert wrong.returncode == 2 and "Traceback" not in wrong.stderr, wrong.stderr[-3000:]
            assert lines[-1].startswith("atmburst: cannot connect to the Ray cluster") and "RAY_AUTH_MODE" in lines[-1]
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, env=env, timeout=120)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()
    outputs = sorted((tmp_path / "multirun").rglob(f"trades_{STEM}.parquet"))
    assert len(outputs) == 2
    single = run_backtest(engine_config(market, signal={"multiplier": 3.0}))
    pd.testing.assert_frame_equal(pd.read_parquet(outputs[1]), single.trades)


TWO_NODES = """
import os, sys, time
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                       "include_dashboard": False})
cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
cluster.wait_for_nodes()
with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write(cluster.address)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
try:
    while not os.path.exists(sys.argv[1] + ".stop"):
        time.sleep(0.2)
finally:
    cluster.shutdown()
"""


def test_a_sweep_on_a_two_node_cluster_uses_both_nodes_and_equals_local_runs(tmp_path):
    import time

    # Two expiry groups (07-01..03 and 07-04..05), so two date chunks whose builds the two nodes share.
    market = tmp_path / "market"
    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 5), market, seed=3, workers=1)
    stem = "BANKNIFTY_2024-07-01_2024-07-05"

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    address_file = tmp_path / "address"
    cluster = subprocess.Popen([sys.executable, "-c", TWO_NODES, str(address_file)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    grid = ("signal.multiplier=1.5,2,2.5,3", "sweep.chunk=1", "sweep.batch=1", "tracking.enabled=false",
            "report.enabled=false")
    try:
        deadline = time.time() + 180
        while not address_file.exists() and time.time() < deadline and cluster.poll() is None:
            time.sleep(0.2)
        assert address_file.exists(), "the two-node cluster did not start"
        remote = sweep(tmp_path / "cluster", *data_args(market, end="2024-07-05"), "-m", *grid,
                       f"ray.address={address_file.read_text()}")
    finally:
        (tmp_path / "address.stop").write_text("")
        try:
            cluster.wait(timeout=120)
        except subprocess.TimeoutExpired:
            cluster.kill()
    assert "on 2 Ray nodes" in remote.stdout, remote.stdout  # tasks (builds, batches) ran on both nodes
    # The same bytes as a local run of each combination through the same publishing code (a local sweep
    # gives those bytes too: test_sweep_logs_one_child_run_per_combo_and_equals_single_runs).
    from core.finish import finish_run

    for i, multiplier in enumerate((1.5, 2, 2.5, 3)):
        local = finish_run(run_backtest(engine_config(market, end="2024-07-05", signal={"multiplier": multiplier})))
        a = next((tmp_path / "cluster" / "multirun").rglob(f"{i}/trades_{stem}.parquet")).read_bytes()
        assert a == local.files[f"trades_{stem}.parquet"]


def test_bad_combination_stops_before_any_work(market, tmp_path):
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,-1", "tracking.enabled=false", check=False)
    assert proc.returncode == 2 and "signal.multiplier" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("trades_*.parquet"))


def test_explicit_results_dir_gives_each_combination_its_own_folder(market, tmp_path):
    out = tmp_path / "results"
    proc = sweep(tmp_path, *data_args(market), "-m", "signal.multiplier=1.5,2.5,4", f"results_dir={out}",
                 "tracking.enabled=false", "report.enabled=false", "ray.num_cpus=1")
    files = sorted(out.glob(f"*/trades_{STEM}.parquet"))
    assert [f.parent.name for f in files] == ["0_signal.multiplier=1.5", "1_signal.multiplier=2.5",
                                              "2_signal.multiplier=4"]
    contents = {f.read_bytes() for f in files}
    assert len(contents) == 3  # different settings, different trades, none overwritten
    for f in files:
        assert f"outputs: {f.parent}/" in proc.stdout
    frames = [pd.read_parquet(f) for f in files]
    assert len(frames[0]) != len(frames[2]) or not frames[0].equals(frames[2])
    # Each combination's console line gives its own evaluation time, never the sweep's running total.
    import re

    times = [float(t) for t in re.findall(r"evaluation ([0-9.]+) s", proc.stdout)]
    total = float(re.search(r"in ([0-9.]+) s \(", proc.stdout).group(1))
    assert len(times) == 3 and sum(times) < total and "wall" not in proc.stdout.split("sweep:")[0]


def test_config_group_sweeps_with_hydra_functions_and_unquoted_placeholder(market, tmp_path):
    args = [a for a in data_args(market) if not a.startswith("data.spot_glob")]
    args.append(f"data.spot_glob={market}/packed/spot/{{symbol}}/**/*.parquet")  # no inner quotes
    proc = sweep(tmp_path, *args, "-m", "risk=choice(sell,long)", "pnl_mode=glob(*)", "tracking.enabled=false",
                 "report.enabled=false", "ray.num_cpus=1")
    assert "side=sell" in proc.stdout and "side=long" in proc.stdout
    assert "pnl_mode=delta_proxy" in proc.stdout and "pnl_mode=option_close" in proc.stdout
    assert "sweep: 4 combinations" in proc.stdout


def _runs(db):
    from filelock import FileLock
    from mlflow.tracking import MlflowClient

    with FileLock(f"{db}.lock"):  # as atmburst itself opens a store: never two creating it at once
        client = MlflowClient(f"sqlite:///{db}")
        exp = client.get_experiment_by_name("atmburst")
    return client.search_runs([exp.experiment_id]) if exp else []


def test_two_sweeps_at_once_on_a_new_store_log_every_run(market, tmp_path):
    env = {**os.environ, "PYTHONPATH": "", "RAY_USAGE_STATS_ENABLED": "0"}
    db = tmp_path / "store.db"
    procs = []
    for n, values in enumerate(("1.5,2,3", "2.5,3.5,4")):
        cwd = tmp_path / f"s{n}"
        cwd.mkdir()
        procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / "sweep/main.py"), "-m", f"signal.multiplier={values}", *data_args(market),
             f"tracking.uri=sqlite:///{db}", f"tracking.artifacts={tmp_path / 'artifacts'}", "report.enabled=false",
             "ray.num_cpus=1", "quiet=true"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert "tracking is off" not in err, err
    runs = _runs(db)
    assert len(runs) == 8  # 2 parents + 6 children
    assert all(r.info.status == "FINISHED" for r in runs)


def test_a_killed_sweep_leaves_no_running_run_after_the_next(market, tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": "", "RAY_USAGE_STATS_ENABLED": "0"}
    grid = "signal.multiplier=range(1.0,4.0,0.05)"  # 60 combinations: logging them outlasts the kill
    args = [sys.executable, str(ROOT / "sweep/main.py"), "-m", grid,
            *data_args(market), "sweep.chunk=1", "sweep.batch=1", "ray.num_cpus=1", "report.enabled=false",
            "tracking.log_processes=0", "quiet=true"]
    # One combination per task and one logging thread: runs finish one by one, long before the end.
    # The rerun below logs through the default pool of logging processes (50 combinations or more).
    log = open(tmp_path / "killed_sweep.log", "w")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    db = tmp_path / "mlflow.db"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if db.exists():
                try:
                    finished = [r for r in _runs(db) if r.info.status == "FINISHED"]
                except Exception:  # the store is being created
                    finished = []
                if finished:
                    break
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    finally:
        still_running = proc.poll() is None
        if still_running:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()
    assert still_running, "the sweep ended before it could be killed:\n" + (tmp_path / "killed_sweep.log").read_text()[-3000:]
    before = _runs(db)
    assert any(r.info.status == "RUNNING" for r in before)  # the killed parent at least
    done_before = sum(1 for r in before if r.info.status == "FINISHED" and "mlflow.parentRunId" in r.data.tags)
    rerun = sweep(tmp_path, *data_args(market), "-m", grid, "ray.enabled=false", "report.enabled=false")
    assert f"sweep: 60 combinations ({done_before} already done)" in rerun.stdout and done_before >= 1
    # more combinations than report.console_rows: no line per combination, progress by tenths of the rest
    assert "already done (MLflow run" not in rerun.stdout and "  outputs: " not in rerun.stdout
    assert f"  {60 - done_before}/{60 - done_before} combinations done in " in rerun.stdout
    after = _runs(db)
    assert not [r for r in after if r.info.status == "RUNNING"]
    assert sum(1 for r in after if r.info.status == "KILLED") >= 1


def _started_sweep(market, cwd, grid, *extra):
    """A sweep started as a terminal would (its own process group), and its log file."""
    env = {**os.environ, "PYTHONPATH": "", "RAY_USAGE_STATS_ENABLED": "0"}
    args = [sys.executable, str(ROOT / "sweep/main.py"), "-m", grid, *data_args(market), *extra]
    log_path = cwd / "sweep.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log_path


def test_a_sweep_whose_output_reader_has_gone_finishes_its_work(market, tmp_path):
    """Piped into a reader that has ended (``| head``): the sweep's console writes meet a closed pipe from
    the first one, yet every combination runs, is logged and written, and the command ends with status 0
    and no traceback."""
    env = {**os.environ, "PYTHONPATH": "", "RAY_USAGE_STATS_ENABLED": "0"}
    args = [sys.executable, str(ROOT / "sweep/main.py"), "-m", "signal.multiplier=1.5,3", *data_args(market),
            "ray.enabled=false", "report.enabled=false"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    _, errors = proc.communicate(timeout=600)
    errors = errors.decode()
    assert proc.returncode == 0, errors[-3000:]
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors[-3000:]
    children = [r for r in _runs(tmp_path / "mlflow.db") if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.info.status for r in children) == ["FINISHED", "FINISHED"]
    assert len(list((tmp_path / "multirun").rglob("trades_*.parquet"))) == 2


def test_ctrl_c_stops_a_sweep_cleanly_keeps_what_finished_and_the_next_run_resumes(market, tmp_path):
    import re
    import signal
    import time

    grid = "signal.multiplier=range(1.0,4.0,0.05)"  # 60 combinations, one per task: the interrupt comes early
    proc, log_path = _started_sweep(market, tmp_path, grid, "sweep.chunk=1", "sweep.batch=1", "ray.num_cpus=1",
                                    "report.enabled=false", "quiet=true")
    db = tmp_path / "mlflow.db"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                if db.exists() and any(r.info.status == "FINISHED" for r in _runs(db)):
                    break
            except Exception:  # the store is being created
                pass
            time.sleep(0.3)
        assert proc.poll() is None, "the sweep ended before Ctrl-C:\n" + log_path.read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = log_path.read_text()
    assert proc.returncode == 130, log[-3000:]
    assert "Traceback" not in log and "Fatal Python error" not in log, log[-3000:]
    assert log.rstrip().endswith("atmburst: interrupted")
    kept = re.search(r"sweep interrupted: (\d+) of 60 combinations finished in it, each with whole files and its "
                     r"MLflow run; the same command runs only the rest", log)
    assert kept, log[-3000:]
    kept = int(kept.group(1))
    runs = _runs(db)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    # under load every task may be done before the first child run is logged: then the Ctrl-C comes while the
    # sweep waits for its last MLflow runs, and it is still interrupted, logs the rest and says so
    assert parent.info.status == "KILLED" and 1 <= kept <= 60
    assert len(children) == kept and all(r.info.status == "FINISHED" for r in children)
    rerun = sweep(tmp_path, *data_args(market), "-m", grid, "ray.enabled=false", "report.enabled=false", "quiet=true")
    assert f"60 combinations ({kept} already done)" in rerun.stdout


def test_an_optuna_search_runs_batches_of_trials_as_child_runs_of_one_parent(market, tmp_path):
    """Hydra's Optuna sweeper through this app's launcher: 6 trials in batches of 3 on one Ray, each an
    MLflow child run of one parent; the objective returned to Optuna is each trial's report.metric."""
    proc = sweep(tmp_path, *data_args(market), "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=6",
                 "hydra.sweeper.n_jobs=3", "hydra.sweeper.sampler.seed=7", "signal.multiplier=interval(1,5)",
                 "risk.target_pct=interval(0.05,1)", "ray.num_cpus=2")
    assert proc.stdout.count("sweep: 6 combinations (0 already done)") == 1  # one session over both batches
    client, children, parents = child_runs(tmp_path)
    assert len(children) == 6 and len(parents) == 1
    parent = parents[0]
    assert parent.data.params["combinations"] == "6" and parent.data.metrics["overfit.trials"] == 6
    assert parent.info.status == "FINISHED" and parent.data.tags["mlflow.runName"].startswith("search: ")
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert len({r.data.params["signal.multiplier"] for r in children}) == 6  # six sampled settings
    import yaml

    result = yaml.safe_load(next(tmp_path.glob("multirun/**/optimization_results.yaml")).read_text())
    best = max(r.data.metrics["total_pnl_pts"] for r in children)
    assert result["best_value"] == pytest.approx(best)  # maximised: the direction follows report.metric
    assert (tmp_path.glob("multirun/**/sweep_report.html")) and "Deflated Sharpe" in proc.stdout


def test_the_ray_start_hint_appears_only_when_starting_ray_cost_more_than_its_workers_can_save(tmp_path):
    from sweep.runner import SweepSession

    class FakeJob:
        def __init__(self, address=None):
            self.address = address

        def setting(self, section, key):
            return self.address if (section, key) == ("ray", "address") else None

    session = SweepSession(tmp_path)
    session.jobs, session.timing, session.workers = [FakeJob()], {"ray_start": 6.0, "tasks": 4.0}, 2
    hint = session.ray_start_hint()
    assert hint and "Ray's start (6.0 s)" in hint and "2 worker(s)" in hint and "4.0 s of tasks" in hint
    session.workers = 3  # three workers can have saved up to 8 s against one process: no hint
    assert session.ray_start_hint() is None
    session.workers, session.jobs = 2, [FakeJob("10.0.0.5:6379")]  # a cluster: going without it is no advice
    assert session.ray_start_hint() is None
    session.jobs, session.timing, session.workers = [FakeJob()], {"tasks": 4.0}, 0  # ray.enabled=false
    assert session.ray_start_hint() is None


def test_a_worker_builds_and_evaluates_without_pandas(market, tmp_path):
    """What a Ray task of a small sweep runs (``_build_and_evaluate_chunk`` less Ray's node id): building the
    markets, cold and again from the cache, the batch kernel and the trades as IPC bytes, in a fresh
    process that never imports pandas (its import is 0.13-0.2 s of each worker's start). The bytes read
    back as the kernel's tables, whose trades are the single run's."""
    from core.holidays import nse_trading_days_cached
    from sweep.fanout import LEAN_WORKER

    # the exchange's sessions (the calendar library, which needs pandas) cached as the driver caches them
    nse_trading_days_cached(dt.date(2024, 7, 1), dt.date(2024, 7, 3), tmp_path / "cache")
    cfg = json.dumps(engine_config(market, cache_dir=str(tmp_path / "cache")))
    code = ("import json, sys; from core import load_config; from core.engine import build_markets, evaluate_markets; "
            "from sweep.fanout import from_ipc_bytes, ipc_bytes; "
            f"cfg = load_config(json.loads({cfg!r})); out = []\n"
            "for _ in range(2):\n"
            "    markets, health = build_markets(cfg, threads=1)\n"
            "    evaluated = evaluate_markets(markets, [cfg.strategy], cfg.symbol)\n"
            "    data = [ipc_bytes(trades) for trades, _ in evaluated]\n"
            "    out.append([len(markets), from_ipc_bytes(data[0]).num_rows, 'pandas' in sys.modules,\n"
            "                all(from_ipc_bytes(d).equals(t) for d, (t, _) in zip(data, evaluated))])\n"
            "print(json.dumps(out))")
    # as sweep.fanout starts Ray's workers (without the variable, importing core imports pandas for a first run)
    cold, warm = fresh_process_json(code, LEAN_WORKER)
    single = run_backtest(engine_config(market))
    assert cold == warm == [3, len(single.trades), False, True]
