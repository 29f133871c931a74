"""Run combinations of a sweep: Ray fans out one task per (symbol, date chunk, combination)
over markets built once per (symbol, date chunk) and shared through Ray's object store (and the
on-disk seconds cache); the driver writes each combination's files and logs it to MLflow.

Trades of a combination equal those of a single run with the same overrides, bit for bit:
days are independent, and each chunk runs the same engine functions over its days.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from core import ConfigError, RunConfig, load_config
from core.console import format_stats
from core.engine import (BacktestResult, build_markets, evaluate_markets, results_from_trades, run_backtest,
                         run_fingerprint)
from core.health import Health
from core.cache import atomic_write_bytes
from core.finish import FinishedRun, finish_run, load_result, write_finished
from sweep.errors import UserError
from sweep.progress import Progress
from sweep.settings import SHELL_DEFAULTS, SHELL_KEYS
from sweep.tracking import OBJECTIVE_PREFIX

ROOT = Path(__file__).resolve().parents[1]
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: same text, faster
@dataclass
class Job:
    """One combination: its overrides, the composed engine config and the shell settings."""

    index: int
    overrides: list[str]
    engine: dict
    shell: dict = field(default_factory=dict)

    def setting(self, section: str, key: str):
        value = (self.shell.get(section) or {}).get(key)
        return SHELL_DEFAULTS[section][key] if value is None and key in SHELL_DEFAULTS[section] else value


def split_config(plain: dict) -> tuple[dict, dict]:
    """(engine config, shell settings) from a plain composed config."""
    engine = dict(plain)
    engine.pop("hydra", None)
    shell = {k: engine.pop(k) for k in SHELL_KEYS if k in engine}
    return engine, shell


def combo_key(cfg: RunConfig, fingerprint: str) -> str:
    """Identity of a combination's result: the composed engine config (less where it writes) and the data."""
    raw = {k: v for k, v in cfg.raw.items() if k != "results_dir"}
    text = json.dumps(raw, sort_keys=True, default=str) + "|" + fingerprint
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def date_chunks(start: dt.date, end: dt.date, how) -> list[tuple[dt.date, dt.date]]:
    """Split [start, end] by calendar month ('month'), ISO week ('week'), N days (an int) or not ('none')."""
    if how in (None, "none", "all"):
        return [(start, end)]
    out, a = [], start
    while a <= end:
        if how == "month":
            nxt = dt.date(a.year + (a.month == 12), a.month % 12 + 1, 1)
        elif how == "week":
            nxt = a + dt.timedelta(days=7 - a.weekday())
        elif isinstance(how, int) and how > 0:
            nxt = a + dt.timedelta(days=how)
        else:
            raise ConfigError(f"config key 'sweep.chunk' must be month, week, none or a number of days; got {how!r}")
        out.append((a, min(end, nxt - dt.timedelta(days=1))))
        a = nxt
    return out


def _market_key(cfg: RunConfig) -> str:
    """Identity of a combination's market: its settings of the market part (core.settings)."""
    return json.dumps(cfg.market_settings, sort_keys=True, default=str)


def swept_keys(jobs: list[Job]) -> list[str]:
    """The override keys whose value differs between combinations."""
    values: dict[str, set] = defaultdict(set)
    for j in jobs:
        for o in j.overrides:
            values[o.split("=", 1)[0]].add(o)
    return sorted(k for k, v in values.items() if len(v) > 1)


def combo_label(job: Job, swept: list[str]) -> str:
    """The combination in a few words: its swept overrides."""
    own = [o for o in job.overrides if o.split("=", 1)[0] in swept]
    return " ".join(own) or f"#{job.index}"


def combo_folder_name(job: Job, swept: list[str]) -> str:
    """A folder name for one combination: its number and its swept overrides, safe on any filesystem."""
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", combo_label(job, swept).replace(" ", ",")).strip("_")
    return f"{job.index}_{slug[:120]}" if slug and slug != f"_{job.index}" else str(job.index)


