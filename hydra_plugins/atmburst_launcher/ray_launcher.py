"""The `atmburst_ray` Hydra launcher.

Hydra's sweeper expands `-m KEY=V1,V2 ...` into combinations; this launcher turns them into the
composed config of each combination and hands them all to `sweep.runner.run_sweep`, which shares
market building and strategy evaluation between combinations and fans the work out with Ray,
instead of running the app once per combination.

Composing is paid once per distinct choice of config groups (and `hydra.*` overrides), not once
per combination: each combination's other overrides are parsed by Hydra's own override parser
and applied to a copy of that composed config, as Hydra would apply them. Anything else (`+key`,
`~key`, a value Hydra must expand) takes Hydra's full path. Each combination keeps its job folder
with `.hydra/config.yaml` and `.hydra/overrides.yaml`.
"""

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType, ValueType
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)

GROUPS = ("signal", "risk", "delta", "pnl_mode", "costs", "validation")


@dataclass
class AtmburstRayLauncherConf:
    _target_: str = "hydra_plugins.atmburst_launcher.ray_launcher.AtmburstRayLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="atmburst_ray", node=AtmburstRayLauncherConf,
                             provider="atmburst")


def is_structural(override) -> bool:
    """Overrides that need Hydra's composition: config groups, ``hydra.*`` keys, and anything other
    than a plain value change of an existing key (``+key``, ``~key``, ``key@pkg``)."""
    key = override.key_or_group
    plain = (override.type == OverrideType.CHANGE and override.value_type == ValueType.ELEMENT
             and override.package is None)
    return key in GROUPS or key == "hydra" or key.startswith(("hydra.", "hydra/")) or not plain


class OverrideCache:
    """Hydra's override parser, parsing each distinct override text once (a grid of N combinations
    repeats the same few texts N times, and each parse costs milliseconds)."""

    def __init__(self) -> None:
        self.parser = OverridesParser.create()
        self.parsed: dict[str, object] = {}

    def __call__(self, overrides: Sequence[str]) -> list:
        todo = [o for o in overrides if o not in self.parsed]
        if todo:
            self.parsed.update(zip(todo, self.parser.parse_overrides(todo)))
        return [self.parsed[o] for o in overrides]


HYDRA_OUTPUT_DIR = "${hydra:runtime.output_dir}"


def _interpolations(node, path=()) -> dict[tuple, str]:
    """{key path: text} of every string leaf of a plain config that holds an interpolation."""
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _interpolations(child, (*path, key)).items()}
    if isinstance(node, list):
        return {k: v for i, child in enumerate(node) for k, v in _interpolations(child, (*path, i)).items()}
    return {path: node} if isinstance(node, str) and "${" in node else {}


def _plain_copy(node):
    """A copy of a plain config (dicts, lists and scalars), faster than copy.deepcopy."""
    if isinstance(node, dict):
        return {k: _plain_copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain_copy(v) for v in node]
    return node


def _set_existing(plain: dict, key: str, value) -> bool:
    """Set dotted ``key`` of ``plain`` to ``value`` if the key exists (as Hydra's struct mode requires)."""
    *parents, last = key.split(".")
    node = plain
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return False
    if last not in node:
        return False
    node[last] = value
    return True


def _has_interpolation(value) -> bool:
    return isinstance(value, str) and "${" in value


