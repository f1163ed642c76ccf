"""Near-duplicate search: MinHash LSH with exact verification, and blocked cosine search.

MinHash estimates the Jaccard similarity of two texts' shingle sets; locality-sensitive hashing
(LSH) splits each signature into bands so that similar texts share at least one band with high
probability. The per-text and per-pair work runs in compiled loops (:mod:`prefaudit.kernels`,
numba, on threads), the rest on whole arrays; never one Python object per text:

1. Shingles are byte k-grams of the normalised UTF-8 text, read from Arrow's data buffer
   (k <= 8 bytes fit in 64 bits exactly, so packing is collision-free) and mixed to 32 bits;
   each text's distinct shingles are its set. For signatures the set is found with a hash set,
   in no order, and only for texts of ``2 * num_perm`` shingles or more (minima depend on
   neither order nor repeats; the distinct count only chooses the scheme below); the exact
   check sorts it. About 2 MB of text is shingled at a time on threads and only its
   signatures are kept, so memory stays flat.
2. Signatures: for texts of fewer than ``2 * num_perm / threshold`` distinct shingles,
   ``num_perm`` affine permutations ``a * h + b (mod 2**32)`` of every shingle hash, the least
   of each kept (four shingles per pass over the permutations, vectorised); for texts of at
   least ``2 * num_perm``, one-permutation signatures (each shingle hashed once into one of
   ``num_perm`` bins), which cost one hash per shingle instead
   of ``num_perm``. Texts in between get both, so two texts at the threshold always share a
   kind.
3. Candidates: texts whose band keys are equal (per kind): every band's keys in one pass over
   the signatures, then each band's shared keys found with hash tables over parts of its keys
   (bands on threads).
4. Verification: candidates whose signatures agree on at least ``threshold - slack`` of the
   positions get their exact shingle-set Jaccard computed (the two sorted sets merged); only
   pairs at or above the threshold are kept. The banding is tuned for recall (it lets through
   many more candidates than it keeps), and the exact check makes precision against the
   threshold exact.

5. Groups (:func:`near_duplicate_groups`, what the duplication validator uses): the same
   candidates and checks, band by band, each pair met once (from the first band that proposes
   it: every band's keys and bucket ranks are held, 12 bytes per text and band, not the
   pairs), each link joining two groups of a union-find. Groups of many near copies make
   links by the square of their size; past ``_KEPT_LINKS`` links, no more are kept and pairs
   whose texts are in one group already are not checked, which leaves the groups as they are.
   With the budget passed, ``ask`` says whether given pairs are links, with the same keys.

datasketch's ``MinHashLSH`` does steps 2-3 with a Python object per text and returns unverified
candidates; rensa (Rust) does them natively and flags texts that share a band, without pairs;
``benchmarks/bench_duplication.py`` times all three on the same texts, with peak memory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefaudit import kernels
from prefaudit.errors import SettingError
from prefaudit.text import CHUNK_ROWS, default_threads, normalize

_SIGNATURE_CHUNK = 65_536  # shingles per block of texts signed on one thread
_SHINGLE_CHUNK = 2_000_000  # bytes of text shingled at a time (~8 MB of hashes each)
# Texts with at least this many distinct shingles per permutation get one-permutation
# signatures: with twice as many shingles as bins, 13.5% of the bins are empty on average, and
# the estimate is as good (20,000 edited pairs of 225-780 distinct shingles: error 0.033 SD
# against 0.037 for 128 permutations). Below, empty bins borrow from neighbours so often that
# bands of unrelated short texts collide.
_FILL = 2
_PAIRS_ON_ONE_THREAD = 10_000  # fewer pairs than this are compared without a thread pool
_MAX_BUCKET_WINDOW = 64  # in a band bucket larger than this, a text meets 64 on each side
# Near-duplicate links near_duplicate_groups keeps (24 bytes each) before it stops keeping them
# and skips the pairs whose texts are in one group already.
_KEPT_LINKS = 5_000_000
# Bytes of text up to which ComparableTexts holds the texts normalised; above, it normalises them
# again as they are read, which costs time for memory. On the million benchmark pairs the
# prompts (0.65 GB) are held; the 2,000,000 responses (1.9 GB) are read: with the code of the
# eighth session `duplication` took 447-482 s (two runs) against 446 s held (one run), and
# the response search peaked at 7.15-7.22 GiB against 9.58 GiB (benchmarks/README).
_HELD_BYTES = 1 << 30
_PROPOSAL_CHUNK = 1 << 21  # candidate pairs of one band judged at a time
_DOUBT_PAIRS = 1 << 22  # pairs in doubt gathered before their exact check
# The same once pairs whose texts are in one group already are skipped (past the budget of
# links). Smaller batches skip more pairs (the groups they join are known sooner) but shingle
# each text again more often. On the million benchmark prompts (the prompt search alone, one
# run each, before the review fixes; benchmarks/README, ninth session): batches of 65,536
# checked 25.6 million pairs, shingled 9.1 million texts and took 146.6 s; of 1,048,576,
# 26.5 million, 6.1 million and 138.4 s; of 4,194,304, 163.8 s. Read texts are normalised
# again each time they are shingled, too.
_DOUBT_PAIRS_SKIPPING = 1 << 20
# Bytes of text whose shingle sets one exact check holds at most (as fast as 256 MB on
# 600,000 benchmark responses, and 1 GB less at the peak).
_CHECK_BYTES = 64 << 20


def comparable(texts, rows: np.ndarray | None = None) -> pa.Array:
    """Texts (at ``rows``, all when None) as near-duplicate search compares them: normalised
    (:func:`prefaudit.text.normalize`) with punctuation removed, since added or dropped commas
    and marks say nothing about whether two texts are copies.

    A chunk of rows at a time on threads, as text_features does: one chunk's copies at a time.

    >>> comparable(["Hello,  World!!", "hello world"]).to_pylist()
    ['hello world', 'hello world']
    """
    array = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else kernels.large_strings(texts)
    n = len(array) if rows is None else len(rows)

    def part(start: int) -> pa.Array:
        if rows is None:
            piece = array.slice(start, CHUNK_ROWS)
        else:
            piece = kernels.take_rows(array, rows[start : start + CHUNK_ROWS])
        return normalize(piece, drop_punctuation=True).cast(pa.large_string())

    if n <= CHUNK_ROWS:
        return part(0)
    with ThreadPoolExecutor(default_threads()) as pool:
        return _joined(list(pool.map(part, range(0, n, CHUNK_ROWS))))


class ComparableTexts:
    """Texts (``rows`` of them, all when None) as :func:`comparable` makes them (missing ones
    empty), for the search. Up to ``_HELD_BYTES`` of text before normalising (1 GiB: of the
    million benchmark pairs, the prompts, 0.65 GB, and not the responses, 1.9 GB) they are
    normalised once and held. Beyond, they are never held all at once: each is normalised
    when read, once to sign it and again for each exact check, a block of texts at a time.
    Each text's word count is noted as it is read (:attr:`words`, for rules on short texts).

    >>> c = ComparableTexts(["Hello,  World!!", "skip", "hello world, again"], np.array([0, 2]))
    >>> len(c), c.read(np.array([1, 0])).to_pylist(), c.words.tolist()
    (2, ['hello world again', 'hello world'], [2, 3])
    """

    def __init__(self, texts, rows: np.ndarray | None = None):
        self._texts = (
            texts
            if isinstance(texts, pa.Array | pa.ChunkedArray)
            else pa.array(texts, type=pa.large_string())
        )
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        raw = pc.fill_null(pc.binary_length(self._texts), 0).to_numpy().astype(np.int64)
        # Each text's bytes (before normalising until they are held): what chunks and blocks
        # of texts are cut by.
        self.lengths = raw if self._rows is None else raw[self._rows]
        self._words = np.full(len(self.lengths), -1, np.int64)
        self._counted = False
        self._held: _Held | None = None
        if self.lengths.sum() <= _HELD_BYTES:
            self._held = _Held(self.read(slice(None)))
            self.lengths = self._held.lengths

    def __len__(self) -> int:
        return len(self._words)

    @property
    def held(self) -> bool:
        """Whether the texts are held normalised (else normalised as they are read)."""
        return self._held is not None

    def read(self, at: np.ndarray | slice) -> pa.Array:
        """The comparable texts at positions ``at`` (an array of positions, or a slice)."""
        if self._held is not None:
            return self._held.read(at)
        if isinstance(at, slice):
            positions = np.arange(*at.indices(len(self)))
        else:
            positions = np.asarray(at, dtype=np.int64)
        rows = positions if self._rows is None else self._rows[positions]
        normal = kernels.large_strings(comparable(self._texts, rows))
        spaces = pc.fill_null(pc.count_substring(normal, " "), 0).to_numpy(zero_copy_only=False)
        self._words[positions] = spaces + 1
        return normal

    def spans(self, at: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The UTF-8 bytes of the texts at ``at`` and where each begins and ends in them."""
        if self._held is not None:
            return self._held.spans(at)
        offsets, data = kernels.string_buffers(self.read(at))
        return data, offsets[:-1], offsets[1:]

    def slice(self, start: int, length: int) -> pa.Array:
        """The comparable texts ``start`` to ``start + length`` (as ``pa.Array.slice``)."""
        return self.read(slice(start, start + length))

    @property
    def words(self) -> np.ndarray:
        """Each text's word count once normalised (texts not read yet are read for it); a
        read-only view."""
        if not self._counted:
            missing = np.flatnonzero(self._words < 0)
            for lo in range(0, len(missing), CHUNK_ROWS * 8):
                self.read(missing[lo : lo + CHUNK_ROWS * 8])
            self._counted = True
        view = self._words.view()
        view.flags.writeable = False
        return view


