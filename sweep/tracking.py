"""MLflow tracking of runs and sweeps. Only the driver process talks to the store.

One parent run per sweep, one child run per combination. Params are the settings that define a
backtest (strategy, market, session, routing, costs); paths and other per-run noise are tags, so
MLflow's compare view offers what was swept. Metrics are the statistics and health counts, plus
``Objective.<report.metric>``: the ranking metric once more under a name that sorts first, so the
compare view opens on it. Artifacts: trades/summary parquet, health and stats json, the config.
The parent carries the sweep's comparison table, ``sweep_report.html`` and the best combination's
ranking metric.

A child run is complete only when its ``atmburst.complete`` tag is set (the last write before it
is ended). Every run names its owner process (``atmburst.owner``: host, pid, process start time):
opening the store marks RUNNING runs whose owner on this machine is gone as KILLED, so a killed
sweep leaves nothing RUNNING after the next run. Opening a store is serialised with a file lock
(two processes creating one SQLite store at once otherwise collide), and every call retries while
SQLite says the database is locked.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
COMBO_TAG = "atmburst.combo"
COMPLETE_TAG = "atmburst.complete"
OWNER_TAG = "atmburst.owner"
KIND_TAG = "mlflow.experimentKind"  # MLflow 3: which view an experiment opens on
TRAINING_KIND = "custom_model_development"  # the runs table (not the GenAI overview)
# Config keys that say where things are, not what is tested: tags, not params.
PATH_KEYS = ("data.options_dir", "data.spot_glob", "data.calendar_csv", "cache_dir", "results_dir")
OBJECTIVE_PREFIX = "Objective."
RETRY_SECONDS = 120.0


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """{'signal.multiplier': '1.5', ...} from a nested config."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


def split_params(engine: dict) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) of a composed engine config: the settings, and the paths (as ``path.KEY`` tags)."""
    flat = flatten(engine)
    params = {k: v for k, v in flat.items() if k not in PATH_KEYS}
    tags = {f"path.{k}": v for k, v in flat.items() if k in PATH_KEYS}
    return params, tags


def code_version() -> str:
    """The git commit of this checkout (with '+dirty' when it has changes), else the package version."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if commit:
            return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("atmburst")
    except PackageNotFoundError:
        return "unknown"


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # an URI's scheme (two letters or more: not a drive)


def resolve_uri(uri: str, base_dir: Path) -> str:
    """A sqlite URI or a plain path with a relative path made absolute against ``base_dir``; any other URI
    (``file:/abs``, ``file:///abs``, a server's) as it is."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base_dir / uri[len("sqlite:///"):]).resolve())
    if not _SCHEME.match(uri):
        return str((base_dir / uri).resolve())
    return uri


def _lock_path(uri: str) -> Path | None:
    """The lock file that serialises opening a local store (None for a server)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):] + ".lock")
    if uri.startswith("file:"):  # file:/abs or file:///abs (RFC 8089)
        return Path(urlparse(uri).path.rstrip("/") + ".lock")
    if not _SCHEME.match(uri):
        return Path(uri.rstrip("/") + ".lock")
    return None


