"""Text normalisation and per-text features: Arrow compute kernels, and compiled loops
(``prefaudit.kernels``) where a pass over every byte is the cost (the normalisation, its
hashes, the shape counts), each giving exactly what Arrow or Python's ``re`` give.

Texts are processed in chunks so that a pass over a large column never holds a second
full-size copy of it: memory stays bounded by one chunk's working set.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CHUNK_ROWS = 20_000  # bounds the memory of a pass: one chunk's copies at a time
TAIL_CHARS = 40  # how much of each text's end is kept for end-of-text checks

# Unicode White_Space, and the same without the plain space.
_SPACE = (
    r"\t\n\x{0b}\f\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)
_ODD_SPACE = _SPACE.replace(" ", "")
# Runs of two or more whitespace characters, or any whitespace other than a plain space:
# collapsing only these to " " gives the same result as collapsing every whitespace run,
# with far fewer regex matches (most whitespace in prose is already a single space).
_WHITESPACE_TO_COLLAPSE = f"[{_SPACE}]{{2,}}|[{_ODD_SPACE}]"
# Runs of punctuation and whitespace holding a mark, and the whitespace above: all that
# dropping punctuation changes (a single plain space between words is left alone, unmatched).
_PUNCTUATION_TO_DROP = f"[{_SPACE}]*\\pP[\\pP{_SPACE}]*|{_WHITESPACE_TO_COLLAPSE}"


# The whitespace before the last word of a text (the start of a trailing partial word).
_LAST_WORD = re.compile(r"\s+\S*\Z")


def word_cut(text: str, limit: int) -> str:
    """The start of ``text``: its first ``limit`` characters, less a word cut in two (it reads
    as another word: "Can you give m"). A word longer than a quarter of ``limit`` (a URL, a
    run without spaces) is cut where the limit falls.

    >>> word_cut("Can you give me a recipe?", 14), word_cut("Can you give me", 13)
    ('Can you give', 'Can you give ')
    """
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    head = text[:limit]
    if head[-1].isspace() or text[limit].isspace():
        return head  # the limit falls between words
    partial = _LAST_WORD.search(head, limit - limit // 4)
    return head[: partial.start()] if partial else head


def normalize(values, *, drop_punctuation: bool = False) -> pa.Array:
    """Unicode NFKC, lower case, punctuation runs cut to one mark, whitespace runs to one space;
    with ``drop_punctuation``, every run of punctuation and whitespace becomes one space.

    Returns Arrow ``large_string`` texts (a missing text stays missing).

    >>> normalize(["  Hello,,,   WORLD!!  ", "ﬁne\u00a0DAY"]).to_pylist()
    ['hello, world!', 'fine day']
    >>> normalize(["  Hello,,,   WORLD!!  "], drop_punctuation=True).to_pylist()
    ['hello world']
    """
    from prefaudit import kernels  # numba: imported where texts are normalised

    given = _nfkc(_array(values))
    array = kernels.large_strings(given)
    array.validate(full=True)  # UTF-8 (the kernel reads only valid sequences)
    offsets, data = kernels.string_buffers(array)
    lower, kinds = _normal_tables()
    out = np.empty(len(data) + len(data) // 2 + 4, np.uint8)  # a lower case: <= 3/2 the bytes
    out_offsets = np.empty(len(offsets), np.int64)
    kernels.normalize(data, offsets, lower, kinds, drop_punctuation, out, out_offsets)
    normal = pa.LargeStringArray.from_buffers(  # the bytes copied: out has 3/2 the room
        len(array), pa.py_buffer(out_offsets), pa.py_buffer(out[: out_offsets[-1]].copy())
    )
    if given.null_count:  # a missing text stays missing
        normal = pc.if_else(pc.is_null(given), pa.scalar(None, pa.large_string()), normal)
    return normal


def arrow_normalize(values, *, drop_punctuation: bool = False) -> pa.Array:
    """:func:`normalize` as Arrow's compute functions do it (NFKC, ``utf8_lower``, the regular
    expressions, ``utf8_trim_whitespace``): what its compiled loop is tested against."""
    array = _nfkc(_array(values))
    array = pc.utf8_lower(array)
    if drop_punctuation:
        # One pass, the same result as the two below followed by dropping the marks.
        array = pc.replace_substring_regex(array, pattern=_PUNCTUATION_TO_DROP, replacement=" ")
    else:
        array = pc.replace_substring_regex(array, pattern=r"(\pP)\pP+", replacement=r"\1")
        array = pc.replace_substring_regex(array, pattern=_WHITESPACE_TO_COLLAPSE, replacement=" ")
    return pc.utf8_trim_whitespace(array)


# Code points up to here have a lower case, punctuation or whitespace (what lies beyond is
# CJK ideographs, tags and private use; tests/test_text.py checks all of Unicode).
_CASED_BELOW = 0x20000


@functools.cache
def _normal_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per code point below _CASED_BELOW: its lower case as Arrow's ``utf8_lower`` gives it,
    and the kernels.PUNCTUATION, WHITESPACE and TRIMMED flags of a lower-case one (RE2's
    ``\\pP``; :data:`_SPACE`; what ``utf8_trim_whitespace`` removes), asked of Arrow once."""
    from prefaudit import kernels

    points = np.arange(_CASED_BELOW)
    points = points[(points < 0xD800) | (points >= 0xE000)]  # surrogates are not text
    every = pa.array(list(map(chr, points.tolist())))
    lowered = pc.utf8_lower(every).to_pylist()
    lower = np.arange(_CASED_BELOW, dtype=np.int32)
    lower[points] = [ord(c) for c in lowered]  # one code point each (utf8proc's mapping)
    kinds = np.zeros(_CASED_BELOW, np.uint8)
    for flag, found in (
        (kernels.PUNCTUATION, pc.match_substring_regex(every, r"^\pP$")),
        (kernels.WHITESPACE, pc.match_substring_regex(every, f"^[{_SPACE}]$")),
        (kernels.TRIMMED, pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(every)), 0)),
    ):
        kinds[points[found.to_numpy(zero_copy_only=False)]] |= flag
    widths = np.searchsorted([0x80, 0x800, 0x10000], np.arange(_CASED_BELOW), "right") + 1
    if (widths[lower] * 2 > widths * 3).any():  # the kernel's output has 3/2 the input's room
        raise RuntimeError("a lower case takes more than 3/2 its letter's UTF-8 bytes")
    return lower, kinds


