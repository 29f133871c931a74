"""The atmburst Hydra app.

    python sweep/main.py symbol=BANKNIFTY start=2024-07-01 end=2024-07-04 [KEY=VALUE ...]
    python sweep/main.py -m signal.multiplier=1.5,2,3 start=... end=...
    atmburst ...            (the same, as an installed command)

A single run executes in this process; `-m` hands every combination to the `atmburst_ray`
launcher (hydra_plugins/atmburst_launcher), which runs them with Ray (sweep/runner.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sweep.overrides import check_overrides, search_defaults
from sweep.errors import exit_with, reported_as_exit_status, set_up_command
from sweep.plan import Job, split_config
from sweep.runner import close_open_sessions, run_single


@hydra.main(version_base="1.3", config_path="pkg://sweep.conf", config_name="config")
def main(cfg: DictConfig) -> None:
    engine_cfg, shell = split_config(OmegaConf.to_container(cfg, resolve=True))
    with reported_as_exit_status():
        run_single(Job(0, list(HydraConfig.get().overrides.task), engine_cfg, shell), Path(HydraConfig.get().runtime.cwd))


def cli() -> None:
    """The ``atmburst`` command (same as ``python sweep/main.py``): overrides checked, then Hydra."""
    set_up_command()
    sys.argv[1:], problem = check_overrides(sys.argv[1:])
    if problem:
        exit_with(problem)
    sys.argv[1:] = search_defaults(sys.argv[1:])
    with reported_as_exit_status():  # Ctrl-C while Hydra composes: one line, not a traceback
        main()
    with reported_as_exit_status():
        close_open_sessions()  # a guided search publishes its comparison once every trial is done


if __name__ == "__main__":
    cli()