def _start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), '' if unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_id(pid: int | None = None) -> str:
    """'host|pid|start time' of this (or another) process."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}|{pid}|{_start_time(pid)}"


def owner_alive(owner: str) -> bool | None:
    """Whether the process an owner tag names still runs (None: another machine, cannot tell)."""
    try:
        host, pid_text, started = owner.split("|")
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return None
    if Path("/proc").is_dir():
        return bool(started) and _start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _locked(exc: Exception) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


class _Retrying:
    """An MlflowClient whose calls retry while SQLite reports the database locked."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        if name.startswith("__") or name == "_client":  # copying or unpickling: no client yet
            raise AttributeError(name)
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            deadline, pause = time.monotonic() + RETRY_SECONDS, 0.05
            while True:
                try:
                    return attr(*args, **kwargs)
                except Exception as exc:
                    if not _locked(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(pause)
                    pause = min(pause * 2, 2.0)

        return call


_PRAGMAS: dict[str, str] = {}


def use_sqlite_journal(mode: str) -> None:
    """Open this process's SQLite stores in journal ``mode``: ``wal`` (write-ahead log with
    synchronous=NORMAL: readers such as the MLflow UI never block a sweep's writes, and a commit
    costs no flush to disk; a power cut may lose the last runs, which a resumed sweep redoes) or
    ``delete`` (SQLite's default; use it for a store on a network filesystem, where WAL is unsafe)."""
    mode = str(mode or "wal").lower()
    if mode not in ("wal", "delete"):
        raise ValueError(f"config key 'tracking.sqlite_journal' must be wal or delete, got {mode!r}")
    if not _PRAGMAS:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        @event.listens_for(Engine, "connect")
        def _set_pragmas(connection, _record):  # every SQLite connection this process opens
            if type(connection).__module__.startswith("sqlite3"):
                cursor = connection.cursor()
                if _PRAGMAS.get("mode") == "wal":
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
                else:  # the journal mode is kept in the file: turn an earlier WAL off again
                    cursor.execute("PRAGMA journal_mode=DELETE")
                cursor.close()
    _PRAGMAS["mode"] = mode


def _store_template() -> Path | None:
    """Where an empty SQLite store of this MLflow version is kept (None when there is no cache folder).

    Creating a new SQLite store runs every MLflow schema migration (more than a second of CPU); a new
    store is a copy of this one instead, made by the first store this MLflow version created."""
    try:
        import mlflow

        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "atmburst"
        return root / f"mlflow-{mlflow.__version__}-empty-store.db"
    except Exception:
        return None


def _seed_new_store(path: Path) -> bool:
    """Copy the empty-store template to ``path`` (a store that does not exist yet); False without one."""
    template = _store_template()
    if template is None or not template.is_file() or path.exists():
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.copyfile(template, tmp)
        os.replace(tmp, path)
        return True
    except OSError:
        return False


def _keep_as_template(path: Path) -> None:
    """Save a just-created store (schema only, no experiment yet) as the empty-store template."""
    template = _store_template()
    if template is None or template.is_file():
        return
    tmp = template.with_name(f".{template.name}.{os.getpid()}.tmp")
    try:
        import sqlite3

        template.parent.mkdir(parents=True, exist_ok=True)
        source, copy = sqlite3.connect(str(path)), sqlite3.connect(str(tmp))
        try:
            source.backup(copy)  # a consistent copy, whatever the journal mode
        finally:
            copy.close()
            source.close()
        os.replace(tmp, template)
    except Exception:  # only a speed-up: never a reason to fail
        with contextlib.suppress(OSError):
            tmp.unlink()


def tracked_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """A run's metrics as logged to MLflow: ``health.problems`` (every problem counted, always logged)
    and only the ``health.*`` counts that are not zero (an absent count is zero; the run's health JSON
    artifact has all of them). The 20-odd zero counts of a clean run were half of a child run's metrics
    and about 6 ms of its 35-45 ms of logging CPU."""
    health = {k: v for k, v in metrics.items() if k.startswith("health.")}
    out = {k: v for k, v in metrics.items() if not k.startswith("health.") or v != 0}
    out["health.problems"] = float(sum(health.values()))
    return out


def _quiet_mlflow() -> None:
    """MLflow as the shell wants it, unless the environment says otherwise: logging in the calling thread,
    no store-migration chatter and no download progress bars on the console (a resumed sweep reads its
    finished runs' artifacts)."""
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Tracker:
    """A thin wrapper over MlflowClient for one experiment."""

    def __init__(self, settings: dict, base_dir: Path):
        _quiet_mlflow()
        from filelock import FileLock
        from mlflow.tracking import MlflowClient

        self.uri = resolve_uri(str(settings.get("uri") or "sqlite:///mlflow.db"), base_dir)
        if self.uri.startswith(("http://", "https://")):
            from sweep.net import connect_problem

            problem = connect_problem(self.uri)  # MLflow's client retries a dead server for minutes
            if problem:
                raise ConnectionError(f"nothing answers at {self.uri} ({problem}); is the server running?")
        self.journal = str(settings.get("sqlite_journal") or "wal")
        use_sqlite_journal(self.journal)
        self.owner = owner_id()
        name = str(settings.get("experiment") or "atmburst")
        lock = _lock_path(self.uri)
        if lock is not None:
            lock.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock)) if lock is not None else contextlib.nullcontext():
            store_file = Path(self.uri[len("sqlite:///"):]) if self.uri.startswith("sqlite:///") else None
            new_store = store_file is not None and not store_file.exists()
            seeded = new_store and _seed_new_store(store_file)
            deadline = time.monotonic() + 60
            while True:
                try:
                    self.client = _Retrying(MlflowClient(tracking_uri=self.uri))
                    found = self.client.get_experiment_by_name(name)  # creates or migrates the store
                    break
                except Exception as exc:
                    # Another program without our lock (an `mlflow ui`, a notebook) creating the same new
                    # store at this moment: its tables appear under our feet. Wait for it, then open.
                    if "already exists" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            if new_store and not seeded:
                _keep_as_template(store_file)  # schema only: the next new store starts from a copy
            if found is None:
                if self.uri.startswith(("http://", "https://")):
                    self.experiment_id = self.client.create_experiment(name)  # the server decides artifacts
                else:
                    artifacts = settings.get("artifacts") or "./mlartifacts"
                    location = Path(artifacts) if Path(artifacts).is_absolute() else base_dir / artifacts
                    self.experiment_id = self.client.create_experiment(
                        name, artifact_location=location.resolve().as_uri())
                self.client.set_experiment_tag(self.experiment_id, KIND_TAG, TRAINING_KIND)
            else:
                self.experiment_id = found.experiment_id
                if KIND_TAG not in (found.tags or {}):
                    self.client.set_experiment_tag(self.experiment_id, KIND_TAG, TRAINING_KIND)
        self.experiment = name
        self.reap_orphans()

    @classmethod
    def connect(cls, uri: str, experiment_id: str, experiment: str, journal: str = "wal") -> "Tracker":
        """A tracker on an experiment that another process opened (no store creation, no reaping)."""
        _quiet_mlflow()
        use_sqlite_journal(journal)
        from mlflow.tracking import MlflowClient
        self = cls.__new__(cls)
        self.uri, self.experiment_id, self.experiment, self.journal = uri, experiment_id, experiment, journal
        self.owner = owner_id()
        self.client = _Retrying(MlflowClient(tracking_uri=uri))
        return self

    def runs_url(self, server: str = "http://127.0.0.1:5000") -> str:
        """The experiment's runs table in the MLflow UI. ``workflowType`` is spelled out: MLflow 3.17
        opens links without it in the GenAI view, whatever the experiment's kind."""
        base = self.uri.rstrip("/") if self.uri.startswith(("http://", "https://")) else server
        return f"{base}/#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"

    def how_to_open(self) -> str:
        """One line telling a user how to see the runs."""
        if self.uri.startswith(("http://", "https://")):
            return f"open {self.runs_url()}"
        return f"mlflow ui --backend-store-uri {self.uri}, then open {self.runs_url()}"

    # -- runs ----------------------------------------------------------------------------
    def _create(self, name: str, tags: dict[str, str]):
        return self.client.create_run(self.experiment_id, run_name=name, tags={**tags, OWNER_TAG: self.owner})

    def start_parent(self, name: str, params: dict[str, str], tags: dict[str, str]) -> str:
        run = self._create(name, {**tags, "atmburst.kind": "sweep"})
        self._log(run.info.run_id, params=params, metrics={}, tags={})
        return run.info.run_id

    def add_artifacts(self, run_id: str, paths: list[Path]) -> None:
        for path in paths:
            self.client.log_artifact(run_id, str(path))

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        self._log(run_id, params={}, metrics=metrics, tags={})

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        self._log(run_id, params=params, metrics={}, tags={})

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def reap_orphans(self) -> int:
        """Mark RUNNING runs whose owner process on this machine is gone as KILLED; returns how many."""
        from mlflow.entities import ViewType

        reaped, token = 0, None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string="attributes.status = 'RUNNING'",
                                           run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
            for run in page:
                owner = run.data.tags.get(OWNER_TAG)
                if owner is not None and owner_alive(owner) is False:
                    self.client.set_terminated(run.info.run_id, "KILLED")
                    reaped += 1
            token = page.token
            if not token:
                return reaped

    def finished_combos(self, keys: list[str]) -> dict[str, str]:
        """{combo key: run id} of complete child runs (runs of older versions without an owner that were
        left RUNNING are marked KILLED)."""
        from mlflow.entities import ViewType

        found: dict[str, str] = {}
        wanted = set(keys)
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{COMBO_TAG}` != ''",
                                           run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
            for run in page:
                key = run.data.tags.get(COMBO_TAG)
                if key not in wanted:
                    continue
                if run.info.status == "FINISHED" and run.data.tags.get(COMPLETE_TAG) == "true":
                    found.setdefault(key, run.info.run_id)
                elif run.info.status == "RUNNING" and OWNER_TAG not in run.data.tags:
                    self.client.set_terminated(run.info.run_id, "KILLED")
            token = page.token
            if not token:
                return found

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The metrics of a finished run (for combinations a resumed sweep skips)."""
        return dict(self.client.get_run(run_id).data.metrics)

    def download(self, run_id: str, artifact: str, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, artifact, str(folder)))

    def log_combo(self, parent_id: str | None, name: str, params: dict[str, str], metrics: dict[str, float],
                  tags: dict[str, str], artifacts: list[Path]) -> str:
        """One complete child run: params, metrics, artifacts, then the completion tag, then FINISHED."""
        run_tags = dict(tags)
        if parent_id:
            run_tags["mlflow.parentRunId"] = parent_id
        run = self._create(name, run_tags)
        run_id = run.info.run_id
        try:
            repository = self._artifact_repository(run.info.artifact_uri)
            for path in artifacts:
                repository.log_artifact(str(path))
            # params and metrics go last, with the completion tag, in one batch: a run is complete
            # only once its files are in
            self._log(run_id, params=params, metrics=metrics, tags={COMPLETE_TAG: "true"})
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _artifact_repository(self, artifact_uri: str):
        """The artifact repository of a run, from the run's artifact URI (``MlflowClient.log_artifact``
        looks the run up again in the store for it: measured, a child run's logging CPU 47.6 -> 37.3 ms)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        try:
            return get_artifact_repository(artifact_uri, tracking_uri=self.uri)
        except TypeError:  # an older MLflow whose registry takes the URI alone
            return get_artifact_repository(artifact_uri)

    def _log(self, run_id: str, params: dict[str, str], metrics: dict[str, float], tags: dict[str, str]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        plist = [Param(k, v[:6000]) for k, v in sorted(params.items())]
        mlist = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
        tlist = [RunTag(k, v) for k, v in sorted(tags.items())]
        starts = list(range(0, max(len(plist), len(mlist), 1), 100))
        for i in starts:  # MLflow takes at most 100 params a call; the tags go with the last call
            self.client.log_batch(run_id, metrics=mlist[i:i + 100], params=plist[i:i + 100],
                                  tags=tlist if i == starts[-1] else [])



_PROCESS_TRACKER: Tracker | None = None


def _open_in_process(uri: str, experiment_id: str, experiment: str, journal: str) -> None:
    """Initializer of a logging process: its own client on the sweep's experiment. Ctrl-C reaches every
    process of the terminal's group: these ignore it, so the runs handed to them are still logged while
    the sweep, which gets it too, closes."""
    global _PROCESS_TRACKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _PROCESS_TRACKER = Tracker.connect(uri, experiment_id, experiment, journal)


def _log_in_process(*args) -> str:
    return _PROCESS_TRACKER.log_combo(*args)


class LoggingThread:
    """Child runs logged by one background thread of this process."""

    def __init__(self, tracker: Tracker):
        from concurrent.futures import ThreadPoolExecutor

        self.tracker = tracker
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="mlflow")

    def submit(self, *args):
        return self.pool.submit(self.tracker.log_combo, *args)

    def shutdown(self) -> None:
        self.pool.shutdown()


class LoggingPool:
    """Child runs logged by ``processes`` separate processes, each with its own MLflow client: the
    store's Python layer costs tens of milliseconds of CPU per run, which one thread of the sweep's
    own process cannot keep up with on a large grid. SQLite serialises the writes (with retries)."""

    def __init__(self, tracker: Tracker, processes: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_open_in_process,
                                        initargs=(tracker.uri, tracker.experiment_id, tracker.experiment,
                                                  tracker.journal))

    def submit(self, *args):
        return self.pool.submit(_log_in_process, *args)

    def shutdown(self) -> None:
        self.pool.shutdown()
