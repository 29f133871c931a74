"""The MLflow UI as a user sees it: a real `mlflow server` on loopback, a 3-combination sweep logged
to it over HTTP, and headless Chromium (Debian's chromium, driven by Playwright) checking that the
experiment opens on its runs table with the sweep's parent row, that the compare view offers the
swept setting (not paths) beside the ranking metric, that the parent run carries the comparison
table and page, and that the best run's report opens.

Needs /usr/bin/chromium and the playwright package; skipped without them, unless
ATMBURST_REQUIRE_BROWSER=1 (set by .ci/run), where their absence is a failure.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.synth import generate
from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


def _need_browser():
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if missing:
        if os.environ.get("ATMBURST_REQUIRE_BROWSER") == "1":
            pytest.fail("browser test required but missing: " + ", ".join(missing))
        pytest.skip("browser test needs " + ", ".join(missing))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    _need_browser()
    port = _free_port()
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable))
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([mlflow, "server", "--backend-store-uri", f"sqlite:///{tmp_path}/store.db",
                             "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("mlflow server did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def test_mlflow_ui_shows_the_sweep_and_opens_the_report(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import sync_playwright

    data = tmp_path / "data"
    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 3), data, seed=5, workers=1)
    env = {**os.environ, "PYTHONPATH": "", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "sweep/main.py"), "-m", "signal.multiplier=1.5,2,3", "start=2024-07-01",
         "end=2024-07-03", f"data.options_dir={data}/packed/options",
         f"data.spot_glob='{data}/packed/spot/{{symbol}}/**/*.parquet'", f"data.calendar_csv={data}/meta/expiry_calendar.csv",
         f"cache_dir={tmp_path}/cache", f"tracking.uri={mlflow_server}", "ray.num_cpus=2"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("atmburst")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3
    ids = [r.info.run_id for r in children]
    best = max(children, key=lambda r: r.data.metrics["total_pnl_pts"])
    report = next(a.path for a in client.list_artifacts(best.info.run_id) if a.path.startswith("report_"))
    shots = Path(os.environ.get("ATMBURST_SCREENSHOTS_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)

    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "3 combinations: signal.multiplier"
    assert parent.data.metrics["total_pnl_pts"] == best.data.metrics["total_pnl_pts"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"sweep_report.html",
                                                                          "sweep_comparison.parquet"}
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    for run in children:  # settings are params, paths are tags
        assert "results_dir" not in run.data.params and "data.options_dir" not in run.data.params
        assert run.data.tags["path.results_dir"] and "signal.multiplier" in run.data.params

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # The link the sweep prints lands on the experiment's runs table, where the sweep's row says
            # what it holds.
            link = proc.stdout.split("compare them: open ", 1)[1].split()[0]
            assert link.startswith(mlflow_server) and f"/experiments/{experiment.experiment_id}/" in link
            page.goto(link)
            page.wait_for_selector("text=3 combinations: signal.multiplier", timeout=90_000)
            page.wait_for_timeout(1000)
            assert "/runs" in page.url and "overview" not in page.url, page.url
            page.screenshot(path=str(shots / "mlflow_experiment_runs.png"))

            page.goto(f"{mlflow_server}/#/compare-runs?runs={json.dumps(ids)}"
                      f"&experiments={json.dumps([experiment.experiment_id])}")
            page.wait_for_selector("text=Run details", timeout=90_000)
            for name in ("signal.multiplier=1.5", "signal.multiplier=2", "signal.multiplier=3"):
                page.wait_for_selector(f"text={name}", timeout=30_000)
            for metric in ("Objective.total_pnl_pts", "daily_sharpe", "expectancy_pts"):
                page.wait_for_selector(f"text={metric}", state="attached", timeout=30_000)
            page.screenshot(path=str(shots / "mlflow_compare_runs.png"))
            text = page.inner_text("body")
            assert "Comparing 3 Runs" in text and "signal.multiplier" in text
            # The chart opens on what was swept against the ranking metric (with paths as params it
            # offered results_dir, and avg_loss_pts as the alphabetically first metric).
            params_box = page.locator("text=Parameters:").first.locator("xpath=..").inner_text()
            metrics_box = page.locator("text=Metrics:").first.locator("xpath=..").inner_text()
            assert "signal.multiplier" in params_box and "results_dir" not in params_box, params_box
            assert "Objective.total_pnl_pts" in metrics_box, metrics_box

            page.goto(f"{mlflow_server}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
                      f"/artifacts/sweep_report.html")
            page.wait_for_selector("text=sweep_comparison.parquet", timeout=90_000)

            page.goto(f"{mlflow_server}/#/experiments/{experiment.experiment_id}/runs/{best.info.run_id}"
                      f"/artifacts/{report}")
            deadline = time.time() + 90
            frame_text = ""
            while time.time() < deadline and "atmburst: BANKNIFTY" not in frame_text:
                page.wait_for_timeout(500)
                for frame in page.frames[1:]:
                    try:
                        frame_text = frame.inner_text("body")
                    except Exception:  # a frame may be navigating; look again
                        continue
                    if "atmburst: BANKNIFTY" in frame_text:
                        break
            page.screenshot(path=str(shots / "mlflow_run_report.png"))
            assert "atmburst: BANKNIFTY" in frame_text and "SYNTHETIC DATA" in frame_text
            assert "Trade inspector" in frame_text
        finally:
            browser.close()
