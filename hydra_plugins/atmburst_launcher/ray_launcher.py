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


class AtmburstSweeper(BasicSweeper):
    """Hydra's basic grid sweeper, checking that a batch composes once per distinct choice of config
    groups instead of once per combination (the launcher applies the rest as plain value changes)."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        parser = OverridesParser.create()
        seen = set()
        for overrides in batch:
            parsed = parser.parse_overrides(list(overrides))
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

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def compose(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        """(Job, JobReturn) of every combination, composing once per distinct group choice."""
        from sweep.runner import Job, split_config

        parser = OverridesParser.create()
        bases: dict[tuple, tuple[DictConfig, dict]] = {}
        jobs, returns = [], []
        # A job folder named by anything but the job number (e.g. ${hydra.job.override_dirname})
        # depends on every override: then each combination is composed by Hydra in full.
        subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("subdir")
        per_job_folders = subdir in ("${hydra.job.num}", "${hydra.job.id}")
        for offset, overrides in enumerate(job_overrides):
            idx = initial_job_idx + offset
            overrides = list(overrides)
            parsed = parser.parse_overrides(overrides)
            structural = tuple(o for o, p in zip(overrides, parsed) if is_structural(p) or not per_job_folders)
            if structural not in bases:
                base = self.hydra_context.config_loader.load_sweep_config(self.config, list(structural))
                HydraConfig.instance().set_config(base)  # for ${hydra:...} in the task config
                task = OmegaConf.masked_copy(base, [k for k in base if k != "hydra"])
                bases[structural] = (base, OmegaConf.to_container(task, resolve=False))
            base, task_plain = bases[structural]
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
            plain = OmegaConf.to_container(task, resolve=True)
            if base.hydra.output_subdir is not None:
                folder = Path(output_dir) / str(base.hydra.output_subdir)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "config.yaml").write_text(OmegaConf.to_yaml(plain))
                (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
            engine, shell = split_config(plain)
            jobs.append(Job(idx, list(filter_overrides(overrides)), engine, shell))
            returns.append(JobReturn(overrides=overrides, cfg=task, hydra_cfg=None, working_dir=os.getcwd(),
                                     task_name=str(base.hydra.job.name)))
        return jobs, returns

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sweep.runner import run_sweep

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs, returns = self.compose(job_overrides, initial_job_idx)
        cwd = Path(str(self.config.hydra.runtime.cwd))
        results = run_sweep(jobs, cwd, sweep_name=f"sweep {sweep_dir}", sweep_dir=sweep_dir.resolve())
        for ret, result in zip(returns, results):
            ret.status = JobStatus.COMPLETED
            ret.return_value = result
        return returns
