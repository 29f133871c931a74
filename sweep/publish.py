"""Publishing a sweep's results: each combination's files (one set, atomically), its MLflow child run
(logged in the background), its console lines; the comparison table, the overfitting statistics,
the sweep report and the best combination's report."""
from __future__ import annotations

import errno
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core import RunConfig
from core.console import format_stats
from core.stats import better_first
from core.engine import BacktestResult
from core.cache import atomic_write_bytes
from core.finish import FinishedRun, parquet_bytes, load_result, write_finished
from sweep.errors import UserError
from sweep.settings import SHELL_DEFAULTS
from sweep.tracking import OBJECTIVE_PREFIX
from sweep.plan import Job, combo_label, config_yaml, swept_keys




class Finisher:
    """Writes a combination's files and logs it to MLflow (driver side)."""

    def __init__(self, jobs: list[Job], base_dir: Path, sweep_name: str | None, search: bool = False):
        """``search``: a guided search (Optuna) whose combinations arrive in batches, so their number is
        known only at the end (logged on the parent run then). A sweep opens its MLflow store on a
        thread, while Ray starts (creating a new SQLite store takes seconds of schema migrations)."""
        first = jobs[0]
        self.search = search
        self.quiet = bool(first.shell.get("quiet"))
        self.sweeping = sweep_name is not None
        self._tracker = self._parent = None
        self.version = ""
        self._opening = None
        self._new_store = False
        self.metric = first.setting("report", "metric")
        self.swept = swept_keys(jobs, search=search)
        self._logging = None  # a sweep logs to MLflow while it computes (sweep.tracking.LoggingThread/Pool)
        self._pending: list[tuple[dict, object]] = []
        self._last_health: tuple[str, int] | None = None  # the health block last printed in full, its combination
        self.combinations = len(jobs)
        self.kept = 0  # combinations whose files this finisher wrote (their MLflow runs follow in a sweep)
        self.console_rows = first.setting("report", "console_rows")
        # a large grid sweep prints its progress by tenths instead of each combination (``brief``)
        self.brief = (self.sweeping and not search and self.console_rows is not None
                      and self.combinations > self.console_rows)
        self._health_shown: set[str] = set()  # brief: the data-health blocks printed so far
        self._to_run, self._kept_before, self._since = 0, 0, 0.0  # brief: the progress of the running batch
        processes = first.setting("tracking", "log_processes")
        self.log_processes = min(4, os.cpu_count() or 1) if processes is None else int(processes)
        if first.setting("tracking", "enabled"):
            from sweep.tracking import resolve_uri

            uri = resolve_uri(str(first.setting("tracking", "uri")), base_dir)
            self._new_store = uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists()
            args = (jobs, base_dir, sweep_name, search)
            if self.sweeping:
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(1, thread_name_prefix="atmburst-open-store")
                self._opening = pool.submit(self._open, *args)
                pool.shutdown(wait=False)
            else:
                self._tracker, self._parent, self.version = self._open(*args)

    def _open(self, jobs: list[Job], base_dir: Path, sweep_name: str | None, search: bool):
        """(tracker or None, parent run id or None, code version): the store opened (created if new)."""
        from sweep.tracking import Tracker, code_version

        first = jobs[0]
        try:
            tracker = Tracker({k: first.setting("tracking", k) for k in SHELL_DEFAULTS["tracking"]}, base_dir)
        except Exception as exc:  # a store that cannot be opened must not cost the user the results
            print(f"atmburst: warning: MLflow tracking is off for this run: cannot open the store "
                  f"{first.setting('tracking', 'uri')} ({type(exc).__name__}: {str(exc)[:200]}); "
                  f"results are still written. Set tracking.uri, or tracking.enabled=false.", file=sys.stderr)
            return None, None, code_version()
        version, parent = code_version(), None
        if sweep_name:
            name = (f"search: {', '.join(self.swept)}" if search else
                    f"{len(jobs)} combinations: {', '.join(self.swept) or 'one setting'}")
            params = {"swept": ",".join(self.swept) or "-"}
            params.update({} if search else {"combinations": str(len(jobs))})
            parent = tracker.start_parent(
                name[:250], params,
                {"atmburst.version": version, "sweep_dir": sweep_name,
                 "mlflow.note.content": (f"a guided search (Optuna) over {', '.join(self.swept)}: one child run "
                                         f"per trial; ranked by {self.metric}" if search else
                                         f"{len(jobs)} child runs, one per combination of "
                                         f"{', '.join(self.swept) or 'the overrides'}; ranked by {self.metric}")})
        return tracker, parent, version

    def _ready(self) -> None:
        if self._opening is not None:
            self._tracker, self._parent, self.version = self._opening.result()
            self._opening = None

    @property
    def tracker(self):
        """The MLflow tracker (None when tracking is off or the store cannot be opened)."""
        self._ready()
        return self._tracker

    @property
    def parent(self):
        """The sweep's parent run id (None for a single run or without tracking)."""
        self._ready()
        return self._parent

    def label(self, job: Job) -> str:
        return combo_label(job, self.swept)

    def finished(self, keys: list[str]) -> dict[str, str]:
        if self._opening is not None and self._new_store:
            return {}  # a store being created holds no finished combination: no need to wait for it
        return self.tracker.finished_combos(keys) if self.tracker else {}

    def finish(self, job: Job, run: FinishedRun, fingerprint: str, key: str,
               result: BacktestResult | None = None) -> dict:
        """Write ``run``'s files, log it to MLflow (in the background in a sweep) and print its lines;
        ``result``, when given (a single run), also gets its charts and HTML report."""
        cfg = run.config
        config_blob = config_yaml({**job.engine, **job.shell}).encode()
        try:
            written = write_finished(run, extra={f"config_{run.stem}.yaml": config_blob})
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # no EDQUOT on Windows
            what = "free space on its disk" if full else "check that the folder can be created and written"
            raise UserError(f"cannot write the results to {cfg.results_dir}: {exc.strerror or exc}; nothing of this "
                            f"combination was kept ({what}, or set results_dir to another folder)") from None
        self.kept += 1
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
            from sweep.tracking import COMBO_TAG, split_params, tracked_metrics

            params, path_tags = split_params(job.engine)
            tags = {"symbol": cfg.symbol, "date_range": f"{cfg.start}..{cfg.end}", "data_fingerprint": fingerprint,
                    "atmburst.version": self.version, COMBO_TAG: key, "synthetic_data": str(run.synthetic).lower(),
                    "overrides": " ".join(job.overrides)[:5000], "results_folder": str(folder), **path_tags}
            name = self.label(job) if self.sweeping else f"{cfg.symbol} {cfg.start}..{cfg.end}"
            call = (self.parent, name[:250], params, tracked_metrics(metrics), tags,
                    [paths["trades"], paths["summary"], paths["health"], *extra])
            if self.sweeping:  # in the background: logging overlaps the next evaluations
                self._pending.append((out, self._logger().submit(*call)))
            else:
                out["mlflow_run_id"] = self.tracker.log_combo(*call)
        if self.brief:
            if not self.quiet:
                self._brief_console(job, run, folder)
        elif not self.quiet:
            print(self._console(job, run), flush=True)
            if not self.sweeping:
                print(format_stats(run.stats, run.by_anchor), flush=True)
                report = next((p for p in extra if p.suffix == ".html"), None)
                if report:
                    print(f"  report: {report}", flush=True)
        return out

    def _console(self, job: Job, run: FinishedRun) -> str:
        """``run``'s lines; in a sweep, a data-health block of several lines that is the same as the last
        one printed becomes one line naming that combination (combinations on one market share their
        data, so a thousand of them would otherwise repeat the same block a thousand times)."""
        head, health, outputs = run.console_parts
        if self.sweeping and "\n" in health:
            if self._last_health is not None and self._last_health[0] == health:
                health = f"  data health: as for #{self._last_health[1]} above (the same counts)"
            else:
                self._last_health = (health, job.index)
        return "\n".join(part for part in (head, health, outputs) if part)

    def expect(self, combinations: int) -> None:
        """Note that ``combinations`` are about to be run (the progress lines of a brief console count them)."""
        self._to_run, self._kept_before, self._since = combinations, self.kept, time.perf_counter()

    def _brief_console(self, job: Job, run: FinishedRun, folder: Path) -> None:
        """A brief console's lines for ``run``: its full block when its data health has problems not printed
        before (bad data is never hidden), and a progress line at each tenth of the combinations run (the last
        one names the folder that holds each combination's folder, ``folder`` being ``run``'s)."""
        health = run.console_parts[1]
        if "\n" in health and health not in self._health_shown:  # never printed, so _console prints it whole
            self._health_shown.add(health)
            print(self._console(job, run), flush=True)
        done, total = self.kept - self._kept_before, self._to_run
        step = max(1, math.ceil(total / 10))
        if done == total or done % step == 0:
            where = f"; each one's files in a folder of {folder.parent}" if done == total else ""
            print(f"  {done}/{total} combinations done in {time.perf_counter() - self._since:.1f} s{where}", flush=True)

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
        png = inspector_png(result.config, trades, trade_id, result.synthetic, result.markets)
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