class AtmburstSweeper(BasicSweeper):
    """Hydra's basic grid sweeper, checking that a batch composes once per distinct choice of config
    groups instead of once per combination (the launcher applies the rest as plain value changes)."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        parse = OverrideCache()
        seen = set()
        for overrides in batch:
            parsed = parse(overrides)
            structural = tuple(o for o, p in zip(overrides, parsed) if is_structural(p))
            if structural not in seen:
                seen.add(structural)
                self.hydra_context.config_loader.load_sweep_config(master_config=self.config,
                                                                   sweep_overrides=list(overrides))


@dataclass
class AtmburstSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.atmburst_launcher.ray_launcher.AtmburstSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="atmburst_basic", node=AtmburstSweeperConf,
                             provider="atmburst")


class AtmburstRayLauncher(Launcher):
    def __init__(self) -> None:
        self.config = self.hydra_context = self.task_function = None
        self.session = None  # the sweep.runner.SweepSession of a guided search, open between its batches

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def compose(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        """(Job, JobReturn) of every combination, composing once per distinct group choice.

        A combination's other overrides are plain value changes of existing keys: they are set on a
        copy of the composed config. When the composed config's only interpolation is Hydra's job
        folder (``results_dir: ${hydra:runtime.output_dir}``) and no override value holds one, that
        copy is a plain dict (fast path, milliseconds for a thousand combinations); otherwise it goes
        through OmegaConf with the job's Hydra node set, exactly as Hydra resolves it."""
        from sweep.plan import YAML_DUMPER, Job, config_yaml, split_config

        parse = OverrideCache()
        bases: dict[tuple, tuple[DictConfig, dict, dict]] = {}
        jobs, returns = [], []
        # A job folder named by anything but the job number (e.g. ${hydra.job.override_dirname})
        # depends on every override: then each combination is composed by Hydra in full.
        subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("subdir")
        per_job_folders = subdir in ("${hydra.job.num}", "${hydra.job.id}")
        for offset, overrides in enumerate(job_overrides):
            idx = initial_job_idx + offset
            overrides = list(overrides)
            parsed = parse(overrides)
            structural = tuple(o for o, p in zip(overrides, parsed) if is_structural(p) or not per_job_folders)
            if structural not in bases:
                base = self.hydra_context.config_loader.load_sweep_config(self.config, list(structural))
                HydraConfig.instance().set_config(base)  # for ${hydra:...} in the task config
                task = OmegaConf.masked_copy(base, [k for k in base if k != "hydra"])
                task_plain = OmegaConf.to_container(task, resolve=False)
                bases[structural] = (base, task_plain, _interpolations(task_plain),
                                     Path(str(OmegaConf.select(base, "hydra.sweep.dir"))))
            base, task_plain, interpolated, sweep_dir = bases[structural]
            output_dir = os.path.abspath(sweep_dir / (str(idx) if per_job_folders else
                                                      str(OmegaConf.select(base, "hydra.sweep.subdir"))))
            changes = [(p.key_or_group, p.value()) for text, p in zip(overrides, parsed) if text not in structural]
            plain = None
            if (per_job_folders and all(v == HYDRA_OUTPUT_DIR for v in interpolated.values())
                    and not any(isinstance(v, (dict, list)) or _has_interpolation(v) for _, v in changes)):
                plain = _plain_copy(task_plain)
                for path in interpolated:
                    node = plain
                    for part in path[:-1]:
                        node = node[part]
                    node[path[-1]] = output_dir
                if not all(_set_existing(plain, key, value) for key, value in changes):
                    plain = None  # an unknown key: Hydra's own path below says so
            cfg = None
            if plain is None:
                cfg, plain, output_dir = self._compose_one(base, task_plain, idx, overrides, structural, parsed)
            if base.hydra.output_subdir is not None:
                folder = Path(output_dir) / str(base.hydra.output_subdir)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "config.yaml").write_text(config_yaml(plain))
                (folder / "overrides.yaml").write_text(yaml.dump(overrides, Dumper=YAML_DUMPER))
            engine, shell = split_config(plain)
            jobs.append(Job(idx, list(filter_overrides(overrides)), engine, shell))
            returns.append(JobReturn(overrides=overrides, cfg=cfg, hydra_cfg=None, working_dir=os.getcwd(),
                                     task_name=str(base.hydra.job.name)))
        return jobs, returns

    def _compose_one(self, base, task_plain, idx, overrides, structural, parsed):
        """One combination through OmegaConf, with its job's Hydra node: (config, plain dict, job folder)."""
        hydra_node = HydraConfig.instance().cfg.hydra
        with read_write(hydra_node), open_dict(hydra_node), read_write(base.hydra), open_dict(base.hydra):
            for node in (base.hydra, hydra_node):
                node.job.id = idx
                node.job.num = idx
                node.overrides.task = overrides
            output_dir = Path(str(OmegaConf.select(base, "hydra.sweep.dir")))
            output_dir = os.path.abspath(output_dir / str(OmegaConf.select(base, "hydra.sweep.subdir")))
            hydra_node.runtime.output_dir = output_dir
        task = OmegaConf.create(copy.deepcopy(task_plain))
        OmegaConf.set_struct(task, True)
        for text, p in zip(overrides, parsed):
            if text not in structural:
                OmegaConf.update(task, p.key_or_group, p.value(), merge=True)
        task._set_parent(None)
        HydraConfig.instance().cfg.hydra._set_parent(task)
        return task, OmegaConf.to_container(task, resolve=True), output_dir

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run a batch of combinations (all of a grid; one batch of trials of a guided search, whose
        session stays open for the next batch until sweep.runner.close_open_sessions). Each job's
        return value is its objective, the value of ``report.metric`` (None when undefined)."""
        from sweep.errors import reported_as_exit_status
        from sweep.runner import SweepSession, ended_by

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs, returns = self.compose(job_overrides, initial_job_idx)
        cwd = Path(str(self.config.hydra.runtime.cwd))
        search = not str(self.config.hydra.sweeper.get("_target_", "")).endswith(("AtmburstSweeper", "BasicSweeper"))
        with reported_as_exit_status():
            if self.session is None:
                self.session = SweepSession(cwd, sweep_name=f"sweep {sweep_dir}", sweep_dir=sweep_dir.resolve(),
                                            search=search)
            try:
                results = self.session.launch(jobs)
            except BaseException as exc:
                self.session.close(ended_by(exc))
                self.session = None
                raise
            if not search:
                self.session.close()
                self.session = None
        for ret, result in zip(returns, results):
            ret.status = JobStatus.COMPLETED
            ret.return_value = result.get("objective")
        return returns
