"""The atmburst Hydra app.

    python sweep/main.py symbol=BANKNIFTY start=2024-07-01 end=2024-07-04 [KEY=VALUE ...]
    python sweep/main.py -m signal.multiplier=1.5,2,3 start=... end=...

A single run executes in this process; `-m` hands every combination to the `atmburst_ray`
launcher (hydra_plugins/atmburst_launcher), which runs them with Ray (sweep/runner.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout: use this checkout's core
    sys.path.insert(0, str(ROOT))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from sweep.overrides import check_overrides  # noqa: E402
from sweep.runner import SHELL_DEFAULTS, Job, fail, run_single, split_config  # noqa: E402


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    engine_cfg, shell = split_config(OmegaConf.to_container(cfg, resolve=True))
    run_single(Job(0, list(HydraConfig.get().overrides.task), engine_cfg, shell), Path(HydraConfig.get().runtime.cwd))


if __name__ == "__main__":
    problem = check_overrides(sys.argv[1:], SHELL_DEFAULTS)
    if problem:
        fail(problem)
    main()