def compared(results: list[dict | None]) -> list[int]:
    """Positions of the combinations a comparison counts: each finished one (run now or resumed) once, not
    a repeat of another's settings (sweep.runner)."""
    return [i for i, r in enumerate(results) if r and "metrics" in r and "repeat_of" not in r]


def comparison_table(jobs: list[Job], results: list[dict | None], swept: list[str]) -> pd.DataFrame:
    """One row per compared combination (``compared``): number, swept settings, statistics, MLflow run."""
    rows = []
    for i in compared(results):
        job, result = jobs[i], results[i]
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


# What a walk-forward step's metric can need of a trade (core.stats.summary_stats); the rest of the
# columns is read only for the combinations a step chooses.
METRIC_COLUMNS = ("trade_date", "pnl_pts", "gross_inr", "charges_inr", "net_inr", "net_pts")


def _trades(i: int, results, finisher, folder: Path, columns=None) -> pd.DataFrame | None:
    """Combination ``i``'s trades (``columns`` of them, or all), read back from its files (or from
    MLflow when a resumed sweep skipped it)."""
    result = results[i] or {}
    path = (result.get("paths") or {}).get("trades")
    try:
        table = pq.read_table(path) if path else _resumed_artifact(finisher, result.get("mlflow_run_id"), "trades_",
                                                                     folder)
    except (OSError, ValueError):
        table = None
    if table is None:
        return None
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table.to_pandas()