class _Held:
    """Texts held as given (compared as they are): :class:`ComparableTexts`'s reading, in
    place."""

    def __init__(self, texts):
        self.array = kernels.large_strings(texts)
        self.offsets, self.data = kernels.string_buffers(self.array)
        self.lengths = np.diff(self.offsets)  # each text's bytes

    def __len__(self) -> int:
        return len(self.array)

    def read(self, at: np.ndarray | slice) -> pa.Array:
        if isinstance(at, slice):
            return self.array[at]
        return self.array.take(pa.array(np.asarray(at, dtype=np.int64)))

    def spans(self, at: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if isinstance(at, slice):
            return self.data, self.offsets[:-1][at], self.offsets[1:][at]
        return self.data, self.offsets[at], self.offsets[np.asarray(at) + 1]


def _source(texts) -> ComparableTexts | _Held:
    """The texts a search reads: a :class:`ComparableTexts` as it is, any other texts held."""
    return texts if isinstance(texts, ComparableTexts | _Held) else _Held(texts)


def _joined(parts: list[pa.Array]) -> pa.Array:
    """The large-string arrays ``parts`` (emptied) as one, each part given back once it is
    copied: the texts once and a few parts in memory, where ``pa.concat_arrays`` holds every
    part and the copy (5 GB for the 2 million responses of a million pairs). Arrow's allocator
    keeps freed memory for itself, and what follows allocates with numpy, which cannot use it,
    so it is given back as the copy grows."""
    if any(part.null_count for part in parts):  # keep the missing texts missing
        joined = pa.concat_arrays(parts)
        parts.clear()
        pa.default_memory_pool().release_unused()
        return joined
    n = sum(len(part) for part in parts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    data = np.empty(sum(len(kernels.string_buffers(part)[1]) for part in parts), np.uint8)
    row = at = 0
    for k in range(len(parts)):
        part, parts[k] = parts[k], None
        part_offsets, part_data = kernels.string_buffers(part)
        data[at : at + len(part_data)] = part_data
        offsets[row + 1 : row + len(part) + 1] = part_offsets[1:] + at
        row, at = row + len(part), at + len(part_data)
        del part, part_offsets, part_data
        if k % 16 == 15:
            pa.default_memory_pool().release_unused()
    parts.clear()
    pa.default_memory_pool().release_unused()
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data[:at]))


@dataclass(frozen=True)
class Shingles:
    """The 32-bit shingle hashes of many texts, one run per text: ``hashes[offsets[i]:offsets[i+1]]``."""

    hashes: np.ndarray  # uint32
    offsets: np.ndarray  # int64, len(texts) + 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def unique(self) -> Shingles:
        """The same texts with each run sorted and repeated shingles removed (the shingle *set*)."""
        n = len(self.offsets) - 1
        keyed = np.repeat(np.arange(n, dtype=np.uint64), self.counts)
        keyed <<= np.uint64(32)
        keyed |= self.hashes
        keyed = _sorted_unique(keyed)
        # Sorted by owner: each text's run starts at the first key of its owner.
        offsets = np.searchsorted(keyed, np.arange(n + 1, dtype=np.uint64) << np.uint64(32))
        return Shingles(keyed.astype(np.uint32), offsets.astype(np.int64))


