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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from core import ConfigError, RunConfig, load_config
from core.console import format_result, format_stats
from core.engine import (BacktestResult, build_markets, evaluate_markets, results_from_records, run_backtest,
                         run_fingerprint)
from core.health import Health
from core.cache import atomic_write_bytes
from core.stats import breakdowns, metrics_for_tracking, summary_stats
from sweep.progress import Progress
from sweep.tracking import OBJECTIVE_PREFIX

ROOT = Path(__file__).resolve().parents[1]
SHELL_KEYS = ("quiet", "tracking", "sweep", "ray", "report", "validation")
SHELL_DEFAULTS = {
    "quiet": False,
    "tracking": {"enabled": True, "uri": "sqlite:///mlflow.db", "experiment": "atmburst", "artifacts": "./mlartifacts"},
    "sweep": {"chunk": "month", "resume": True, "batch": None},
    "ray": {"address": None, "num_cpus": None},
    "report": {"enabled": True, "inspect": [], "metric": "total_pnl_pts"},
    "validation": {"name": "none", "cscv_splits": 16},
}


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


def fail(message: str, code: int = 2) -> None:
    """One line on stderr and exit (no traceback)."""
    print(f"atmburst: {message}", file=sys.stderr)
    raise SystemExit(code)


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
    raw = {k: v for k, v in cfg.raw.items() if k not in ("signal", "risk", "delta", "pnl_mode", "execution",
                                                         "costs", "results_dir")}
    return json.dumps(raw, sort_keys=True, default=str)


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
        self._logging: ThreadPoolExecutor | None = None  # a sweep logs to MLflow while it computes
        self._pending: list[tuple[dict, object]] = []
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

    def finish(self, job: Job, result: BacktestResult, fingerprint: str, key: str, full_report: bool = True) -> dict:
        cfg = result.config
        stats = summary_stats(result.trades)
        tables = breakdowns(result.trades, cfg.strike_step)
        stem = f"{cfg.symbol}_{cfg.start:%Y-%m-%d}_{cfg.end:%Y-%m-%d}"
        stats_blob = json.dumps({"synthetic_data": result.synthetic, **stats,
                                 "breakdowns": {k: v.reset_index().to_dict(orient="records")
                                                for k, v in tables.items()}}, indent=2, default=str).encode()
        config_blob = yaml.safe_dump({**job.engine, **job.shell}, sort_keys=False).encode()
        try:
            written = result.write(extra={f"stats_{stem}.json": lambda fh: fh.write(stats_blob),
                                          f"config_{stem}.yaml": lambda fh: fh.write(config_blob)})
        except OSError as exc:
            fail(f"cannot write the results to {cfg.results_dir}: {exc.strerror or exc}; nothing of this "
                 f"combination was kept (free space, or set results_dir to another folder)")
        paths = {k: written[k] for k in ("trades", "summary", "health")}
        folder = paths["trades"].parent
        extra = [written[f"stats_{stem}.json"], written[f"config_{stem}.yaml"]]
        if job.setting("report", "enabled") and full_report:
            try:
                extra += write_report(job, result, folder, stem)
            except Exception as exc:  # charts are a view of the results, never a reason to lose them
                print(f"atmburst: warning: the report of {folder} could not be made "
                      f"({type(exc).__name__}: {str(exc)[:200]}); the trades and summary are written.", file=sys.stderr)
        metrics = metrics_for_tracking(stats)
        metrics.update({f"health.{k}": float(v) for k, v in result.health["problems"].items()})
        if self.metric in metrics:
            metrics[OBJECTIVE_PREFIX + self.metric] = metrics[self.metric]
        out = {"metrics": metrics, "paths": {k: str(v) for k, v in paths.items()}, "mlflow_run_id": None}
        if self.tracker:
            from sweep.tracking import COMBO_TAG, split_params

            params, path_tags = split_params(job.engine)
            tags = {"symbol": cfg.symbol, "date_range": f"{cfg.start}..{cfg.end}", "data_fingerprint": fingerprint,
                    "atmburst.version": self.version, COMBO_TAG: key, "synthetic_data": str(result.synthetic).lower(),
                    "overrides": " ".join(job.overrides)[:5000], "results_folder": str(folder), **path_tags}
            name = self.label(job) if self.sweeping else f"{cfg.symbol} {cfg.start}..{cfg.end}"
            call = (self.parent, name[:250], params, metrics, tags,
                    [paths["trades"], paths["summary"], paths["health"], *extra])
            if self.sweeping:  # one background thread: logging overlaps the next evaluations
                self._logging = self._logging or ThreadPoolExecutor(1, thread_name_prefix="mlflow")
                self._pending.append((out, self._logging.submit(self.tracker.log_combo, *call)))
            else:
                out["mlflow_run_id"] = self.tracker.log_combo(*call)
        if not self.quiet:
            print(format_result(result, paths, label=f"#{job.index} {self.label(job)}: " if self.sweeping else "",
                                time_label="evaluation" if self.sweeping else "wall"), flush=True)
            if not self.sweeping:
                print(format_stats(stats, tables.get("anchor")), flush=True)
                report = next((p for p in extra if p.suffix == ".html"), None)
                if report:
                    print(f"  report: {report}", flush=True)
        return out

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
        fail(f"config error: {exc}")
    bar = Progress(0, "days", quiet=bool(job.shell.get("quiet")))

    def tell(done: int, total: int) -> None:
        bar.total = max(total, 1)
        bar.update(done)

    try:
        result = run_backtest(cfg, progress=tell)
    except ConfigError as exc:  # found in the data while running (a bad calendar row, an empty glob)
        bar.close()
        fail(f"config error: {exc}")
    bar.close()
    finisher = Finisher([job], base_dir, sweep_name=None)
    out = finisher.finish(job, result, run_fingerprint(cfg) if finisher.tracker else "", combo_key(cfg, ""))
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
    if address and "RAY_AUTH_MODE" not in os.environ and (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        # `ray start` turns token authentication on when this machine has a token; a driver
        # connecting to it must do the same, before ray is imported (Ray reads it once).
        os.environ["RAY_AUTH_MODE"] = "token"
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


def _evaluate_chunk(markets, strategies, symbol):
    """The (symbol, chunk) unit of a batch of combinations: one deserialised market, every strategy
    in one pass of the batch kernel; per strategy (records, health, its share of the seconds)."""
    started = time.perf_counter()
    out = evaluate_markets(markets, strategies, symbol)
    share = (time.perf_counter() - started) / max(1, len(strategies))
    return [(records, health, share) for records, health in out]


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


def _summary(i: int, results, kept, finisher, folder: Path) -> pd.DataFrame | None:
    """The daily summary of combination ``i`` (from this run, or from MLflow when it was resumed)."""
    if i in kept:
        return kept[i].summary
    run_id = (results[i] or {}).get("mlflow_run_id")
    if not (finisher.tracker and run_id):
        return None
    try:
        names = [a.path for a in finisher.tracker.client.list_artifacts(run_id) if a.path.startswith("summary_")]
        return pd.read_parquet(finisher.tracker.download(run_id, names[0], folder / ".resumed" / run_id))
    except Exception:
        return None


def overfit_stats(jobs, results, kept, finisher, folder: Path, best_i: int) -> dict | None:
    """PBO (CSCV) and the deflated Sharpe of the best combination over every combination's daily P&L."""
    from core.overfit import daily_matrix, deflated_sharpe, pbo_cscv

    indices = [i for i, r in enumerate(results) if r and "metrics" in r]
    summaries = [_summary(i, results, kept, finisher, folder) for i in indices]
    if len(indices) < 2 or any(s is None for s in summaries):
        return None
    matrix, days = daily_matrix(summaries)
    blocks = int(jobs[0].setting("validation", "cscv_splits") or 16)
    if blocks < 2 or blocks % 2:
        fail(f"config key 'validation.cscv_splits' must be an even number >= 2, got {blocks}")
    out = {"trials": len(indices), "days": len(days), "blocks": min(blocks, max(2, len(days) - len(days) % 2))}
    if len(days) >= 4:
        pbo = pbo_cscv(matrix, n_blocks=blocks)
        out.update(pbo=pbo.pbo, splits=pbo.splits, degradation=pbo.degradation)
    if len(days) >= 3:
        dsr = deflated_sharpe(matrix, best=indices.index(best_i) if best_i in indices else None)
        out.update(deflated_sharpe=dsr.probability, best_sharpe=dsr.sharpe,
                   expected_max_sharpe=dsr.expected_max_sharpe)
    return out


def _best_pnl(best_i: int, results, kept, finisher, folder: Path):
    """pnl_pts of the best combination's trades (from this run, or from MLflow when it was resumed)."""
    if best_i in kept:
        return kept[best_i].trades["pnl_pts"].to_numpy(), kept[best_i].synthetic
    run_id = results[best_i].get("mlflow_run_id")
    if not (finisher.tracker and run_id):
        return None, False
    try:
        names = [a.path for a in finisher.tracker.client.list_artifacts(run_id) if a.path.startswith("trades_")]
        local = finisher.tracker.download(run_id, names[0], folder / ".resumed" / run_id)
        trades = pd.read_parquet(local)
        synthetic = finisher.tracker.client.get_run(run_id).data.tags.get("synthetic_data") == "true"
        return trades["pnl_pts"].to_numpy(), synthetic
    except Exception:  # the ranking stands without the best combination's bootstrap
        return None, False


def _comparison(jobs, results, kept, finisher, sweep_dir: Path | None) -> None:
    """The sweep's comparison table and page (and the full report of its best combination)."""
    from core.report import sweep_report

    metric = finisher.metric
    frame = comparison_table(jobs, results, finisher.swept)
    if frame.empty:
        return
    if metric not in frame:
        fail(f"config key 'report.metric' names no metric ({metric}); choose one of: "
             f"{', '.join(c for c in frame.columns if c not in finisher.swept and c not in ('combo', 'resumed', 'mlflow_run_id'))}")
    best = int(frame.sort_values([metric, "combo"], ascending=[False, True]).iloc[0]["combo"])
    best_i = next(i for i, j in enumerate(jobs) if j.index == best)
    folder = sweep_dir or Path(cfg_folder(results, best_i)).parent
    best_pnl, synthetic = _best_pnl(best_i, results, kept, finisher, folder)
    cols = ["combo", *finisher.swept, "trades", "total_pnl_pts", "mean_pnl_pts", "win_rate", "profit_factor",
            "max_drawdown_pts", "daily_sharpe"]
    cols += [metric] if metric not in cols else []
    overfit = overfit_stats(jobs, results, kept, finisher, folder, best_i)
    page = sweep_report(frame[[c for c in cols if c in frame]], [c for c in finisher.swept if c in frame], metric,
                        best_pnl, synthetic, overfit)
    target = folder / "sweep_report.html"
    table_path = folder / "sweep_comparison.parquet"
    atomic_write_bytes(target, lambda fh: fh.write(page.encode()))
    atomic_write_bytes(table_path, lambda fh: frame.to_parquet(fh, index=False))
    written = [target, table_path]
    best_result = kept.get(best_i)
    if best_result is not None and jobs[best_i].setting("report", "enabled"):
        paths = results[best_i]["paths"]
        stem = Path(paths["trades"]).stem.replace("trades_", "")
        extra = write_report(jobs[best_i], best_result, Path(paths["trades"]).parent, stem)
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
        if best_result is not None and jobs[best_i].setting("report", "enabled"):
            stem = Path(results[best_i]["paths"]["trades"]).stem.replace("trades_", "")
            print(f"  report of the best combination (#{best}): "
                  f"{Path(results[best_i]['paths']['trades']).parent / f'report_{stem}.html'}")


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
            fail(f"config error in combination #{job.index} ({' '.join(job.overrides)}): {exc}")
    cfgs = separate_results(jobs, cfgs)
    how = jobs[0].setting("sweep", "chunk")
    for cfg in cfgs:
        date_chunks(cfg.start, cfg.end, how)  # validates sweep.chunk before any work
    try:  # reads the calendar and lists the data: its errors stop the sweep before any work
        fingerprints = {mk: run_fingerprint(cfg) for mk, cfg in {_market_key(c): c for c in cfgs}.items()}
    except ConfigError as exc:
        fail(f"config error: {exc}")
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
        kept: dict[int, BacktestResult] = {}
        timing = {}
        if pending:
            timing = _fan_out(jobs, cfgs, pending, fingerprints, keys, finisher, results, how, kept)
        finisher.drain()
        if jobs[0].setting("report", "enabled"):
            _comparison(jobs, results, kept, finisher, sweep_dir)
        status = "FINISHED"
    finally:
        finisher.close(status)
    parts = "".join(f", {k.replace('_', ' ')} {v:.1f} s" for k, v in timing.items())
    print(f"sweep: {len(jobs)} combinations ({len(jobs) - len(pending)} already done) in "
          f"{time.perf_counter() - started:.1f} s{' (' + parts[2:] + ')' if parts else ''}", flush=True)
    if not finisher.quiet:
        if finisher.tracker:
            print(f"  compare them: {finisher.tracker.how_to_open()}")
    return results


def _fan_out(jobs, cfgs, pending, fingerprints, keys, finisher, results, how, kept) -> dict:
    """Run the pending combinations with Ray; returns timings {ray_start, tasks} in seconds."""
    t0 = time.perf_counter()
    ray, owned = _init_ray(jobs[0])
    t1 = time.perf_counter()
    try:
        build = ray.remote(_build_chunk).options(num_returns=2)
        evaluate = ray.remote(_evaluate_chunk)
        groups: dict[str, list[int]] = defaultdict(list)
        for i in pending:
            groups[_market_key(cfgs[i])].append(i)
        units = [(mk, chunk) for mk, members in groups.items()
                 for chunk in date_chunks(cfgs[members[0]].start, cfgs[members[0]].end, how)]
        records: dict[int, list] = {i: [] for i in pending}
        health: dict[int, Health] = {i: Health() for i in pending}
        seconds: dict[int, float] = dict.fromkeys(pending, 0.0)  # each combination's own evaluation time
        remaining = {i: sum(1 for mk, _ in units if mk == _market_key(cfgs[i])) for i in pending}
        window = 2 * max(1, int(ray.available_resources().get("CPU", 1)))
        in_flight: list[tuple] = []

        cpus = max(1, int(ray.available_resources().get("CPU", 1)))

        def submit(unit):
            mk, (a, b) = unit
            members = groups[mk]
            markets_ref, health_ref = build.remote(cfgs[members[0]].with_range(a, b))
            # Units are batched so that a chunk's market is deserialised once per task, not once per
            # combination, with about two tasks per CPU for each chunk.
            size = jobs[0].setting("sweep", "batch") or max(1, -(-len(members) // (2 * cpus)))
            evals = []
            for k in range(0, len(members), size):
                batch = members[k:k + size]
                evals.append((batch, evaluate.remote(markets_ref, [cfgs[i].strategy for i in batch],
                                                     cfgs[batch[0]].symbol)))
            in_flight.append((members, health_ref, evals))

        bar = Progress(sum(len(groups[mk]) for mk, _ in units), "chunk evaluations",
                       quiet=finisher.quiet)
        evaluated, combos_done = 0, 0
        queue = list(units)
        while queue or in_flight:
            while queue and len(in_flight) < window:
                submit(queue.pop(0))
            members, health_ref, evals = in_flight.pop(0)
            market_health = ray.get(health_ref)
            unit_results = [(i, out) for batch, ref in evals for i, out in zip(batch, ray.get(ref))]
            for i, (recs, eval_health, spent) in unit_results:
                evaluated += 1
                seconds[i] += spent
                bar.update(evaluated, f"{combos_done}/{len(pending)} combinations done")
                records[i].extend(recs)
                health[i].merge(market_health)
                health[i].merge(eval_health)
                remaining[i] -= 1
                if remaining[i] == 0:
                    combos_done += 1
                    bar.close()
                    result = results_from_records(records.pop(i), health[i], cfgs[i], seconds[i])
                    results[i] = finisher.finish(jobs[i], result, fingerprints[_market_key(cfgs[i])], keys[i],
                                                 full_report=False)
                    kept[i] = result
        bar.close()
        return {"ray_start": t1 - t0, "tasks": time.perf_counter() - t1}
    finally:
        if owned:
            ray.shutdown()
