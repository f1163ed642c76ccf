"""Compiled loops (numba): near-duplicate search, one pass over the bytes of each text, the
sparse pair features of the label-noise model, and the shape counts of texts.

The numpy versions of these steps made a pass over whole arrays per operation (a temporary of
every shingle per shift, multiply and sort; ``num_perm`` times the shingles for permutation
signatures; a tagged copy of both sides of every pair for exact Jaccard); here each text or
pair is one loop that stays in cache. Every function gives exactly what the numpy step it
replaced gave (the tests compare them on the same inputs), releases the GIL (``nogil``), so the
callers' thread pools run them in parallel, and is compiled once, on first use, into numba's
cache (``__pycache__`` beside this file, or the user's cache folder when that is read-only).

Nothing here imports from prefaudit. The loops take plain arrays: :func:`string_buffers`
gives a text array's offsets and UTF-8 bytes without copies (:mod:`prefaudit.dedup`,
:mod:`prefaudit.words` and ``prefaudit.text.shape_counts`` read texts through it).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit


def large_strings(texts) -> pa.Array:
    """One Arrow ``large_string`` array of ``texts`` (strings: a list, a pandas Series or
    Index, an Arrow array or chunked array), missing texts as empty strings."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    array = texts if isinstance(texts, pa.Array) else pa.array(texts, type=pa.large_string())
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_null(array.type):  # every text missing
        array = array.cast(pa.large_string())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        raise TypeError(f"texts must be strings, got Arrow type {array.type}")
    array = array.cast(pa.large_string())
    return pc.fill_null(array, "") if array.null_count else array


def string_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (int64, from 0) and the UTF-8 bytes of the texts of a ``large_string``
    array, views of its buffers (missing texts read as empty)."""
    if array.null_count:
        array = pc.fill_null(array, "")
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, np.uint8)
    )
    return offsets - offsets[0], data[offsets[0] : offsets[-1]]


def column_strings(*columns) -> pa.ChunkedArray:
    """The texts of ``columns`` (pandas Series) one after the other, as Arrow strings (no copy
    of Arrow-backed columns; taking from them is many times faster than from the Series)."""
    chunks = []
    for column in columns:
        array = pa.array(column, type=pa.large_string())
        chunks += array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    return pa.chunked_array(chunks, type=pa.large_string())


def take_rows(array: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``array.take(rows)``, chunk by chunk for a chunked array: Arrow's take of a chunked
    array joins its chunks first, a copy of every text for each call (41 ms against 0.5 ms
    for 1,000 rows of a 575 MB column; 1.9 GB copied for the responses of a million pairs).
    ``rows`` in any order, repeats allowed; one out of range raises ``IndexError``."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(array)):
        raise IndexError(f"rows out of range for {len(array)} texts")
    if isinstance(array, pa.Array) or array.num_chunks == 1:
        whole = array if isinstance(array, pa.Array) else array.chunk(0)
        return whole.take(pa.array(rows, type=pa.int64()))
    starts = np.cumsum([0] + [len(chunk) for chunk in array.chunks])
    chunk = np.searchsorted(starts, rows, "right") - 1
    order = np.argsort(chunk, kind="stable")
    bounds = np.searchsorted(chunk[order], np.arange(array.num_chunks + 1))
    parts = [pa.array([], type=array.type)]
    for k in range(array.num_chunks):
        at = order[bounds[k] : bounds[k + 1]]
        if len(at):
            parts.append(array.chunk(k).take(pa.array(rows[at] - starts[k])))
    taken = pa.concat_arrays(parts)
    if (order == np.arange(len(rows))).all():  # rows in order of their chunks
        return taken
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[order] = np.arange(len(rows))
    return taken.take(pa.array(inverse))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True, inline="always")
def splitmix64(value):
    """splitmix64's output for the state ``value`` (uint64): a bijective mix of its bits."""
    z = value + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _mix(value):
    """splitmix64's finaliser, top 32 bits: a well-spread hash of a packed shingle."""
    return np.uint32(splitmix64(value) >> np.uint64(32))


@njit(cache=True, nogil=True)
def shingle_counts(begins, ends, size):
    """Shingles of each text: ``length - size + 1`` windows, one for a shorter non-empty text."""
    n = len(begins)
    counts = np.empty(n, dtype=np.int64)
    for i in range(n):
        length = ends[i] - begins[i]
        counts[i] = length - size + 1 if length >= size else min(length, 1)
    return counts


