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
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from numba import njit

from prefaudit.kernels import encode, large_strings, splitmix64, string_buffers

if TYPE_CHECKING:
    from scipy import sparse

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
    of ``others`` at the rows ``fallback`` (empty in the chunks): each value copied once, and
    each chunk let go (``parts[k] = None``) once copied, so that the chunks and the matrix
    are not all held at once (82 million values, 0.9 GiB each, for the 400,000 responses
    of the pairs fitted at a million).
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
    copied = 0  # chunks before this one are copied: their arrays are let go as we pass them
    for first, last in zip(cuts[:-1], cuts[1:], strict=True):
        chunk = np.searchsorted(bounds, first, side="right") - 1
        for done in range(copied, chunk):
            parts[done] = None
        copied = chunk
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
            size = encode(lower[point], low, at) - at
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
        return _run_lengths(np.sort(columns[:features]), indices, counts, at)
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


# -- counted words with a vocabulary ----------------------------------------------------------


def word_counts(
    texts,
    *,
    stop_words: str | Iterable[str] | None = None,
    bigrams: bool = False,
    dtype: type = np.int64,
) -> tuple[sparse.csr_matrix, dict[str, int]]:
    """Each text's words (and, with ``bigrams``, pairs of consecutive words), counted against
    a vocabulary learnt from the texts: ``(matrix, vocabulary)`` equal to scikit-learn's
    ``CountVectorizer(stop_words=stop_words, ngram_range=(1, 2 if bigrams else 1),
    dtype=dtype)``'s ``fit_transform(texts)`` and ``vocabulary_``, index for index and value
    for value (its columns in the terms' alphabetical order, each row's entries in the order
    scikit-learn leaves them).

    Words are found as :func:`hashed_words` finds them (``str.lower()``, then ``\\w\\w+``
    runs; texts holding İ or Σ are tokenised by Python's ``re``), stop words dropped before
    pairs are formed, and every word kept exactly (a table of their bytes, no hashing
    collisions). ``stop_words``: None, ``"english"`` or a collection of words. An empty
    vocabulary raises ValueError, as scikit-learn does.

    >>> from sklearn.feature_extraction.text import CountVectorizer
    >>> texts = ["The cat sat on the mat.", "A dog, the CAT!", "ΣΟΦΟΣ cat"]
    >>> ours, vocabulary = word_counts(texts, stop_words="english", bigrams=True)
    >>> theirs = CountVectorizer(stop_words="english", ngram_range=(1, 2))
    >>> expected = theirs.fit_transform(texts)
    >>> vocabulary == theirs.vocabulary_, (ours != expected).nnz
    (True, 0)
    >>> bool((ours.indices == expected.indices).all())
    True
    """
    from scipy import sparse

    array = large_strings(texts)
    stops = _stop_words(stop_words)
    offsets, data = string_buffers(array)
    lower, word = _unicode_tables()
    side = _python_tokens(array, lower)
    found = _count_words(offsets, data, lower, word, *side, *stops, bigrams)
    row_nnz, old, counts, store, token_bounds, feature_tokens = found
    if not len(feature_tokens):
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    words = [
        store[token_bounds[t] : token_bounds[t + 1]].tobytes().decode()
        for t in range(len(token_bounds) - 1)
    ]
    terms = [
        words[first] if second < 0 else f"{words[first]} {words[second]}"
        for first, second in feature_tokens.tolist()
    ]
    order = sorted(range(len(terms)), key=terms.__getitem__)
    rank = np.empty(len(terms), np.int32)
    rank[order] = np.arange(len(terms), dtype=np.int32)
    index_type = np.int32 if len(old) <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(len(row_nnz) + 1, index_type)
    np.cumsum(row_nnz, out=indptr[1:])
    matrix = sparse.csr_matrix(
        (counts.astype(dtype), rank[old].astype(index_type), indptr),
        shape=(len(row_nnz), len(terms)),
    )
    return matrix, {terms[k]: int(rank[k]) for k in range(len(terms))}


