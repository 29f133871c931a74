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
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from core import ConfigError, RunConfig, load_config
from core.console import format_result
from core.engine import (BacktestResult, build_markets, evaluate_markets, results_from_records, run_backtest,
                         run_fingerprint)
from core.health import Health
from core.outputs import write_json
from core.stats import metrics_for_tracking, summary_stats

ROOT = Path(__file__).resolve().parents[1]
SHELL_KEYS = ("quiet", "tracking", "sweep", "ray")
SHELL_DEFAULTS = {
    "quiet": False,
    "tracking": {"enabled": True, "uri": "sqlite:///mlflow.db", "experiment": "atmburst", "artifacts": "./mlartifacts"},
    "sweep": {"chunk": "month", "resume": True},
    "ray": {"address": None, "num_cpus": None},
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
                                                         "results_dir")}
    return json.dumps(raw, sort_keys=True, default=str)


class Finisher:
    """Writes a combination's files and logs it to MLflow (driver side)."""

    def __init__(self, jobs: list[Job], base_dir: Path, sweep_name: str | None):
        first = jobs[0]
        self.quiet = bool(first.shell.get("quiet"))
        self.tracker = None
        self.parent = None
        values: dict[str, set] = defaultdict(set)
        for j in jobs:
            for o in j.overrides:
                values[o.split("=", 1)[0]].add(o)
        self.swept = sorted(k for k, v in values.items() if len(v) > 1)
        if first.setting("tracking", "enabled"):
            from sweep.tracking import Tracker, code_version

            self.tracker = Tracker({k: first.setting("tracking", k) for k in SHELL_DEFAULTS["tracking"]}, base_dir)
            self.version = code_version()
            if sweep_name:
                self.parent = self.tracker.start_parent(sweep_name, {"combos": str(len(jobs)),
                                                                     "swept": ",".join(self.swept) or "-"},
                                                        {"atmburst.version": self.version})

    def label(self, job: Job) -> str:
        """The combination in a few words: its swept overrides."""
        own = [o for o in job.overrides if o.split("=", 1)[0] in self.swept]
        return " ".join(own) or f"#{job.index}"

    def finished(self, keys: list[str]) -> dict[str, str]:
        return self.tracker.finished_combos(keys) if self.tracker else {}

    def finish(self, job: Job, result: BacktestResult, fingerprint: str, key: str) -> dict:
        paths = result.write()
        stats = summary_stats(result.trades)
        stem = paths["trades"].stem.replace("trades_", "")
        stats_path = paths["trades"].parent / f"stats_{stem}.json"
        write_json({"synthetic_data": result.synthetic, **stats}, stats_path)
        config_path = paths["trades"].parent / f"config_{stem}.yaml"
        config_path.write_text(yaml.safe_dump({**job.engine, **job.shell}, sort_keys=False))
        metrics = metrics_for_tracking(stats)
        metrics.update({f"health.{k}": float(v) for k, v in result.health["problems"].items()})
        run_id = None
        if self.tracker:
            from sweep.tracking import COMBO_TAG, flatten

            cfg = result.config
            tags = {"symbol": cfg.symbol, "date_range": f"{cfg.start}..{cfg.end}", "data_fingerprint": fingerprint,
                    "atmburst.version": self.version, COMBO_TAG: key, "synthetic_data": str(result.synthetic).lower(),
                    "overrides": " ".join(job.overrides)[:5000]}
            name = self.label(job) if self.parent else f"{cfg.symbol} {cfg.start}..{cfg.end}"
            run_id = self.tracker.log_combo(self.parent, name[:250], flatten({**job.engine, **job.shell}), metrics,
                                            tags, [paths["trades"], paths["summary"], paths["health"], stats_path,
                                                   config_path])
        if not self.quiet:
            print(format_result(result, paths, label=f"#{job.index} {self.label(job)}: " if self.parent else ""),
                  flush=True)
        return {"metrics": metrics, "paths": {k: str(v) for k, v in paths.items()}, "mlflow_run_id": run_id}

    def close(self, status: str = "FINISHED") -> None:
        if self.tracker and self.parent:
            self.tracker.end(self.parent, status)