@njit(cache=True, nogil=True)
def shingle_hashes(data, begins, ends, size, unique, ordered=True, unique_from=0):
    """The 32-bit hash of each byte ``size``-gram of each text (``data[begins[i]:ends[i]]``),
    in text order, or (``unique``) each text's distinct hashes: ``(hashes, offsets)``. The
    distinct hashes are sorted (``ordered``), or in the order they first occur, found with a
    hash set (1.5x as fast as the sort; enough for signatures, whose minima depend on neither
    order nor repeats). Texts of fewer than ``unique_from`` shingles keep theirs as they are
    (signatures need the distinct count only to tell texts of many shingles).

    A window is its ``size`` bytes read big-endian, tagged with ``size << 60``; a text shorter
    than ``size`` is one shingle, its bytes little-endian, tagged with its length ``<< 60`` and
    bit 59 (so no short text equals a window), as ``dedup.shingle`` packed them.
    """
    n = len(begins)
    counts = shingle_counts(begins, ends, size)
    starts = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        starts[i + 1] = starts[i] + counts[i]
    hashes = np.empty(starts[n], dtype=np.uint32)
    tag = np.uint64(size) << np.uint64(60)
    keep = np.uint64(8 * size)
    mask = (np.uint64(1) << keep) - np.uint64(1) if size < 8 else ~np.uint64(0)
    out = np.zeros(n + 1, dtype=np.int64)
    longest = counts.max() if unique and n else 0
    scratch = np.empty(longest if ordered else _table_size(longest), dtype=np.uint32)
    for i in range(n):
        begin, length, at = begins[i], ends[i] - begins[i], starts[i]
        if length == 0:
            out[i + 1] = out[i]
            continue
        if length < size:
            packed = np.uint64(0)
            for j in range(length):
                packed |= np.uint64(data[begin + j]) << np.uint64(8 * j)
            packed |= (np.uint64(length) << np.uint64(60)) | (np.uint64(1) << np.uint64(59))
            hashes[at] = _mix(packed)
        else:
            window = np.uint64(0)
            for j in range(size - 1):
                window = (window << np.uint64(8)) | np.uint64(data[begin + j])
            for j in range(size - 1, length):
                window = ((window << np.uint64(8)) | np.uint64(data[begin + j])) & mask
                hashes[at + j - size + 1] = _mix(window | tag)
        if unique and counts[i] >= unique_from:
            run = hashes[at : at + counts[i]]
            counts[i] = _sorted_distinct(run, scratch) if ordered else _first_distinct(run, scratch)
        out[i + 1] = out[i] + counts[i]
    if unique:  # close the gaps the removed repeats left
        for i in range(n):
            hashes[out[i] : out[i + 1]] = hashes[starts[i] : starts[i] + counts[i]]
        hashes = hashes[: out[n]].copy()
    return hashes, out


@njit(cache=True, nogil=True)
def _sorted_distinct(run, scratch):
    """Sort ``run`` in place and move its distinct values to the front; returns how many."""
    _radix_sort(run, scratch)
    distinct = 1
    for j in range(1, len(run)):
        if run[j] != run[distinct - 1]:
            run[distinct] = run[j]
            distinct += 1
    return distinct


@njit(cache=True, nogil=True)
def _table_size(count):
    """Slots of the hash set of :func:`_first_distinct` for ``count`` values: a power of two,
    at least twice ``count`` (probes stay short), at least 16."""
    slots = 16
    while slots < 2 * count:
        slots *= 2
    return slots


@njit(cache=True, nogil=True)
def _first_distinct(run, table):
    """Move the first occurrence of each value of ``run`` to the front, in order; returns how
    many. ``table`` (at least ``_table_size(len(run))`` slots) becomes an open-addressing hash
    set keyed by the low bits (the hashes are well mixed); 0 marks an empty slot, so a value 0
    is tracked apart."""
    slots = _table_size(len(run))
    table[:slots] = 0
    mask = np.uint32(slots - 1)
    seen_zero = False
    distinct = 0
    for k in range(len(run)):
        value = run[k]
        if value == 0:
            new = not seen_zero
            seen_zero = True
        else:
            slot = value & mask
            while table[slot] != value and table[slot] != 0:
                slot = (slot + np.uint32(1)) & mask
            new = table[slot] == 0
            table[slot] = value
        if new:
            run[distinct] = value
            distinct += 1
    return distinct