class Finisher:
    """Writes a combination's files and logs it to MLflow (driver side)."""

    def __init__(self, jobs: list[Job], base_dir: Path, sweep_name: str | None):
        first = jobs[0]
        self.quiet = bool(first.shell.get("quiet"))
        self.sweeping = sweep_name is not None
        self.tracker = None
        self.parent = None
        self.metric = first.setting("report", "metric")
        self.swept = swept_keys(jobs)
        self._logging = None  # a sweep logs to MLflow while it computes (sweep.tracking.LoggingThread/Pool)
        self._pending: list[tuple[dict, object]] = []
        self.combinations = len(jobs)
        processes = first.setting("tracking", "log_processes")
        self.log_processes = min(4, os.cpu_count() or 1) if processes is None else int(processes)
        if first.setting("tracking", "enabled"):
            from sweep.tracking import Tracker, code_version

            try:
                self.tracker = Tracker({k: first.setting("tracking", k) for k in SHELL_DEFAULTS["tracking"]}, base_dir)
            except Exception as exc:  # a store that cannot be opened must not cost the user the results
                print(f"atmburst: warning: MLflow tracking is off for this run: cannot open the store "
                      f"{first.setting('tracking', 'uri')} ({type(exc).__name__}: {str(exc)[:200]}); "
                      f"results are still written. Set tracking.uri, or tracking.enabled=false.", file=sys.stderr)
            self.version = code_version()
            if sweep_name and self.tracker:
                name = f"{len(jobs)} combinations: {', '.join(self.swept) or 'one setting'}"
                self.parent = self.tracker.start_parent(
                    name[:250], {"combinations": str(len(jobs)), "swept": ",".join(self.swept) or "-"},
                    {"atmburst.version": self.version, "sweep_dir": sweep_name,
                     "mlflow.note.content": f"{len(jobs)} child runs, one per combination of "
                                            f"{', '.join(self.swept) or 'the overrides'}; ranked by {self.metric}"})

    def label(self, job: Job) -> str:
        return combo_label(job, self.swept)

    def finished(self, keys: list[str]) -> dict[str, str]:
        return self.tracker.finished_combos(keys) if self.tracker else {}

    def finish(self, job: Job, run: FinishedRun, fingerprint: str, key: str,
               result: BacktestResult | None = None) -> dict:
        """Write ``run``'s files, log it to MLflow (in the background in a sweep) and print its lines;
        ``result``, when given (a single run), also gets its charts and HTML report."""
        cfg = run.config
        config_blob = yaml.dump({**job.engine, **job.shell}, Dumper=YAML_DUMPER, sort_keys=False).encode()
        try:
            written = write_finished(run, extra={f"config_{run.stem}.yaml": config_blob})
        except OSError as exc:
            raise UserError(f"cannot write the results to {cfg.results_dir}: {exc.strerror or exc}; nothing of this "
                            f"combination was kept (free space, or set results_dir to another folder)") from None
        paths = {k: written[k] for k in ("trades", "summary", "health")}
        folder = paths["trades"].parent
        extra = [written[f"stats_{run.stem}.json"], written[f"config_{run.stem}.yaml"]]
        if result is not None and job.setting("report", "enabled"):
            try:
                extra += write_report(job, result, folder, run.stem)
            except Exception as exc:  # charts are a view of the results, never a reason to lose them
                print(f"atmburst: warning: the report of {folder} could not be made "
                      f"({type(exc).__name__}: {str(exc)[:200]}); the trades and summary are written.", file=sys.stderr)
        metrics = dict(run.metrics)
        if self.metric in metrics:
            metrics[OBJECTIVE_PREFIX + self.metric] = metrics[self.metric]
        out = {"metrics": metrics, "paths": {k: str(v) for k, v in paths.items()}, "mlflow_run_id": None,
               "daily": (run.daily_dates, run.daily_pnl), "synthetic": run.synthetic}
        if self.tracker:
            from sweep.tracking import COMBO_TAG, split_params

            params, path_tags = split_params(job.engine)
            tags = {"symbol": cfg.symbol, "date_range": f"{cfg.start}..{cfg.end}", "data_fingerprint": fingerprint,
                    "atmburst.version": self.version, COMBO_TAG: key, "synthetic_data": str(run.synthetic).lower(),
                    "overrides": " ".join(job.overrides)[:5000], "results_folder": str(folder), **path_tags}
            name = self.label(job) if self.sweeping else f"{cfg.symbol} {cfg.start}..{cfg.end}"
            call = (self.parent, name[:250], params, metrics, tags,
                    [paths["trades"], paths["summary"], paths["health"], *extra])
            if self.sweeping:  # in the background: logging overlaps the next evaluations
                self._pending.append((out, self._logger().submit(*call)))
            else:
                out["mlflow_run_id"] = self.tracker.log_combo(*call)
        if not self.quiet:
            print(run.console, flush=True)
            if not self.sweeping:
                print(format_stats(run.stats, run.by_anchor), flush=True)
                report = next((p for p in extra if p.suffix == ".html"), None)
                if report:
                    print(f"  report: {report}", flush=True)
        return out

    def _logger(self):
        """Where child runs are logged: a thread of this process for a few, processes for many."""
        if self._logging is None:
            from sweep.tracking import LoggingPool, LoggingThread

            workers = int(self.log_processes or 0)
            if workers > 0 and self.combinations >= 50:
                self._logging = LoggingPool(self.tracker, workers)
            else:
                self._logging = LoggingThread(self.tracker)
        return self._logging

    def drain(self) -> None:
        """Wait for the runs being logged in the background; one that fails is a warning (its files stay)."""
        for out, future in self._pending:
            try:
                out["mlflow_run_id"] = future.result()
            except Exception as exc:
                print(f"atmburst: warning: a combination could not be logged to MLflow ({type(exc).__name__}: "
                      f"{str(exc)[:200]}); its files are in {Path(out['paths']['trades']).parent}", file=sys.stderr)
        self._pending.clear()

    def close(self, status: str = "FINISHED") -> None:
        self.drain()
        if self._logging:
            self._logging.shutdown()
        if self.tracker and self.parent:
            self.tracker.end(self.parent, status)


