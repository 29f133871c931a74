"""The compiled loop of the per-second cache's encoder (core.cache.encode_entry): which narrowest type
stores each column of a day's aggregates bit for bit, found in passes over the arrays without the GIL.

It makes the choices of the numpy code it replaced (2026-12-06; the same bytes on the bench year's
3,781 entries), which held the GIL through about 25 small array operations per entry (encoding those
entries took 0.33 s of CPU then, 0.22 s now, 0.11 s of it in this loop): a close column is stored as
int32 twentieths of a rupee when every close comes back bit for bit (NaN only as numpy's own NaN,
stored as NO_PRICE), else as hundredths, else as float64; a volume column as the first of uint8,
uint16, uint32 and float32 that gives back every value bit for bit (so -0.0 and fractions need float32
or float64); seconds and tick counts by their range. core.aot builds it into its module beside the
normalisation loops.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .cache import NO_PRICE, PRICE_SCALES

NAN_BITS = 0x7FF8000000000000  # numpy's np.nan; NaN of another payload is stored as float64
INT32_OPEN = 2 ** 31 - 1  # scaled closes lie strictly inside +-this (NO_PRICE, int32's minimum, stays free)
VOLUME_UINT_MAX = (255.0, 65535.0, 4294967295.0)  # uint8, uint16, uint32; then float32, then float64
SECOND_MAX = (65535, 2 ** 31 - 1)  # uint16 after the first second, int32; then int64
SECOND_MIN = (0, -2 ** 31)
TICKS_MAX = (255, 65535, 2 ** 31 - 1)  # uint8, uint16, int32; then int64
TICKS_MIN = (0, 0, -2 ** 31)


@njit(cache=True, nogil=True)
def entry_columns(close, volume, after_first, ticks, scaled):  # pragma: no cover - compiled
    """(close scale, volume code, second code, ticks code) of one entry's columns: the scale is the first of
    PRICE_SCALES whose int32 prices (written into ``scaled``) give back every close bit for bit as
    ``stored / scale`` (NaN as NO_PRICE), else 0 (float64); each code indexes its column's candidate types
    (core.cache's VOLUME_TYPES, SECOND_TYPES, TICKS_TYPES; the last is the column's own type)."""
    n = len(close)
    close_bits = close.view(np.int64)
    volume_bits = volume.view(np.int64)
    back = np.empty(1, np.float64)
    back_bits = back.view(np.int64)
    scale = 0
    for candidate in PRICE_SCALES:
        fits = True
        for i in range(n):
            price = close[i]
            if price != price:
                if close_bits[i] != NAN_BITS:
                    fits = False
                    break
                scaled[i] = NO_PRICE
                continue
            rounded = np.rint(price * candidate)
            if not (-INT32_OPEN < rounded < INT32_OPEN):
                fits = False
                break
            stored = np.int32(rounded)
            back[0] = np.float64(stored) / candidate
            if back_bits[0] != close_bits[i]:
                fits = False
                break
            scaled[i] = stored
        if fits:
            scale = candidate
            break
    volume_code = len(VOLUME_UINT_MAX) + 1
    for code in range(len(VOLUME_UINT_MAX) + 1):
        fits = True
        for i in range(n):
            value = volume[i]
            if code < len(VOLUME_UINT_MAX):
                if not (0.0 <= value <= VOLUME_UINT_MAX[code]):  # NaN fails too
                    fits = False
                    break
                back[0] = np.float64(np.int64(value))
            else:
                back[0] = np.float64(np.float32(value))
            if back_bits[0] != volume_bits[i]:
                fits = False
                break
        if fits:
            volume_code = code
            break
    second_code = _range_code(after_first, SECOND_MIN, SECOND_MAX)
    return scale, volume_code, second_code, _range_code(ticks, TICKS_MIN, TICKS_MAX)


@njit(cache=True, nogil=True)
def _range_code(values, lows, highs):  # pragma: no cover - compiled
    """The index of the first (low, high) range that holds every value (0 when there are none), else len(lows)."""
    if len(values) == 0:
        return 0
    low = values[0]
    high = values[0]
    for value in values:
        low = min(low, value)
        high = max(high, value)
    for code in range(len(lows)):
        if lows[code] <= low and high <= highs[code]:
            return code
    return len(lows)