@njit(cache=True, nogil=True)
def _radix_sort(run, scratch):
    """Sort ``run`` (uint32) in place: four passes of one byte each through ``scratch``
    (3.6x numba's quicksort on runs of a few hundred hashes)."""
    n = len(run)
    if n <= 32:
        run.sort()
        return
    count = np.empty(256, dtype=np.int64)
    source, target = run, scratch[:n]
    for shift in range(0, 32, 8):
        count[:] = 0
        for k in range(n):
            count[(source[k] >> shift) & 255] += 1
        total = 0
        for digit in range(256):
            total, count[digit] = total + count[digit], total
        for k in range(n):
            value = source[k]
            digit = (value >> shift) & 255
            target[count[digit]] = value
            count[digit] += 1
        source, target = target, source  # after the fourth pass, back in run


@njit(cache=True, nogil=True)
def minhash(hashes, begins, ends, a, b, out):
    """Permutation MinHash into ``out`` (rows of texts with shingles; others are left alone):
    position p of text i is the least ``a[p] * h + b[p] mod 2**32`` over its shingles h,
    ``hashes[begins[i]:ends[i]]``."""
    num_perm = len(a)
    for i in range(len(begins)):
        first, last = begins[i], ends[i]
        if first == last:
            continue
        row = out[i]
        for p in range(num_perm):
            row[p] = np.uint32(0xFFFFFFFF)
        k = first
        while k + 4 <= last:  # four shingles per pass over the row: a quarter of its loads
            h0, h1 = np.uint32(hashes[k]), np.uint32(hashes[k + 1])  # and stores (3x as fast)
            h2, h3 = np.uint32(hashes[k + 2]), np.uint32(hashes[k + 3])
            for p in range(num_perm):
                ap, bp = a[p], b[p]
                low = min(np.uint32(ap * h0 + bp), np.uint32(ap * h1 + bp))
                high = min(np.uint32(ap * h2 + bp), np.uint32(ap * h3 + bp))
                row[p] = min(row[p], min(low, high))
            k += 4
        for rest in range(k, last):
            h = np.uint32(hashes[rest])
            for p in range(num_perm):
                value = np.uint32(a[p] * h + b[p])
                if value < row[p]:
                    row[p] = value


@njit(cache=True, nogil=True)
def one_permutation(hashes, begins, ends, salt, out):
    """One-permutation MinHash into ``out`` before densification: each shingle hash of text i
    (``hashes[begins[i]:ends[i]]``), mixed with ``salt``, goes to the bin given by its high
    bits; each bin keeps its least value."""
    num_perm = out.shape[1]
    for i in range(len(begins)):
        row = out[i]
        for k in range(begins[i], ends[i]):
            value = _mix(np.uint64(hashes[k]) ^ salt)
            slot = (np.uint64(value) * np.uint64(num_perm)) >> np.uint64(32)
            if value < row[slot]:
                row[slot] = value


@njit(cache=True, nogil=True)
def densify(sig, rows):
    """Fill each empty bin (the largest uint32) of the one-permutation signatures ``rows``
    from the next non-empty bin to its right, circularly, at distance d: ``_mix(value << 32 |
    d)``. One walk from the right per row (numpy took a doubled copy and five passes over it);
    a row without a non-empty bin stays as it is."""
    num_perm = sig.shape[1]
    empty = np.uint32(0xFFFFFFFF)
    for i in rows:
        row = sig[i]
        first = 0
        while first < num_perm and row[first] == empty:
            first += 1
        if first == num_perm:
            continue
        source = first + num_perm  # for the bins after the last non-empty one: wrap around
        for j in range(num_perm - 1, -1, -1):
            if row[j] != empty:
                source = j
            else:  # source is never written: it holds a text's own value
                value = np.uint64(row[source % num_perm])
                row[j] = _mix((value << np.uint64(32)) | np.uint64(source - j))


@njit(cache=True, nogil=True)
def band_keys(sig, weights, out):
    """The 64-bit bucket key of each signature row in each band (``len(weights)`` positions
    each) into ``out[band]``: the weighted sum of the band's positions mod 2**64 ``s``, mixed
    as ``z = (s ^ s >> 31) * 0x7FB5D329728EA185``, ``z ^ z >> 27``. One pass over the rows for
    all bands (a strided pass per band and position read the signatures 32 times over), 512
    rows at a time into a small block first: writing every band's keys row by row touched a
    new page of each band's keys at every row (4x as slow)."""
    rows, bands = len(weights), out.shape[0]
    block = np.empty((bands, _KEY_BLOCK), dtype=np.uint64)
    for lo in range(0, sig.shape[0], _KEY_BLOCK):
        hi = min(lo + _KEY_BLOCK, sig.shape[0])
        for i in range(lo, hi):
            row = sig[i]
            for band in range(bands):
                key = np.uint64(0)
                for p in range(rows):
                    key += np.uint64(row[band * rows + p]) * weights[p]
                z = (key ^ (key >> np.uint64(31))) * np.uint64(0x7FB5D329728EA185)
                block[band, i - lo] = z ^ (z >> np.uint64(27))
        for band in range(bands):
            out[band, lo:hi] = block[band, : hi - lo]