def write_report(job: Job, result: BacktestResult, folder: Path, stem: str) -> list[Path]:
    """Charts (PNG) and the HTML report of one run; returns the files written."""
    from core.report import inspect_ids, inspector_png, run_charts, run_report

    trades = result.trades
    images = run_charts(trades, result.summary, result.synthetic)
    for trade_id in inspect_ids(trades, list(job.setting("report", "inspect") or [])):
        png = inspector_png(result.config, trades, trade_id, result.synthetic)
        if png:
            images[f"trade_{trade_id}"] = png
    written = []
    for name, png in images.items():
        path = folder / f"{name}_{stem}.png"
        atomic_write_bytes(path, lambda fh, data=png: fh.write(data))
        written.append(path)
    page = run_report(result.config, trades, result.summary, result.health, result.synthetic, images)
    report = folder / f"report_{stem}.html"
    atomic_write_bytes(report, lambda fh: fh.write(page.encode()))
    return [report, *written]


def run_single(job: Job, base_dir: Path) -> dict:
    """One backtest in this process (no Ray): write, print, track."""
    try:
        cfg = load_config(job.engine, base_dir)
    except ConfigError as exc:
        raise UserError(f"config error: {exc}") from None
    bar = Progress(0, "days", quiet=bool(job.shell.get("quiet")))

    def tell(done: int, total: int) -> None:
        bar.total = max(total, 1)
        bar.update(done)

    try:
        result = run_backtest(cfg, progress=tell)
    except ConfigError as exc:  # found in the data while running (a bad calendar row, an empty glob)
        bar.close()
        raise UserError(f"config error: {exc}") from None
    bar.close()
    finisher = Finisher([job], base_dir, sweep_name=None)
    out = finisher.finish(job, finish_run(result), run_fingerprint(cfg) if finisher.tracker else "",
                          combo_key(cfg, ""), result=result)
    if finisher.tracker and not finisher.quiet:
        print(f"  MLflow: run {out['mlflow_run_id']} in experiment '{finisher.tracker.experiment}' "
              f"({finisher.tracker.uri})")
    return out


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _init_ray(job: Job):
    address = job.setting("ray", "address")
    host = str(address or "").split("://")[-1].rsplit(":", 1)[0]
    if not address or host in LOOPBACK:
        # One machine: keep Ray on the loopback interface (Ray otherwise picks the host's network
        # address even for a local cluster); must be set before ray is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Token authentication is Ray's own setting (RAY_AUTH_MODE in the environment, the same for the
    # cluster and this driver); a guess from a token file on this machine would break clusters
    # started without it (their nodes then cannot reach this driver: OwnerDiedError).
    import ray

    if ray.is_initialized():
        return ray, False
    kwargs = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    if address:
        # Ship this checkout's engine to the cluster's workers (they need its dependencies installed).
        import core
        import sweep

        modules = [str(Path(core.__file__).parent), str(Path(sweep.__file__).parent)]
        ray.init(address=address, runtime_env={"py_modules": modules}, **kwargs)
    else:
        pythonpath = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)
        # address="local": always a private Ray of this process, never a cluster that happens to run on
        # this machine (Ray would otherwise join the one named in its address file).
        ray.init(address="local", num_cpus=job.setting("ray", "num_cpus"),
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **kwargs)
    return ray, True


