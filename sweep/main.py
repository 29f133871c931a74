"""The atmburst Hydra app.

    python sweep/main.py symbol=BANKNIFTY start=2024-07-01 end=2024-07-04 [KEY=VALUE ...]
    python sweep/main.py -m signal.multiplier=1.5,2,3 start=... end=...
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

from sweep.app import fail, run_single, split_config  # noqa: E402
from sweep.overrides import check_overrides  # noqa: E402

SHELL_DEFAULTS = {"quiet": False, "tracking": {}, "sweep": {}, "ray": {}}


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    plain = OmegaConf.to_container(cfg, resolve=True)
    engine_cfg, shell = split_config(plain)
    run_single(engine_cfg, Path(HydraConfig.get().runtime.cwd), quiet=bool(shell.get("quiet")))


if __name__ == "__main__":
    problem = check_overrides(sys.argv[1:], SHELL_DEFAULTS)
    if problem:
        fail(problem)
    main()
