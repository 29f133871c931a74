"""End to end: the Hydra command and the seed command, on the regression market and on bad input."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.config import DEFAULTS
from tests.conftest import ROOT
from tests.test_regression import assert_trades_match

STEM = "BANKNIFTY_2024-07-01_2024-07-03"


def run_cmd(args, cwd, check=True):
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def hydra_args(market, out: Path, *extra):
    return [str(ROOT / "sweep/main.py"), *market.overrides(),
            f"results_dir={out}", f"cache_dir={out}/cache", "tracking.enabled=false", *extra]


def test_hydra_and_seed_commands_give_identical_trades(regression, tmp_path):
    proc = run_cmd(hydra_args(regression, tmp_path / "hydra"), cwd=tmp_path)
    assert "trades 18" in proc.stdout and "win rate" in proc.stdout
    seed_out = tmp_path / "seed"
    run_cmd([str(ROOT / "backtests/atm_volume.py"), "--symbol", "BANKNIFTY", "--start", regression.start,
             "--end", regression.end, "--options-dir", str(regression.options_dir),
             "--spot-glob", f"{regression.spot_dir}/{{symbol}}/**/*.parquet",
             "--calendar-csv", str(regression.calendar_csv), "--results-dir", str(seed_out)], cwd=tmp_path)
    hydra_trades = (tmp_path / "hydra" / f"trades_{STEM}.parquet").read_bytes()
    assert hydra_trades == (seed_out / f"trades_{STEM}.parquet").read_bytes()
    assert_trades_match(pd.read_parquet(tmp_path / "hydra" / f"trades_{STEM}.parquet"), regression.expected("default"))
    for name in ("summary", "health"):
        assert (tmp_path / "hydra" / f"{name}_{STEM}.{'json' if name == 'health' else 'parquet'}").exists()


def test_hydra_groups_compose(regression, tmp_path):
    run_cmd(hydra_args(regression, tmp_path, "risk=long", "pnl_mode=option_close", "signal.multiplier=2.5"),
            cwd=tmp_path)
    assert_trades_match(pd.read_parquet(tmp_path / f"trades_{STEM}.parquet"),
                        regression.expected("long_option_close_m2.5"))


@pytest.mark.parametrize("override,needle", [
    ("signal.multiplier=0", "signal.multiplier"),
    ("signal.multiplier=abc", "signal.multiplier"),
    ("signal.nosuch=1", "signal.nosuch"),
    ("risk=short", "risk"),
    ("end=2024-06-01", "end"),
    ("symbol=ABC", "routing.strike_step"),
    ("session.anchors=[09:00]", "session.anchors"),
    ("data.options_dir=/nonexistent/x", "/nonexistent/x"),
    ("routing.expiry_kind=quarterly", "routing.expiry_kind"),
    ("session.window_secs=1.5", "session.window_secs"),
])
def test_bad_config_is_one_line_exit_2(tiny_command, override, needle):
    args, cwd = tiny_command
    proc = run_cmd([*args, override], cwd=cwd, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("sweeping,override,needle", [
    (True, "ray.num_cpus=0", "'ray.num_cpus' must be a whole number >= 1"),  # Ray without a CPU: waited forever
    (True, "ray.num_cpus=-1", "'ray.num_cpus' must be a whole number >= 1"),  # Ray's own traceback
    (True, "sweep.batch=-3", "'sweep.batch' must be a whole number >= 1"),  # no batch at all: a traceback
    (True, "sweep.batch=abc", "'sweep.batch'"),
    (False, "tracking.log_processes=abc", "'tracking.log_processes' must be a whole number >= 0"),
    (True, "report.console_rows=0", "'report.console_rows' must be a whole number >= 1, or null (no limit)"),
])
def test_bad_shell_counts_are_one_line_exit_2_before_any_work(tiny_command, sweeping, override, needle):
    args, cwd = tiny_command
    extra = ["ray.enabled=false"] if override.startswith("sweep.batch") else []
    proc = run_cmd([args[0], *(["-m"] if sweeping else []), *args[1:], *extra, override], cwd=cwd, check=False)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "ray start" not in proc.stdout


@pytest.fixture(scope="module")
def tiny_command(tmp_path_factory):
    """A command on a tiny market that works as it is (checked once), for the bad-override cases."""
    from tests.test_rules import make_case, spot_path, volumes

    root = tmp_path_factory.mktemp("tiny")
    make_case(root / "tiny", spot_path(), {("CE", 47000): (volumes({70: 3}), 100.0)})
    args = [str(ROOT / "sweep/main.py"), "start=2024-07-01", "end=2024-07-01",
            f"data.options_dir={root}/tiny/options",
            f"data.spot_glob='{root}/tiny/spot/{{symbol}}/**/*.parquet'",
            f"data.calendar_csv={root}/tiny/meta/expiry_calendar.csv", f"results_dir={root}",
            "tracking.enabled=false", "report.enabled=false"]
    assert run_cmd(args, cwd=root).returncode == 0  # the same command without a bad override works
    return args, root


def test_missing_start_is_named(tmp_path):
    proc = run_cmd([str(ROOT / "sweep/main.py")], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "'start' is required" in proc.stderr


def test_conf_defaults_equal_core_defaults():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):  # the checkout's conf/
        cfg = compose(config_name="config")
    from omegaconf import OmegaConf

    composed = OmegaConf.to_container(cfg, resolve=False)
    from sweep.settings import SHELL_DEFAULTS

    assert composed.pop("results_dir") == "${hydra:runtime.output_dir}"
    expected = {k: v for k, v in {**DEFAULTS, **SHELL_DEFAULTS}.items() if k != "results_dir"}
    assert composed == expected


def test_every_config_group_option_is_typed_by_the_schema():
    """conf/<group>/<option>.yaml: only keys of the section's dataclass (core.settings /
    sweep.settings), each value of the field's type; so no default lives only in YAML."""
    import dataclasses
    import typing

    import yaml

    from core.settings import Settings
    from sweep.settings import ShellSettings

    sections = {f.name: f.default_factory for cls in (Settings, ShellSettings) for f in dataclasses.fields(cls)
                if isinstance(f.default_factory, type)}
    groups = [d for d in (ROOT / "conf").iterdir() if d.is_dir() and not d.name.startswith("_")]
    assert groups
    for group in groups:
        schema = sections[group.name]
        hints = {f.name: t for f in dataclasses.fields(schema) for n, t in typing.get_type_hints(schema).items()
                 if n == f.name}
        for option in group.glob("*.yaml"):
            values = yaml.safe_load(option.read_text()) or {}
            assert set(values) <= set(hints), f"{option}: keys {set(values) - set(hints)} not in {schema.__name__}"
            assert set(values) == set(hints), f"{option}: must give every key of {schema.__name__}"
            for key, value in values.items():
                allowed = typing.get_args(hints[key]) or (hints[key],)
                allowed = tuple(typing.get_origin(t) or t for t in allowed)
                allowed += (int,) if float in allowed else ()
                assert isinstance(value, tuple(type(None) if t is type(None) else t for t in allowed)), (
                    f"{option}: {key}={value!r} is not {hints[key]}")


