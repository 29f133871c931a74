"""Running combinations: ``run_single`` (one backtest in this process) and ``run_sweep`` (every
combination of a sweep: planned by sweep.plan, fanned out with Ray by sweep.fanout, published by
sweep.publish). The entry points (sweep/main.py, the Hydra launcher, backtests/atm_volume.py) call these.

Trades of a combination equal those of a single run with the same overrides, bit for bit:
days are independent, and each chunk runs the same engine functions over its days.
"""
from __future__ import annotations

import atexit
import importlib
import math
import sys
import threading
import time
from pathlib import Path

from core import ConfigError, load_config
from core.engine import run_backtest, run_fingerprint
from core.finish import finish_run
from sweep.errors import UserError
from sweep.progress import Progress
from sweep.plan import Job, combo_key, date_chunks, market_key, separate_results
from sweep.fanout import deferred_interrupt, fan_out, init_ray, run_here
from sweep.publish import Finisher, check_metric, publish_comparison, walk_forward_settings
from sweep.settings import check_counts


def run_single(job: Job, base_dir: Path) -> dict:
    """One backtest in this process (no Ray): write, print, track."""
    try:
        cfg = load_config(job.engine, base_dir)
        check_counts(job.setting)
    except ConfigError as exc:
        raise UserError(f"config error: {exc}") from None
    bar = Progress(0, "days", quiet=bool(job.shell.get("quiet")))

    def tell(done: int, total: int) -> None:
        bar.total = max(total, 1)
        bar.update(done)

    try:
        result = run_backtest(cfg, progress=tell, inspect=job.setting("report", "inspect") or ())
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


OPEN_SESSIONS: list["SweepSession"] = []


def ended_by(exc: BaseException) -> str:
    """The MLflow status of a sweep's parent run ended by ``exc``: KILLED when stopped from outside (Ctrl-C,
    SIGTERM, or SIGTERM turned into an exit by Ray's handler), else FAILED."""
    return "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED"


def close_open_sessions() -> None:
    """Close the sessions of guided searches (their comparison, statistics and parent run come now)."""
    for session in list(OPEN_SESSIONS):
        session.close()


atexit.register(close_open_sessions)


