"""Text normalisation for comparing responses and prompts, vectorised with Arrow compute kernels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CHUNK_ROWS = 20_000  # bounds the memory of a pass: one chunk's normalised text at a time


def normalize(values) -> pa.Array:
    """Unicode NFKC, lower case, punctuation runs cut to one mark, whitespace runs to one space.

    >>> normalize(["  Hello,,,   WORLD!!  "]).to_pylist()
    ['hello, world!']
    """
    array = _arrow(values)
    array = pc.utf8_normalize(array, form="NFKC")
    array = pc.utf8_lower(array)
    array = pc.replace_substring_regex(array, pattern=r"(\pP)\pP+", replacement=r"\1")
    array = pc.replace_substring_regex(array, pattern=r"\s+", replacement=" ")
    return pc.utf8_trim_whitespace(array)


def normalized_hashes(values, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """64-bit hashes of the normalised texts, one chunk at a time (no full normalised copy)."""
    array = _arrow(values)
    out = np.empty(len(array), dtype=np.uint64)
    for start in range(0, len(array), chunk_rows):
        chunk = normalize(array.slice(start, chunk_rows))
        objects = chunk.to_numpy(zero_copy_only=False).astype(object)
        out[start : start + len(chunk)] = pd.util.hash_array(objects, categorize=False)
    return out


def _arrow(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if isinstance(values, pa.Array):
        return values
    array = (
        pa.array(values, type=pa.large_string())
        if not isinstance(values, pd.Series)
        else pa.array(values)
    )
    return _arrow(array)
