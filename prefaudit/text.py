"""Text normalisation and per-text features, vectorised with Arrow compute kernels.

Texts are processed in chunks so that a pass over a large column never holds a second
full-size copy of it: memory stays bounded by one chunk's working set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CHUNK_ROWS = 20_000  # bounds the memory of a pass: one chunk's copies at a time
TAIL_CHARS = 40  # how much of each text's end is kept for end-of-text checks

# Runs of two or more whitespace characters, or any whitespace other than a plain space:
# collapsing only these to " " gives the same result as collapsing every `\s+`, with far
# fewer regex matches (most whitespace in prose is already a single space).
_WHITESPACE_TO_COLLAPSE = r"[\s\pZ]{2,}|[\t\n\f\r\v\x{85}\x{2028}\x{2029}]"


def normalize(values) -> pa.Array:
    """Unicode NFKC, lower case, punctuation runs cut to one mark, whitespace runs to one space.

    >>> normalize(["  Hello,,,   WORLD!!  "]).to_pylist()
    ['hello, world!']
    """
    array = _arrow(values)
    array = pc.utf8_normalize(array, form="NFKC")
    array = pc.utf8_lower(array)
    array = pc.replace_substring_regex(array, pattern=r"(\pP)\pP+", replacement=r"\1")
    array = pc.replace_substring_regex(array, pattern=_WHITESPACE_TO_COLLAPSE, replacement=" ")
    return pc.utf8_trim_whitespace(array)


@dataclass(frozen=True)
class TextFeatures:
    """Per-text figures of one column, computed in a single chunked pass."""

    chars: np.ndarray  # characters
    stripped_chars: np.ndarray  # characters without leading and trailing whitespace
    words: np.ndarray  # whitespace-separated tokens
    normalized_hash: np.ndarray  # uint64 hash of the normalised text
    tail: pd.Series  # the last TAIL_CHARS characters, trailing whitespace removed


def text_features(values, chunk_rows: int = CHUNK_ROWS) -> TextFeatures:
    """Lengths, word counts, normalised hashes and tails of ``values``.

    >>> f = text_features(["  Two words ", ""])
    >>> f.chars.tolist(), f.stripped_chars.tolist(), f.words.tolist(), f.tail.tolist()
    ([12, 0], [9, 0], [2, 0], ['  Two words', ''])
    """
    array = _arrow(values)
    n = len(array)
    chars, stripped, words = (np.empty(n, dtype=np.int64) for _ in range(3))
    hashes = np.empty(n, dtype=np.uint64)
    tails = []
    for start in range(0, n, chunk_rows):
        chunk = array.slice(start, chunk_rows)
        end = start + len(chunk)
        chars[start:end] = pc.utf8_length(chunk).to_numpy(zero_copy_only=False)
        right = pc.utf8_rtrim_whitespace(chunk)
        stripped[start:end] = pc.utf8_length(pc.utf8_ltrim_whitespace(right)).to_numpy(
            zero_copy_only=False
        )
        tail = pc.utf8_slice_codeunits(right, start=-TAIL_CHARS)
        tails.extend(tail.chunks if isinstance(tail, pa.ChunkedArray) else [tail])
        normal = normalize(chunk)
        # Normalised text has single spaces between tokens and none at the ends.
        spaces = pc.count_substring(normal, " ").to_numpy(zero_copy_only=False)
        words[start:end] = np.where(
            pc.utf8_length(normal).to_numpy(zero_copy_only=False) > 0, spaces + 1, 0
        )
        hashes[start:end] = _hash(normal)
    tail = pd.Series(pa.chunked_array(tails, type=array.type), dtype="str")
    return TextFeatures(chars, stripped, words, hashes, tail)


def normalized_hashes(values, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """64-bit hashes of the normalised texts, one chunk at a time."""
    array = _arrow(values)
    out = np.empty(len(array), dtype=np.uint64)
    for start in range(0, len(array), chunk_rows):
        chunk = normalize(array.slice(start, chunk_rows))
        out[start : start + len(chunk)] = _hash(chunk)
    return out


def _hash(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pd.util.hash_array(array.to_numpy(zero_copy_only=False).astype(object), categorize=False)


def _arrow(values) -> pa.Array | pa.ChunkedArray:
    """Arrow strings without copying Arrow-backed input (chunked arrays are sliced, not combined)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if isinstance(values, pd.Series):
        return pa.array(values)
    return pa.array(values, type=pa.large_string())