def shingle_sets(texts, size: int = 5) -> Shingles:
    """:func:`shingle` then :meth:`Shingles.unique`, in one pass per text (what the search uses).

    >>> shingle_sets(["abcabcabc", ""], size=3).counts.tolist()
    [3, 0]
    """
    return _shingled(texts, size, unique=True)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` for integers via one sort (numpy 2's ``unique`` is many times slower here)."""
    ordered = np.sort(values)
    if not len(ordered):
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def shingle(texts, size: int = 5) -> Shingles:
    """Hashes of the byte ``size``-grams of each text; a text shorter than ``size`` is one shingle.

    Texts should be normalised first (:func:`prefaudit.text.normalize`); empty texts get no
    shingles. For Latin-script text a byte is a character; other scripts take 2-4 bytes per
    character, so the same ``size`` spans fewer characters.

    >>> s = shingle(["abcdef", "abc", ""], size=5)
    >>> s.counts.tolist()
    [2, 1, 0]
    """
    return _shingled(texts, size, unique=False)


def _shingled(texts, size: int, unique: bool) -> Shingles:
    if not 1 <= size <= 8:
        raise SettingError(f"shingle size must be between 1 and 8 bytes, got {size}")
    array = pa.array(texts, type=pa.large_string()) if not isinstance(texts, pa.Array) else texts
    offsets, data = kernels.string_buffers(array.cast(pa.large_string()))
    # A window is its bytes read big-endian (k <= 8 bytes fit in 64 bits: collision-free),
    # tagged with k; a shorter text is one shingle tagged with its length (kernels.py).
    hashes, runs = kernels.shingle_hashes(data, offsets[:-1], offsets[1:], size, unique)
    return Shingles(hashes, runs)


def signatures(
    shingles: Shingles,
    num_perm: int = 128,
    seed: int = 0,
    threads: int | None = None,
    rows: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """MinHash signatures, shape (texts, num_perm), uint32; texts without shingles get all-max
    rows. ``rows``: only those texts, in that order (read in place). ``out``: the array to
    fill and return (a row per text), else a new one.

    >>> s = signatures(shingle(["the same text", "the same text", "other words"]), num_perm=16)
    >>> bool((s[0] == s[1]).all()), bool((s[0] == s[2]).all())
    (True, False)
    """
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 2**31, num_perm, dtype=np.uint64) * 2 + 1).astype(np.uint32)
    b = rng.integers(0, 2**32, num_perm, dtype=np.uint64).astype(np.uint32)
    begins, ends = _runs(shingles, rows)
    n = len(begins)
    out = _signature_array(out, n, num_perm)
    # Blocks of whole texts, about _SIGNATURE_CHUNK shingles each, on threads (the kernel
    # releases the GIL); each text is one loop over its shingles and the permutations.
    total = np.cumsum(ends - begins)
    cuts = np.searchsorted(total, np.arange(0, total[-1] if n else 0, _SIGNATURE_CHUNK))
    edges = np.unique(np.concatenate([[0], np.minimum(cuts, n), [n]]))

    def block(lo: int, hi: int) -> None:
        kernels.minhash(shingles.hashes, begins[lo:hi], ends[lo:hi], a, b, out[lo:hi])

    bounds = list(zip(edges[:-1], edges[1:], strict=True))
    if len(bounds) == 1 or threads == 1:
        for lo, hi in bounds:
            block(lo, hi)
        return out
    with ThreadPoolExecutor(threads or default_threads()) as pool:
        list(pool.map(lambda pair: block(*pair), bounds))
    return out


def one_permutation_signatures(
    shingles: Shingles,
    num_perm: int = 128,
    seed: int = 0,
    rows: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """One-permutation MinHash signatures (Li, Owen and Zhang, 2012), shape (texts, num_perm).

    Each shingle hash, mixed with the seed, falls into one of ``num_perm`` bins by its high
    bits, and a text's signature is its smallest hash in each bin: one hash per shingle instead
    of one per shingle and permutation. A bin the text leaves empty takes the next non-empty
    bin's value to its right (circularly), mixed with the distance ("densification by
    rotation", Shrivastava and Li, 2014), which keeps the chance that two texts agree at a
    position equal to their Jaccard similarity. With many empty bins (texts of fewer shingles
    than bins) the positions are correlated, so :func:`near_duplicate_pairs` uses these only
    for texts with at least twice as many shingles as bins. Texts without shingles get
    all-max rows. ``rows``: only those texts, in that order (read in place). ``out``: the
    array to fill and return (a row per text), else a new one.

    >>> texts = ["the same text, long enough to fill the bins " * 9] * 2 + ["other words " * 30]
    >>> s = one_permutation_signatures(shingle(texts).unique(), num_perm=16)
    >>> bool((s[0] == s[1]).all()), bool((s[0] == s[2]).any())
    (True, False)
    """
    begins, ends = _runs(shingles, rows)
    out = _signature_array(out, len(begins), num_perm)
    salt = np.random.default_rng(seed).integers(0, 2**63, dtype=np.uint64)
    kernels.one_permutation(shingles.hashes, begins, ends, np.uint64(salt), out)
    _densify(out, ends > begins)
    return out


def _signature_array(out: np.ndarray | None, texts: int, num_perm: int) -> np.ndarray:
    """``out`` (or a new array) checked to hold ``texts`` rows of ``num_perm`` uint32 (the
    kernels write without bounds checks), every value the maximum."""
    if out is None:
        out = np.empty((texts, num_perm), dtype=np.uint32)
    elif out.shape != (texts, num_perm) or out.dtype != np.uint32:
        raise ValueError(
            f"out must be a ({texts}, {num_perm}) uint32 array, got {out.shape} {out.dtype}"
        )
    out[...] = np.iinfo(np.uint32).max
    return out


def _runs(shingles: Shingles, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Where the shingles of each text (of ``rows``, or all) begin and end in ``hashes``."""
    if rows is None:
        return shingles.offsets[:-1], shingles.offsets[1:]
    return shingles.offsets[rows], shingles.offsets[rows + 1]


def _densify(sig: np.ndarray, present: np.ndarray) -> None:
    """Fill each empty bin of the texts ``present`` from the next non-empty bin to its right."""
    kernels.densify(sig, np.flatnonzero(present))


def lsh_bands(threshold: float, num_perm: int, min_recall: float = 0.985) -> tuple[int, int]:
    """(bands, rows): the most selective banding whose chance of making a pair at ``threshold``
    a candidate is at least ``min_recall`` (pairs above the threshold have better chances:
    0.998 at threshold + 0.05 for 0.6 and 128 permutations).

    >>> lsh_bands(0.6, 128), lsh_bands(0.7, 128)
    ((32, 4), (25, 5))
    """
    if not 0 < threshold < 1:
        raise SettingError(f"the Jaccard threshold must be between 0 and 1, got {threshold}")
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= min_recall:
            best = (bands, rows)
    return best


@dataclass(frozen=True)
class SimilarPairs:
    """Pairs of texts ``(left[k], right[k])`` with their similarity, ``left < right`` within one set."""

    left: np.ndarray
    right: np.ndarray
    similarity: np.ndarray
    candidates: int = 0  # pairs the index proposed before verification

    def __len__(self) -> int:
        return len(self.left)


def near_duplicate_pairs(
    texts,
    *,
    threshold: float = 0.7,
    shingle_size: int = 5,
    num_perm: int = 128,
    seed: int = 0,
    threads: int | None = None,
    slack: float = 0.1,
    sure: float = 0.2,
    candidates=None,
) -> SimilarPairs:
    """All pairs of (normalised) texts whose shingle-set Jaccard similarity is at least ``threshold``.

    Found with MinHash LSH. Candidates whose MinHash estimate is within ``slack`` below to
    ``sure`` above the threshold get their exact Jaccard computed and are kept if it reaches the
    threshold; those estimated ``sure`` or more above it are kept with the estimate (with 128
    permutations its error exceeds 0.2 about twice in a million pairs), which spares the exact
    check inside large groups of copies. With 128 permutations and a threshold of 0.6, a pair
    at Jaccard 0.6 is estimated below 0.5 (threshold - slack) 0.87% of the time (0.22% at
    0.62, 0.02% at 0.65), less often than the banding of :func:`lsh_bands` misses it (1.2%,
    0.6%, 0.2%); both together find 98.1% of the pairs at 0.6 (98.8% with a slack of 0.15),
    99.2% at 0.62 and 99.8% at 0.65. A slack of 0.15 checks about a third more pairs, nearly
    all of them below the threshold. Identical texts are pairs too (similarity 1); pass
    distinct texts when exact duplicates are handled elsewhere. Empty texts match nothing.
    ``candidates``: a function of the texts giving (left, right, MinHash estimate) of the
    candidate pairs found elsewhere (the Ray engine's band-join: the same pairs and estimates);
    the exact check then shingles only the texts in doubt.

    >>> p = near_duplicate_pairs(["the cat sat on the mat today", "the cat sat on the mat, today",
    ...                           "a completely different sentence"], threshold=0.6)
    >>> p.left.tolist(), p.right.tolist()
    ([0], [1])
    """
    source = _source(texts)
    if candidates is None:
        banding = lsh_bands(threshold, num_perm)  # first: it says what is wrong with threshold
        sketches = sketch(source, shingle_size, num_perm, seed, threads, threshold)
        left, right, similarity = sketches.candidates(*banding, threads=threads)
    else:
        left, right, similarity = candidates(texts)
    keep, similarity = _verified(
        source, left, right, similarity, threshold, slack, sure, shingle_size, threads
    )
    return SimilarPairs(left[keep], right[keep], similarity[keep], len(left))


def _verified(
    source: ComparableTexts | _Held,
    left: np.ndarray,
    right: np.ndarray,
    estimate: np.ndarray,
    threshold: float,
    slack: float,
    sure: float,
    size: int,
    threads: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate pairs are near duplicates, and their similarity: the MinHash
    ``estimate`` where it is ``sure`` or more above the threshold, else (from ``slack`` below
    it) the exact Jaccard of the pair's shingle sets (see :func:`near_duplicate_pairs`)."""
    similarity = estimate.astype(np.float64, copy=True)
    check = np.flatnonzero((similarity >= threshold - slack) & (similarity < threshold + sure))
    for block in _check_blocks(source, left[check], right[check]):
        at = check[block]
        similarity[at] = _exact(source, left[at], right[at], size, threads)
    return similarity >= threshold, similarity


def _exact(
    source: ComparableTexts | _Held,
    left: np.ndarray,
    right: np.ndarray,
    size: int,
    threads: int | None,
) -> np.ndarray:
    """The exact Jaccard similarity of each pair's shingle sets, each text involved shingled
    (again) once."""
    involved = _sorted_unique(np.concatenate([left, right]))
    sets = _sets(source, involved, size, threads)
    first, second = np.searchsorted(involved, left), np.searchsorted(involved, right)
    return jaccard(sets, first, second, threads=threads)


def _check_blocks(source: ComparableTexts | _Held, left: np.ndarray, right: np.ndarray):
    """The pairs to check exactly, in blocks whose distinct texts hold at most
    ``_CHECK_BYTES`` (their shingle sets take 4 bytes per byte of text): all at once when the
    texts they involve do. Else the texts are ordered so that linked ones sit close
    (reverse Cuthill-McKee on the pairs' graph), the pairs by the earlier of their two texts
    in that order, and cut where a block's texts would pass the bound
    (:func:`kernels.block_cuts`): texts that share many pairs then share blocks, and few are
    shingled more than once."""
    if not len(left):
        return
    involved = _sorted_unique(np.concatenate([left, right]))
    length = source.lengths[involved]
    if length.sum() <= _CHECK_BYTES:
        yield slice(None)
        return
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    a, b = np.searchsorted(involved, left), np.searchsorted(involved, right)
    m = len(involved)
    graph = coo_matrix((np.ones(len(a), dtype=bool), (a, b)), shape=(m, m)).tocsr()
    place = np.empty(m, dtype=np.int64)
    place[reverse_cuthill_mckee(graph, symmetric_mode=False)] = np.arange(m)
    order = np.argsort(np.minimum(place[a], place[b]), kind="stable")
    cuts = kernels.block_cuts(a[order], b[order], length, _CHECK_BYTES)
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(order)], strict=True):
        yield order[lo:hi]


@dataclass(frozen=True)
class NearGroups:
    """Near-duplicate groups of n texts (:func:`near_duplicate_groups`)."""

    labels: np.ndarray  # each text's group, named by its smallest position
    within: np.ndarray | None  # the same over the links between texts of ``within`` only
    links: SimilarPairs  # the links found (left < right, by pair): all of them when complete
    # When the links outgrew the budget (from then on, pairs already in one group were not
    # judged and no more links were kept; the groups are the same either way): whether pairs
    # of texts (left, right positions) are links, asked of each pair with the search's own
    # band keys and ranks (the answer the search would give). None: `links` has them all.
    ask: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    @property
    def complete(self) -> bool:
        return self.ask is None


def near_duplicate_groups(
    texts,
    *,
    threshold: float = 0.7,
    shingle_size: int = 5,
    num_perm: int = 128,
    seed: int = 0,
    threads: int | None = None,
    slack: float = 0.1,
    sure: float = 0.2,
    accept=None,
    within: np.ndarray | None = None,
    kept: int | None = None,
    candidates=None,
) -> NearGroups:
    """The groups that :func:`near_duplicate_pairs`'s links make, without holding every
    candidate pair, nor every link once there are more than ``kept``.

    The candidates come band by band, each pair from the first band (of either scheme) that
    proposes it, so no list of the pairs met is needed; each link joins two groups of a
    union-find. While fewer than ``kept`` links are found, every candidate is judged and every
    link kept: groups, links and their similarities are those of :func:`near_duplicate_pairs`.
    Past that (groups of many near copies make links by the square of their size: 1.2 million
    at 100,000 benchmark prompts at 0.6, 9.5 million at 300,000), a candidate whose texts are
    in one group already is skipped, which leaves the groups as they are. ``accept``: a
    function of (left, right, similarity) arrays saying which links to keep (the validator's
    rule for short texts). ``within``: a mask of texts whose groups over the links among them
    alone are wanted too. ``kept``: the budget of links (``_KEPT_LINKS`` when None); past it,
    ``ask`` says whether given pairs are links. ``candidates``: as for
    :func:`near_duplicate_pairs` (then every link is kept).

    >>> texts = ["the cat sat on the mat today", "the cat sat on the mat, today",
    ...          "the cat sat on a mat, today", "a completely different sentence"]
    >>> groups = near_duplicate_groups(texts, threshold=0.6)
    >>> groups.labels.tolist(), groups.links.left.tolist(), groups.links.right.tolist()
    ([0, 0, 0, 3], [0, 1], [1, 2])
    """
    source = _source(texts)
    if candidates is not None:
        settings = dict(
            threshold=threshold, shingle_size=shingle_size, num_perm=num_perm, seed=seed
        )
        found = near_duplicate_pairs(
            texts, **settings, threads=threads, slack=slack, sure=sure, candidates=candidates
        )
        search = _GroupSearch(len(source), accept, within, kept=None)
        search.link(found.left, found.right, found.similarity)
        return search.result()
    banding = lsh_bands(threshold, num_perm)
    bands = _Bands(sketch(source, shingle_size, num_perm, seed, threads, threshold), *banding)
    search = _GroupSearch(len(source), accept, within, _KEPT_LINKS if kept is None else kept)
    judge = _Judge(source, search, threshold, slack, sure, shingle_size, threads)
    for left, right, estimate in bands.proposals(search, threshold - slack, threads):
        judge(left, right, estimate)
    judge.flush()
    return search.result(functools.partial(_ask, bands, judge, accept) if search.skipping else None)


def _ask(bands: _Bands, judge: _Judge, accept, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Whether each pair is a link, as the search of ``bands`` judged (``judge``) and
    ``accept`` kept them: :attr:`NearGroups.ask`."""
    left, right = np.minimum(left, right), np.maximum(left, right)
    estimate = bands.estimates(left, right)
    at = np.flatnonzero(estimate >= 0)
    keep, similarity = judge.verified(left[at], right[at], estimate[at])
    at, similarity = at[keep], similarity[keep]
    if accept is not None and len(at):
        at = at[accept(left[at], right[at], similarity)]
    out = np.zeros(len(left), dtype=bool)
    out[at] = True
    return out


class _GroupSearch:
    """Union-find groups of n texts, the links that joined them, and when to stop keeping links
    and judging pairs whose texts are in one group already (see :func:`near_duplicate_groups`)."""

    def __init__(self, n: int, accept, within: np.ndarray | None, kept: int | None):
        self.parent = np.arange(n, dtype=np.int64)
        self.within = within
        self.inner = np.arange(n, dtype=np.int64) if within is not None else None
        self.accept, self.kept = accept, kept
        self.links: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.count = 0
        self.skipping = False

    def unjoined(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Which pairs may still join two groups (all, until links stop being kept)."""
        if not self.skipping:
            return np.ones(len(left), dtype=bool)
        out = np.empty(len(left), dtype=bool)
        kernels.apart(self.parent, left, right, out)
        if self.inner is not None:  # a pair inside `within` may still join its inner groups
            both = np.flatnonzero(self.within[left] & self.within[right])
            inner = np.empty(len(both), dtype=bool)
            kernels.apart(self.inner, left[both], right[both], inner)
            out[both] = inner
        return out

    def groups(self) -> np.ndarray:
        """Each text's group (its smallest text) as the links so far make them."""
        kernels.roots(self.parent)
        return self.parent

    def inner_groups(self) -> np.ndarray:
        """The same over the links between texts of ``within`` only."""
        kernels.roots(self.inner)
        return self.inner

    def link(self, left: np.ndarray, right: np.ndarray, similarity: np.ndarray) -> None:
        """Join the groups of each near-duplicate pair ``accept`` keeps, and keep the links."""
        if self.accept is not None and len(left):
            keep = self.accept(left, right, similarity)
            left, right, similarity = left[keep], right[keep], similarity[keep]
        kernels.join(self.parent, left, right)
        if self.inner is not None:
            both = self.within[left] & self.within[right]
            kernels.join(self.inner, left[both], right[both])
        if not self.skipping:
            room = len(left) if self.kept is None else self.kept - self.count
            if len(left) > room:  # the budget is reached: keep its first links, then skip
                left, right, similarity = left[:room], right[:room], similarity[:room]
                self.skipping = True
            self.links.append((left, right, similarity))
            self.count += len(left)

    def result(self, ask=None) -> NearGroups:
        """The groups and links found; ``ask``: :attr:`NearGroups.ask`, when skipping."""
        kernels.roots(self.parent)
        if self.inner is not None:
            kernels.roots(self.inner)
        left, right, similarity = (
            np.concatenate([part[k] for part in self.links]) if self.links else np.zeros(0)
            for k in range(3)
        )
        order = np.lexsort((right, left))
        links = SimilarPairs(
            left[order].astype(np.int64), right[order].astype(np.int64), similarity[order]
        )
        return NearGroups(self.parent, self.inner, links, ask)


class _Judge:
    """Candidate pairs judged as :func:`near_duplicate_pairs` judges them, in batches: those
    ``sure`` above the threshold are linked at once, those in doubt wait (up to
    ``_DOUBT_PAIRS``) to have their exact Jaccard computed together."""

    def __init__(self, source, search, threshold, slack, sure, size, threads):
        self.source, self.search, self.threads = source, search, threads
        self.threshold, self.slack, self.sure, self.size = threshold, slack, sure, size
        self.doubt: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.waiting = 0

    def __call__(self, left: np.ndarray, right: np.ndarray, estimate: np.ndarray) -> None:
        sure = estimate >= self.threshold + self.sure
        self.search.link(left[sure], right[sure], estimate[sure])
        doubt = ~sure & (estimate >= self.threshold - self.slack)
        if doubt.any():
            self.doubt.append((left[doubt], right[doubt], estimate[doubt]))
            self.waiting += int(doubt.sum())
        # Once pairs already in one group are skipped, sooner checks let more be skipped.
        if self.waiting >= (_DOUBT_PAIRS_SKIPPING if self.search.skipping else _DOUBT_PAIRS):
            self.flush()

    def flush(self) -> None:
        """The exact check of the pairs in doubt (those whose groups are still apart)."""
        if not self.doubt:
            return
        left, right, estimate = (np.concatenate([part[k] for part in self.doubt]) for k in range(3))
        self.doubt, self.waiting = [], 0
        if not self.search.skipping:  # links are kept in the order the bands found them
            keep, similarity = self.verified(left, right, estimate)
            self.search.link(left[keep], right[keep], similarity[keep])
            return
        # Links are no longer kept, and the groups are the same in any order: block by block
        # (few texts shingled twice), each block without the pairs the blocks before joined.
        for block in _check_blocks(self.source, left, right):
            a, b = left[block], right[block]
            apart = np.flatnonzero(self.search.unjoined(a, b))
            if not len(apart):
                continue
            a, b = a[apart], b[apart]
            similarity = _exact(self.source, a, b, self.size, self.threads)
            keep = similarity >= self.threshold
            self.search.link(a[keep], b[keep], similarity[keep])

    def verified(self, left, right, estimate) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_verified` with this search's settings."""
        return _verified(
            self.source,
            left,
            right,
            estimate,
            self.threshold,
            self.slack,
            self.sure,
            self.size,
            self.threads,
        )


