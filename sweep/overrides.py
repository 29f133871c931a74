"""Check command-line overrides before Hydra runs, so a wrong key is one clear line.

Overrides are parsed by Hydra's own override parser (no second grammar): everything Hydra
accepts (``choice``, ``range``, ``glob``, ``interval``, ``tag``, quoting) reaches Hydra unchanged,
and only keys and config-group options are checked here. One convenience comes first: a value
with the ``{symbol}`` placeholder and no quotes (which Hydra's grammar reads as a dictionary)
is quoted for the user.
"""
from __future__ import annotations

import re
from importlib.resources import files

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import HydraException

from core.config import DEFAULTS
from sweep.settings import SHELL_DEFAULTS

GROUPS = ("signal", "risk", "delta", "pnl_mode", "costs", "validation")
_PLACEHOLDER = re.compile(r"\{symbol\}")


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files of ``conf/<group>``."""
    folder = files("sweep").joinpath("conf", group)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def quote_placeholders(args: list[str]) -> tuple[list[str], str | None]:
    """``KEY=.../{symbol}/...`` without quotes becomes ``KEY='.../{symbol}/...'`` (each comma-separated
    value quoted on its own); a value that cannot be quoted safely is a problem naming the fix."""
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if arg.startswith("-") or not eq or not _PLACEHOLDER.search(value) or value[:1] in "'\"" \
                or re.match(r"^\w+\(", value):
            out.append(arg)
            continue
        if "'" in value:
            return args, (f"the value of {key} has the {{symbol}} placeholder and a quote; write it in double "
                          f"quotes inside the override, e.g. '{key}=\"{value}\"'")
        out.append(f"{key}=" + ",".join(f"'{part}'" for part in value.split(",")))
    return out, None


def _known(path: list[str], tree: dict) -> bool:
    node = tree
    for i, part in enumerate(path):
        if not isinstance(node, dict) or part not in node:
            return False
        if ".".join(path[: i + 1]) == "routing.strike_step":
            return True  # SYMBOL: step entries are data
        node = node[part]
    return True


def _group_values(override: Override) -> list[str] | None:
    """The option names an override of a config group asks for (None when Hydra expands them)."""
    if override.value_type in (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP):
        return [str(v) for v in override.sweep_string_iterator()]
    if override.value_type == ValueType.ELEMENT:
        return [str(override.value())]
    return None  # glob(...), range(...), interval(...): Hydra matches or rejects them itself


def check_overrides(args: list[str]) -> tuple[list[str], str | None]:
    """(the overrides to hand to Hydra, the first problem or None)."""
    args, problem = quote_placeholders(args)
    if problem:
        return args, problem
    overrides = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        lines = str(exc).strip().splitlines()
        return args, f"cannot read the overrides: {'; '.join(lines[:2])} (quote values with special characters: KEY='...')"
    tree = {**DEFAULTS, **SHELL_DEFAULTS}
    for override in parsed:
        key = override.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")) or override.is_delete():
            continue
        if key in GROUPS:
            wanted = _group_values(override)
            options = group_options(key)
            for choice in wanted or []:
                if choice not in options:
                    return args, (f"config group '{key}' has no option {choice!r} "
                                  f"(choose one of: {', '.join(options)})")
            continue
        if not _known(key.split("."), tree):
            return args, f"unknown config key '{key}' (see docs/strategy.md for the keys)"
    return args, None


SEARCH_BATCH = 16  # trials per batch of a guided search unless hydra.sweeper.n_jobs says otherwise


def search_defaults(args: list[str]) -> list[str]:
    """With the Optuna sweeper (``hydra/sweeper=optuna``): its direction follows ``report.metric``
    (maximise, or minimise for the metrics where smaller is better) and trials run in batches of
    SEARCH_BATCH, unless the command line sets ``hydra.sweeper.direction`` / ``hydra.sweeper.n_jobs``."""
    from core.stats import LOWER_IS_BETTER
    from sweep.settings import SHELL_DEFAULTS

    if not any(a.replace(" ", "") in ("hydra/sweeper=optuna",) for a in args):
        return args
    given = {a.split("=", 1)[0] for a in args if "=" in a}
    metric = next((a.split("=", 1)[1] for a in args if a.startswith("report.metric=")),
                  SHELL_DEFAULTS["report"]["metric"])
    extra = []
    if "hydra.sweeper.direction" not in given:
        extra.append(f"hydra.sweeper.direction={'minimize' if metric in LOWER_IS_BETTER else 'maximize'}")
    if "hydra.sweeper.n_jobs" not in given:
        extra.append(f"hydra.sweeper.n_jobs={SEARCH_BATCH}")
    return [*args, *extra]