_KEY_BLOCK = 512  # rows of signatures per block in band_keys
_PARTITION_BITS = 8  # shared_keys splits the keys by their top bits into 256 parts


@njit(cache=True, nogil=True)
def shared_keys(keys):
    """The texts whose key another text shares, bucket by bucket, ascending within each, and
    the bucket of each (its first text): ``(members, buckets)``.

    The keys (mixed) are split by their top bits (a stable counting sort: positions stay
    ascending) into parts small enough for a hash table of first members to stay in cache;
    5x an argsort of all keys, of which only the few percent in shared buckets are kept.
    """
    n = len(keys)
    parts = 1 << _PARTITION_BITS
    top = np.uint64(64 - _PARTITION_BITS)
    start = np.zeros(parts + 1, dtype=np.int64)
    for i in range(n):
        start[np.int64(keys[i] >> top) + 1] += 1
    for part in range(parts):
        start[part + 1] += start[part]
    ids = np.empty(n, dtype=np.int64)
    grouped = np.empty(n, dtype=np.uint64)
    cursor = start[:-1].copy()
    for i in range(n):
        part = np.int64(keys[i] >> top)
        ids[cursor[part]], grouped[cursor[part]] = i, keys[i]
        cursor[part] += 1
    largest = np.max(start[1:] - start[:-1]) if n else 0
    table = np.empty(_table_size(largest), dtype=np.int64)
    head = np.empty(largest, dtype=np.int64)
    size = np.empty(largest, dtype=np.int64)
    members = np.empty(n, dtype=np.int64)
    buckets = np.empty(n, dtype=np.int64)
    shared = 0
    for part in range(parts):
        lo, m = start[part], start[part + 1] - start[part]
        shared = _shared_in_part(
            ids[lo : lo + m], grouped[lo : lo + m], table, head, size, members, buckets, shared
        )
    return members[:shared], buckets[:shared]


@njit(cache=True, nogil=True)
def _shared_in_part(ids, keys, table, head, size, members, buckets, shared):
    """:func:`shared_keys` within one part (``ids`` ascending, their ``keys``): members of
    buckets of two or more go to ``members`` from ``shared``; returns where they end."""
    m = len(ids)
    slots = _table_size(m)
    table[:slots] = -1
    mask = slots - 1
    shift = np.uint64(_PARTITION_BITS)
    for k in range(m):
        slot = np.int64((keys[k] << shift) >> np.uint64(40)) & mask  # bits below the part's
        while table[slot] >= 0 and keys[table[slot]] != keys[k]:
            slot = (slot + 1) & mask
        if table[slot] < 0:
            table[slot] = k
            size[k] = 0
        head[k] = table[slot]
        size[head[k]] += 1
    for k in range(m):  # each bucket of two or more: where its members start
        if head[k] == k:
            if size[k] > 1:
                size[k], shared = shared, shared + size[k]
            else:
                size[k] = -1
    for k in range(m):
        at = size[head[k]]
        if at >= 0:
            members[at], buckets[at] = ids[k], ids[head[k]]
            size[head[k]] = at + 1
    return shared


@njit(cache=True, nogil=True)
def agreement(sig, left, right, out):
    """How many positions the signatures of each pair agree on, without copying them."""
    for k in range(len(left)):
        a, b = sig[left[k]], sig[right[k]]
        same = 0
        for p in range(sig.shape[1]):
            same += a[p] == b[p]
        out[k] = same


@njit(cache=True, nogil=True)
def bucket_ranks(order, ordered, out):
    """Each row's rank in its band bucket (by position), from :func:`shared_keys`'s
    ``(members, buckets)``: rows of a bucket are paired when their ranks are close (rows in no
    shared bucket keep what ``out`` held: no other row has their key)."""
    rank = 0
    for k in range(len(order)):
        rank = rank + 1 if k and ordered[k] == ordered[k - 1] else 0
        out[order[k]] = rank


