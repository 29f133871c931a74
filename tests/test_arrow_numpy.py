"""core.arrow_numpy: numpy and arrow arrays converted through their buffers give what arrow's own
conversions give (which import pandas), for every kind of array the steps hand them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from core.arrow_numpy import arrow_array, arrow_strings, numpy_view

NUMBERS = {"int64": st.integers(-2**63, 2**63 - 1), "int32": st.integers(-2**31, 2**31 - 1),
           "float64": st.floats(allow_nan=True, allow_infinity=True)}


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_numpy_view_equals_arrows_conversion(data):
    kind = data.draw(st.sampled_from(sorted(NUMBERS)))
    dtype = data.draw(st.sampled_from([kind, "float64"]))  # as it is, or another type (converted by arrow)
    # nulls where they have a value in ``dtype`` (NaN)
    values = data.draw(st.lists(st.one_of(st.none(), NUMBERS[kind]) if dtype == "float64" else NUMBERS[kind],
                                max_size=30))
    array = pa.array(values, pa.from_numpy_dtype(np.dtype(kind)))
    start = data.draw(st.integers(0, len(values)))
    array = array.slice(start, data.draw(st.integers(0, len(values) - start)))  # an offset into the buffer
    chunked = data.draw(st.booleans())
    given_ = pa.chunked_array([array]) if chunked else array
    got = numpy_view(given_, dtype)
    expected = np.asarray(array, dtype=dtype)
    assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
    if dtype == kind and not array.null_count and len(array):
        assert not got.flags.writeable and not got.flags.owndata  # a view of arrow's buffer, not a copy


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(["int32", "int64", "float64"]), data=st.data())
def test_arrow_array_and_strings_equal_pa_array(kind, data):
    values = np.array(data.draw(st.lists(NUMBERS[kind], max_size=30)), dtype=kind)
    step = data.draw(st.integers(1, 3))  # a strided view is made contiguous
    got, want = arrow_array(values[::step]), pa.array(values[::step])
    # bit for bit (arrow's ``equals`` holds NaN unequal to itself)
    assert got.type == want.type and got.null_count == want.null_count == 0
    assert got.to_numpy().tobytes() == want.to_numpy().tobytes()
    labels = data.draw(st.lists(st.text(max_size=6), max_size=8))
    assert arrow_strings(labels).equals(pa.array(labels, pa.string()))