class _Bands:
    """Every band's keys and every row's rank in its buckets, for both signature schemes of
    ``sketches`` (12 bytes per row and band), held to say which bands propose a pair: a band
    proposes the rows of a bucket whose ranks are at most ``_MAX_BUCKET_WINDOW`` apart
    (:func:`_bucket_neighbours`)."""

    def __init__(self, sketches: Sketches, bands: int, rows: int, threads: int | None = None):
        self.n, self.num_perm = sketches.n, sketches.short_sig.shape[1]
        self.schemes = list(sketches.schemes)
        # Laid out row by row: first_proposals reads a pair's keys and ranks of every band.
        self.keys = [
            _all_band_keys(sig, bands, rows, threads, by_row=True) for _, sig in self.schemes
        ]
        self.ranks = [_bucket_ranks(k, threads) for k in self.keys]
        self.row_of = []
        for positions, _ in self.schemes:
            row = np.full(sketches.n, -1, dtype=np.int64)
            row[positions] = np.arange(len(positions))
            self.row_of.append(row)

    def proposals(self, search: _GroupSearch, floor: float = 0.0, threads: int | None = None):
        """The candidate pairs of :meth:`Sketches.candidates` in batches, each pair once, as
        (left, right, estimate) with left < right positions: band by band and scheme by
        scheme, each pair from the first band that proposes it
        (:func:`kernels.first_proposals`), and only those whose texts may still join two
        groups of ``search`` (:meth:`_GroupSearch.unjoined`) and whose estimate is ``floor``
        or more."""
        keys, ranks, row_of = self.keys, self.ranks, self.row_of
        for s, (positions, sig) in enumerate(self.schemes):
            o = 1 - s
            other = (keys[o], ranks[o], row_of[o], o < s)

            def first(a, b, kind, s=s, positions=positions, other=other, band=0):
                kernels.first_proposals(
                    keys[s], ranks[s], band, a, b, positions, other, _MAX_BUCKET_WINDOW, kind
                )

            for band in range(keys[s].shape[0]):
                # Pairs in one group already are dropped first: asking the bands is dearer.
                for a, b in _apart_neighbours(keys[s][band], positions, search):
                    # A pair's estimate is its agreement here, or the higher of both schemes'
                    # where both hold its texts: below the floor here and held by this scheme
                    # alone, it is below wherever it is proposed, so whether this band is its
                    # first (dearer to ask: the earlier bands' keys) need not be asked.
                    agree = _agreeing_positions(sig, a, b, threads)
                    useful = agree / self.num_perm >= floor
                    useful |= (row_of[o][positions[a]] >= 0) & (row_of[o][positions[b]] >= 0)
                    useful = np.flatnonzero(useful)
                    a, b, agree = a[useful], b[useful], agree[useful]
                    kind = np.empty(len(a), dtype=np.int8)
                    _by_pairs(functools.partial(first, band=band), a, b, kind, threads)
                    new = np.flatnonzero(kind)
                    left, right, agree = positions[a[new]], positions[b[new]], agree[new]
                    twice = np.flatnonzero(kind[new] == 2)
                    if len(twice):
                        theirs = _agreeing_positions(
                            self.schemes[o][1], row_of[o][left[twice]], row_of[o][right[twice]]
                        )
                        agree[twice] = np.maximum(agree[twice], theirs)
                    estimate = agree / self.num_perm
                    useful = np.flatnonzero(estimate >= floor)
                    yield left[useful], right[useful], estimate[useful]

    def estimates(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Each pair's MinHash estimate, the higher of the schemes that propose it, as
        :meth:`proposals` gives it; -1 where no band of either scheme proposes the pair."""
        agree = np.full(len(left), -1, dtype=np.int64)
        for (_, sig), keys, ranks, row in zip(
            self.schemes, self.keys, self.ranks, self.row_of, strict=True
        ):
            both = np.flatnonzero((row[left] >= 0) & (row[right] >= 0))
            a, b = row[left[both]], row[right[both]]
            proposed = np.empty(len(both), dtype=bool)
            kernels.proposed_anywhere(keys, ranks, a, b, _MAX_BUCKET_WINDOW, proposed)
            at = both[proposed]
            found = _agreeing_positions(sig, a[proposed], b[proposed])
            agree[at] = np.maximum(agree[at], found)
        return np.where(agree >= 0, agree / self.num_perm, -1.0)


def _bucket_ranks(keys: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Each row's rank (by position) in its bucket of each band (:func:`kernels.bucket_ranks`)."""
    ranks = np.zeros(keys.shape[::-1], dtype=np.int32).T  # laid out as the keys are

    def band(b: int) -> None:
        kernels.bucket_ranks(*kernels.shared_keys(keys[b]), ranks[b])

    with ThreadPoolExecutor(threads or default_threads()) as pool:
        list(pool.map(band, range(len(keys))))
    return ranks


def band_keys(sig: np.ndarray, band: int, rows: int) -> np.ndarray:
    """The 64-bit bucket key of each signature row in ``band`` (of ``rows`` positions)."""
    key = np.empty((1, len(sig)), dtype=np.uint64)
    kernels.band_keys(sig[:, band * rows : (band + 1) * rows], _band_weights(rows), key)
    return key[0]


def _band_weights(rows: int) -> np.ndarray:
    """The odd weights of a band's positions in its key (the same for every band)."""
    rng = np.random.default_rng(12345)
    return (rng.integers(0, 2**62, rows, dtype=np.uint64) * 2 + 1).astype(np.uint64)


def bucket_pairs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs of one band bucket (``ids`` ascending), as :func:`_band_candidates`
    makes them: each text with its next ``_MAX_BUCKET_WINDOW`` neighbours."""
    lefts, rights = [], []
    for distance in range(1, min(_MAX_BUCKET_WINDOW, len(ids) - 1) + 1):
        lefts.append(ids[:-distance])
        rights.append(ids[distance:])
    if not lefts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(lefts), np.concatenate(rights)


def _sets(
    source: ComparableTexts | _Held, rows: np.ndarray, size: int, threads: int | None = None
) -> Shingles:
    """The shingle sets of the texts at ``rows`` (read in place where they are held), about
    ``_SHINGLE_CHUNK`` bytes of text at a time on threads."""
    data, begins, ends = source.spans(rows)
    total = np.cumsum(ends - begins)
    cuts = np.searchsorted(
        total, np.arange(_SHINGLE_CHUNK, total[-1] if len(total) else 0, _SHINGLE_CHUNK)
    )
    edges = np.unique(np.concatenate([[0], cuts, [len(rows)]]))

    def part(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        return kernels.shingle_hashes(data, begins[lo:hi], ends[lo:hi], size, True)

    with ThreadPoolExecutor(threads or default_threads()) as pool:
        parts = list(pool.map(lambda b: part(*b), zip(edges[:-1], edges[1:], strict=True)))
    if not parts:
        return Shingles(np.zeros(0, np.uint32), np.zeros(1, np.int64))
    counts = np.concatenate([np.diff(runs) for _, runs in parts])
    return Shingles(
        np.concatenate([hashes for hashes, _ in parts]),
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )


@dataclass(frozen=True)
class Sketches:
    """Signatures of the texts with shingles: ``signatures`` (num_perm permutations) for the
    ``short`` texts, ``one_permutation_signatures`` for the ``long`` ones (see :func:`sketch`)."""

    n: int
    short: np.ndarray  # positions of the texts with permutation signatures
    short_sig: np.ndarray
    long: np.ndarray  # positions of the texts with one-permutation signatures
    long_sig: np.ndarray

    @property
    def schemes(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """(positions, signatures) of each scheme; a pair is a candidate under one scheme."""
        return (self.short, self.short_sig), (self.long, self.long_sig)

    def candidates(
        self, bands: int, rows: int, threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct candidate pairs (left < right) under either scheme, with the estimate of
        their Jaccard similarity (the higher one where both schemes propose a pair)."""
        num_perm = self.short_sig.shape[1]
        bits = np.uint64(int(num_perm).bit_length())
        if self.n * self.n >= 1 << (64 - int(bits)):  # a pair and its count in 64 bits
            limit = int(np.sqrt(2.0 ** (64 - int(bits))))
            raise SettingError(
                f"near-duplicate search takes up to {limit:,} texts at once, got {self.n:,}"
            )
        keyed = []
        for positions, sig in self.schemes:
            left, right = _band_candidates(sig, bands, rows, threads)
            agree = _agreeing_positions(sig, left, right, threads).astype(np.uint64)
            # One sortable key per proposal: the pair, then how many positions agree.
            pair = (positions[left] * self.n + positions[right]).astype(np.uint64)
            keyed.append((pair << bits) | agree)
        ordered = np.sort(np.concatenate(keyed))
        # Each pair's last key holds its highest agreement (two schemes may propose it).
        code = ordered >> bits
        last = np.ones(len(code), dtype=bool)
        last[:-1] = code[1:] != code[:-1]
        best = (ordered[last] & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
        code = code[last].astype(np.int64)
        return code // self.n, code % self.n, best / num_perm


def sketch(
    texts, size: int, num_perm: int, seed: int, threads: int | None, threshold: float
) -> Sketches:
    """Signatures of every text, about ``_SHINGLE_CHUNK`` bytes of text at a time on threads:
    the shingles of all texts are never held at once (for 200,000 responses that would be
    gigabytes), and each chunk's temporaries are small enough for the allocator to reuse.

    Texts with at least ``_FILL * num_perm`` distinct shingles get one-permutation signatures
    (one hash per shingle instead of num_perm), the others permutation signatures; texts in
    between (below ``_FILL * num_perm / threshold``) get both. Two texts at the threshold have
    set sizes within a factor ``threshold`` of each other, so every such pair shares a scheme.
    """
    if not 1 <= size <= 8:
        raise SettingError(f"shingle size must be between 1 and 8 bytes, got {size}")
    source = _source(texts)
    long_from = _FILL * num_perm
    short_below = long_from / threshold
    offsets = np.concatenate([[0], np.cumsum(source.lengths)])
    n = len(source)
    cuts = np.searchsorted(offsets, np.arange(0, offsets[-1], _SHINGLE_CHUNK), "right") - 1
    edges = np.unique(np.concatenate([[0], cuts, [n]]))

    # Chunk [lo, hi) writes its signatures from row lo; the gaps are closed after and the
    # arrays shrunk to the rows packed. No copy of them all is made to join the chunks' parts
    # (it cost 1.2 s at a million prompts, most of it new pages).
    short_sig = np.empty((n, num_perm), dtype=np.uint32)
    long_sig = np.empty((n, num_perm), dtype=np.uint32)

    def chunk(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        # Minima depend on neither order nor repeats, and a text of fewer than long_from
        # shingles has fewer distinct ones: only longer texts are reduced to their set
        # (a hash set, unsorted); the counts then sort the texts as the exact ones would.
        data, begins, ends = source.spans(slice(lo, hi))
        hashes, runs = kernels.shingle_hashes(
            data, begins, ends, size, unique=True, ordered=False, unique_from=long_from
        )
        sets = Shingles(hashes, runs)
        short = np.flatnonzero((sets.counts > 0) & (sets.counts < short_below))
        long = np.flatnonzero(sets.counts >= long_from)
        signatures(sets, num_perm, seed, threads=1, rows=short, out=short_sig[lo : lo + len(short)])
        one_permutation_signatures(
            sets, num_perm, seed, rows=long, out=long_sig[lo : lo + len(long)]
        )
        return lo + short, lo + long

    with ThreadPoolExecutor(threads or default_threads()) as pool:
        parts = list(pool.map(chunk, edges[:-1], edges[1:]))
    if not parts:
        none, no_sig = np.zeros(0, dtype=np.int64), np.zeros((0, num_perm), dtype=np.uint32)
        return Sketches(n, none, no_sig, none, no_sig)
    short, long = (np.concatenate([part[k] for part in parts]) for k in range(2))
    short_sig = _packed(short_sig, edges[:-1], [len(part[0]) for part in parts])
    long_sig = _packed(long_sig, edges[:-1], [len(part[1]) for part in parts])
    return Sketches(n, short, short_sig, long, long_sig)


def _packed(sig: np.ndarray, starts: np.ndarray, counts: list[int]) -> np.ndarray:
    """``sig`` with the rows ``sig[start : start + count]`` of each chunk moved down in place,
    one chunk after another, and shrunk in place to those ``sum(counts)`` rows: the pages of
    the rows beyond, which the chunks touched, go back to the system (a view of the rows kept
    them with the array). Only for an array no view of which is alive: :func:`sketch`'s own."""
    at = 0
    for start, count in zip(starts, counts, strict=True):
        if at != start:
            sig[at : at + count] = sig[start : start + count]  # numpy copies overlaps safely
        at += count
    # No view of sig is left (the chunks' `out` views ended with their calls); realloc
    # shrinks a large array where it is.
    sig.resize((at, sig.shape[1]), refcheck=False)
    return sig


def _band_candidates(
    sig: np.ndarray, bands: int, rows: int, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct pairs (i < j) of texts that share at least one band key.

    The keys of all bands (8 bytes per text and band) in one pass over the signatures, then
    one band at a time: the texts in buckets of two or more (a few percent) found with hash
    tables of keys (``kernels.shared_keys``, 5x an argsort of all keys), bucket by bucket in
    order of position as :func:`bucket_pairs` takes them, and paired.
    """
    n = len(sig)
    threads = threads or default_threads()
    keys = _all_band_keys(sig, bands, rows, threads)

    def band_codes(band: int) -> list[np.ndarray]:
        return [i * n + j for i, j in _bucket_neighbours(keys[band])]

    # Bands on threads: the kernel and numpy's passes release the GIL.
    with ThreadPoolExecutor(threads) as pool:
        codes = [code for found in pool.map(band_codes, range(bands)) for code in found]
    if not codes:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    unique = _sorted_unique(np.concatenate(codes))
    return unique // n, unique % n


def _bucket_neighbours(keys: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The pairs (i < j) of rows with equal ``keys`` (one band's), each row with its next
    ``_MAX_BUCKET_WINDOW`` neighbours of its bucket by position (as :func:`bucket_pairs`), one
    (i, j) per distance."""
    order, ordered = kernels.shared_keys(keys)
    found = []
    for distance in range(1, _MAX_BUCKET_WINDOW + 1):
        same = np.flatnonzero(ordered[distance:] == ordered[:-distance])
        if not len(same):
            break
        i, j = order[same], order[same + distance]
        found.append((np.minimum(i, j), np.maximum(i, j)))
    return found


def _apart_neighbours(keys: np.ndarray, positions: np.ndarray, search: _GroupSearch):
    """The pairs of :func:`_bucket_neighbours` (rows, in its order) in chunks of at most
    ``_PROPOSAL_CHUNK``, without those :meth:`_GroupSearch.unjoined` drops (the rows are of
    the texts at ``positions``). Each member's group is read once per chunk, so a chunk may
    keep pairs whose groups the links of its own earlier pairs join once judged (the judge
    asks again), never drop one whose groups are apart. Each chunk's arrays are valid until
    the next is asked."""
    order, ordered = kernels.shared_keys(keys)
    if not len(order):
        return
    sizes = np.diff(np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True]))
    window = min(_MAX_BUCKET_WINDOW, int(sizes.max()) - 1)
    out = np.empty((2, min(_PROPOSAL_CHUNK, len(order) * window)), dtype=np.int64)
    cursor, none = np.array([1, 0], dtype=np.int64), np.zeros(0, dtype=np.int64)
    texts = positions[order]
    nested = search.within[texts] if search.within is not None else none.astype(bool)
    while cursor[0] <= window:
        group, inner, within = none, none, none.astype(bool)
        if search.skipping:
            group = search.groups()[texts]
            if search.inner is not None:
                inner, within = search.inner_groups()[texts], nested
        count = kernels.bucket_neighbours(order, ordered, window, cursor, group, inner, within, out)
        if count:
            yield out[0, :count], out[1, :count]


def _all_band_keys(
    sig: np.ndarray, bands: int, rows: int, threads: int | None = None, by_row: bool = False
) -> np.ndarray:
    """Every band's keys of every signature row (:func:`band_keys`), shape (bands, rows of
    ``sig``), in one pass over the signatures, on threads; ``by_row``: a view of an array laid
    out row by row (a row's keys of all bands side by side)."""
    if by_row:
        keys = np.empty((len(sig), bands), dtype=np.uint64).T
    else:
        keys = np.empty((bands, len(sig)), dtype=np.uint64)
    threads = threads or default_threads()
    weights, edges = _band_weights(rows), np.linspace(0, len(sig), threads + 1).astype(np.int64)

    def key_rows(lo: int, hi: int) -> None:
        kernels.band_keys(sig[lo:hi], weights, keys[:, lo:hi])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(key_rows, edges[:-1], edges[1:]))
    return keys


def _agreeing_positions(
    sig: np.ndarray, left: np.ndarray, right: np.ndarray, threads: int | None = None
) -> np.ndarray:
    """How many signature positions each pair agrees on (over ``num_perm``: the MinHash
    estimate of their Jaccard similarity)."""
    out = np.zeros(len(left), dtype=np.int64)
    _by_pairs(lambda *pairs: kernels.agreement(sig, *pairs), left, right, out, threads)
    return out


def jaccard(
    sets: Shingles, left: np.ndarray, right: np.ndarray, threads: int | None = None
) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of each pair (``sets`` from ``.unique()``):
    the two sorted runs of each pair merged once (a compiled loop, kernels.py).

    >>> sets = shingle_sets(["abcdef", "abcdeg", ""], size=3)
    >>> jaccard(sets, np.array([0, 0]), np.array([1, 2])).tolist()
    [0.6, 0.0]
    """
    out = np.zeros(len(left))

    def compare(*pairs: np.ndarray) -> None:
        kernels.jaccard(sets.hashes, sets.offsets, *pairs)

    _by_pairs(compare, left, right, out, threads)
    return out


def _by_pairs(
    kernel, left: np.ndarray, right: np.ndarray, out: np.ndarray, threads: int | None = None
) -> None:
    """``kernel(left, right, out)`` over slices of the pairs on threads (the kernels release
    the GIL and write only their own slice of ``out``)."""
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    threads = (threads or default_threads()) if len(left) > _PAIRS_ON_ONE_THREAD else 1
    edges = np.linspace(0, len(left), threads + 1).astype(np.int64)
    if threads == 1:
        kernel(left, right, out)
        return
    with ThreadPoolExecutor(threads) as pool:
        list(
            pool.map(
                lambda k: kernel(
                    left[edges[k] : edges[k + 1]],
                    right[edges[k] : edges[k + 1]],
                    out[edges[k] : edges[k + 1]],
                ),
                range(threads),
            )
        )


def cosine_pairs(
    vectors: np.ndarray, threshold: float, *, block: int = 2048, other: np.ndarray | None = None
) -> SimilarPairs:
    """Pairs with cosine similarity >= ``threshold`` among unit-length ``vectors`` (i < j), or
    between ``vectors`` (left) and ``other`` (right) when given.

    Blocked matrix products: memory stays at one ``block x block`` tile, never N x N.

    >>> v = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]], dtype=np.float32)
    >>> p = cosine_pairs(v / np.linalg.norm(v, axis=1, keepdims=True), 0.95)
    >>> p.left.tolist(), p.right.tolist()
    ([0], [1])
    """
    queries = np.ascontiguousarray(vectors, dtype=np.float32)
    corpus = queries if other is None else np.ascontiguousarray(other, dtype=np.float32)
    lefts, rights, sims = [], [], []
    for qs in range(0, len(queries), block):
        first = qs if other is None else 0  # within one set, only tiles on or above the diagonal
        for cs in range(first, len(corpus), block):
            tile = queries[qs : qs + block] @ corpus[cs : cs + block].T
            i, j = np.nonzero(tile >= threshold)
            i, j = i + qs, j + cs
            if other is None:
                keep = i < j
                i, j = i[keep], j[keep]
            lefts.append(i)
            rights.append(j)
            sims.append(np.minimum(tile[i - qs, j - cs], 1.0))
    if not lefts:
        empty = np.zeros(0, dtype=np.int64)
        return SimilarPairs(empty, empty, np.zeros(0))
    return SimilarPairs(
        np.concatenate(lefts).astype(np.int64),
        np.concatenate(rights).astype(np.int64),
        np.concatenate(sims).astype(np.float64),
    )


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` items linked by the edges; labels are the
    smallest member's index, so a group is named after its first item.

    >>> components(5, np.array([0, 3]), np.array([2, 4])).tolist()
    [0, 1, 0, 3, 3]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not n:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    first = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    return first[labels]
