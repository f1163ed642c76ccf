"""Hashed word and bigram counts of texts, the same matrix as scikit-learn's
``HashingVectorizer(ngram_range=(1, 2), alternate_sign=False, norm="l2")``, computed by a
compiled kernel on the texts' UTF-8 bytes instead of Python's regex and string joins.

scikit-learn's analyzer is ``str.lower()``, then the token pattern ``(?u)\\b\\w\\w+\\b``:
the maximal runs of two or more word characters of the lower-cased text. The kernel finds
them character by character, with two tables asked of Python itself once: each code point's
lower case and whether ``re``'s ``\\w`` matches it. ``str.lower()`` is that table's mapping
character by character except where a character lower-cases to two (İ) or by its context
(Σ, final or not): a text holding one goes to scikit-learn, and its row is spliced in.
"""

from __future__ import annotations

import functools
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
from numba import njit

from prefaudit.kernels import large_strings, string_buffers

_MOST_TALLIED = 1 << 22  # columns counted in a table per thread (16 MB); more are sorted
CHUNK_BYTES = 1 << 24  # text per kernel call: bounds its buffers of raw (undeduplicated) features
_MASK = 0xFFFFFFFF


def hashed_words(texts, n_features: int = 2**14, *, threads: int = 1):
    """Each text's words and pairs of consecutive words, hashed into ``n_features`` columns,
    counted and l2-normalised: a ``scipy.sparse.csr_matrix`` equal, index for index and bit
    for bit, to ``HashingVectorizer(n_features=n_features, ngram_range=(1, 2),
    alternate_sign=False, norm="l2").transform(texts)``.

    Texts are tokenised and hashed (MurmurHash3, as scikit-learn) by a compiled kernel, in
    chunks on ``threads`` threads; the rare text whose lower case the kernel does not know
    (one holding İ or Σ) is passed to scikit-learn's HashingVectorizer itself, its row
    put in place. A missing text (None) is a row of zeros, as the empty string is. ``texts``:
    strings (a list, a pandas Series or Index, an Arrow string array).

    >>> from sklearn.feature_extraction.text import HashingVectorizer
    >>> texts = ["The cat sat.", "", "A dog_2 ran, the CAT sat!", "CAFÉ au lait", "ΣΟΦΟΣ ἦν"]
    >>> ours = hashed_words(texts)
    >>> theirs = HashingVectorizer(
    ...     n_features=2**14, ngram_range=(1, 2), alternate_sign=False, norm="l2"
    ... ).transform(texts)
    >>> ours.shape, ours.nnz, (ours != theirs).nnz, bool((ours.indices == theirs.indices).all())
    ((5, 16384), 22, 0, True)
    """
    from scipy import sparse
    from sklearn.preprocessing import normalize

    if not 0 < n_features < 2**31:
        raise ValueError(f"hashed_words: n_features must be in [1, 2**31), got {n_features}")
    array = large_strings(texts)
    if len(array) == 0:
        return sparse.csr_matrix((0, n_features), dtype=np.float64)
    offsets, data = string_buffers(array)
    lower, word = _unicode_tables()
    bounds = _chunk_bounds(offsets, threads)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        parts = list(
            pool.map(
                lambda b: _hash_rows(offsets[b[0] : b[1] + 1], data, lower, word, n_features),
                zip(bounds[:-1], bounds[1:], strict=True),
            )
        )
    fallback = np.flatnonzero(~np.concatenate([part[1] for part in parts]))
    others = _sklearn_counts(array.take(fallback), n_features) if len(fallback) else None
    matrix = _assemble(parts, bounds, fallback, others, n_features)
    # Row by row, as HashingVectorizer does after its hasher.
    return normalize(matrix, norm="l2", copy=False)


@functools.cache
def _unicode_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per code point: its lower case (``str.lower()``), or -1 where that is not one code
    point or depends on the neighbours (Σ); and whether ``re``'s ``\\w`` matches it."""
    word = re.compile(r"(?u)\w")
    points = range(0x110000)
    lowers = map(str.lower, map(chr, points))
    lower = np.fromiter(
        (ord(c) if len(c) == 1 and p != 0x3A3 else -1 for p, c in zip(points, lowers, strict=True)),
        np.int32,
        0x110000,
    )
    is_word = np.fromiter((word.match(chr(p)) is not None for p in points), bool, 0x110000)
    return lower, is_word


