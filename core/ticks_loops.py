"""The compiled loops of tick normalisation (core.ticks). The usual file (timestamps without nulls in a
fixed-offset zone and in time order, integer volumes) goes from its columns as read to per-second
aggregates in one pass (``file_seconds``). Any other file is first put in order by core.ticks (its
timestamps to IST in ``ist_instants`` where they allow), then one pass over its rows applies the per-row
rules of strategy.md §1.4, counts them per day and groups the rows by second (``aggregate_rows``).

They do the operations of the numpy code they replaced in the same order, so their results are
bit-identical (tested against that code): a second's volume is its first row's volume plus numpy's
pairwise sum of the others' (what ``np.add.reduceat`` computes), and a second's price is its last row
with a valid one. numba compiles them (cached on disk) without the GIL, so a loader's threads
normalise files in parallel; core.aot builds the same functions into a module that releases the GIL
too, and core.ticks calls them there when it is built.

``aggregate_rows`` and ``file_seconds`` repeat the same twenty lines (count a kept row's problems, add it
to its second, then sum each second) on purpose. Moved into compiled helpers called once per row, the
results stayed bit-identical but the passes ran about twice as slow (2026-12-04: 700 of the bench year's
files through ``file_days`` 3.2-3.5 s against 1.5-1.7 s, with the helpers inlined by ``inline="always"``
or not; one 9,745-row file 1.42 ms against 0.25 ms), most likely from numba's reference counting of the
arrays handed to each call.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .ticks import DAY_NS, FUSED_DECLINED, FUSED_OK, NS

PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE
# columns of the per-day counts, in core.ticks._COUNT_KINDS order
DUPLICATE_ROW, NULL_PRICE, NONPOSITIVE_PRICE, NULL_VOLUME, NEGATIVE_VOLUME = range(5)


@njit(cache=True, nogil=True)
def pairwise_sum(values, lo, n):  # pragma: no cover - compiled
    """Sum of values[lo:lo + n] as numpy's pairwise summation adds it (numpy/_core/src/umath/loops_utils.h.src):
    a plain loop below 8 values, eight running sums up to 128, halves above."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += values[i]
        return res
    if n <= PAIRWISE_BLOCK:
        r0, r1, r2, r3 = values[lo], values[lo + 1], values[lo + 2], values[lo + 3]
        r4, r5, r6, r7 = values[lo + 4], values[lo + 5], values[lo + 6], values[lo + 7]
        i = 8
        whole = n - n % 8
        while i < whole:
            r0 += values[lo + i]
            r1 += values[lo + i + 1]
            r2 += values[lo + i + 2]
            r3 += values[lo + i + 3]
            r4 += values[lo + i + 4]
            r5 += values[lo + i + 5]
            r6 += values[lo + i + 6]
            r7 += values[lo + i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += values[lo + i]
            i += 1
        return res
    half = n // 2
    half -= half % 8
    return pairwise_sum(values, lo, half) + pairwise_sum(values, lo + half, n - half)


@njit(cache=True, nogil=True)
def aggregate_rows(ist_ns, close, volume, vol_null, duplicate, wanted, counts):  # pragma: no cover - compiled
    """Per-second aggregates of time-sorted rows that all fall on the days ``wanted`` (sorted IST day
    numbers): (second, summed repaired volume, tick count, last valid price, its ns timestamp), with the
    rows' problems counted per day into ``counts`` (len(wanted) x 5, zeros). Rows marked ``duplicate``
    are only counted."""
    n = len(ist_ns)
    second = np.empty(n, np.int64)
    starts = np.empty(n + 1, np.int64)  # where each second's rows begin among the live rows
    last_close = np.empty(n, np.float64)
    last_ns = np.empty(n, np.int64)
    live_volume = np.empty(n, np.float64)
    groups = 0
    live = 0
    day = 0
    for i in range(n):
        t = ist_ns[i]
        while day + 1 < len(wanted) and wanted[day] < t // DAY_NS:  # rows lie on wanted days only
            day += 1
        if duplicate[i]:
            counts[day, DUPLICATE_ROW] += 1
            continue
        price = close[i]
        finite = np.isfinite(price)
        if not finite:
            counts[day, NULL_PRICE] += 1
        elif price <= 0:
            counts[day, NONPOSITIVE_PRICE] += 1
        if vol_null[i]:
            counts[day, NULL_VOLUME] += 1
        v = volume[i]
        if v < 0:
            counts[day, NEGATIVE_VOLUME] += 1
        live_volume[live] = v if v > 0 else 0.0
        s = t // NS
        if groups == 0 or second[groups - 1] != s:
            second[groups] = s
            starts[groups] = live
            last_close[groups] = np.nan
            last_ns[groups] = -1
            groups += 1
        if finite and price > 0:
            last_close[groups - 1] = price
            last_ns[groups - 1] = t
        live += 1
    starts[groups] = live
    summed = np.empty(groups, np.float64)
    ticks = np.empty(groups, np.int64)
    for g in range(groups):
        lo, hi = starts[g], starts[g + 1]
        ticks[g] = hi - lo
        summed[g] = live_volume[lo] if hi - lo == 1 else live_volume[lo] + pairwise_sum(live_volume, lo + 1, hi - lo - 1)
    return second[:groups].copy(), summed, ticks, last_close[:groups].copy(), last_ns[:groups].copy()


INT64_MIN = np.iinfo(np.int64).min


@njit(cache=True, nogil=True)
def ist_instants(raw, scale, utc_shift, ist_offset):  # pragma: no cover - compiled
    """IST nanoseconds of raw timestamps (``raw * scale + utc_shift`` is UTC, plus ``ist_offset``), with
    the number of rows within a day of the epoch (|UTC| < 1 day, as numpy's abs counts them) and whether
    the instants never go back; the arithmetic of core.ticks.timestamps_to_utc_ns and prepare_rows."""
    n = len(raw)
    ist = np.empty(n, np.int64)
    epoch_zero = 0
    ascending = True
    for i in range(n):
        utc = raw[i] * scale + utc_shift
        if utc == INT64_MIN or (utc > -DAY_NS and utc < DAY_NS):
            epoch_zero += 1
        ist[i] = utc + ist_offset
        if i > 0 and ist[i] < ist[i - 1]:
            ascending = False
    return ist, epoch_zero, ascending


EXACT_INT = 2 ** 53  # integers up to this size convert to float64 exactly (pyarrow's safe cast refuses larger ones)
MAX_TIE_RUN = 256  # rows at one instant compared for duplicates at most; longer runs go the general way


@njit(cache=True, nogil=True)
def file_seconds(raw, scale, utc_shift, ist_offset, close, volume, wanted, counts):  # pragma: no cover - compiled
    """One pass over a usual file's columns as read (raw timestamps, float64 close, int64 volume): what
    ``ist_instants``, ``core.ticks._duplicates`` and ``aggregate_rows`` give together, without their
    intermediate arrays. Returns (status, the IST days with ticks, then aggregate_rows' five arrays for the
    rows on the days ``wanted``), counting those rows' problems into ``counts`` (len(wanted) x 5, zeros).

    It declines (status FUSED_DECLINED, the other results empty) a file whose rows go back in time or lie
    within a day of the epoch, whose volumes exceed 2**53, whose days span more than 100,000, or with more
    than MAX_TIE_RUN rows at one instant: the general path (sorting, dropping, refusing) handles those."""
    n = len(raw)
    none = np.empty(0, np.int64)
    empty = (FUSED_DECLINED, none, none, np.empty(0, np.float64), none, np.empty(0, np.float64), none)
    first_day = (raw[0] * scale + utc_shift + ist_offset) // DAY_NS
    span = (raw[n - 1] * scale + utc_shift + ist_offset) // DAY_NS - first_day + 1
    if span < 1 or span > 100_000:
        return empty
    days = np.empty(span, np.int64)
    n_days = 0
    second = np.empty(n, np.int64)
    starts = np.empty(n + 1, np.int64)
    last_close = np.empty(n, np.float64)
    last_ns = np.empty(n, np.int64)
    live_volume = np.empty(n, np.float64)
    groups = 0
    live = 0
    day = 0  # index into wanted
    run_start = 0  # first row at the current instant
    previous = INT64_MIN
    for i in range(n):
        utc = raw[i] * scale + utc_shift
        if utc == INT64_MIN or (utc > -DAY_NS and utc < DAY_NS):
            return empty
        t = utc + ist_offset
        if t < previous:
            return empty
        if t != previous:
            run_start = i
        elif i - run_start >= MAX_TIE_RUN:
            return empty
        previous = t
        whole = volume[i]
        if whole > EXACT_INT or whole < -EXACT_INT:
            return empty
        d = t // DAY_NS
        if n_days == 0 or days[n_days - 1] != d:
            days[n_days] = d
            n_days += 1
        while day < len(wanted) and wanted[day] < d:
            day += 1
        if day == len(wanted) or wanted[day] != d:
            continue
        price = close[i]
        v = np.float64(whole)
        duplicate = False  # an earlier row at this instant with the same price (NaN equals NaN) and volume
        for j in range(run_start, i):
            other = close[j]
            if (other == price or (other != other and price != price)) and np.float64(volume[j]) == v:
                duplicate = True
                break
        if duplicate:
            counts[day, DUPLICATE_ROW] += 1
            continue
        finite = np.isfinite(price)
        if not finite:
            counts[day, NULL_PRICE] += 1
        elif price <= 0:
            counts[day, NONPOSITIVE_PRICE] += 1
        if v < 0:
            counts[day, NEGATIVE_VOLUME] += 1
        live_volume[live] = v if v > 0 else 0.0
        s = t // NS
        if groups == 0 or second[groups - 1] != s:
            second[groups] = s
            starts[groups] = live
            last_close[groups] = np.nan
            last_ns[groups] = -1
            groups += 1
        if finite and price > 0:
            last_close[groups - 1] = price
            last_ns[groups - 1] = t
        live += 1
    starts[groups] = live
    summed = np.empty(groups, np.float64)
    ticks = np.empty(groups, np.int64)
    for g in range(groups):
        lo, hi = starts[g], starts[g + 1]
        ticks[g] = hi - lo
        summed[g] = live_volume[lo] if hi - lo == 1 else live_volume[lo] + pairwise_sum(live_volume, lo + 1, hi - lo - 1)
    return (FUSED_OK, days[:n_days].copy(), second[:groups].copy(), summed, ticks, last_close[:groups].copy(),
            last_ns[:groups].copy())
