"""Pure parts of sweep planning (sweep.plan)."""
from __future__ import annotations

import yaml

from sweep.plan import YAML_DUMPER, config_yaml


def _dump(tree):
    return yaml.dump(tree, Dumper=YAML_DUMPER, sort_keys=False)


def test_config_yaml_is_the_text_of_one_dump_of_the_whole_config():
    tree = {"symbol": "BANKNIFTY", "start": "2024-07-01",
            "signal": {"burst_secs": 30, "multiplier": 1.5, "trend_filter": True, "note": None},
            "risk": {"target_pct": 0.1, "stop_pct": 1, "levels": [0.1, 0.2, "x"]},
            "data": {"options_dir": "a long path " * 12, "nested": {"z": 1, "a": 2}}}
    assert config_yaml(tree) == _dump(tree)


def test_config_yaml_tells_apart_values_that_print_alike_in_python():
    # 1, 1.0, '1' and True are different YAML; a section seen before must not stand in for another
    for value in (1, 1.0, "1", True, [1], {"k": 1}, None):
        tree = {"risk": {"stop_pct": value}, "side": "sell"}
        assert config_yaml(tree) == _dump(tree)
    assert config_yaml({"a": {1: "x"}}) == _dump({"a": {1: "x"}})
    assert config_yaml({"a": {"1": "x"}}) == _dump({"a": {"1": "x"}})
