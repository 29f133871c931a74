"""The `atmburst_ray` Hydra launcher.

Hydra's sweeper expands `-m KEY=V1,V2 ...` into combinations; this launcher composes each one
(with its own job directory, `.hydra/` files and `results_dir`) and hands them all to
`sweep.runner.run_sweep`, which shares market building between combinations and fans the work
out with Ray, instead of running the app once per combination.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class AtmburstRayLauncherConf:
    _target_: str = "hydra_plugins.atmburst_launcher.ray_launcher.AtmburstRayLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="atmburst_ray", node=AtmburstRayLauncherConf,
                             provider="atmburst")


def _compose(cfg: DictConfig) -> dict:
    """Runs as the 'task' of each job: the resolved config of this combination."""
    return {"config": OmegaConf.to_container(cfg, resolve=True), "output_dir": HydraConfig.get().runtime.output_dir}


class AtmburstRayLauncher(Launcher):
    def __init__(self) -> None:
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sweep.runner import Job, run_sweep, split_config

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        returns, jobs = [], []
        for offset, overrides in enumerate(job_overrides):
            idx = initial_job_idx + offset
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            ret = run_job(hydra_context=self.hydra_context, task_function=_compose, config=sweep_config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
            engine, shell = split_config(ret.return_value["config"])
            jobs.append(Job(idx, list(filter_overrides(overrides)), engine, shell))
            returns.append(ret)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        cwd = Path(str(self.config.hydra.runtime.cwd))
        results = run_sweep(jobs, cwd, sweep_name=f"sweep {sweep_dir}", sweep_dir=sweep_dir.resolve())
        for ret, result in zip(returns, results):
            ret.status = JobStatus.COMPLETED
            ret.return_value = result
        return returns