@njit(cache=True, nogil=True, inline="always")
def _proposed(keys, ranks, band, i, j, window):
    """Whether rows i and j are paired in ``band``: the same key, ranks ``window`` apart or less."""
    return (
        keys[band, i] == keys[band, j] and abs(np.int64(ranks[band, i]) - ranks[band, j]) <= window
    )


@njit(cache=True, nogil=True)
def first_proposals(keys, ranks, band, left, right, positions, other, window, out):
    """Which of the pairs of signature rows ``(left[k], right[k])`` that ``band`` proposes are
    proposed there first, so that a search going band by band meets each pair once without
    holding the pairs it met. ``keys`` and ``ranks``: (bands, rows) of one scheme, whose rows
    are the texts at ``positions``; ``other``: the other scheme's ``(keys, ranks, row of each
    text or -1, searched first)``. ``out[k]``: 0 when an earlier band pairs them too, or the
    other scheme did, searched first; else 1, or 2 when the other scheme, searched later,
    pairs them as well."""
    other_keys, other_ranks, other_row, other_first = other
    for k in range(len(left)):
        i, j = left[k], right[k]
        new = 1
        for b in range(band):
            if _proposed(keys, ranks, b, i, j, window):
                new = 0
                break
        oi, oj = other_row[positions[i]], other_row[positions[j]]
        if new and oi >= 0 and oj >= 0:
            for b in range(other_keys.shape[0]):
                if _proposed(other_keys, other_ranks, b, oi, oj, window):
                    new = 0 if other_first else 2
                    break
        out[k] = new


@njit(cache=True, nogil=True)
def proposed_anywhere(keys, ranks, left, right, window, out):
    """Whether any band of ``keys`` and ``ranks`` (bands, rows) pairs rows ``left[k]`` and
    ``right[k]`` (:func:`first_proposals`' rule)."""
    for k in range(len(left)):
        found = False
        for b in range(keys.shape[0]):
            if _proposed(keys, ranks, b, left[k], right[k], window):
                found = True
                break
        out[k] = found


@njit(cache=True, nogil=True, inline="always")
def _root(parent, i):
    """The root of ``i`` in a union-find forest, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def apart(parent, left, right, out):
    """Whether each pair's items are in different groups of the union-find ``parent``."""
    for k in range(len(left)):
        out[k] = _root(parent, left[k]) != _root(parent, right[k])


@njit(cache=True, nogil=True)
def bucket_neighbours(order, ordered, window, cursor, group, inner, within, out):
    """The pairs of a band's bucket members (``order``, with each one's bucket ``ordered``,
    from :func:`shared_keys`) up to ``window`` apart, distance by distance and by member
    within one, as (smaller, larger) rows into ``out`` (2, size): from ``cursor`` (distance,
    member: where the last call stopped) until ``out`` is full. With each member's ``group``
    (else an empty array), pairs of one group are left out; of one ``inner`` group where both
    are ``within``. Returns the pairs written; the cursor moves on (its distance past
    ``window`` once all are). Every array is read in order: no text's data is looked up."""
    n, size = len(order), out.shape[1]
    grouped, nested = len(group) > 0, len(within) > 0
    count = 0
    distance, k = cursor[0], cursor[1]
    while distance <= window:
        while k < n - distance:
            m = k + distance
            if ordered[k] == ordered[m]:
                if not grouped:
                    new = True
                elif nested and within[k] and within[m]:
                    new = inner[k] != inner[m]
                else:
                    new = group[k] != group[m]
                if new:
                    out[0, count], out[1, count] = min(order[k], order[m]), max(order[k], order[m])
                    count += 1
                    if count == size:
                        cursor[0], cursor[1] = distance, k + 1
                        return count
            k += 1
        distance, k = distance + 1, 0
    cursor[0], cursor[1] = distance, 0
    return count


@njit(cache=True, nogil=True)
def join(parent, left, right):
    """Join each pair's groups in the union-find ``parent``; the smaller root stays the root,
    so every group's root is its smallest item."""
    for k in range(len(left)):
        a, b = _root(parent, left[k]), _root(parent, right[k])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b


@njit(cache=True, nogil=True)
def roots(parent):
    """Each item's root (its group's smallest item), written into ``parent``."""
    for i in range(len(parent)):
        parent[i] = parent[parent[i]]  # parents are smaller: theirs are final already


