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


def test_date_chunks_end_on_expiries_so_that_no_expiry_group_is_split():
    import datetime as dt

    import numpy as np

    from sweep.plan import date_chunks

    d = dt.date.fromisoformat
    expiries = np.array(["2024-07-03", "2024-07-10", "2024-07-16", "2024-07-31", "2024-08-28"], "datetime64[D]")

    def chunks(how, start="2024-07-01", end="2024-09-06"):
        return [(str(a), str(b)) for a, b in date_chunks(d(start), d(end), how, expiries)]

    # a month runs on to the end of the group its last day trades in; after the calendar's last expiry,
    # one chunk runs to the end
    assert chunks("month") == [("2024-07-01", "2024-07-31"), ("2024-08-01", "2024-09-06")]
    # each Sunday's group ends on the next expiry (07-16 is a Tuesday: a moved expiry); the Sundays 07-21
    # and 07-28 both fall in the group of 07-31
    assert chunks("week", end="2024-08-02") == [
        ("2024-07-01", "2024-07-10"), ("2024-07-11", "2024-07-16"), ("2024-07-17", "2024-07-31"),
        ("2024-08-01", "2024-08-02")]
    # chunks shorter than a group become the group; the last chunk stops at the range's end
    assert chunks(1, end="2024-07-12") == chunks(2, end="2024-07-12") == [
        ("2024-07-01", "2024-07-03"), ("2024-07-04", "2024-07-10"), ("2024-07-11", "2024-07-12")]
    assert chunks("none") == [("2024-07-01", "2024-09-06")]
    # without a calendar, the natural cuts
    assert date_chunks(d("2024-07-30"), d("2024-08-02"), 1) == [(d(f"2024-0{m}-{x:02d}"), d(f"2024-0{m}-{x:02d}"))
                                                               for m, x in ((7, 30), (7, 31), (8, 1), (8, 2))]
    assert [str(b) for _, b in date_chunks(d("2024-07-01"), d("2024-07-20"), "week")] == [
        "2024-07-07", "2024-07-14", "2024-07-20"]