def _stop_words(stop_words) -> tuple[np.ndarray, np.ndarray]:
    """The stop words' UTF-8 bytes one after another, and their bounds (word k is
    ``data[bounds[k]:bounds[k + 1]]``): writable copies, as the kernel reads them through
    the variable it reads the texts' lower case through."""
    if stop_words == "english":
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        stop_words = ENGLISH_STOP_WORDS
    elif isinstance(stop_words, str):
        raise ValueError(
            f"word_counts: stop_words must be None, 'english' or a list, got {stop_words!r}"
        )
    words = [w.encode() for w in sorted(set(stop_words or ()))]
    bounds = np.zeros(len(words) + 1, np.int64)
    np.cumsum([len(w) for w in words], out=bounds[1:])
    return np.frombuffer(b"".join(words), np.uint8).copy(), bounds


_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _python_tokens(array: pa.Array, lower: np.ndarray) -> tuple[np.ndarray, ...]:
    """The tokens of the texts whose lower case the kernel's table does not give (İ, Σ), as
    scikit-learn's analyzer finds them: ``(data, starts, rows)``, the tokens' UTF-8 bytes one
    after another (token k is ``data[starts[k]:starts[k + 1]]``), and text i's tokens
    numbered ``rows[i]`` to ``rows[i + 1]`` (none for the other texts)."""
    import pyarrow.compute as pc

    unknown = "".join(chr(p) for p in np.flatnonzero(lower < 0))
    marked = pc.match_substring_regex(array, f"[{re.escape(unknown)}]").fill_null(False)
    tokens: list[bytes] = []
    per_row = np.zeros(len(array) + 1, np.int64)
    for row in np.flatnonzero(marked.to_numpy(zero_copy_only=False)):
        found = [t.encode() for t in _TOKEN.findall(array[int(row)].as_py().lower())]
        tokens.extend(found)
        per_row[row + 1] = len(found)
    starts = np.zeros(len(tokens) + 1, np.int64)
    np.cumsum([len(t) for t in tokens], out=starts[1:])
    data = np.frombuffer(b"".join(tokens), np.uint8).copy() if tokens else np.zeros(0, np.uint8)
    return data, starts, np.cumsum(per_row)


@njit(cache=True, nogil=True, inline="always")
def _bytes_hash(key, start, end):
    """FNV-1a of ``key[start:end]``, finished by splitmix64's mixer."""
    h = np.uint64(0xCBF29CE484222325)
    for i in range(start, end):
        h = (h ^ np.uint64(key[i])) * np.uint64(0x100000001B3)
    return splitmix64(h)


@njit(cache=True, nogil=True, inline="always")
def _pair_hash(first, second):
    """A hash of the feature (first, second) of two token numbers (second -1: one word)."""
    return splitmix64(np.uint64(first) * np.uint64(0x100000001B3) + np.uint64(second + 1))


@njit(cache=True, nogil=True, inline="always")
def _insert(slots, h, value):
    """``value`` into the first empty slot from ``h`` on (linear probing; -1 is empty)."""
    mask = np.uint64(len(slots) - 1)
    i = h & mask
    while slots[i] >= 0:
        i = (i + np.uint64(1)) & mask
    slots[i] = value


@njit(cache=True, nogil=True)
def _rehashed(hashes, used, capacity):
    """An open-addressing table of ``capacity`` slots (a power of two) holding 0..used-1 at
    their ``hashes``."""
    slots = np.full(capacity, -1, np.int64)
    for k in range(used):
        _insert(slots, hashes[k], k)
    return slots