def _nfkc(array: pa.Array) -> pa.Array:
    """NFKC, applied only to the texts it changes.

    ASCII text is always NFKC-normal, and most non-ASCII English text (curly quotes, accents)
    is too: about 1 text in 100 needs the full transform, found with a C-speed quick check.
    """
    non_ascii = pc.invert(pc.string_is_ascii(array)).to_numpy(zero_copy_only=False)
    candidates = np.flatnonzero(non_ascii)
    if not len(candidates):
        return array
    texts = array.filter(pa.array(non_ascii)).to_pylist()
    changed = [
        (i, t)
        for i, t in zip(candidates, texts, strict=True)
        if t is not None and not unicodedata.is_normalized("NFKC", t)
    ]
    if not changed:
        return array
    mask = np.zeros(len(array), dtype=bool)
    mask[[i for i, _ in changed]] = True
    fixed = pa.array([unicodedata.normalize("NFKC", t) for _, t in changed], type=array.type)
    return pc.replace_with_mask(array, pa.array(mask), fixed)


@dataclass(frozen=True)
class TextFeatures:
    """Per-text figures of one column, computed in a single chunked pass."""

    chars: np.ndarray  # characters
    stripped_chars: np.ndarray  # characters without leading and trailing whitespace
    words: np.ndarray  # whitespace-separated tokens
    normalized_hash: np.ndarray  # uint64 hash of the normalised text
    tail: pd.Series  # the last TAIL_CHARS characters, trailing whitespace removed


def text_features(values, chunk_rows: int = CHUNK_ROWS, threads: int | None = None) -> TextFeatures:
    """Lengths, word counts, normalised hashes and tails of ``values``.

    Chunks run on ``threads`` threads (default: :func:`default_threads`); Arrow's kernels
    release the GIL, so the work spreads over the cores.

    >>> f = text_features(["  Two words ", ""])
    >>> f.chars.tolist(), f.stripped_chars.tolist(), f.words.tolist(), f.tail.tolist()
    ([12, 0], [9, 0], [2, 0], ['  Two words', ''])
    """
    array = _arrow(values)
    starts = range(0, len(array), chunk_rows)
    with ThreadPoolExecutor(threads or default_threads()) as pool:
        parts = list(
            pool.map(lambda start: _chunk_features(array.slice(start, chunk_rows)), starts)
        )
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return TextFeatures(
            empty, empty, empty, np.zeros(0, dtype=np.uint64), pd.Series([], dtype="str")
        )
    tails = [part.pop("tail") for part in parts]
    joined = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    tail = pd.Series(pa.chunked_array(tails), dtype="str")
    return TextFeatures(tail=tail, **joined)


