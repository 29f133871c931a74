"""numpy arrays to and from arrow arrays without pandas.

arrow's own conversions (``Array.to_numpy``, ``np.asarray`` of an array, ``pa.array``) import pandas on
their first call (pyarrow 25: 0.13-0.2 s). Building markets and evaluating them never needs pandas, and
a Ray worker that does only that starts that much sooner (docs/sweeps.md). These helpers read and write
the arrays' buffers directly, giving the same values, and fall back to arrow's conversion for anything else.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def numpy_view(values: pa.Array | pa.ChunkedArray, dtype: np.dtype | str) -> np.ndarray:
    """``values`` as a numpy array of ``dtype``: a read-only view of the data buffer (no copy) when they are
    ``dtype`` values without nulls in one chunk, else ``np.asarray(values, dtype)``."""
    dtype = np.dtype(dtype)
    if isinstance(values, pa.ChunkedArray) and values.num_chunks == 1:
        values = values.chunk(0)
    if isinstance(values, pa.Array) and not values.null_count and values.type == pa.from_numpy_dtype(dtype) \
            and pa.types.is_primitive(values.type) and not pa.types.is_boolean(values.type):
        data = values.buffers()[1]
        if data is None or not len(values):  # an empty array may have no data buffer
            return np.zeros(0, dtype)
        view = np.frombuffer(data, dtype=dtype, count=len(values), offset=values.offset * dtype.itemsize)
        view.setflags(write=False)
        return view
    return np.asarray(values, dtype=dtype)


def arrow_array(values: np.ndarray) -> pa.Array:
    """A 1-d numpy array of numbers as an arrow array of the same type, no nulls (NaN stays NaN), as
    ``pa.array(values)`` gives it."""
    values = np.ascontiguousarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        return pa.array(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def arrow_strings(labels: list[str]) -> pa.Array:
    """A list of Python strings as an arrow string array, as ``pa.array(labels, pa.string())`` gives it."""
    encoded = [label.encode() for label in labels]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