def _sklearn_counts(texts: pa.Array, n_features: int):
    """The rows HashingVectorizer gives ``texts`` before it normalises them."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(
        n_features=n_features, ngram_range=(1, 2), alternate_sign=False, norm=None
    )
    return vectorizer.transform(texts.to_pylist())


def _assemble(parts, bounds: np.ndarray, fallback: np.ndarray, others, n_features: int):
    """One CSR matrix of the kernel's chunks (rows bounds[k] to bounds[k + 1]), with the rows
    of ``others`` at the rows ``fallback`` (empty in the chunks): each value copied once.
    The matrix's arrays come from numba's allocator: numpy's asks the kernel for huge pages,
    which a fragmented machine compacts memory for on first touch (10x slower here)."""
    from scipy import sparse

    row_nnz = np.concatenate([part[0] for part in parts])
    within = np.concatenate([[0], np.cumsum(row_nnz)])  # where rows start in the chunks' run
    if others is not None:
        row_nnz[fallback] = np.diff(others.indptr)
    nnz = int(row_nnz.sum())
    dtype = np.int32 if nnz <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(len(row_nnz) + 1, dtype)
    np.cumsum(row_nnz, out=indptr[1:])
    indices, data = _empty(nnz, np.zeros(0, dtype)), _empty(nnz, np.zeros(0, np.float64))
    # Runs of rows inside one chunk and between fallback rows move by one shift each (a
    # fallback row is a run of its own, with nothing in the chunks).
    cuts = np.unique(np.concatenate([bounds, fallback, fallback + 1]))
    for first, last in zip(cuts[:-1], cuts[1:], strict=True):
        chunk = np.searchsorted(bounds, first, side="right") - 1
        source = slice(within[first] - within[bounds[chunk]], within[last] - within[bounds[chunk]])
        target = slice(indptr[first], indptr[first] + source.stop - source.start)
        indices[target], data[target] = parts[chunk][2][source], parts[chunk][3][source]
    for k, row in enumerate(fallback):
        target, source = slice(indptr[row], indptr[row + 1]), slice(*others.indptr[k : k + 2])
        indices[target], data[target] = others.indices[source], others.data[source]
    return sparse.csr_matrix((data, indices, indptr), shape=(len(row_nnz), n_features))


def _chunk_bounds(offsets: np.ndarray, threads: int) -> np.ndarray:
    """Row bounds of chunks of about equal text: a few per thread (texts vary in length), and
    at most CHUNK_BYTES each."""
    n = len(offsets) - 1
    size = int(offsets[-1] - offsets[0])
    chunks = max(4 * max(1, threads), -(-size // CHUNK_BYTES))
    cuts = np.searchsorted(offsets, np.linspace(offsets[0], offsets[-1], chunks + 1)[1:-1])
    return np.unique(np.concatenate([[0], np.minimum(cuts, n), [n]]))


@njit(cache=True, nogil=True)
def _empty(size, like):
    return np.empty(size, like.dtype)


@njit(cache=True, nogil=True, inline="always")
def _is_word(b) -> bool:
    return (48 <= b <= 57) or (65 <= b <= 90) or (97 <= b <= 122) or b == 95


@njit(cache=True, nogil=True, inline="always")
def _decode(data, i, end):
    """The code point whose UTF-8 encoding starts at data[i] (not ASCII), and its length in
    bytes; -1 where the bytes are not UTF-8's."""
    b = np.int64(data[i])
    more = 1 if b < 0xE0 else (2 if b < 0xF0 else 3)
    if b < 0xC0 or b >= 0xF8 or i + more >= end:
        return -1, 1
    point = b & (0x1F if more == 1 else (0x0F if more == 2 else 0x07))
    for j in range(i + 1, i + 1 + more):
        if data[j] & 0xC0 != 0x80:
            return -1, 1
        point = (point << 6) | (np.int64(data[j]) & 0x3F)
    return (point if point < 0x110000 else -1), more + 1