def _chunk_features(chunk) -> dict:
    chunk = pc.fill_null(_array(chunk), "")  # a missing text counts as an empty one
    normal = normalize(chunk)
    # Normalised text has single spaces between tokens and none at the ends.
    spaces = pc.count_substring(normal, " ").to_numpy(zero_copy_only=False)
    nonempty = pc.utf8_length(normal).to_numpy(zero_copy_only=False) > 0
    # The tail comes from a short end slice, so no trimmed copy of the whole chunk is made.
    end = pc.utf8_rtrim_whitespace(pc.utf8_slice_codeunits(chunk, start=-5 * TAIL_CHARS))
    return {
        "chars": pc.utf8_length(chunk).to_numpy(zero_copy_only=False).astype(np.int64),
        "stripped_chars": pc.utf8_length(pc.utf8_trim_whitespace(chunk))
        .to_numpy(zero_copy_only=False)
        .astype(np.int64),
        "words": np.where(nonempty, spaces + 1, 0).astype(np.int64),
        "normalized_hash": _hash(normal),
        "tail": pc.utf8_slice_codeunits(end, start=-TAIL_CHARS),
    }


def default_threads() -> int:
    """``PREFAUDIT_THREADS`` if set, else the CPUs this process may use."""
    if os.environ.get("PREFAUDIT_THREADS"):
        return max(1, int(os.environ["PREFAUDIT_THREADS"]))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _hash(array: pa.Array) -> np.ndarray:
    """A 64-bit hash of each text (a missing one hashes as the empty text), from its bytes
    (kernels.text_hashes): equal texts, equal hashes."""
    from prefaudit import kernels

    offsets, data = kernels.string_buffers(kernels.large_strings(array))
    out = np.empty(len(offsets) - 1, np.uint64)
    kernels.text_hashes(data, offsets, out)
    return out


def _array(values) -> pa.Array:
    """One contiguous Arrow array (chunk-sized inputs only: combining copies)."""
    array = _arrow(values)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _arrow(values) -> pa.Array | pa.ChunkedArray:
    """Arrow strings without copying Arrow-backed input (chunked arrays are sliced, not combined)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if isinstance(values, pd.Series):
        return pa.array(values)
    return pa.array(values, type=pa.large_string())


# -- hashed word and bigram counts, and shape counts (label_noise's features without embeddings)

# The shape counts, as Python's re reads them (pandas.Series.str.count): what shape_counts'
# compiled loop counts, with a table of the code points \s and \d match asked of re itself.
SHAPE_PATTERNS = {
    "words": r"\S+",
    "list items": r"(?m)^\s*(?:[-*•]|\d+[.)])\s",
    "digits": r"\d",
    "upper": r"[A-Z]",
}
_SHAPE_NAMES = ("chars", "lines", "questions", "words", "list items", "digits", "upper")
_SHAPE_CHUNKS_PER_THREAD = 4  # texts vary in length: a few chunks each evens the threads out


def shape_counts(texts, threads: int | None = None) -> dict[str, np.ndarray]:
    """Per text (float): characters, line breaks ("\\n"), question marks and the matches of
    each of :data:`SHAPE_PATTERNS` (words, list items, digits, upper-case ASCII letters),
    each as Python's ``re`` counts them (``pandas.Series.str.count``); a missing text counts
    as an empty one. One compiled pass over each text's UTF-8 bytes, in chunks on ``threads``
    threads (default: :func:`default_threads`).

    >>> counts = shape_counts(["Why?\\n- one 2", "né 3\\n\\n1. x", None])
    >>> {name: values.tolist() for name, values in counts.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'chars': [12.0, 10.0, 0.0], 'lines': [1.0, 2.0, 0.0], 'questions': [1.0, 0.0, 0.0],
     'words': [4.0, 4.0, 0.0], 'list items': [1.0, 1.0, 0.0], 'digits': [1.0, 2.0, 0.0],
     'upper': [1.0, 0.0, 0.0]}
    """
    from prefaudit import kernels  # numba: imported where the counts are made

    offsets, data = kernels.string_buffers(kernels.large_strings(texts))
    classes = _shape_classes()
    n = len(offsets) - 1
    out = np.empty((len(_SHAPE_NAMES), n))
    threads = threads or default_threads()
    parts = threads * _SHAPE_CHUNKS_PER_THREAD if threads > 1 else 1
    cuts = np.searchsorted(offsets, np.linspace(0, offsets[-1], parts + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], np.minimum(cuts, n), [n]])).tolist()

    def count(first: int, last: int) -> None:
        kernels.shape_counts(data, offsets[first : last + 1], classes, out[:, first:last])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(count, bounds[:-1], bounds[1:]))
    return dict(zip(_SHAPE_NAMES, out, strict=True))


@functools.cache
def _shape_classes() -> np.ndarray:
    """Per code point: ``kernels.SPACE`` where ``re``'s ``\\s`` matches it, plus
    ``kernels.DIGIT`` where ``\\d`` does (one search of a string of every code point)."""
    from prefaudit import kernels

    every = "".join(map(chr, range(0x110000)))
    classes = np.zeros(0x110000, np.uint8)
    for flag, pattern in ((kernels.SPACE, r"\s"), (kernels.DIGIT, r"\d")):
        classes[[match.start() for match in re.finditer(pattern, every)]] |= flag
    return classes