def walk_forward_settings(job: Job, metric: str) -> dict | None:
    """The sweep's walk-forward settings (None without ``validation=walk_forward``); UserError when one is
    wrong, so that a sweep stops before any work."""
    from core.walkforward import parse_length

    if str(job.setting("validation", "name") or "none") != "walk_forward":
        return None
    out = {"train": job.setting("validation", "train"), "test": job.setting("validation", "test"),
           "anchored": job.setting("validation", "anchored"), "metric": job.setting("validation", "metric") or metric}
    for key in ("train", "test"):
        try:
            parse_length(out[key], f"validation.{key}")
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if not isinstance(out["anchored"], bool):
        raise UserError(f"config key 'validation.anchored' must be true or false, got {out['anchored']!r}")
    check_metric(out["metric"], "validation.metric")
    return out


def check_metric(metric: str, key: str) -> None:
    """UserError unless ``metric`` is a statistic of core.stats (a sweep can rank by it)."""
    from core.stats import summary_stats

    known = [k for k, v in summary_stats(pd.DataFrame({"pnl_pts": [], "trade_date": []})).items()
             if not k.startswith("max_drawdown_") or k == "max_drawdown_pts"]
    if metric not in known:
        raise UserError(f"config key '{key}' names no metric ({metric}); choose one of: {', '.join(known)}")


