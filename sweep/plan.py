"""Planning a sweep: combinations (Jobs) from Hydra's composed configs, their identities (the key a
resumed sweep matches, the market they share), date chunks, result folders and batch order. Pure."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np
import yaml

from core import ConfigError, RunConfig
from sweep.settings import SHELL_DEFAULTS, SHELL_KEYS


@dataclass
class Job:
    """One combination: its overrides, the composed engine config and the shell settings."""

    index: int
    overrides: list[str]
    engine: dict
    shell: dict = field(default_factory=dict)

    def setting(self, section: str, key: str):
        value = (self.shell.get(section) or {}).get(key)
        return SHELL_DEFAULTS[section][key] if value is None and key in SHELL_DEFAULTS[section] else value


YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: same text, faster


def config_yaml(tree: dict) -> str:
    """``yaml.dump(tree, Dumper=YAML_DUMPER, sort_keys=False)``, made section by section (a top-level
    key each): the combinations of a sweep share most sections, and PyYAML's Python representer costs
    milliseconds per config, so each distinct section's text is made once. Sections are told apart by
    ``repr``, which is exact for the plain values of a composed config (1, 1.0, '1' and True differ)."""
    parts = []
    for key, value in tree.items():
        ident = (repr(key), repr(value))
        text = _SECTIONS.get(ident)
        if text is None:
            if len(_SECTIONS) >= 4096:
                _SECTIONS.clear()
            text = _SECTIONS[ident] = yaml.dump({key: value}, Dumper=YAML_DUMPER, sort_keys=False)
        parts.append(text)
    return "".join(parts)


_SECTIONS: dict[tuple[str, str], str] = {}


def split_config(plain: dict) -> tuple[dict, dict]:
    """(engine config, shell settings) from a plain composed config."""
    engine = dict(plain)
    engine.pop("hydra", None)
    shell = {k: engine.pop(k) for k in SHELL_KEYS if k in engine}
    return engine, shell


def combo_key(cfg: RunConfig, fingerprint: str) -> str:
    """Identity of a combination's result: the composed engine config (less where it writes) and the data.
    A number is the same setting however it is written (``signal.multiplier=2`` and ``=2.0``)."""
    raw = {k: _same_numbers(v) for k, v in cfg.raw.items() if k != "results_dir"}
    text = json.dumps(raw, sort_keys=True, default=str) + "|" + fingerprint
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _same_numbers(value):
    """``value`` with every whole float as an int (2.0 -> 2; -0.0 -> 0), so equal numbers have one text."""
    if isinstance(value, dict):
        return {k: _same_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_same_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return value


def date_chunks(start: dt.date, end: dt.date, how, expiries=None) -> list[tuple[dt.date, dt.date]]:
    """Split [start, end] by calendar month ('month'), ISO week ('week'), N days (an int) or not ('none').

    With ``expiries`` (sorted datetime64[D], core.markets.expiry_dates), each cut moves forward to the end
    of the expiry group its day belongs to (the days that trade one expiry: strategy.md §3), so that no
    group is split between two chunks: a month chunk runs on to the first expiry on or after the month's
    last day, and a chunk shorter than a group becomes the group. Each option series file then belongs to
    one chunk: a sweep reads it once and counts its problems once, as a single run does."""
    if how in (None, "none", "all"):
        return [(start, end)]
    if not (how in ("month", "week") or (isinstance(how, int) and not isinstance(how, bool) and how > 0)):
        raise ConfigError(f"config key 'sweep.chunk' must be month, week, none or a number of days; got {how!r}")
    cuts, a = [], start  # the last day of each chunk but the last, on the calendar
    while True:
        if how == "month":
            a = dt.date(a.year + (a.month == 12), a.month % 12 + 1, 1)
        elif how == "week":
            a = a + dt.timedelta(days=7 - a.weekday())
        else:
            a = a + dt.timedelta(days=how)
        if a > end:
            break
        cuts.append(a - dt.timedelta(days=1))
    if expiries is not None:
        moved = []
        for cut in cuts:
            i = int(np.searchsorted(expiries, np.datetime64(cut, "D"), "left"))
            if i == len(expiries):
                break  # after the calendar's last expiry: one group (no_expiry) to the end
            group_end = expiries[i].astype(dt.date)
            if group_end < end and (not moved or group_end > moved[-1]):
                moved.append(group_end)
        cuts = moved
    firsts = [start] + [c + dt.timedelta(days=1) for c in cuts]
    return list(zip(firsts, cuts + [end]))


def market_key(cfg: RunConfig) -> str:
    """Identity of a combination's market: its settings of the market part (core.settings)."""
    return json.dumps(cfg.market_settings, sort_keys=True, default=str)


def swept_keys(jobs: list[Job], search: bool = False) -> list[str]:
    """The override keys whose value differs between combinations (``search``: every key a search
    sets, whether or not this batch happens to vary it)."""
    values: dict[str, set] = defaultdict(set)
    for j in jobs:
        for o in j.overrides:
            values[o.split("=", 1)[0]].add(o)
    return sorted(k for k, v in values.items() if len(v) > 1 or (search and not k.startswith("hydra")))


def combo_label(job: Job, swept: list[str]) -> str:
    """The combination in a few words: its swept overrides."""
    own = [o for o in job.overrides if o.split("=", 1)[0] in swept]
    return " ".join(own) or f"#{job.index}"


def combo_folder_name(job: Job, swept: list[str]) -> str:
    """A folder name for one combination: its number and its swept overrides, safe on any filesystem."""
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", combo_label(job, swept).replace(" ", ",")).strip("_")
    return f"{job.index}_{slug[:120]}" if slug and slug != f"_{job.index}" else str(job.index)


def family_order(cfgs: list[RunConfig], members: list[int]) -> list[int]:
    """``members`` ordered so that combinations sharing signal sums (burst and baseline lengths) and then
    entries (the rest of the signal) sit in the same batches of the kernel."""
    def family(i):
        s = cfgs[i].strategy
        return (s.burst_secs, s.avg_secs, s.multiplier, s.min_burst_volume, s.trend_filter, s.entry_delay_secs, i)
    return sorted(members, key=family)


def separate_results(jobs: list[Job], cfgs: list[RunConfig], used: set | None = None,
                     swept: list[str] | None = None) -> list[RunConfig]:
    """Combinations that would write to the same results folder (an explicit ``results_dir``), or to a
    folder an earlier batch of the same sweep used (``used``, updated), each get a subfolder of it named
    by their number and swept overrides, so none overwrites another."""
    shared = defaultdict(list)
    for i, cfg in enumerate(cfgs):
        shared[cfg.results_dir].append(i)
    swept = swept_keys(jobs) if swept is None else swept
    out = list(cfgs)
    used = set() if used is None else used
    for folder, members in shared.items():
        seen_before = folder in used
        used.add(folder)
        if len(members) > 1 or seen_before:
            for i in members:
                out[i] = replace(cfgs[i], results_dir=folder / combo_folder_name(jobs[i], swept))
    return out
