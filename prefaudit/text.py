"""Text normalisation and per-text features, vectorised with Arrow compute kernels.

Texts are processed in chunks so that a pass over a large column never holds a second
full-size copy of it: memory stays bounded by one chunk's working set.
"""

from __future__ import annotations

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

    >>> normalize(["  Hello,,,   WORLD!!  ", "ﬁne\u00a0DAY"]).to_pylist()
    ['hello, world!', 'fine day']
    >>> normalize(["  Hello,,,   WORLD!!  "], drop_punctuation=True).to_pylist()
    ['hello world']
    """
    array = _nfkc(_array(values))
    array = pc.utf8_lower(array)
    if drop_punctuation:
        # One pass, the same result as the two below followed by dropping the marks.
        array = pc.replace_substring_regex(array, pattern=_PUNCTUATION_TO_DROP, replacement=" ")
    else:
        array = pc.replace_substring_regex(array, pattern=r"(\pP)\pP+", replacement=r"\1")
        array = pc.replace_substring_regex(array, pattern=_WHITESPACE_TO_COLLAPSE, replacement=" ")
    return pc.utf8_trim_whitespace(array)


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
    chunk = _array(chunk)
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


def _hash(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pd.util.hash_array(array.to_numpy(zero_copy_only=False).astype(object), categorize=False)


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

# Python's ASCII whitespace (str.isspace): \t \n \v \f \r, \x1c-\x1f and the space. Arrow's RE2
# reads \s and \d as narrower or wider sets than Python's re does, so the ASCII-only passes
# below spell them out.
_ASCII_SPACE = r"\t-\r\x1c-\x20"
# The shape counts, as Python's re reads them (the fallback for texts that are not ASCII) and
# the same on ASCII text for RE2.
SHAPE_PATTERNS = {
    "words": (r"\S+", f"[^{_ASCII_SPACE}]+"),
    "list items": (
        r"(?m)^\s*(?:[-*•]|\d+[.)])\s",
        f"(?m)^[{_ASCII_SPACE}]*(?:[-*•]|[0-9]+[.)])[{_ASCII_SPACE}]",
    ),
    "digits": (r"\d", "[0-9]"),
    "upper": (r"[A-Z]", "[A-Z]"),
}


def shape_counts(texts) -> dict[str, np.ndarray]:
    """Per text: characters, words (runs of non-space), lines breaks, list items, digits,
    question marks and upper-case ASCII letters, each as Python's ``re`` counts them
    (``pandas.Series.str.count``), computed with Arrow's RE2 on ASCII texts and Python's ``re``
    on the others.

    >>> {k: v.tolist() for k, v in shape_counts(["Why?\\n- one 2", "né 3"]).items()}["words"]
    [4.0, 2.0]
    """
    array = pc.fill_null(_array(texts), "")  # a missing text counts as an empty one
    ascii_ = pc.fill_null(pc.string_is_ascii(array), True).to_numpy(zero_copy_only=False)
    out = {
        "chars": pc.utf8_length(array).to_numpy(zero_copy_only=False).astype(float),
        "lines": pc.count_substring(array, "\n").to_numpy(zero_copy_only=False).astype(float),
        "questions": pc.count_substring(array, "?").to_numpy(zero_copy_only=False).astype(float),
    }
    plain = array.filter(pa.array(ascii_))
    other = pd.Series(array.filter(pa.array(~ascii_)).to_pylist(), dtype=object)
    for name, (python, re2) in SHAPE_PATTERNS.items():
        counts = np.empty(len(array), dtype=float)
        if name == "list items":
            # Arrow restarts a search after each match as at the start of a text, where "^"
            # matches: counted with Python's re, on the texts where RE2 finds one at all.
            some = pc.match_substring_regex(plain, re2).to_numpy(zero_copy_only=False)
            listed = pd.Series(plain.filter(pa.array(some)).to_pylist(), dtype=object)
            within = np.zeros(len(plain))
            within[some] = listed.str.count(python).to_numpy(dtype=float)
            counts[ascii_] = within
        else:
            counts[ascii_] = pc.count_substring_regex(plain, re2).to_numpy(zero_copy_only=False)
        counts[~ascii_] = other.str.count(python).to_numpy(dtype=float)
        out[name] = counts
    return out