@njit(cache=True, nogil=True, inline="always")
def _encode(point, out, at):
    """``point`` in UTF-8 at out[at:]; the new end."""
    if point < 0x80:
        out[at] = point
        return at + 1
    if point < 0x800:
        out[at], out[at + 1] = 0xC0 | (point >> 6), 0x80 | (point & 0x3F)
        return at + 2
    if point < 0x10000:
        out[at], out[at + 1] = 0xE0 | (point >> 12), 0x80 | ((point >> 6) & 0x3F)
        out[at + 2] = 0x80 | (point & 0x3F)
        return at + 3
    out[at], out[at + 1] = 0xF0 | (point >> 18), 0x80 | ((point >> 12) & 0x3F)
    out[at + 2], out[at + 3] = 0x80 | ((point >> 6) & 0x3F), 0x80 | (point & 0x3F)
    return at + 4


@njit(cache=True, nogil=True)
def _lower_tokens(data, start, end, lower, word, low, starts, ends):
    """data[start:end] lower-cased into ``low`` (UTF-8), and its maximal runs of two or more
    word characters, their bounds in ``low`` into starts and ends; their number, or -1 when a
    character's lower case is not in ``lower`` (or the bytes are not UTF-8)."""
    count, run, chars, at = 0, 0, 0, 0
    i = start
    while i <= end:
        if i == end:
            size, width, is_word = 0, 1, False  # the end closes the last run
        elif data[i] < 0x80:
            b = data[i]
            low[at] = b + 32 if 65 <= b <= 90 else b
            size, width, is_word = 1, 1, _is_word(b)
        else:
            point, width = _decode(data, i, end)
            if point < 0 or lower[point] < 0:
                return -1
            size = _encode(lower[point], low, at) - at
            is_word = word[lower[point]]
        if is_word:
            run = at if chars == 0 else run
            chars += 1
        else:
            if chars >= 2:
                starts[count], ends[count] = run, at
                count += 1
            chars = 0
        at += size
        i += width
    return count


@njit(cache=True, nogil=True, inline="always")
def _rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & _MASK