class SweepSession:
    """One Hydra sweep, launched in one batch (Hydra's grid sweeper) or several (a guided search such as
    the Optuna sweeper asks for a batch of trials at a time). Every batch shares one MLflow parent run,
    one Ray (kept up between batches, with the markets built by the first batch) and, when the session
    closes, one comparison, report and set of overfitting statistics over every combination launched."""

    def __init__(self, base_dir: Path, sweep_name: str = "sweep", sweep_dir: Path | None = None, search: bool = False):
        self.base_dir, self.sweep_name, self.sweep_dir, self.search = base_dir, sweep_name, sweep_dir, search
        self.jobs: list[Job] = []
        self.cfgs: list = []
        self.results: list[dict | None] = []
        self.finisher: Finisher | None = None
        self.started = time.perf_counter()
        self.timing: dict[str, float] = {}
        self.nodes = 0
        self.workers = 0  # CPUs of the Ray the batches ran on (0: no Ray)
        self.resumed = 0
        self.repeated = 0  # combinations with the same settings and data as an earlier one: not run again
        self.first_with: dict[str, int] = {}  # combination key -> position in self.jobs of its first launch
        self.used_folders: set = set()
        self.markets: dict | None = {} if search else None
        self.ray = None
        self.stopping: list = []  # the thread shutting down the Ray of a grid sweep (sweep.fanout)
        self.closed = False
        self.offered = 0  # combinations handed to the session so far, the batch being launched included
        self.resume = True  # sweep.resume of the batches
        if search:  # closed by the entry point after Hydra's sweeper returns (or at exit)
            OPEN_SESSIONS.append(self)

    def launch(self, jobs: list[Job]) -> list[dict]:
        """Validate, run and publish one batch of combinations; returns their results (each with its
        ``objective``: the value of ``report.metric``, or None when it is undefined)."""
        self.offered = len(self.jobs) + len(jobs)
        self.resume = bool(jobs[0].setting("sweep", "resume"))
        cfgs = []
        for job in jobs:
            try:
                cfgs.append(load_config(job.engine, self.base_dir))
            except ConfigError as exc:
                raise UserError(f"config error in combination #{job.index} ({' '.join(job.overrides)}): {exc}") from None
        if jobs[0].setting("report", "enabled") or self.search:  # checked before any work
            check_metric(str(jobs[0].setting("report", "metric")), "report.metric")
            walk_forward_settings(jobs[0], str(jobs[0].setting("report", "metric")))
        try:
            check_counts(jobs[0].setting)
        except ConfigError as exc:
            raise UserError(f"config error: {exc}") from None
        how = jobs[0].setting("sweep", "chunk")
        for cfg in cfgs:
            date_chunks(cfg.start, cfg.end, how)  # validates sweep.chunk before any work
        try:  # reads the calendar and lists the data: its errors stop the sweep before any work
            fingerprints = {mk: run_fingerprint(cfg) for mk, cfg in {market_key(c): c for c in cfgs}.items()}
        except ConfigError as exc:
            raise UserError(f"config error: {exc}") from None
        if self.finisher is None:
            self.finisher = Finisher(jobs, self.base_dir, self.sweep_name, search=self.search)
            # the publishing step's imports (matplotlib, about 1 s) overlap the computation
            later = ["core.report"] if jobs[0].setting("report", "enabled") else []
            threading.Thread(target=lambda: [importlib.import_module(m) for m in later], daemon=True).start()
        finisher = self.finisher
        cfgs = separate_results(jobs, cfgs, self.used_folders, finisher.swept)
        keys = [combo_key(cfg, fingerprints[market_key(cfg)]) for cfg in cfgs]
        results: list[dict | None] = [None] * len(jobs)
        # A combination with the same settings and data as an earlier one of this session (a value given
        # twice, 2 and 2.0, or a search proposing a trial again) is not run again and counts once in the
        # comparison and its statistics; it shares that combination's metrics. Positions count from the
        # session's first combination.
        base = len(self.jobs)

        def launched(p: int) -> tuple[Job, dict | None]:
            """The job and result at session position ``p``: an earlier batch's, or this batch's."""
            return (self.jobs[p], self.results[p]) if p < base else (jobs[p - base], results[p - base])

        with deferred_interrupt() as interrupt:  # Ctrl-C during the store's queries: after them
            done = finisher.finished(keys) if jobs[0].setting("sweep", "resume") else {}
            pending, repeats = [], {}
            for i, (job, key) in enumerate(zip(jobs, keys)):
                if interrupt.noted:
                    break
                if key in self.first_with:
                    repeats[i] = self.first_with[key]
                    if not (finisher.quiet or finisher.brief):  # a brief console counts them in its closing line
                        print(f"#{job.index} {finisher.label(job)}: the same settings as "
                              f"#{launched(repeats[i])[0].index}, not run again")
                    continue
                self.first_with[key] = base + i
                if key in done:
                    results[i] = {"resumed_from": done[key], "mlflow_run_id": done[key],
                                  "metrics": finisher.tracker.run_metrics(done[key])}
                    self.resumed += 1
                    if not (finisher.quiet or finisher.brief):
                        print(f"#{job.index} {finisher.label(job)}: already done (MLflow run {done[key]}), skipped")
                else:
                    pending.append(i)
        interrupt.check()
        self.repeated += len(repeats)
        if pending:
            finisher.expect(len(pending))
            if not jobs[0].setting("ray", "enabled"):
                timing = run_here(jobs, cfgs, pending, fingerprints, keys, finisher, results, self.markets)
            else:
                if self.search and self.ray is None:
                    self.ray, _ = init_ray(jobs[0])  # kept up for the next batches; closed with the session
                timing = fan_out(jobs, cfgs, pending, fingerprints, keys, finisher, results, self.markets,
                                 stopping=self.stopping)
            self.nodes = max(self.nodes, timing.pop("nodes", 0))
            self.workers = max(self.workers, timing.pop("workers", 0))
            for k, v in timing.items():
                self.timing[k] = self.timing.get(k, 0.0) + v
        for i, p in repeats.items():
            same_job, same = launched(p)
            results[i] = {"repeat_of": same_job.index, "metrics": same["metrics"]}
        metric = str(jobs[0].setting("report", "metric"))
        for result in results:
            value = ((result or {}).get("metrics") or {}).get(metric)
            result["objective"] = float(value) if value is not None and math.isfinite(float(value)) else None
        self.jobs += jobs
        self.cfgs += cfgs
        self.results += results
        return results

    def close(self, status: str = "FINISHED") -> None:
        """Publish the comparison over every combination launched (when ``status`` is FINISHED), end the
        parent run, stop the Ray this session kept, and print the closing lines."""
        if self.closed:
            return
        self.closed = True
        if self in OPEN_SESSIONS:
            OPEN_SESSIONS.remove(self)
        finisher = self.finisher
        try:
            try:
                if finisher is not None:
                    finisher.drain()
                    if status == "FINISHED" and self.jobs and self.jobs[0].setting("report", "enabled"):
                        publish_comparison(self.jobs, self.cfgs, self.results, finisher, self.sweep_dir)
                    if self.search and finisher.tracker and finisher.parent:
                        finisher.tracker.log_params(finisher.parent, {"combinations": str(len(self.jobs))})
            except BaseException as exc:
                # Ctrl-C while it closes (waiting for the last MLflow runs: under load every task can be done
                # before the first run is logged) ends the sweep as interrupted, with the line below
                status = ended_by(exc)
                raise
            finally:
                if finisher is not None:
                    finisher.close(status)
                if self.ray is not None:
                    self.ray.shutdown()
                    self.ray = None
                for thread in self.stopping:
                    thread.join()
                self.stopping.clear()
        finally:  # what an interrupted sweep kept is said even when its closing was interrupted too
            if status == "KILLED":
                print(self.interrupted_line(), file=sys.stderr, flush=True)
        if status != "FINISHED":
            return
        parts = "".join(f", {k.replace('_', ' ')} {v:.1f} s" for k, v in self.timing.items())
        parts += f", on {self.nodes} Ray nodes" if self.nodes > 1 else ""
        again = f", {self.repeated} repeated" if self.repeated else ""
        print(f"sweep: {len(self.jobs)} combinations ({self.resumed} already done{again}) in "
              f"{time.perf_counter() - self.started:.1f} s{' (' + parts[2:] + ')' if parts else ''}", flush=True)
        if finisher is not None and not finisher.quiet:
            if finisher.tracker:
                print(f"  compare them: {finisher.tracker.how_to_open()}")
            hint = self.ray_start_hint()
            if hint:
                print(hint)

    def interrupted_line(self) -> str:
        """What an interrupted sweep kept, and how to go on."""
        finisher = self.finisher
        kept = finisher.kept if finisher is not None else 0
        earlier = f" ({self.resumed} were done before it started)" if self.resumed else ""
        line = (f"sweep interrupted: {kept} of {self.offered} combinations finished in it{earlier}, each with "
                f"whole files")
        if finisher is not None and finisher.tracker:
            if not self.resume:
                return line + " and its MLflow run; sweep.resume=false: the same command runs them all again"
            return line + " and its MLflow run; the same command runs only the rest"
        return line + "; without MLflow tracking the same command runs them all again"

    def ray_start_hint(self) -> str | None:
        """A line suggesting ``ray.enabled=false`` when starting a private Ray cost more than its workers can
        have saved: without Ray the same tasks run one after another in this process, so at most
        ``workers`` times as long."""
        start, tasks = self.timing.get("ray_start"), self.timing.get("tasks")
        if start is None or tasks is None or self.workers < 1 or not self.jobs or self.jobs[0].setting("ray", "address"):
            return None
        if start <= (self.workers - 1) * tasks:
            return None
        return (f"  Ray's start ({start:.1f} s) cost more than its {self.workers} worker(s) can have saved on "
                f"{tasks:.1f} s of tasks: ray.enabled=false runs a sweep of this size in this process (docs/sweeps.md)")


def run_sweep(jobs: list[Job], base_dir: Path, sweep_name: str = "sweep", sweep_dir: Path | None = None) -> list[dict]:
    """Every combination of ``jobs``: validated first, then fanned out with Ray, then written and tracked."""
    session = SweepSession(base_dir, sweep_name, sweep_dir)
    try:
        results = session.launch(jobs)
    except BaseException as exc:
        session.close(ended_by(exc))
        raise
    session.close()
    return results