def _build_chunk(cfg: RunConfig):
    return build_markets(cfg, threads=1)  # one core per Ray task: Ray does the parallelism


def _run_batch(cfgs: list[RunConfig], labels: list[str], synthetic: bool, n_chunks: int, *built
               ) -> tuple[str, list[FinishedRun]]:
    """A batch of combinations on one market, in one Ray task: every date chunk's markets (``built``:
    the chunks' markets, then their health) through one pass of the batch kernel per chunk, then
    each combination's trades, costs, summary, statistics and file contents (core.finish).
    Returns (the Ray node it ran on, the finished runs)."""
    started = time.perf_counter()
    strategies = [c.strategy for c in cfgs]
    trades: list[list] = [[] for _ in cfgs]
    health = [Health() for _ in cfgs]
    for markets, market_health in zip(built[:n_chunks], built[n_chunks:]):
        for j, (part, own) in enumerate(evaluate_markets(markets, strategies, cfgs[0].symbol)):
            trades[j].append(part)
            health[j].merge(market_health)
            health[j].merge(own)
    share = (time.perf_counter() - started) / max(1, len(cfgs))  # each combination's own evaluation time
    out = [finish_run(results_from_trades(trades[j], health[j], cfg, share, synthetic=synthetic),
                       label=labels[j], time_label="evaluation") for j, cfg in enumerate(cfgs)]
    import ray

    return ray.get_runtime_context().get_node_id(), out


def family_order(cfgs: list[RunConfig], members: list[int]) -> list[int]:
    """``members`` ordered so that combinations sharing signal sums (burst and baseline lengths) and then
    entries (the rest of the signal) sit in the same batches of the kernel."""
    def family(i):
        s = cfgs[i].strategy
        return (s.burst_secs, s.avg_secs, s.multiplier, s.min_burst_volume, s.trend_filter, s.entry_delay_secs, i)
    return sorted(members, key=family)


def comparison_table(jobs: list[Job], results: list[dict | None], swept: list[str]) -> pd.DataFrame:
    """One row per combination (run now or resumed): number, swept settings, statistics, MLflow run."""
    rows = []
    for job, result in zip(jobs, results):
        if result and "metrics" in result:
            params = dict(o.split("=", 1) for o in job.overrides if o.split("=", 1)[0] in swept)
            metrics = {k: v for k, v in result["metrics"].items() if not k.startswith(OBJECTIVE_PREFIX)}
            rows.append({"combo": job.index, **params, **metrics,
                         "resumed": "resumed_from" in result, "mlflow_run_id": result.get("mlflow_run_id") or ""})
    frame = pd.DataFrame(rows)
    for col in swept:
        if col in frame:
            numeric = pd.to_numeric(frame[col], errors="coerce")
            if numeric.notna().all():
                frame[col] = numeric
    return frame


def _resumed_artifact(finisher, run_id: str, prefix: str, folder: Path) -> pa.Table | None:
    """The ``prefix*`` parquet artifact of a finished MLflow run (a combination a resumed sweep skipped)."""
    if not (finisher.tracker and run_id):
        return None
    try:
        names = [a.path for a in finisher.tracker.client.list_artifacts(run_id) if a.path.startswith(prefix)]
        return pq.read_table(finisher.tracker.download(run_id, names[0], folder / ".resumed" / run_id))
    except Exception:  # the comparison stands without it
        return None


def _daily(i: int, results, finisher, folder: Path) -> pd.DataFrame | None:
    """Combination ``i``'s daily pnl_pts by trade_date (days since 1970), from this run or from MLflow."""
    result = results[i] or {}
    if "daily" in result:
        dates, pnl = result["daily"]
    else:
        summary = _resumed_artifact(finisher, result.get("mlflow_run_id"), "summary_", folder)
        if summary is None:
            return None
        dates = summary.column("trade_date").cast(pa.int32()).to_numpy(zero_copy_only=False)
        pnl = summary.column("pnl_pts").to_numpy(zero_copy_only=False)
    return pd.DataFrame({"trade_date": dates, "pnl_pts": pnl})


