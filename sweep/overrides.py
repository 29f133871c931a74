"""Check command-line overrides before Hydra sees them, so a wrong key is one clear line."""
from __future__ import annotations

from pathlib import Path

from core.config import DEFAULTS

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("signal", "risk", "delta", "pnl_mode", "costs")


def _known(path: list[str], tree: dict) -> bool:
    node = tree
    for i, part in enumerate(path):
        if not isinstance(node, dict) or part not in node:
            return False
        if ".".join(path[: i + 1]) == "routing.strike_step":
            return True  # SYMBOL: step entries are data
        node = node[part]
    return True


def check_overrides(args: list[str], shell_keys: dict) -> str | None:
    """The first problem with ``args`` (KEY=VALUE overrides), or None if all keys are known."""
    tree = {**DEFAULTS, **shell_keys}
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra.") or key == "hydra" or key.startswith("hydra/"):
            continue
        if key in GROUPS:
            options = sorted(p.stem for p in (CONF_DIR / key).glob("*.yaml"))
            for choice in value.split(","):
                if choice.strip() not in options:
                    return f"config group '{key}' has no option {choice.strip()!r} (choose one of: {', '.join(options)})"
            continue
        if not _known(key.split("."), tree):
            return f"unknown config key '{key}' (see conf/config.yaml and SPEC section 9 for the keys)"
    return None