@njit(cache=True, nogil=True)
def _count_words(
    offsets, data, lower, word, side_data, side_starts, side_rows, stops, stop_bounds, bigrams
):
    """The kernel of :func:`word_counts`. Returns per row the number of distinct features;
    each row's feature numbers (in order of first appearance in the texts, each row
    ascending, as scikit-learn's ``sort_indices`` leaves them before it renumbers them
    alphabetically) and counts; the tokens' bytes and bounds; and each feature's tokens
    (the second -1 for a single word)."""
    n = len(offsets) - 1
    longest = 1
    for row in range(n):
        longest = max(longest, offsets[row + 1] - offsets[row])
        longest = max(longest, side_starts[side_rows[row + 1]] - side_starts[side_rows[row]])
    # A text's tokens: fewer than its bytes (the stop words are read as one text).
    most = max(longest, len(stop_bounds)) + 1
    low = np.empty(2 * longest + 2, np.uint8)
    starts, ends = np.empty(most, np.int64), np.empty(most, np.int64)
    kept, features = np.empty(most, np.int64), np.empty(2 * most, np.int64)
    tokens = _token_table()
    size = len(stop_bounds) - 1  # the stop words first: tokens that never become features
    starts[:size], ends[:size] = stop_bounds[:-1], stop_bounds[1:]
    _, tokens = _token_ids(stops, starts, ends, size, True, tokens, kept)
    table = _feature_table()
    row_nnz = np.zeros(n, np.int64)
    old, counts, at = np.empty(1 << 16, np.int64), np.empty(1 << 16, np.int64), 0
    for row in range(n):
        size = _lower_tokens(data, offsets[row], offsets[row + 1], lower, word, low, starts, ends)
        source = low
        if size < 0:  # tokenised by Python
            size = side_rows[row + 1] - side_rows[row]
            for t in range(size):
                k = side_rows[row] + t
                starts[t], ends[t] = side_starts[k], side_starts[k + 1]
            source = side_data
        words, tokens = _token_ids(source, starts, ends, size, False, tokens, kept)
        total, table = _row_features(kept, words, bigrams, tokens[4], table, features)
        old, counts, at, row_nnz[row] = _counted(features, total, old, counts, at)
    store, bounds, used = tokens[0], tokens[1], tokens[6]
    first, second, count = table[0], table[1], table[4]
    pairs = np.empty((count, 2), np.int64)
    pairs[:, 0], pairs[:, 1] = first[:count], second[:count]
    return row_nnz, old[:at], counts[:at], store[: bounds[used]], bounds[: used + 1], pairs


@njit(cache=True, nogil=True)
def _token_table():
    """An empty table of tokens: their bytes (token t at store[bounds[t]:bounds[t + 1]]),
    their hashes, whether they are stop words, their feature as a single word (-1: none
    yet), the slots they are found through, and their number."""
    size = 1 << 12
    return (
        np.empty(1 << 16, np.uint8),
        np.zeros(size, np.int64),
        np.empty(size, np.uint64),
        np.zeros(size, np.bool_),
        np.full(size, -1, np.int64),
        np.full(2 * size, -1, np.int64),
        0,
    )


@njit(cache=True, nogil=True)
def _token_ids(source, starts, ends, size, stop, tokens, kept):
    """The tokens ``source[starts[t]:ends[t]]`` (t < size) looked up in the table
    ``tokens`` and added where new (as stop words when ``stop``); those that are not stop
    words into ``kept``. Returns how many were kept, and the table."""
    store, bounds, hashes, is_stop, single, slots, used = tokens
    words = 0
    for t in range(size):
        start, end = starts[t], ends[t]
        h = _bytes_hash(source, start, end)
        found, slot = _find_token(store, bounds, hashes, slots, source, start, end, h)
        if found < 0:
            found = used
            if used + 2 > len(bounds):
                bounds = _grown(bounds, used + 1, used + 2)
                hashes, is_stop = _grown(hashes, used, used + 1), _grown(is_stop, used, used + 1)
                single = _grown(single, used, used + 1)
                single[used:] = -1
            if bounds[used] + end - start > len(store):
                store = _grown(store, bounds[used], bounds[used] + end - start)
            store[bounds[used] : bounds[used] + end - start] = source[start:end]
            bounds[used + 1] = bounds[used] + end - start
            hashes[used], is_stop[used], single[used] = h, stop, -1
            used += 1
            if 2 * used > len(slots):  # half full: twice as large
                slots = _rehashed(hashes, used, 2 * len(slots))
            else:
                slots[slot] = found
        if not is_stop[found]:
            kept[words] = found
            words += 1
    return words, (store, bounds, hashes, is_stop, single, slots, used)


