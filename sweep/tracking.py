"""MLflow tracking of runs and sweeps. Only the driver process talks to the store.

One parent run per sweep, one child run per combination: params are the flattened composed
config, metrics the statistics and health counts, artifacts the trades/summary parquet files,
the health and stats json and the composed config. A child run is complete only when its
``atmburst.complete`` tag is set (the last write before it is ended): resuming a sweep skips
complete runs with the same combination key and marks leftovers of a killed sweep as KILLED.
"""
from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMBO_TAG = "atmburst.combo"
COMPLETE_TAG = "atmburst.complete"


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


def resolve_uri(uri: str, base_dir: Path) -> str:
    """A sqlite/file URI with a relative path made absolute against ``base_dir``."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base_dir / uri[len("sqlite:///"):]).resolve())
    if "://" not in uri:
        return str((base_dir / uri).resolve())
    return uri


class Tracker:
    """A thin wrapper over MlflowClient for one experiment."""

    def __init__(self, settings: dict, base_dir: Path):
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):  # no store-migration chatter on the console
            logging.getLogger(name).setLevel(logging.WARNING)

        self.uri = resolve_uri(str(settings.get("uri") or "sqlite:///mlflow.db"), base_dir)
        self.client = MlflowClient(tracking_uri=self.uri)
        name = str(settings.get("experiment") or "atmburst")
        found = self.client.get_experiment_by_name(name)
        if found is None:
            if self.uri.startswith(("http://", "https://")):
                self.experiment_id = self.client.create_experiment(name)  # the server decides where artifacts go
            else:
                artifacts = settings.get("artifacts") or "./mlartifacts"
                location = Path(artifacts) if Path(artifacts).is_absolute() else base_dir / artifacts
                self.experiment_id = self.client.create_experiment(name, artifact_location=location.resolve().as_uri())
        else:
            self.experiment_id = found.experiment_id
        self.experiment = name

    def start_parent(self, name: str, params: dict[str, str], tags: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags={**tags, "atmburst.kind": "sweep"})
        self._log(run.info.run_id, params=params, metrics={}, tags={})
        return run.info.run_id

    def add_artifacts(self, run_id: str, paths: list[Path]) -> None:
        for path in paths:
            self.client.log_artifact(run_id, str(path))

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def finished_combos(self, keys: list[str]) -> dict[str, str]:
        """{combo key: run id} of complete child runs; incomplete ones are marked KILLED."""
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
                elif run.info.status == "RUNNING":
                    self.client.set_terminated(run.info.run_id, "KILLED")
            token = page.token
            if not token:
                return found

    def log_combo(self, parent_id: str | None, name: str, params: dict[str, str], metrics: dict[str, float],
                  tags: dict[str, str], artifacts: list[Path]) -> str:
        """One complete child run: params, metrics, artifacts, then the completion tag, then FINISHED."""
        run_tags = dict(tags)
        if parent_id:
            run_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=run_tags)
        run_id = run.info.run_id
        try:
            self._log(run_id, params=params, metrics=metrics, tags={})
            for path in artifacts:
                self.client.log_artifact(run_id, str(path))
            self.client.set_tag(run_id, COMPLETE_TAG, "true")
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _log(self, run_id: str, params: dict[str, str], metrics: dict[str, float], tags: dict[str, str]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        plist = [Param(k, v[:6000]) for k, v in sorted(params.items())]
        mlist = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
        tlist = [RunTag(k, v) for k, v in sorted(tags.items())]
        for i in range(0, max(len(plist), len(mlist), len(tlist), 1), 100):
            self.client.log_batch(run_id, metrics=mlist[i:i + 100], params=plist[i:i + 100], tags=tlist[i:i + 100])