def run_single(job: Job, base_dir: Path) -> dict:
    """One backtest in this process (no Ray): write, print, track."""
    try:
        cfg = load_config(job.engine, base_dir)
    except ConfigError as exc:
        fail(f"config error: {exc}")
    result = run_backtest(cfg)
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
        ray.init(num_cpus=job.setting("ray", "num_cpus"), runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
                 **kwargs)
    return ray, True


def _build_chunk(cfg: RunConfig):
    return build_markets(cfg, threads=1)  # one core per Ray task: Ray does the parallelism


def _evaluate_chunk(markets, strategy, symbol):
    return evaluate_markets(markets, strategy, symbol)


def run_sweep(jobs: list[Job], base_dir: Path, sweep_name: str = "sweep") -> list[dict]:
    """Every combination of ``jobs``: validated first, then fanned out with Ray, then written and tracked."""
    started = time.perf_counter()
    cfgs = []
    for job in jobs:
        try:
            cfgs.append(load_config(job.engine, base_dir))
        except ConfigError as exc:
            fail(f"config error in combination #{job.index} ({' '.join(job.overrides)}): {exc}")
    how = jobs[0].setting("sweep", "chunk")
    for cfg in cfgs:
        date_chunks(cfg.start, cfg.end, how)  # validates sweep.chunk before any work
    fingerprints = {mk: run_fingerprint(cfg) for mk, cfg in {_market_key(c): c for c in cfgs}.items()}
    keys = [combo_key(cfg, fingerprints[_market_key(cfg)]) for cfg in cfgs]
    finisher = Finisher(jobs, base_dir, sweep_name)
    results: list[dict | None] = [None] * len(jobs)
    status = "FAILED"
    try:
        done = finisher.finished(keys) if jobs[0].setting("sweep", "resume") else {}
        pending = []
        for i, (job, key) in enumerate(zip(jobs, keys)):
            if key in done:
                results[i] = {"resumed_from": done[key]}
                if not finisher.quiet:
                    print(f"#{job.index} {finisher.label(job)}: already done (MLflow run {done[key]}), skipped")
            else:
                pending.append(i)
        if pending:
            _fan_out(jobs, cfgs, pending, fingerprints, keys, finisher, results, how, started)
        status = "FINISHED"
    finally:
        finisher.close(status)
    if not finisher.quiet:
        print(f"sweep: {len(jobs)} combinations ({len(jobs) - len(pending)} already done) in "
              f"{time.perf_counter() - started:.1f} s")
        if finisher.tracker:
            print(f"  compare them: mlflow ui --backend-store-uri {finisher.tracker.uri} "
                  f"(then open http://127.0.0.1:5000, experiment '{finisher.tracker.experiment}')")
    return results


def _fan_out(jobs, cfgs, pending, fingerprints, keys, finisher, results, how, started) -> None:
    ray, owned = _init_ray(jobs[0])
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
        remaining = {i: sum(1 for mk, _ in units if mk == _market_key(cfgs[i])) for i in pending}
        window = 2 * max(1, int(ray.available_resources().get("CPU", 1)))
        in_flight: list[tuple] = []

        def submit(unit):
            mk, (a, b) = unit
            members = groups[mk]
            markets_ref, health_ref = build.remote(cfgs[members[0]].with_range(a, b))
            evals = [(i, evaluate.remote(markets_ref, cfgs[i].strategy, cfgs[i].symbol)) for i in members]
            in_flight.append((members, health_ref, evals))

        queue = list(units)
        while queue or in_flight:
            while queue and len(in_flight) < window:
                submit(queue.pop(0))
            members, health_ref, evals = in_flight.pop(0)
            market_health = ray.get(health_ref)
            for i, ref in evals:
                recs, eval_health = ray.get(ref)
                records[i].extend(recs)
                health[i].merge(market_health)
                health[i].merge(eval_health)
                remaining[i] -= 1
                if remaining[i] == 0:
                    result = results_from_records(records.pop(i), health[i], cfgs[i], time.perf_counter() - started)
                    results[i] = finisher.finish(jobs[i], result, fingerprints[_market_key(cfgs[i])], keys[i])
    finally:
        if owned:
            ray.shutdown()