@njit(cache=True, nogil=True)
def block_cuts(left, right, length, limit):
    """Where to cut the pairs ``(left[k], right[k])``, in their order, into blocks whose
    distinct texts hold at most ``limit`` bytes (``length`` of each text; a block holds one
    pair at least)."""
    seen = np.full(len(length), -1, dtype=np.int64)  # the last block each text was in
    cuts = np.empty(len(left), dtype=np.int64)
    m = 0
    block = 0
    held = 0
    for k in range(len(left)):
        i, j = left[k], right[k]
        add = (length[i] if seen[i] != block else 0) + (
            length[j] if seen[j] != block and j != i else 0
        )
        if add and held and held + add > limit:
            cuts[m] = k
            m += 1
            block += 1
            add = length[i] + (length[j] if j != i else 0)
            held = 0
        seen[i] = block
        seen[j] = block
        held += add
    return cuts[:m]


@njit(cache=True, nogil=True)
def jaccard(hashes, offsets, left, right, out):
    """Exact Jaccard similarity of the sorted distinct shingle runs of each pair (0 when both
    are empty): one merge of the two runs per pair."""
    for k in range(len(left)):
        i, j = left[k], right[k]
        p, p_end = offsets[i], offsets[i + 1]
        q, q_end = offsets[j], offsets[j + 1]
        union = (p_end - p) + (q_end - q)
        shared = 0
        while p < p_end and q < q_end:  # without branches (1.25x): both step on a match
            x, y = hashes[p], hashes[q]
            shared += x == y
            p += x <= y
            q += y <= x
        union -= shared
        out[k] = shared / union if union > 0 else 0.0


@njit(cache=True, nogil=True)
def row_column_max_abs(indptr, indices, data, rows, columns):
    """The largest ``|value|`` of each of ``columns`` columns over the CSR ``rows`` (0 where none)."""
    out = np.zeros(columns)
    for row in rows:
        for k in range(indptr[row], indptr[row + 1]):
            value = abs(data[k])
            if value > out[indices[k]]:
                out[indices[k]] = value
    return out


@njit(cache=True, nogil=True)
def gather_rows(indptr, indices, data, rows, sign, inverse, out_indptr):
    """The CSR ``rows`` of a matrix, row i's values times ``sign[i]`` then times ``inverse``
    of their column: ``(m[rows] * sign[:, None]) * inverse``, value for value, in one pass.
    Returns (indices, data); ``out_indptr`` is filled."""
    out_indptr[0] = 0
    for i in range(len(rows)):
        out_indptr[i + 1] = out_indptr[i] + indptr[rows[i] + 1] - indptr[rows[i]]
    out_indices = np.empty(out_indptr[-1], indices.dtype)
    out_data = np.empty(out_indptr[-1], data.dtype)
    for i in range(len(rows)):
        at = out_indptr[i]
        for k in range(indptr[rows[i]], indptr[rows[i] + 1]):
            out_indices[at] = indices[k]
            out_data[at] = (data[k] * sign[i]) * inverse[indices[k]]
            at += 1
    return out_indices, out_data


@njit(cache=True, nogil=True)
def _row_difference(indptr, indices, data, a, b, tail, out_indices, out_data, at, width):
    """Row ``a`` minus row ``b`` (sorted indices) from ``at``, zeros dropped, then the non-zero
    values of ``tail`` at columns ``width + j``; counts only when ``out_data`` is empty."""
    write = len(out_data) > 0
    p, p_end, q, q_end = indptr[a], indptr[a + 1], indptr[b], indptr[b + 1]
    while p < p_end or q < q_end:
        if q == q_end or (p < p_end and indices[p] < indices[q]):
            column, value = indices[p], data[p]
            p += 1
        elif p == p_end or indices[q] < indices[p]:
            column, value = indices[q], 0.0 - data[q]
            q += 1
        else:
            column, value = indices[p], data[p] - data[q]
            p += 1
            q += 1
        if value != 0.0:
            if write:
                out_indices[at], out_data[at] = column, value
            at += 1
    for j in range(len(tail)):
        if tail[j] != 0.0:
            if write:
                out_indices[at], out_data[at] = width + j, tail[j]
            at += 1
    return at


@njit(cache=True, nogil=True)
def _differences(indptr, indices, data, width, first, second, tail, out_indptr, out_i, out_d):
    """Each pair's row into out_i/out_d from out_indptr[i] (only sized when they are empty);
    out_indptr[i + 1] is where it ends."""
    for i in range(len(first)):
        row = (first[i], second[i], tail[i], out_i, out_d, out_indptr[i], width)
        out_indptr[i + 1] = _row_difference(indptr, indices, data, *row)


