"""Arrow arrays and scalars built from raw buffers instead of converted from Python.

pyarrow converts a Python object or a NumPy array (``pa.array``, ``pa.scalar``, a Python
value passed to a compute function) through code that imports pandas first, about 0.25
CPU-s, which every ``cleanroom`` and ``cleanroom-client`` process would pay for a few
constants and masks. The list code builds those values here, from buffers laid out as
the Arrow columnar format specifies (validity bitmap omitted: no nulls; bits least
significant first; int32 offsets for ``string``); ``tests/unit/test_arrow_values.py``
compares each with pyarrow's own conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def booleans(mask: np.ndarray) -> pa.Array[Any]:
    """A NumPy boolean mask as an Arrow ``bool`` array without nulls."""
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits.tobytes())])


def strings(values: Sequence[str]) -> pa.Array[Any]:
    """Python strings as an Arrow ``string`` array without nulls."""
    encoded = [value.encode() for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(data) for data in encoded], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(encoded), buffers)


def string_scalar(value: str) -> pa.Scalar[Any]:
    """A Python string as an Arrow ``string`` scalar."""
    scalar: pa.Scalar[Any] = strings([value])[0]
    return scalar


def number_scalar(value: float, arrow_type: pa.DataType) -> pa.Scalar[Any]:
    """A Python number as an Arrow scalar of the integer or floating-point *arrow_type*."""
    data = np.array([value], dtype=arrow_type.to_pandas_dtype())
    scalar: pa.Scalar[Any] = pa.Array.from_buffers(
        arrow_type, 1, [None, pa.py_buffer(data.tobytes())]
    )[0]
    return scalar


def numpy_mask(values: pa.Array[Any], *, missing: bool) -> np.ndarray:
    """A boolean Arrow array as a NumPy mask, *missing* where it is null (read from the
    data bitmap: pyarrow's ``to_numpy`` of a boolean array also imports pandas)."""
    if missing:
        filled = pc.or_kleene(values, pc.is_null(values))
    else:
        filled = pc.and_kleene(values, pc.is_valid(values))
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    bits = np.frombuffer(_data_buffer(filled), dtype=np.uint8)
    start = filled.offset
    return np.unpackbits(bits, count=start + len(filled), bitorder="little")[start:].astype(bool)


def numpy_view(values: pa.Array[Any]) -> np.ndarray:
    """A null-free integer or floating-point Arrow array as a NumPy view of its data
    buffer (pyarrow's ``to_numpy`` imports pandas, even when it copies nothing)."""
    if values.null_count:
        raise ValueError("numpy_view needs an array without nulls")
    data: np.ndarray = np.frombuffer(_data_buffer(values), dtype=values.type.to_pandas_dtype())
    return data[values.offset : values.offset + len(values)]


def _data_buffer(values: pa.Array[Any]) -> memoryview:
    """The data buffer of a primitive array (its second buffer, after the validity bitmap)."""
    buffer = values.buffers()[1]
    if buffer is None:  # only a zero-length array may have none
        return memoryview(b"")
    return memoryview(buffer)