def test_market_and_strategy_parts_cover_every_key():
    from core.settings import MARKET, OUTPUT, STRATEGY, keys_of

    parts = [keys_of(MARKET), keys_of(STRATEGY), keys_of(OUTPUT)]
    assert sorted(k for p in parts for k in p) == sorted(DEFAULTS)
    assert set(keys_of(STRATEGY)) == {"signal", "risk", "delta", "pnl_mode", "execution", "costs"}


def test_data_errors_found_while_running_are_one_line_exit_2(tmp_path):
    from tests.test_rules import make_case, spot_path, volumes

    make_case(tmp_path / "tiny", spot_path(), {("CE", 47000): (volumes({70: 3}), 100.0)})
    good = tmp_path / "tiny/meta/expiry_calendar.csv"
    calendar = tmp_path / "bad_calendar.csv"
    base = [str(ROOT / "sweep/main.py"), "start=2024-07-01", "end=2024-07-01",
            f"data.options_dir={tmp_path}/tiny/options", f"results_dir={tmp_path}/out", "tracking.enabled=false"]
    bad_row = pd.read_csv(good, dtype=str)
    bad_row.loc[len(bad_row)] = {c: bad_row.iloc[0][c] for c in bad_row.columns} | {"Final_Expiry": "2024-13-45"}
    bad_row.to_csv(calendar, index=False)
    cases = [
        ([f"data.spot_glob='{tmp_path}/tiny/spot/{{symbol}}/**/*.parquet'", f"data.calendar_csv={calendar}"],
         "2024-13-45"),
        ([f"data.spot_glob={tmp_path}/nothing/{{symbol}}/*.parquet", f"data.calendar_csv={good}"],
         "matched no files"),
    ]
    for extra, needle in cases:
        for mode in ([], ["-m"]):
            proc = run_cmd([base[0], *mode, *base[1:], *extra], cwd=tmp_path, check=False)
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], (mode, proc.stderr[-2000:])
            assert "Traceback" not in proc.stderr