def overfit_stats(jobs, results, finisher, folder: Path, best_i: int) -> dict | None:
    """PBO (CSCV) and the deflated Sharpe of the best combination over every combination's daily P&L."""
    from core.overfit import daily_matrix, deflated_sharpe, pbo_cscv

    indices = [i for i, r in enumerate(results) if r and "metrics" in r]
    summaries = [_daily(i, results, finisher, folder) for i in indices]
    if len(indices) < 2 or any(s is None for s in summaries):
        return None
    matrix, days = daily_matrix(summaries)
    blocks = int(jobs[0].setting("validation", "cscv_splits") or 16)
    if blocks < 2 or blocks % 2:
        raise UserError(f"config key 'validation.cscv_splits' must be an even number >= 2, got {blocks}")
    out = {"trials": len(indices), "days": len(days), "blocks": min(blocks, max(2, len(days) - len(days) % 2))}
    if len(days) >= 4:
        pbo = pbo_cscv(matrix, n_blocks=blocks)
        out.update(pbo=pbo.pbo, splits=pbo.splits, degradation=pbo.degradation)
    if len(days) >= 3:
        dsr = deflated_sharpe(matrix, best=indices.index(best_i) if best_i in indices else None)
        out.update(deflated_sharpe=dsr.probability, best_sharpe=dsr.sharpe,
                   expected_max_sharpe=dsr.expected_max_sharpe)
    return out


def _best_run(best_i: int, cfg: RunConfig, results, finisher, folder: Path):
    """(BacktestResult read back from its files, or None; pnl_pts of its trades, or None; synthetic) of the best
    combination: from this sweep's files, or from MLflow when a resumed sweep skipped it."""
    result = results[best_i]
    paths = {k: Path(v) for k, v in (result.get("paths") or {}).items()}
    if "daily" in result and paths:
        try:
            health = json.loads(paths["health"].read_text())
            back = load_result(paths, cfg, health, bool(result.get("synthetic")))
            return back, back.trades["pnl_pts"].to_numpy(), back.synthetic
        except (OSError, ValueError) as exc:
            print(f"atmburst: warning: the files of the best combination cannot be read back ({exc}); "
                  f"its report is left out", file=sys.stderr)
            return None, None, False
    trades = _resumed_artifact(finisher, result.get("mlflow_run_id"), "trades_", folder)
    if trades is None:
        return None, None, False
    synthetic = finisher.tracker.client.get_run(result["mlflow_run_id"]).data.tags.get("synthetic_data") == "true"
    return None, trades.column("pnl_pts").to_numpy(zero_copy_only=False), synthetic


