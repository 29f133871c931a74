"""The typed schema of the shell's settings (sweeps, tracking, Ray, reports, validation).

The one source of their defaults: ``SHELL_DEFAULTS`` is derived from it and ``conf/config.yaml``
is checked against it by a test. None of these keys changes a trade.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from core import ConfigError


@dataclass
class TrackingSettings:
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"  # relative paths: against the directory the command started in
    experiment: str = "atmburst"
    artifacts: str = "./mlartifacts"  # artifact root of a new experiment
    log_processes: int | None = None  # processes logging child runs (None: up to 4, one per core; 0: a thread)
    sqlite_journal: str = "wal"  # wal | delete (for a store on a network filesystem)


@dataclass
class SweepSettings:
    chunk: str | int = "month"  # month | week | none | N days
    resume: bool = True
    batch: int | None = None  # combinations per batch task (None: about two tasks per CPU, at most 125; without Ray 125)


@dataclass
class RaySettings:
    enabled: bool = True  # false: combinations run in this process, no Ray (small sweeps, notebooks, debugging)
    address: str | None = None  # None: a private local Ray; "auto" or "ray://HOST:10001": a cluster
    num_cpus: int | None = None  # local Ray only; None = all cores


@dataclass
class ReportSettings:
    enabled: bool = True
    inspect: list[int] = field(default_factory=list)
    metric: str = "total_pnl_pts"
    console_rows: int | None = 20  # a sweep of more combinations prints its progress by tenths, not each one; None: no limit


@dataclass
class ValidationSettings:
    name: str = "none"  # none | walk_forward
    cscv_splits: int = 16  # blocks of days for the PBO's cross-validation (even)
    train: str = "6M"  # walk_forward: length of a train window (D, W, M, Y: calendar days, weeks, months, years)
    test: str = "1M"  # walk_forward: length of a test window; the next step moves on by this much
    anchored: bool = False  # walk_forward: true = expanding train window from the start, false = rolling
    metric: str | None = None  # walk_forward: the metric that chooses (None: report.metric)


@dataclass
class ShellSettings:
    quiet: bool = False
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    sweep: SweepSettings = field(default_factory=SweepSettings)
    ray: RaySettings = field(default_factory=RaySettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)


SHELL_DEFAULTS: dict = asdict(ShellSettings())
SHELL_KEYS: tuple[str, ...] = tuple(f.name for f in fields(ShellSettings))


# (section, key, smallest value, what null means) of the shell's counts
COUNTS = (("ray", "num_cpus", 1, "all cores"), ("sweep", "batch", 1, "about two batches per CPU, at most 125"),
          ("tracking", "log_processes", 0, "up to 4, one per core; 0: a thread"),
          ("report", "console_rows", 1, "no limit"))


def check_counts(setting: Callable[[str, str], object]) -> None:
    """Raise ConfigError unless each of the shell's counts (``COUNTS``; ``setting(section, key)`` gives its
    value) is null or a whole number at least its smallest value: Ray with no CPU waits forever, and a
    batch size below one makes no batch at all."""
    for section, key, least, null in COUNTS:
        value = setting(section, key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"config key '{section}.{key}' must be a whole number >= {least}, or null ({null}); "
                              f"got {value!r}")