@njit(cache=True, nogil=True)
def pair_difference(indptr, indices, data, width, first, second, tail, out_indptr):
    """CSR rows ``first[i]`` minus ``second[i]`` of a canonical CSR matrix (``width``
    columns), each followed by the non-zero values of ``tail[i]``: scipy's
    ``hstack([m[first] - m[second], csr_matrix(tail)])``, in two passes (sizes, then values)
    instead of three copies of every row. Returns (indices, data); ``out_indptr`` is filled."""
    matrix = (indptr, indices, data, width, first, second, tail, out_indptr)
    out_indptr[0] = 0
    _differences(*matrix, np.zeros(0, indices.dtype), np.zeros(0, data.dtype))  # sizes
    out_indices = np.empty(out_indptr[-1], indices.dtype)
    out_data = np.empty(out_indptr[-1], data.dtype)
    _differences(*matrix, out_indices, out_data)  # values
    return out_indices, out_data


# Classes of code points for shape_counts (a table indexed by code point holds their sum).
SPACE = 1  # re's \s
DIGIT = 2  # re's \d
_NEWLINE, _QUESTION, _BULLET = 0x0A, 0x3F, 0x2022


@njit(cache=True, nogil=True, inline="always")
def _code_point(data, k, end):
    """The code point whose UTF-8 bytes start at ``data[k]``, and how many bytes it takes
    (a sequence cut short by ``end`` reads as U+FFFD: nothing is read past a text)."""
    lead = np.int64(data[k])
    if lead < 0x80:
        return lead, 1
    if lead < 0xE0:
        width, point = 2, lead & 0x1F
    elif lead < 0xF0:
        width, point = 3, lead & 0x0F
    else:
        width, point = 4, lead & 0x07
    if k + width > end:
        return 0xFFFD, end - k
    for j in range(1, width):
        point = (point << 6) | (np.int64(data[k + j]) & 0x3F)
    return (point if point < 0x110000 else 0xFFFD), width


@njit(cache=True, nogil=True)
def shape_counts(data, offsets, classes, out):
    """Per text ``data[offsets[i]:offsets[i + 1]]`` (UTF-8), into column i of ``out``
    (float64, 7 rows): code points, "\\n", "?", runs of non-space (``\\S+``), list items
    (:func:`_list_item_step`), digits (``\\d``) and ASCII upper-case letters (``[A-Z]``).
    ``classes[c]`` holds :data:`SPACE` where ``re``'s ``\\s`` matches code point c and
    :data:`DIGIT` where ``\\d`` does, so the counts are ``re``'s."""
    for i in range(len(offsets) - 1):
        k, end = offsets[i], offsets[i + 1]
        chars = lines = questions = words = items = digits = upper = 0
        in_word = 0
        state = _LINE_START
        while k < end:
            lead = data[k]
            if lead < 0x80:
                point = np.int64(lead)
                lines += lead == _NEWLINE
                questions += lead == _QUESTION
                upper += 0x41 <= lead <= 0x5A
                k += 1
            else:
                point, width = _code_point(data, k, end)
                k += width
            kind = classes[point]
            chars += 1
            digits += (kind & DIGIT) != 0
            solid = 1 - (kind & SPACE)  # without a branch: spaces come at random
            words += solid & (1 - in_word)  # a run of non-space starts
            in_word = solid
            if state != _OUTSIDE or point == _NEWLINE:
                state, found = _list_item_step(state, point, kind)
                items += found
        out[0, i], out[1, i], out[2, i], out[3, i] = chars, lines, questions, words
        out[4, i], out[5, i], out[6, i] = items, digits, upper


# Where the search for list items stands (see _list_item_step).
_OUTSIDE, _LINE_START, _DIGITS, _MARKER = 0, 1, 2, 3