def _comparison(jobs, cfgs, results, finisher, sweep_dir: Path | None) -> None:
    """The sweep's comparison table and page (and the full report of its best combination)."""
    from core.report import sweep_report

    metric = finisher.metric
    frame = comparison_table(jobs, results, finisher.swept)
    if frame.empty:
        return
    if metric not in frame:
        raise UserError(f"config key 'report.metric' names no metric ({metric}); choose one of: "
                        f"{', '.join(c for c in frame.columns if c not in finisher.swept and c not in ('combo', 'resumed', 'mlflow_run_id'))}")
    best = int(frame.sort_values([metric, "combo"], ascending=[False, True]).iloc[0]["combo"])
    best_i = next(i for i, j in enumerate(jobs) if j.index == best)
    folder = sweep_dir or Path(cfg_folder(results, best_i)).parent
    best_result, best_pnl, synthetic = _best_run(best_i, cfgs[best_i], results, finisher, folder)
    cols = ["combo", *finisher.swept, "trades", "total_pnl_pts", "mean_pnl_pts", "win_rate", "profit_factor",
            "max_drawdown_pts", "daily_sharpe"]
    cols += [metric] if metric not in cols else []
    overfit = overfit_stats(jobs, results, finisher, folder, best_i)
    page = sweep_report(frame[[c for c in cols if c in frame]], [c for c in finisher.swept if c in frame], metric,
                        best_pnl, synthetic, overfit)
    target = folder / "sweep_report.html"
    table_path = folder / "sweep_comparison.parquet"
    atomic_write_bytes(target, lambda fh: fh.write(page.encode()))
    atomic_write_bytes(table_path, lambda fh: frame.to_parquet(fh, index=False))
    written = [target, table_path]
    report_path = None
    if best_result is not None and jobs[best_i].setting("report", "enabled"):
        paths = results[best_i]["paths"]
        stem = Path(paths["trades"]).stem.replace("trades_", "")
        extra = write_report(jobs[best_i], best_result, Path(paths["trades"]).parent, stem)
        report_path = extra[0]
        if finisher.tracker and results[best_i].get("mlflow_run_id"):
            finisher.tracker.add_artifacts(results[best_i]["mlflow_run_id"], extra)
    if finisher.tracker and finisher.parent:
        finisher.tracker.add_artifacts(finisher.parent, written)
        best_row = frame[frame["combo"] == best].iloc[0]
        parent_metrics = {metric: float(best_row[metric]), "best_combo": float(best),
                          "combinations": float(len(frame))}
        for key in ("pbo", "deflated_sharpe", "trials", "best_sharpe", "expected_max_sharpe", "degradation"):
            value = (overfit or {}).get(key)
            if value is not None and np.isfinite(value):
                parent_metrics[f"overfit.{key}"] = float(value)
        finisher.tracker.log_metrics(finisher.parent, parent_metrics)
        finisher.tracker.client.set_tag(finisher.parent, "best_combination",
                                        f"#{best} {finisher.label(jobs[best_i])}"[:5000])
    if not finisher.quiet:
        shown = [c for c in ("combo", *finisher.swept, "trades", "total_pnl_pts", "mean_pnl_pts", "win_rate",
                             "profit_factor", "max_drawdown_pts", "net_inr") if c in frame]
        table = frame[shown].sort_values(metric if metric in frame else "combo", ascending=False)
        table = table.astype({c: int for c in ("combo", "trades") if c in table})
        print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
        from core.report import overfit_lines

        for line in overfit_lines(overfit or {}):
            print("  " + line)
        print(f"  comparison page: {target}\n  comparison table: {table_path}")
        if report_path is not None:
            print(f"  report of the best combination (#{best}): {report_path}")


def cfg_folder(results, i) -> str:
    paths = (results[i] or {}).get("paths") or {}
    return str(Path(paths["trades"]).parent) if "trades" in paths else "."


def separate_results(jobs: list[Job], cfgs: list[RunConfig]) -> list[RunConfig]:
    """Combinations that would write to the same results folder (an explicit ``results_dir``) each get
    a subfolder of it named by their number and swept overrides, so none overwrites another."""
    shared = defaultdict(list)
    for i, cfg in enumerate(cfgs):
        shared[cfg.results_dir].append(i)
    swept = swept_keys(jobs)
    out = list(cfgs)
    for folder, members in shared.items():
        if len(members) > 1:
            for i in members:
                out[i] = replace(cfgs[i], results_dir=folder / combo_folder_name(jobs[i], swept))
    return out


def run_sweep(jobs: list[Job], base_dir: Path, sweep_name: str = "sweep", sweep_dir: Path | None = None) -> list[dict]:
    """Every combination of ``jobs``: validated first, then fanned out with Ray, then written and tracked."""
    started = time.perf_counter()
    cfgs = []
    for job in jobs:
        try:
            cfgs.append(load_config(job.engine, base_dir))
        except ConfigError as exc:
            raise UserError(f"config error in combination #{job.index} ({' '.join(job.overrides)}): {exc}") from None
    cfgs = separate_results(jobs, cfgs)
    how = jobs[0].setting("sweep", "chunk")
    for cfg in cfgs:
        date_chunks(cfg.start, cfg.end, how)  # validates sweep.chunk before any work
    try:  # reads the calendar and lists the data: its errors stop the sweep before any work
        fingerprints = {mk: run_fingerprint(cfg) for mk, cfg in {_market_key(c): c for c in cfgs}.items()}
    except ConfigError as exc:
        raise UserError(f"config error: {exc}") from None
    keys = [combo_key(cfg, fingerprints[_market_key(cfg)]) for cfg in cfgs]
    finisher = Finisher(jobs, base_dir, sweep_name)
    results: list[dict | None] = [None] * len(jobs)
    status = "FAILED"
    try:
        done = finisher.finished(keys) if jobs[0].setting("sweep", "resume") else {}
        pending = []
        for i, (job, key) in enumerate(zip(jobs, keys)):
            if key in done:
                results[i] = {"resumed_from": done[key], "mlflow_run_id": done[key],
                              "metrics": finisher.tracker.run_metrics(done[key])}
                if not finisher.quiet:
                    print(f"#{job.index} {finisher.label(job)}: already done (MLflow run {done[key]}), skipped")
            else:
                pending.append(i)
        timing = {}
        if pending:
            timing = _fan_out(jobs, cfgs, pending, fingerprints, keys, finisher, results)
        finisher.drain()
        if jobs[0].setting("report", "enabled"):
            _comparison(jobs, cfgs, results, finisher, sweep_dir)
        status = "FINISHED"
    finally:
        finisher.close(status)
    nodes = timing.pop("nodes", 0)
    parts = "".join(f", {k.replace('_', ' ')} {v:.1f} s" for k, v in timing.items())
    parts += f", on {nodes} Ray nodes" if nodes > 1 else ""
    print(f"sweep: {len(jobs)} combinations ({len(jobs) - len(pending)} already done) in "
          f"{time.perf_counter() - started:.1f} s{' (' + parts[2:] + ')' if parts else ''}", flush=True)
    if not finisher.quiet:
        if finisher.tracker:
            print(f"  compare them: {finisher.tracker.how_to_open()}")
    return results


