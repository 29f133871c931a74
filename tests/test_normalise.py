"""strategy.md §1.4: every kind of bad tick is repaired or dropped, counted under its own name, and
never stops the run. Each case corrupts the data of a clean one-trade day and asserts the
same trade plus the exact health count."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import run_backtest
from core.discover import series_path
from tests.builders import ts_array, volume_ticks, write_calendar
from tests.test_rules import DAY, EXP, make_case, small_config, spot_path, volumes

IST = "Asia/Kolkata"


def clean_rows():
    stamps, closes, vols = volume_ticks(DAY, "09:15:00", volumes({70: 3}), 100.0)
    return list(stamps), list(closes), list(vols)


def baseline(tmp_path):
    make_case(tmp_path, spot_path(), {("CE", 47000): (volumes({70: 3}), 100.0)})
    return run_backtest(small_config(tmp_path))


def rewrite_ce(tmp_path, timestamps: pa.Array, closes, vols):
    path = series_path(tmp_path / "options", "BANKNIFTY", pd.Timestamp(EXP).date(), "CE", 47000)
    pq.write_table(pa.table({"timestamp": timestamps, "close": pa.array(closes, pa.float64()),
                             "vol_delta": pa.array(vols, pa.int64())}), path)


def check_same_trade(tmp_path, expected, **problems):
    result = run_backtest(small_config(tmp_path))
    cols = ["entry_ts", "exit_ts", "strike", "opt_type", "entry_opt", "exit_opt", "pnl_pts", "burst_vol", "base_vol"]
    pd.testing.assert_frame_equal(result.trades[cols], expected.trades[cols])
    got = {k: v for k, v in result.health["problems"].items() if v and k != "missing_series"}
    assert got == problems
    return result


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", IST, "America/New_York"])
def test_timestamp_zones_and_units(tmp_path, unit, tz):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    arr = ts_array(stamps, unit, tz)
    assert arr.type.unit == unit and arr.type.tz == tz
    rewrite_ce(tmp_path, arr, closes, vols)
    check_same_trade(tmp_path, expected)


def test_naive_timezone_setting_is_used(tmp_path):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    utc_wall = pa.array(pd.DatetimeIndex(stamps).tz_convert("UTC").tz_localize(None).as_unit("us").asi8,
                        pa.int64()).cast(pa.timestamp("us"))
    rewrite_ce(tmp_path, utc_wall, closes, vols)
    assert run_backtest(small_config(tmp_path)).trades.empty  # read as IST wall time: 5.5 h too early
    result = run_backtest(small_config(tmp_path, data__naive_timezone="UTC"))
    assert list(result.trades["entry_ts"]) == list(expected.trades["entry_ts"])


@pytest.mark.parametrize("fmt", ["naive", "offset", "zulu"])
def test_string_timestamps(tmp_path, fmt):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    idx = pd.DatetimeIndex(stamps)
    if fmt == "naive":
        text = idx.tz_localize(None).strftime("%Y-%m-%d %H:%M:%S.%f")
    elif fmt == "offset":
        text = idx.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace("+0530", "+05:30")
    else:
        text = idx.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    rewrite_ce(tmp_path, pa.array(list(text), pa.string()), closes, vols)
    check_same_trade(tmp_path, expected)


def test_unparseable_and_null_timestamps_are_dropped(tmp_path):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    text = list(pd.DatetimeIndex(stamps).strftime("%Y-%m-%dT%H:%M:%S+05:30"))
    rewrite_ce(tmp_path, pa.array(text + ["not a time", None], pa.string()), closes + [100.0, 100.0], vols + [50, 50])
    check_same_trade(tmp_path, expected, null_timestamp=2)


def test_integer_epoch_milliseconds(tmp_path):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    ms = pd.DatetimeIndex(stamps).as_unit("ms").asi8
    rewrite_ce(tmp_path, pa.array(ms, pa.int64()), closes, vols)
    check_same_trade(tmp_path, expected)


def test_exact_duplicate_rows_are_dropped(tmp_path):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    i = 70  # duplicate the burst tick: kept twice it would make B = 7
    arr = ts_array(stamps + [stamps[i]])
    rewrite_ce(tmp_path, arr, closes + [closes[i]], vols + [vols[i]])
    result = check_same_trade(tmp_path, expected, duplicate_row=1)
    assert result.trades.iloc[0]["burst_vol"] == 4.0


def test_same_instant_different_volume_is_not_a_duplicate(tmp_path):
    baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    arr = ts_array(stamps + [stamps[70]])
    rewrite_ce(tmp_path, arr, closes + [closes[70]], vols + [5])
    result = run_backtest(small_config(tmp_path))
    assert result.trades.iloc[0]["burst_vol"] == 9.0 and result.health["problems"]["duplicate_row"] == 0


def _with_extra_rows(stamps, closes, vols, extra):
    """Append rows (stamp, close, vol) and return arrays (vol None -> null)."""
    all_stamps = stamps + [s for s, _, _ in extra]
    arr = ts_array(all_stamps)
    return arr, closes + [c for _, c, _ in extra], vols + [v for _, _, v in extra]


def test_negative_and_null_volume_count_as_zero(tmp_path):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    t69 = stamps[69] + pd.Timedelta(milliseconds=500)
    arr, c, v = _with_extra_rows(stamps, closes, vols, [(t69, 100.0, -100), (t69 + pd.Timedelta(milliseconds=1), 100.0, None)])
    rewrite_ce(tmp_path, arr, c, v)
    check_same_trade(tmp_path, expected, negative_volume=1, null_volume=1)


def test_close_and_volume_stored_as_text_are_parsed_and_non_numbers_counted(tmp_path):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    t69 = stamps[69] + pd.Timedelta(milliseconds=500)
    arr, c, v = _with_extra_rows(stamps, closes, vols, [(t69, 100.0, 0), (t69 + pd.Timedelta(milliseconds=1), 100.0, 0)])
    text_closes = [f" {x!r} " for x in c[:-2]] + ["n/a", "100"]  # spaces around, one text that is no price
    text_vols = [str(x) for x in v[:-2]] + ["0", "1,5"]  # '1,5' is no number: null, counted as 0
    path = series_path(tmp_path / "options", "BANKNIFTY", pd.Timestamp(EXP).date(), "CE", 47000)
    pq.write_table(pa.table({"timestamp": arr, "close": pa.array(text_closes, pa.string()),
                             "vol_delta": pa.array(text_vols, pa.large_string())}), path)
    result = check_same_trade(tmp_path, expected, null_price=1, null_volume=1)
    assert result.trades.iloc[0]["burst_vol"] == 4.0


def test_bad_prices_do_not_set_the_price_but_keep_volume(tmp_path):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    t71 = stamps[71] + pd.Timedelta(milliseconds=500)  # after the entry bar's valid tick
    extra = [(t71, None, 0), (t71, float("nan"), 0), (t71 + pd.Timedelta(milliseconds=1), 0.0, 0),
             (t71 + pd.Timedelta(milliseconds=2), -5.0, 0)]
    arr, c, v = _with_extra_rows(stamps, closes, vols, extra)
    rewrite_ce(tmp_path, arr, c, v)
    # The null and the NaN row are exact duplicates of each other (NaN == NaN): one is dropped.
    check_same_trade(tmp_path, expected, null_price=1, duplicate_row=1, nonpositive_price=2)


def test_bad_price_volume_still_counts(tmp_path):
    baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    closes = list(closes)
    closes[70] = 0.0  # the burst tick has a zero price: its volume still makes the burst
    rewrite_ce(tmp_path, ts_array(stamps), closes, vols)
    result = run_backtest(small_config(tmp_path))
    assert result.trades.iloc[0]["burst_vol"] == 4.0
    assert result.health["problems"]["nonpositive_price"] == 1


def test_epoch_zero_pre_open_and_post_close_rows(tmp_path):
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    extra = [(pd.Timestamp(0, tz="UTC"), 1.0, 999), (pd.Timestamp(f"{DAY} 09:10:00", tz=IST), 1.0, 999),
             (pd.Timestamp(f"{DAY} 09:25:01", tz=IST), 1.0, 999)]
    arr, c, v = _with_extra_rows(stamps, closes, vols, extra)
    rewrite_ce(tmp_path, arr, c, v)
    check_same_trade(tmp_path, expected, epoch_zero_timestamp=1, pre_open=1, post_close=1)


def test_missing_corrupt_and_columnless_files(tmp_path):
    expected = baseline(tmp_path)
    exp = pd.Timestamp(EXP).date()
    corrupt = series_path(tmp_path / "options", "BANKNIFTY", exp, "CE", 47100)
    corrupt.write_bytes(b"PAR1 this is not parquet")
    nocol = series_path(tmp_path / "options", "BANKNIFTY", exp, "PE", 47000)
    nocol.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"timestamp": pa.array([0], pa.timestamp("us", tz="UTC")), "close": [1.0]}), nocol)
    result = check_same_trade(tmp_path, expected, bad_file=1, missing_column=1)
    assert result.health["problems"]["missing_series"] == 3  # CE 46900, PE 46900, PE 47100
    assert any("vol_delta" in m for m in result.health["messages"]["missing_column"])
    assert any(str(corrupt) in m for m in result.health["messages"]["bad_file"])


def test_a_day_whose_spot_file_is_unusable_says_so(tmp_path):
    baseline(tmp_path)
    spot = next((tmp_path / "spot").rglob("*.parquet"))
    pq.write_table(pq.read_table(spot).drop(["close"]), spot)
    result = run_backtest(small_config(tmp_path))
    problems, messages = result.health["problems"], result.health["messages"]
    assert result.trades.empty and problems["missing_column"] == 1 and problems["missing_spot_day"] == 1
    assert messages["missing_spot_day"] == [f"{DAY}: its spot file could not be used (see bad_file or "
                                            f"missing_column for why)"]


def test_weekdays_without_spot_are_holidays_or_missing_sessions_by_nse_calendar(tmp_path):
    """The sessions (worked out on a thread while the spot files load) split the weekdays without spot:
    Wednesday 2024-07-17 (Muharram) is an NSE holiday, the other eleven weekdays after 2024-07-01 are sessions."""
    baseline(tmp_path)
    for cache_dir in (None, str(tmp_path / "cache"), str(tmp_path / "cache")):  # no cache, cold, warm
        result = run_backtest(small_config(tmp_path, end="2024-07-17", cache_dir=cache_dir))
        assert result.health["info"]["holidays_skipped"] == 1
        assert result.health["problems"]["missing_spot_day"] == 11
        assert "2024-07-17" not in " ".join(result.health["messages"]["missing_spot_day"])


def test_weekday_without_spot_and_day_without_expiry(tmp_path):
    baseline(tmp_path)
    result = run_backtest(small_config(tmp_path, end="2024-07-02"))
    assert result.health["problems"]["missing_spot_day"] == 1  # Tuesday 2024-07-02 is an NSE session
    assert len(result.trades) == 1
    write_calendar(tmp_path, "BANKNIFTY", ["2024-06-27"])
    result = run_backtest(small_config(tmp_path))
    assert result.trades.empty and result.health["problems"]["no_expiry"] == 1


def test_missing_calendar_uses_expiry_folders_with_one_warning(tmp_path):
    expected = baseline(tmp_path)
    (tmp_path / "meta" / "expiry_calendar.csv").unlink()
    result = run_backtest(small_config(tmp_path))
    pd.testing.assert_frame_equal(result.trades, expected.trades)
    assert len(result.health["warnings"]) == 1 and "exp= folders" in result.health["warnings"][0]


def test_spot_problems_are_counted_too(tmp_path):
    expected = baseline(tmp_path)
    spot_file = next((tmp_path / "spot").rglob("*.parquet"))
    table = pq.read_table(spot_file)
    ts = table.column("timestamp").to_pylist()
    close = table.column("close").to_pylist()
    ts += [ts[10], None, pd.Timestamp(f"{DAY} 09:00:00", tz=IST)]
    close += [close[10], 47000.0, 47000.0]
    pq.write_table(pa.table({"timestamp": pa.array(ts, table.schema.field("timestamp").type),
                             "close": pa.array(close, pa.float64())}), spot_file)
    check_same_trade(tmp_path, expected, duplicate_row=1, null_timestamp=1, pre_open=1)


def test_grid_last_valid_price_ties_and_forward_fill():
    from core.config import Session
    from core.grid import day_series, sparse_series, spot_grid
    from core.ticks import normalise_ticks

    t = [pd.Timestamp(f"{DAY} 09:15:03.000", tz=IST), pd.Timestamp(f"{DAY} 09:15:03.900", tz=IST),
         pd.Timestamp(f"{DAY} 09:15:03.500", tz=IST), pd.Timestamp(f"{DAY} 09:15:04.000", tz=IST),
         pd.Timestamp(f"{DAY} 09:15:04.000", tz=IST), pd.Timestamp(f"{DAY} 09:15:04.999", tz=IST),
         pd.Timestamp(f"{DAY} 09:15:07.000", tz=IST)]
    closes = [10.0, 12.0, 11.0, 20.0, 21.0, None, 30.0]
    vols = [1, 2, 3, 4, 5, 6, 7]
    table = pa.table({"timestamp": ts_array(t, "ns"),
                      "close": pa.array(closes, pa.float64()), "vol_delta": pa.array(vols, pa.int64())})
    seconds = normalise_ticks(table, IST, has_volume=True)
    day = int(pd.Timestamp(DAY).value // 86_400_000_000_000)
    session = Session(9 * 3600 + 15 * 60, 9 * 3600 + 15 * 60 + 10, (33300,), 3600)
    series = sparse_series(seconds, day, session)
    bars = np.arange(11)
    assert list(series.volume_before(bars + 1) - series.volume_before(bars)) == [0, 0, 0, 6, 15, 0, 0, 7, 0, 0, 0]
    # bar 3: last in time order is 12.0 (03.900); bar 4: equal instants -> later row (21.0); the
    # null at 04.999 sets nothing; bars 5-6 carry 21.0 forward; nothing before bar 3.
    close = series.close_at(bars)
    assert np.isnan(close[:3]).all()
    assert list(close[3:]) == [12.0, 21.0, 21.0, 21.0, 30.0, 30.0, 30.0, 30.0]
    dense, _ = spot_grid(seconds, day, session)  # the dense grid agrees bar for bar
    np.testing.assert_array_equal(dense, close)
    cut = day_series([seconds], day, session)
    assert (cut.pre_open.tolist(), cut.post_close.tolist(), cut.inside.tolist()) == ([0], [0], [7])


def test_spot_split_over_two_undated_files_is_merged(tmp_path):
    """A spot glob matching several files (no date= in their paths) that cover the same day."""
    expected = baseline(tmp_path)
    spot_file = next((tmp_path / "spot").rglob("*.parquet"))
    table = pq.read_table(spot_file)
    other = tmp_path / "spot_split"
    other.mkdir()
    pq.write_table(table.take(list(range(0, table.num_rows, 2))), other / "even.parquet")
    pq.write_table(table.take(list(range(1, table.num_rows, 2))), other / "odd.parquet")
    result = run_backtest(small_config(tmp_path, data__spot_glob=str(other / "*.parquet")))
    pd.testing.assert_frame_equal(result.trades, expected.trades)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_one_pass_over_a_files_days_equals_a_pass_per_day(data):
    """days_seconds over several days gives each day exactly what a pass over that day alone gives (the
    same arrays bit for bit and the same counts), on rows with ties, duplicates, bad prices and volumes;
    checked against the per-day implementation it replaced before that was removed."""
    from core.ticks import DAY_NS, NS, TickRows, days_seconds

    n = data.draw(st.integers(0, 80))
    day0 = 19_905
    # instants on up to three days, a few seconds apart, often tied
    stamps = sorted(data.draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5), st.sampled_from([0, 0, 250, 999])),
                                       min_size=n, max_size=n)))
    ist_ns = np.array([(day0 + d) * DAY_NS + (33_300 + s) * NS + ms * 1_000_000 for d, s, ms in stamps], np.int64)
    prices = st.sampled_from([100.0, 100.05, 0.0, -1.0, float("nan"), 99.95])
    close = np.array(data.draw(st.lists(prices, min_size=n, max_size=n)), np.float64)
    volume = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, -3.0, 0.1, 7.0]), min_size=n, max_size=n)))
    vol_null = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    volume[vol_null] = 0.0  # as prepare_rows leaves a null volume
    rows = TickRows(ist_ns, close, volume, vol_null, {})
    days = [int(d) for d in rows.days()]
    for wanted in (days, days[::2]):
        together = days_seconds(rows, wanted)
        assert list(together) == wanted
        for day in wanted:
            alone = days_seconds(rows, [day])[day]
            for name in ("second", "volume", "ticks", "close", "close_ns"):
                a, b = getattr(alone, name), getattr(together[day], name)
                assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
            assert alone.counts == together[day].counts
    # and, independently: the rows kept (ticks) and dropped as duplicates add up to the day's rows
    seen, kept = set(), {}
    for t, c, v, null in zip(ist_ns.tolist(), close.tolist(), volume.tolist(), vol_null.tolist()):
        key = (t, "nan" if c != c else c, None if null else v)
        kept[t // DAY_NS] = kept.get(t // DAY_NS, 0) + (key not in seen)
        seen.add(key)
    together = days_seconds(rows, days)
    assert {d: int(together[d].ticks.sum()) for d in days} == kept


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_duplicate_rows_are_the_rows_pandas_duplicated_marks(data):
    """core.ticks._duplicates (numpy, so that normalising never imports pandas) marks exactly the rows that
    pandas' ``duplicated(keep="first")`` marks among rows of tied instants, the function it replaced: NaN
    equals NaN (a null volume is NaN), -0.0 equals 0.0, and the first of equal rows in file order is kept."""
    from core.ticks import _duplicates

    n = data.draw(st.integers(0, 40))
    ist_ns = np.sort(np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), np.int64)) * 1_000_000
    prices = st.sampled_from([100.0, 100.05, 0.0, -0.0, float("nan"), float("inf"), 1e300])
    close = np.array(data.draw(st.lists(prices, min_size=n, max_size=n)), np.float64)
    volume = np.array(data.draw(st.lists(st.sampled_from([0.0, -0.0, 1.0, 2.5, 2**60]), min_size=n, max_size=n)))
    vol_null = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    expected = np.zeros(n, bool)
    same = ist_ns[1:] == ist_ns[:-1]
    tied = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
    frame = pd.DataFrame({"t": ist_ns[tied], "c": close[tied], "v": np.where(vol_null[tied], np.nan, volume[tied])})
    expected[tied] = frame.duplicated(keep="first").to_numpy()
    assert _duplicates(ist_ns, close, volume, vol_null).tolist() == expected.tolist()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_compiled_aggregation_equals_numpys(data):
    """The compiled one-pass aggregation (core.ticks_loops) gives numpy's results bit for bit: a second's
    volume is numpy's add.reduceat over its rows (first value plus the pairwise sum of the rest, whose
    order matters for magnitudes far apart), the tick count and the last valid price with its instant;
    the per-day counts are numpy's bincounts of the same masks."""
    from core.ticks import DAY_NS, NS, _aggregate
    from core.ticks_loops import aggregate_rows

    n = data.draw(st.integers(1, 400))
    day0 = 19_905
    per_second = data.draw(st.sampled_from([1, 3, 9, 40, 200]))  # up to 200 rows a second: every pairwise branch
    groups = max(1, n // per_second)
    seconds = np.sort(np.array(data.draw(st.lists(st.integers(0, groups), min_size=n, max_size=n)), np.int64))
    ist_ns = day0 * DAY_NS + (33_300 + seconds) * NS + np.arange(n) * 1_000  # rows in time order
    ist_ns[seconds > groups // 2] += DAY_NS  # the later seconds on the next day
    close = np.array(data.draw(st.lists(st.sampled_from([100.05, 0.0, -1.0, float("nan"), 7.1]), min_size=n, max_size=n)))
    volume = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 0.1, 3.3, 1e16, 2.5e-3, -3.0]), min_size=n, max_size=n)))
    vol_null = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    volume[vol_null] = 0.0
    wanted = np.unique(ist_ns // DAY_NS)
    counts = np.zeros((len(wanted), 5), np.int64)
    got = aggregate_rows(ist_ns, close, volume, vol_null, np.zeros(n, bool), wanted, counts)
    finite = np.isfinite(close)
    price_ok = finite & (close > 0)
    expected = _aggregate(ist_ns // NS, ist_ns, np.where(volume > 0, volume, 0.0), close, price_ok)
    for a, name in zip(got, ("second", "volume", "ticks", "close", "close_ns")):
        b = getattr(expected, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    row_day = np.searchsorted(wanted, ist_ns // DAY_NS)
    for column, mask in enumerate((np.zeros(n, bool), ~finite, finite & (close <= 0), vol_null, volume < 0)):
        assert counts[:, column].tolist() == np.bincount(row_day[mask], minlength=len(wanted)).tolist()


def test_volume_of_a_second_is_added_in_numpys_order():
    """[1e16, 1, 1]: numpy adds the first value to the sum of the rest (1e16 + 2); a left-to-right sum
    would lose both ones (float64 spacing at 1e16 is 2)."""
    from core.ticks_loops import aggregate_rows

    ist_ns = np.full(3, 19_905 * 86_400 * 10**9, np.int64)
    volume = np.array([1e16, 1.0, 1.0])
    got = aggregate_rows(ist_ns, np.ones(3), volume, np.zeros(3, bool), np.zeros(3, bool), np.array([19_905]),
                         np.zeros((1, 5), np.int64))
    assert got[1].tolist() == [1e16 + 2] == np.add.reduceat(volume, [0]).tolist()
    assert (1e16 + 1.0) + 1.0 == 1e16  # what a plain loop would give


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_compiled_timestamp_pass_equals_the_general_one(data):
    """A timestamp column without nulls in a fixed-offset zone goes through one compiled pass
    (core.ticks_loops.ist_instants); it must give what the general numpy path gives: the same IST
    instants, order (stable for ties), kept rows and counts, for every unit, tz-aware or naive, with
    rows out of order and rows within a day of the epoch."""
    import core.ticks as ticks

    n = data.draw(st.integers(1, 60))
    unit = data.draw(st.sampled_from(["s", "ms", "us", "ns"]))
    tz = data.draw(st.sampled_from(["Asia/Kolkata", "UTC", None]))
    naive = data.draw(st.sampled_from(["Asia/Kolkata", "UTC"]))
    per_unit = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    base = 1_719_800_000 * per_unit  # 2024-07-01
    raw = data.draw(st.lists(st.integers(base, base + 3 * 86_400 * per_unit), min_size=n, max_size=n))
    if data.draw(st.booleans()):  # sorted, as most files are; otherwise in the order drawn
        raw.sort()
    if data.draw(st.integers(0, 3)) == 0:  # now and then a row within a day of the epoch
        raw[data.draw(st.integers(0, n - 1))] = data.draw(st.integers(-86_400 * per_unit, 86_400 * per_unit))
    column = pa.array(raw, pa.int64()).cast(pa.timestamp(unit, tz=tz))
    table = pa.table({"timestamp": column, "close": pa.array(np.arange(n, dtype=np.float64)),
                      "vol_delta": pa.array(np.arange(n) % 7, pa.int64())})
    assert ticks._plain_timestamps(table.column("timestamp"), naive) is not None
    fast = ticks.prepare_rows(table, naive, has_volume=True)
    original = ticks._plain_timestamps
    try:
        ticks._plain_timestamps = lambda column, zone: None  # the general path
        general = ticks.prepare_rows(table, naive, has_volume=True)
    finally:
        ticks._plain_timestamps = original
    for name in ("ist_ns", "close", "volume", "vol_null"):
        a, b = getattr(fast, name), getattr(general, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    assert fast.file_counts == general.file_counts


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_one_compiled_pass_equals_the_general_path(data):
    """The usual file takes one compiled pass from its columns as read to per-second aggregates
    (core.ticks_loops.file_seconds); it must give what the general path (prepare_rows, then days_seconds)
    gives: the same days, file counts, arrays bit for bit and per-day counts, for every unit and zone, with
    ties, exact duplicates, bad prices, negative volumes, several days, any days asked for, and spot files
    (no volume). Files it does not take (rows out of order or near the epoch, volumes beyond 2**53) go the
    general way; every other drawn file must take the compiled pass."""
    import core.ticks as ticks
    from core.ticks import DAY_NS

    n = data.draw(st.integers(1, 120))
    unit = data.draw(st.sampled_from(["s", "ms", "us", "ns"]))
    tz = data.draw(st.sampled_from(["Asia/Kolkata", "UTC", None]))
    naive = data.draw(st.sampled_from(["Asia/Kolkata", "UTC"]))
    per_unit = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    base = 1_719_800_000 * per_unit  # 2024-07-01
    # instants over up to four days, from a few distinct values so that rows tie
    choices = data.draw(st.lists(st.integers(0, 4 * 86_400 * per_unit), min_size=1, max_size=12))
    raw = sorted(base + data.draw(st.sampled_from(choices)) for _ in range(n))
    unusual = data.draw(st.sampled_from(["none"] * 6 + ["unsorted", "epoch", "huge volume"]))
    if unusual == "unsorted" and n > 1:
        raw = raw[::-1]
    if unusual == "epoch":
        raw[data.draw(st.integers(0, n - 1))] = 0
    prices = st.sampled_from([100.0, 100.05, 0.0, -0.0, -1.0, float("nan"), 99.95])
    close = data.draw(st.lists(prices, min_size=n, max_size=n))
    volume = data.draw(st.lists(st.sampled_from([0, 1, 2, -3, 7, 2**53, -2**53]), min_size=n, max_size=n))
    if unusual == "huge volume":
        volume[data.draw(st.integers(0, n - 1))] = 2**53 + 1
    has_volume = data.draw(st.booleans())
    columns = {"timestamp": pa.array(raw, pa.int64()).cast(pa.timestamp(unit, tz=tz)), "close": pa.array(close)}
    if has_volume:
        columns["vol_delta"] = pa.array(volume, pa.int64())
    table = pa.table(columns)
    every = sorted({(r * (10**9 // per_unit) + (0 if tz else -ticks.FIXED_OFFSETS_NS[naive]) + ticks.IST_OFFSET_NS)
                    // DAY_NS for r in raw})
    days = data.draw(st.sampled_from([None, every, every[::2], every[1:], [every[0] - 1, every[-1] + 1]]))

    def general():
        original = ticks._file_days_fused
        ticks._file_days_fused = lambda *args: None
        try:
            return ticks.file_days(table, naive, has_volume, days)
        finally:
            ticks._file_days_fused = original

    def outcome(compute):
        try:
            return compute()
        except pa.ArrowInvalid as exc:  # a volume beyond 2**53: refused the same way by both
            return str(exc)

    fused = ticks._file_days_fused(table, naive, has_volume, days)
    took_it = unusual == "none" or (unusual == "unsorted" and len(set(raw)) == 1) or (unusual == "huge volume" and not has_volume)
    assert (fused is not None) == took_it, unusual
    expected, got = outcome(general), outcome(lambda: ticks.file_days(table, naive, has_volume, days))
    if isinstance(expected, str):
        assert got == expected
        return
    assert got.days == expected.days and got.file_counts == expected.file_counts
    assert list(got.seconds) == list(expected.seconds)
    for day, seconds in expected.seconds.items():
        for name in ("second", "volume", "ticks", "close", "close_ns"):
            a, b = getattr(seconds, name), getattr(got.seconds[day], name)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
        assert got.seconds[day].counts == seconds.counts


def test_option_closes_above_a_no_arbitrage_bound_are_counted_and_used(tmp_path):
    """A call priced above the spot or a put above its strike is counted (option_price_above_bound),
    named by file and day, and used as it is: only null, NaN and non-positive closes set no price."""
    expected = baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    closes = list(closes)
    closes[10] = 47_050.0  # above the spot (47,010 before the anchor): a bad tick, seconds before the trade
    rewrite_ce(tmp_path, ts_array(stamps), closes, vols)
    put = series_path(tmp_path / "options", "BANKNIFTY", pd.Timestamp(EXP).date(), "PE", 47100)
    put.parent.mkdir(parents=True, exist_ok=True)
    put_closes = [90.0] * len(stamps)
    put_closes[5] = 47_100.0  # at the strike: allowed
    put_closes[6] = 47_100.5  # above it
    pq.write_table(pa.table({"timestamp": ts_array(stamps), "close": pa.array(put_closes, pa.float64()),
                             "vol_delta": pa.array([1] * len(stamps), pa.int64())}), put)
    result = check_same_trade(tmp_path, expected, option_price_above_bound=2)
    messages = result.health["messages"]["option_price_above_bound"]
    assert any("CE 47000" in m and "above the spot" in m and "47050" in m and "strike=47000" in m for m in messages)
    assert any("PE 47100" in m and "above the strike" in m and "47100.5" in m for m in messages)

    closes[10] = 47_010.0  # equal to the spot at that second: a price no bound forbids
    rewrite_ce(tmp_path, ts_array(stamps), closes, vols)
    put.unlink()
    check_same_trade(tmp_path, expected)


def test_spot_closes_far_from_the_days_median_are_counted_and_used(tmp_path):
    """A spot second more than 20% from the day's median (a dropped digit, a stray tick) is counted as
    spot_price_outlier with the day, the median and the extremes, and used as it is."""
    expected = baseline(tmp_path)
    values = spot_path()
    values[10] = 4_701.0  # a digit dropped, seconds before the anchor
    values[20] = 47_010.0 * 1.19  # 19% away: within what the check allows
    make_case(tmp_path, values, {("CE", 47000): (volumes({70: 3}), 100.0)})
    result = check_same_trade(tmp_path, expected, spot_price_outlier=1)
    (message,) = result.health["messages"]["spot_price_outlier"]
    assert message.startswith(f"spot on {DAY}: 1 second(s)") and "median 47000 (lowest 4701, highest 4701)" in message


def test_the_report_lists_each_problem_with_its_examples(tmp_path):
    """The HTML report names what the console names: each kind met, its count, and its kept examples
    (escaped), folded under the kind."""
    from core.report import run_report

    baseline(tmp_path)
    stamps, closes, vols = clean_rows()
    closes = list(closes)
    closes[10] = 47_050.0
    rewrite_ce(tmp_path, ts_array(stamps), closes, vols)
    result = run_backtest(small_config(tmp_path))
    page = run_report(result.config, result.trades, result.summary, result.health, False, {})
    message = result.health["messages"]["option_price_above_bound"][0]
    assert "<summary>option_price_above_bound: 1 (" in page
    assert f"<li>{html.escape(message)}</li>" in page and "strike=47000.parquet" in message

    for kind, n in result.health["problems"].items():  # every kind met, folded with its examples
        assert (f"<summary>{kind}: {n} (" in page) == (n > 0), kind


def test_a_clock_read_in_the_wrong_zone_is_named_with_its_fix(tmp_path):
    """The classic zero-trade bug of public scripts: a vendor's naive UTC times read as IST put the session
    at 03:45-10:00. The run says so in a warning naming the setting that fixes it; with that setting the
    trades are those of the correctly zoned files, and no warning is left."""
    import datetime as dt
    import pyarrow.compute as pc

    from core.synth import generate
    from tests.test_sweep import engine_config

    generate("BANKNIFTY", dt.date(2024, 7, 1), dt.date(2024, 7, 1), tmp_path, seed=3, workers=1)
    right = run_backtest(engine_config(tmp_path, start="2024-07-01", end="2024-07-01"))
    assert len(right.trades) > 0 and right.health["warnings"] == []
    # A session narrower than NSE's leaves most ticks outside by choice: no warning.
    narrow = run_backtest(engine_config(tmp_path, start="2024-07-01", end="2024-07-01",
                                        session={"close": "10:30:00", "anchors": ["10:00"]}))
    assert narrow.health["problems"]["post_close"] > narrow.health["info"]["session_ticks"] > 0
    assert narrow.health["warnings"] == []
    for path in (tmp_path / "packed").rglob("*.parquet"):
        table = pq.read_table(path)
        utc_wall = pc.cast(table.column("timestamp").cast(pa.timestamp("us", "UTC")), pa.timestamp("us"))
        pq.write_table(table.set_column(table.schema.get_field_index("timestamp"), "timestamp", utc_wall), path)
    wrong = run_backtest(engine_config(tmp_path, start="2024-07-01", end="2024-07-01"))
    (warning,) = wrong.health["warnings"]
    assert "fall before the session opens (09:15:00 IST)" in warning and "set data.naive_timezone=UTC" in warning
    assert wrong.health["problems"]["pre_open"] > wrong.health["info"]["session_ticks"] > 0
    from core.report import run_report  # the report shows it too, as it shows every warning

    page = run_report(wrong.config, wrong.trades, wrong.summary, wrong.health, True, {})
    assert f'<p class="warn">Warning: {html.escape(warning)}</p>' in page
    fixed = run_backtest(engine_config(tmp_path, start="2024-07-01", end="2024-07-01",
                                       data={**engine_config(tmp_path)["data"], "naive_timezone": "UTC"}))
    pd.testing.assert_frame_equal(fixed.trades, right.trades)
    assert fixed.health["warnings"] == [] and fixed.health["problems"]["pre_open"] == 0


def test_the_clock_warning_needs_most_ticks_outside_and_reads_the_side():
    from core.health import clock_shift_warning

    assert clock_shift_warning({"pre_open": 999, "session_ticks": 0}, "09:15:00", "15:30:00", IST) is None
    assert clock_shift_warning({"pre_open": 600, "post_close": 500, "session_ticks": 1100}, "09:15:00", "15:30:00",
                               IST) is None  # half outside: stray ticks, not a shifted clock
    early = clock_shift_warning({"pre_open": 800, "post_close": 400, "session_ticks": 1000}, "09:15:00", "15:30:00", IST)
    assert early.startswith("1,200 of the 2,200 ticks on traded days (55%) fall before the session opens")
    late = clock_shift_warning({"post_close": 5000, "session_ticks": 10}, "09:15:00", "15:30:00", "UTC")
    assert "after the session closes (15:30:00 IST)" in late and "set data.naive_timezone=Asia/Kolkata" in late