@njit(cache=True, nogil=True, inline="always")
def _list_item_step(state, point, kind):
    """The next state of the search for ``(?m)^\\s*(?:[-*•]|\\d+[.)])\\s`` after code point
    ``point`` (of class ``kind``), and whether a match ended there: the matches are those of
    ``re.finditer``, one code point at a time.

    A match starts only at a line start (the text's start or after "\\n"). Backtracking never
    helps: ``\\s*`` ends before a non-space, which all the rest needs, and ``\\d+`` before a
    non-digit, which ``[.)]`` needs; so from a line start the whitespace is skipped (line
    starts inside it give the same result) and the rest tried once. A failure there fails at
    every line start up to the failing character: the search goes on from the next "\\n"
    (the failing one itself, after digits). After a match it goes on from the match's end:
    a line start when the match ends with "\\n".
    """
    if state == _OUTSIDE:  # point is "\n"
        return _LINE_START, 0
    if state == _LINE_START:
        if kind & SPACE:
            return _LINE_START, 0
        if kind & DIGIT:
            return _DIGITS, 0
        if point == 0x2D or point == 0x2A or point == _BULLET:  # "-", "*", "•"
            return _MARKER, 0
        return _OUTSIDE, 0
    if state == _DIGITS:
        if kind & DIGIT:
            return _DIGITS, 0
        if point == 0x2E or point == 0x29:  # "." or ")"
            return _MARKER, 0
        return (_LINE_START if point == _NEWLINE else _OUTSIDE), 0
    if kind & SPACE:  # after the marker: a match
        return (_LINE_START if point == _NEWLINE else _OUTSIDE), 1
    return _OUTSIDE, 0


# -- normalised text (text.normalize) ---------------------------------------------------------

PUNCTUATION = 1  # RE2's \pP
WHITESPACE = 2  # text._SPACE: the whitespace normalisation collapses
TRIMMED = 4  # what Arrow's utf8_trim_whitespace removes at the ends


@njit(cache=True, nogil=True, inline="always")
def encode(point, out, at):
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
def normalize(data, offsets, lower, kinds, drop, out, out_offsets):
    """Text i (``data[offsets[i]:offsets[i + 1]]``, valid UTF-8) lower-cased by ``lower`` (a code
    point each, identity beyond the table), then each maximal run of punctuation cut to its
    first mark and each run of whitespace to one space (``drop``: each run of punctuation
    and whitespace to one space), then the ``TRIMMED`` code points at either end removed:
    into ``out`` (at least 3/2 the bytes: a lower case takes up to 3/2 its letter's bytes),
    its bounds into ``out_offsets``. ``kinds`` holds each lower-case code point's
    ``PUNCTUATION``, ``WHITESPACE`` and ``TRIMMED`` flags (none beyond the table)."""
    both = PUNCTUATION | WHITESPACE
    at = 0
    out_offsets[0] = 0
    for i in range(len(offsets) - 1):
        k, end = offsets[i], offsets[i + 1]
        start = at
        run = 0  # the class of the run being collapsed (0: none)
        kept_from, kept_to = -1, start  # the bytes from the first to the last kept character
        while k < end:
            lead = data[k]
            if lead < 0x80 and kinds[lead] == 0:  # most bytes: runs of ASCII letters, digits
                if kept_from < 0:
                    kept_from = at
                while True:
                    out[at] = lower[lead]
                    at += 1
                    k += 1
                    if k == end:
                        break
                    lead = data[k]
                    if lead >= 0x80 or kinds[lead] != 0:
                        break
                kept_to, run = at, 0
                continue
            point, width = _code_point(data, k, end)
            k += width
            low = lower[point] if point < len(lower) else point
            kind = kinds[low] if low < len(kinds) else 0
            collapsed = kind & both
            if collapsed and drop:
                collapsed = both
            if collapsed:
                if collapsed == run:
                    continue  # inside a run: one character stands for it
                run = collapsed
                if collapsed != PUNCTUATION:  # whitespace (with marks when dropping): a space
                    low, kind = 0x20, TRIMMED
            else:
                run = 0
            written = encode(low, out, at)
            if not kind & TRIMMED:
                if kept_from < 0:
                    kept_from = at
                kept_to = written
            at = written
        if kept_from < 0:
            at = start
        else:
            for j in range(kept_to - kept_from):  # moves left: a forward copy is safe
                out[start + j] = out[kept_from + j]
            at = start + kept_to - kept_from
        out_offsets[i + 1] = at


@njit(cache=True, nogil=True)
def text_hashes(data, offsets, out):
    """A 64-bit hash of each text's bytes (``data[offsets[i]:offsets[i + 1]]``) into ``out``:
    eight bytes at a time, each step splitmix64's bijective mixer; equal texts get equal
    hashes, two different texts the same one with a chance of about 2**-64."""
    for i in range(len(offsets) - 1):
        k, end = offsets[i], offsets[i + 1]
        h = np.uint64(end - k) * _GOLDEN
        while k < end:
            word = np.uint64(0)
            for j in range(min(8, end - k)):
                word |= np.uint64(data[k + j]) << np.uint64(8 * j)
            h = splitmix64(h ^ word)
            k += 8
        out[i] = h