def walk_forward_validation(jobs, cfgs, results, finisher, folder: Path, best_i: int, settings: dict,
                            synthetic: bool = False):
    """Walk-forward validation over every combination's trades (core.walkforward): writes
    ``oos_trades_*.parquet`` and ``walk_forward_steps.parquet``; returns (summary, steps, report HTML, files)."""
    from core import charts
    from core.outputs import output_paths
    from core.report import walk_forward_section
    from core.walkforward import walk_forward, walk_forward_steps

    indices = compared(results)
    trades = {i: _trades(i, results, finisher, folder, METRIC_COLUMNS) for i in indices}
    missing = [jobs[i].index for i, t in trades.items() if t is None]
    if missing:
        print(f"atmburst: warning: walk-forward left out combination(s) {missing[:10]} whose trades cannot be "
              f"read back", file=sys.stderr)
    indices = [i for i in indices if trades[i] is not None]
    if not indices:
        return None, None, "", []
    start, end = min(cfgs[i].start for i in indices), max(cfgs[i].end for i in indices)
    steps = walk_forward_steps(start, end, settings["train"], settings["test"], settings["anchored"])
    metric = settings["metric"]
    if not steps:
        print(f"atmburst: warning: walk-forward needs more than {settings['train']} of dates ({start} to {end}); "
              f"it was left out", file=sys.stderr)
        return None, None, "", []
    result = walk_forward([trades[i] for i in indices], [jobs[i].index for i in indices],
                          [finisher.label(jobs[i]) for i in indices], steps, metric)
    summary = {**result.summary, "metric": metric, "train": settings["train"], "test": settings["test"],
               "anchored": settings["anchored"]}
    best = trades.get(best_i)
    if best is not None and len(best):
        days = pd.to_datetime(best["trade_date"]).to_numpy("datetime64[D]")
        inside = np.zeros(len(best), bool)
        for step in steps:
            inside |= (days >= np.datetime64(step.test_start, "D")) & (days < np.datetime64(step.test_end, "D"))
        summary["in_sample_best_same_days"] = float(best["pnl_pts"][inside].sum())
    # The out-of-sample file: every column of the chosen combinations' trades in each step's test window.
    by_combo = {jobs[i].index: i for i in indices}
    parts, full = [], {}
    for row in result.steps.dropna(subset=["combo"]).itertuples():
        combo = int(row.combo)
        if combo not in full:
            full[combo] = _trades(by_combo[combo], results, finisher, folder)
        own = full[combo]
        days = pd.to_datetime(own["trade_date"]).dt.date
        window = own[(days >= row.test_start) & (days < row.test_end)]
        parts.append(window.assign(step=row.step, combo=combo))
    oos = pd.concat(parts, ignore_index=True) if parts else result.trades
    name = output_paths(folder, cfgs[indices[0]].symbol, start, end)["trades"].name.replace("trades_", "oos_trades_")
    oos_path, steps_path = folder / name, folder / "walk_forward_steps.parquet"
    oos_bytes = parquet_bytes(pa.Table.from_pandas(oos, preserve_index=False), synthetic)
    atomic_write_bytes(oos_path, lambda fh: fh.write(oos_bytes))
    atomic_write_bytes(steps_path, lambda fh: result.steps.to_parquet(fh, index=False))
    chart = charts.walk_forward_equity(result.trades, best if best is not None else result.trades.iloc[:0],
                                       result.steps, synthetic)
    return summary, result.steps, walk_forward_section(summary, result.steps, chart), [oos_path, steps_path]


def overfit_stats(jobs, results, finisher, folder: Path, best_i: int) -> dict | None:
    """PBO (CSCV) and the deflated Sharpe of the best combination over every combination's daily P&L."""
    from core.overfit import daily_matrix, deflated_sharpe, pbo_cscv

    indices = compared(results)
    summaries = [_daily(i, results, finisher, folder) for i in indices]
    if len(indices) < 2 or any(s is None for s in summaries):
        return None
    matrix, days = daily_matrix(summaries)
    blocks = int(jobs[0].setting("validation", "cscv_splits") or 16)
    if blocks < 2 or blocks % 2:
        raise UserError(f"config key 'validation.cscv_splits' must be an even number >= 2, got {blocks}")
    # Combinations with the same P&L on every day (an exit level never reached, a threshold no burst
    # meets) are one choice, not several trials: the statistics run over the distinct columns.
    first: dict[bytes, int] = {}
    for column in range(matrix.shape[1]):
        first.setdefault(matrix[:, column].tobytes(), column)
    distinct = sorted(first.values())
    out = {"trials": len(distinct), "combinations": len(indices), "days": len(days),
           "blocks": min(blocks, max(2, len(days) - len(days) % 2))}
    if len(distinct) < 2:
        return out
    best = distinct.index(first[matrix[:, indices.index(best_i)].tobytes()]) if best_i in indices else None
    matrix = matrix[:, distinct]
    if len(days) >= 4:
        pbo = pbo_cscv(matrix, n_blocks=blocks)
        out.update(pbo=pbo.pbo, splits=pbo.splits, degradation=pbo.degradation)
    if len(days) >= 3:
        dsr = deflated_sharpe(matrix, best=best)
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