@njit(cache=True, nogil=True)
def _murmur3_32(key, start, end):
    """MurmurHash3_x86_32 of ``key[start:end]`` with seed 0, as a signed 32-bit value
    (scikit-learn's murmurhash3_32). Int64 arithmetic masked to 32 bits."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = 0
    length = end - start
    blocks = length // 4
    for i in range(blocks):
        j = start + 4 * i
        k = np.int64(key[j]) | (np.int64(key[j + 1]) << 8) | (np.int64(key[j + 2]) << 16)
        k |= np.int64(key[j + 3]) << 24
        k = _rotl((k * c1) & _MASK, 15)
        h ^= (k * c2) & _MASK
        h = (_rotl(h, 13) * 5 + 0xE6546B64) & _MASK
    tail = start + 4 * blocks
    k = np.int64(0)
    rest = length & 3
    if rest == 3:
        k ^= np.int64(key[tail + 2]) << 16
    if rest >= 2:
        k ^= np.int64(key[tail + 1]) << 8
    if rest >= 1:
        k ^= np.int64(key[tail])
        k = _rotl((k * c1) & _MASK, 15)
        h ^= (k * c2) & _MASK
    h ^= length
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h >= (1 << 31) else h


@njit(cache=True, nogil=True, inline="always")
def _column(h, n_features):
    """scikit-learn's column of a signed hash: abs(h) % n_features, with abs(-2**31) taken
    as 2**31 (its _hashing_fast.transform)."""
    if h == -(1 << 31):
        return (2147483647 - (n_features - 1)) % n_features
    return abs(h) % n_features


@njit(cache=True, nogil=True)
def _hash_rows(offsets, data, lower, word, n_features):
    """Per row: the number of distinct columns and whether the kernel hashed the text, then
    the columns (sorted per row) and their counts, for the rows it hashed (others left empty:
    texts whose lower case the tables do not give)."""
    n = len(offsets) - 1
    longest = np.max(offsets[1:] - offsets[:-1])
    starts = np.empty(longest // 2 + 1, np.int64)
    ends = np.empty(longest // 2 + 1, np.int64)
    low = np.empty(2 * longest + 2, np.uint8)  # a text's lower case (up to 3/2 its bytes)
    key = np.empty(2 * longest + 2, np.uint8)
    columns = np.empty(longest + 1, np.int32)
    # A count and a bit per column, unless there are too many columns to hold per thread:
    # then rows are counted by sorting (_count_sorted).
    tallied = n_features <= _MOST_TALLIED
    tally = np.zeros(n_features if tallied else 0, np.int32)
    bits = np.zeros(-(-n_features // 32) if tallied else 0, np.int64)
    row_nnz = np.zeros(n, np.int64)
    hashed = np.ones(n, np.bool_)
    indices = np.empty((offsets[-1] - offsets[0]) // 4 + 16, np.int32)
    counts = np.empty(len(indices), np.float64)
    at = 0
    for row in range(n):
        tokens = _lower_tokens(data, offsets[row], offsets[row + 1], lower, word, low, starts, ends)
        if tokens < 0:  # scikit-learn's row goes here (_assemble)
            hashed[row] = False
            continue
        features = _hash_tokens(low, starts, ends, tokens, key, columns, n_features)
        if at + features > len(indices):  # grow: the estimate above was short
            indices = _grown(indices, at, at + features)
            counts = _grown(counts, at, at + features)
        first = at
        at = _count_sorted(columns, features, tally, bits, indices, counts, at)
        row_nnz[row] = at - first
    return row_nnz, hashed, indices[:at], counts[:at]


@njit(cache=True, nogil=True)
def _hash_tokens(low, starts, ends, tokens, key, columns, n_features):
    """The columns of the tokens (bounds in ``low``) and of each pair of consecutive ones
    joined by a space, into columns; their number."""
    for t in range(tokens):
        columns[t] = _column(_murmur3_32(low, starts[t], ends[t]), n_features)
    features = tokens
    for t in range(tokens - 1):
        if starts[t + 1] == ends[t] + 1 and low[ends[t]] == 32:
            h = _murmur3_32(low, starts[t], ends[t + 1])  # already "first second" in the text
        else:
            first = ends[t] - starts[t]
            key[:first] = low[starts[t] : ends[t]]
            key[first] = 32
            length = first + 1 + ends[t + 1] - starts[t + 1]
            key[first + 1 : length] = low[starts[t + 1] : ends[t + 1]]
            h = _murmur3_32(key, 0, length)
        columns[features] = _column(h, n_features)
        features += 1
    return features


@njit(cache=True, nogil=True)
def _grown(values, used, needed):
    """``values`` in a buffer at least twice as long and ``needed`` long, its first ``used``
    kept."""
    grown = np.empty(max(2 * len(values), needed), values.dtype)
    grown[:used] = values[:used]
    return grown


# The index of a 32-bit word's one set bit, from its product with a de Bruijn sequence.
_DE_BRUIJN = np.array(
    [0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8]
    + [31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9],
    np.int64,
)


@njit(cache=True, nogil=True)
def _count_sorted(columns, features, tally, bits, indices, counts, at):
    """The distinct values of columns[:features] in increasing order into indices[at:], how
    often each into counts[at:]; returns the new end. tally (a count per column) and bits (a
    bit per column, 32 a word) are zeros before and after. Sorting is O(features log
    features), a scan of the bits O(columns / 32): the bits unless the row is short."""
    if 4 * features < len(bits) or len(tally) == 0:
        ordered = np.sort(columns[:features])
        for i in range(features):
            if i and ordered[i] == ordered[i - 1]:
                counts[at - 1] += 1.0
            else:
                indices[at], counts[at] = ordered[i], 1.0
                at += 1
        return at
    for i in range(features):
        column = columns[i]
        tally[column] += 1
        bits[column >> 5] |= np.int64(1) << (column & 31)
    for w in range(len(bits)):
        word = bits[w]
        while word:
            low = word & -word
            column = (w << 5) + _DE_BRUIJN[((low * 0x077CB531) & _MASK) >> 27]
            indices[at], counts[at] = column, tally[column]
            tally[column] = 0
            at += 1
            word ^= low
        bits[w] = 0
    return at