@njit(cache=True, nogil=True, inline="always")
def _find_token(store, bounds, hashes, slots, source, start, end, h):
    """The token equal to ``source[start:end]`` (hash h), or -1; and the slot where the
    search ended."""
    mask = np.uint64(len(slots) - 1)
    i = h & mask
    while slots[i] >= 0:
        k = slots[i]
        if hashes[k] == h and bounds[k + 1] - bounds[k] == end - start:
            same = True
            for j in range(end - start):
                if store[bounds[k] + j] != source[start + j]:
                    same = False
                    break
            if same:
                return k, i
        i = (i + np.uint64(1)) & mask
    return -1, i


@njit(cache=True, nogil=True)
def _feature_table():
    """An empty table of features: each one's tokens (the second -1 for a single word), its
    hash, the slots every feature is found through, and their number."""
    size = 1 << 12
    empty = np.empty(size, np.int64)
    return empty, empty.copy(), np.empty(size, np.uint64), np.full(2 * size, -1, np.int64), 0


@njit(cache=True, nogil=True)
def _row_features(kept, words, bigrams, single, table, features):
    """A row's features into ``features``: its words, then (``bigrams``) each pair of
    consecutive words, new ones added to ``table``. Returns their number, and the table."""
    for t in range(words):
        token = kept[t]
        if single[token] < 0:
            single[token], table = _new_feature(table, token, -1, _pair_hash(token, -1))
        features[t] = single[token]
    total = words
    for t in range(words - 1 if bigrams else 0):
        a, b = kept[t], kept[t + 1]
        first, second, _, slots, _ = table
        h = _pair_hash(a, b)
        mask = np.uint64(len(slots) - 1)
        i = h & mask
        found = -1
        while slots[i] >= 0:
            if first[slots[i]] == a and second[slots[i]] == b:
                found = slots[i]
                break
            i = (i + np.uint64(1)) & mask
        if found < 0:
            found, table = _new_feature(table, a, b, h)
        features[total] = found
        total += 1
    return total, table


@njit(cache=True, nogil=True)
def _new_feature(table, a, b, h):
    """Feature (a, b) of hash h added to ``table``: its number, and the table."""
    first, second, hashes, slots, count = table
    if count == len(first):
        first, second = _grown(first, count, count + 1), _grown(second, count, count + 1)
        hashes = _grown(hashes, count, count + 1)
    first[count], second[count], hashes[count] = a, b, h
    _insert(slots, h, count)
    count += 1
    if 2 * count > len(slots):  # half full: twice as large
        slots = _rehashed(hashes, count, 2 * len(slots))
    return count - 1, (first, second, hashes, slots, count)


@njit(cache=True, nogil=True)
def _counted(features, total, old, counts, at):
    """The distinct values of features[:total] ascending into old[at:], how often each into
    counts[at:] (both grown when short). Returns old, counts, the new end, and how many."""
    if at + total > len(old):
        old, counts = _grown(old, at, at + total), _grown(counts, at, at + total)
    end = _run_lengths(np.sort(features[:total]), old, counts, at)
    return old, counts, end, end - at


@njit(cache=True, nogil=True)
def _run_lengths(ordered, values, counts, at):
    """Each distinct value of the sorted ``ordered`` into values[at:], how often it comes
    into counts[at:]; returns the new end."""
    for i in range(len(ordered)):
        if i and ordered[i] == ordered[i - 1]:
            counts[at - 1] += 1
        else:
            values[at], counts[at] = ordered[i], 1
            at += 1
    return at