def _fan_out(jobs, cfgs, pending, fingerprints, keys, finisher, results) -> dict:
    """Run the pending combinations with Ray and publish each batch as it finishes; returns timings
    {ray_start, tasks} in seconds.

    Per market (symbol and data settings): one build task per date chunk puts its day markets in
    Ray's object store; one task per batch of combinations (grouped by strategy family) evaluates
    every chunk and returns the finished runs. At most two markets are in the store at a time.
    """
    from core.engine import is_synthetic

    t0 = time.perf_counter()
    ray, owned = _init_ray(jobs[0])
    t1 = time.perf_counter()
    try:
        build = ray.remote(_build_chunk).options(num_returns=2)
        run_batch = ray.remote(_run_batch)
        how = jobs[0].setting("sweep", "chunk")
        groups: dict[str, list[int]] = defaultdict(list)
        for i in pending:
            groups[_market_key(cfgs[i])].append(i)
        cpus = max(1, int(ray.available_resources().get("CPU", 1)))
        in_flight: dict = {}  # batch ref -> (market key, members)
        open_markets: dict[str, int] = {}  # market key -> batches not yet back
        bar = Progress(len(pending), "combinations", quiet=finisher.quiet)
        done = 0
        nodes: set[str] = set()

        def submit(mk: str) -> None:
            members = family_order(cfgs, groups[mk])
            first = cfgs[members[0]]
            built = [build.remote(first.with_range(a, b)) for a, b in date_chunks(first.start, first.end, how)]
            # about two batches per CPU, at most 125 combinations each: a batch pays the signal sums of
            # its families once (about 1 s per family and symbol-year), and results stream back batch by
            # batch while the rest computes
            size = jobs[0].setting("sweep", "batch") or min(125, max(1, -(-len(members) // (2 * cpus))))
            synthetic = is_synthetic(first)
            for k in range(0, len(members), size):
                batch = members[k:k + size]
                ref = run_batch.remote([cfgs[i] for i in batch], [f"#{jobs[i].index} {finisher.label(jobs[i])}: "
                                                                   for i in batch],
                                       synthetic, len(built), *[m for m, _ in built], *[h for _, h in built])
                in_flight[ref] = (mk, batch, built)
                open_markets[mk] = open_markets.get(mk, 0) + 1

        queue = list(groups)
        while queue or in_flight:
            while queue and len(open_markets) < 2:
                submit(queue.pop(0))
            (ready,), _ = ray.wait(list(in_flight), num_returns=1)
            mk, batch, _ = in_flight.pop(ready)
            open_markets[mk] -= 1
            if not open_markets[mk]:
                del open_markets[mk]
            node, runs = ray.get(ready)
            nodes.add(node)
            for i, run in zip(batch, runs):
                bar.close()
                results[i] = finisher.finish(jobs[i], run, fingerprints[_market_key(cfgs[i])], keys[i])
                done += 1
                bar.update(done)
        bar.close()
        return {"ray_start": t1 - t0, "tasks": time.perf_counter() - t1, "nodes": len(nodes)}
    finally:
        if owned:
            ray.shutdown()