def test_hydra_functions_and_unquoted_placeholder_reach_hydra(tmp_path):
    proc = run_cmd([str(ROOT / "sweep/main.py"), "start=2024-07-01", "end=2024-07-01", "risk=choice(sell,nope)",
                    "tracking.enabled=false"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no option 'nope'" in proc.stderr
    from sweep.overrides import check_overrides

    for arg in ("risk=choice(sell,long)", "risk=glob(*)", "signal.multiplier=range(1,3,0.5)",
                "signal.multiplier=interval(1,5)", "signal.multiplier=tag(fast,choice(1,2))"):
        assert check_overrides([arg]) == ([arg], None), arg
    quoted, problem = check_overrides(["data.spot_glob=/data/spot/{symbol}/*.parquet"])
    assert problem is None and quoted == ["data.spot_glob='/data/spot/{symbol}/*.parquet'"]


def test_signals_are_noted_then_raised_and_reported_with_the_shells_status(capsys):
    import signal
    import time

    from sweep.errors import Terminated, reported_as_exit_status
    from sweep.fanout import deferred_interrupt

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    for signum, raised, status, line in [(signal.SIGTERM, Terminated, 143, "atmburst: terminated (SIGTERM)"),
                                         (signal.SIGINT, KeyboardInterrupt, 130, "atmburst: interrupted")]:
        with deferred_interrupt() as interrupt:
            os.kill(os.getpid(), signum)  # noted, not raised: the code inside goes on to a safe point
            deadline = time.time() + 5
            while not interrupt.noted and time.time() < deadline:
                time.sleep(0.01)
            assert interrupt.noted == signum
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
        with pytest.raises(KeyboardInterrupt) as stopped:
            interrupt.check()
        assert stopped.type is raised
        with pytest.raises(SystemExit) as stopped, reported_as_exit_status():
            interrupt.check()
        assert stopped.value.code == status and capsys.readouterr().err.strip() == line


def test_the_seed_command_finishes_its_run_when_its_output_reader_has_gone(regression, tmp_path):
    """``python backtests/atm_volume.py ... | head`` with the reader gone before the first line: the run
    writes all its files and exits 0 with no traceback (a closed pipe stopped it with BrokenPipeError)."""
    out = tmp_path / "seed"
    args = [sys.executable, str(ROOT / "backtests/atm_volume.py"), "--symbol", "BANKNIFTY", "--start",
            regression.start, "--end", regression.end, "--options-dir", str(regression.options_dir),
            "--spot-glob", f"{regression.spot_dir}/{{symbol}}/**/*.parquet",
            "--calendar-csv", str(regression.calendar_csv), "--results-dir", str(out)]
    proc = subprocess.Popen(args, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, errors = proc.communicate(timeout=300)
    errors = errors.decode()
    assert proc.returncode == 0 and "Traceback" not in errors, errors[-3000:]
    assert_trades_match(pd.read_parquet(out / f"trades_{STEM}.parquet"), regression.expected("default"))
    assert (out / f"report_{STEM}.html").is_file() and (out / f"health_{STEM}.json").is_file()