def publish_comparison(jobs, cfgs, results, finisher, sweep_dir: Path | None) -> None:
    """The sweep's comparison table and page (and the full report of its best combination)."""
    from core.report import sweep_report

    metric = finisher.metric
    frame = comparison_table(jobs, results, finisher.swept)
    if frame.empty:
        return
    if metric not in frame:
        raise UserError(f"config key 'report.metric' names no metric ({metric}); choose one of: "
                        f"{', '.join(c for c in frame.columns if c not in finisher.swept and c not in ('combo', 'resumed', 'mlflow_run_id'))}")
    best = int(better_first(frame, metric).iloc[0]["combo"])
    best_i = next(i for i, j in enumerate(jobs) if j.index == best)
    folder = sweep_dir or Path(cfg_folder(results, best_i)).parent
    best_result, best_pnl, synthetic = _best_run(best_i, cfgs[best_i], results, finisher, folder)
    cols = ["combo", *finisher.swept, "trades", "total_pnl_pts", "mean_pnl_pts", "win_rate", "profit_factor",
            "max_drawdown_pts", "daily_sharpe"]
    cols += [metric] if metric not in cols else []
    overfit = overfit_stats(jobs, results, finisher, folder, best_i)
    wf_settings = walk_forward_settings(jobs[0], metric)
    wf, wf_html, wf_files = None, "", []
    if wf_settings:
        wf, _, wf_html, wf_files = walk_forward_validation(jobs, cfgs, results, finisher, folder, best_i, wf_settings,
                                                           synthetic)
    page = sweep_report(frame[[c for c in cols if c in frame]], [c for c in finisher.swept if c in frame], metric,
                        best_pnl, synthetic, overfit, wf_html)
    target = folder / "sweep_report.html"
    table_path = folder / "sweep_comparison.parquet"
    atomic_write_bytes(target, lambda fh: fh.write(page.encode()))
    atomic_write_bytes(table_path, lambda fh: frame.to_parquet(fh, index=False))
    written = [target, table_path, *wf_files]
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
        for key, value in (wf or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                parent_metrics[f"oos.{key}"] = float(value)
        finisher.tracker.log_metrics(finisher.parent, parent_metrics)
        finisher.tracker.client.set_tag(finisher.parent, "best_combination",
                                        f"#{best} {finisher.label(jobs[best_i])}"[:5000])
    if not finisher.quiet:
        shown = [c for c in ("combo", *finisher.swept, "trades", "total_pnl_pts", "mean_pnl_pts", "win_rate",
                             "profit_factor", "max_drawdown_pts", "net_inr") if c in frame]
        table = better_first(frame, metric)[shown]
        table = table.astype({c: int for c in ("combo", "trades") if c in table})
        rows = finisher.console_rows
        hidden = len(table) - rows if rows is not None and len(table) > rows else 0
        print("\n" + table.head(len(table) - hidden).to_string(index=False, float_format=lambda v: f"{v:,.2f}",
                                                               na_rep="-"))
        if hidden:
            print(f"  ... and {hidden} more combination(s) ranked below these by {metric}: every one is in the "
                  f"comparison page and table (report.console_rows={rows})")
        from core.report import overfit_lines, walk_forward_lines

        for line in overfit_lines(overfit or {}) + walk_forward_lines(wf or {}):
            print("  " + line)
        print(f"  comparison page: {target}\n  comparison table: {table_path}")
        if wf_files:
            print(f"  walk-forward: {wf_files[0]} and {wf_files[1]}")
        if report_path is not None:
            print(f"  report of the best combination (#{best}): {report_path}")


def cfg_folder(results, i) -> str:
    paths = (results[i] or {}).get("paths") or {}
    return str(Path(paths["trades"]).parent) if "trades" in paths else "."
