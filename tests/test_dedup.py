import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefaudit import dedup, kernels

_COMMON = (
    "the a of to and in is it you that he was for on are with as his they be at one have this "
    "from or had by hot word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like so"
)
WORDS = _COMMON.split(" ")


def _exact_pairs(texts, threshold, size):
    sets = dedup.shingle(dedup.comparable(texts), size).unique()
    n = len(texts)
    left, right = np.triu_indices(n, 1)
    similarity = dedup.jaccard(sets, left, right)
    keep = similarity >= threshold
    return {
        (int(i), int(j)): s
        for i, j, s in zip(left[keep], right[keep], similarity[keep], strict=True)
    }


def _corpus(seed, n=300, words=(8, 40)):
    """Random texts of ``words`` words plus edited copies of a third of them: a mix of
    similarities around 0.6."""
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))) for _ in range(n)]
    for i in range(n // 3):
        words = texts[i].split()
        for k in rng.sample(range(len(words)), rng.randint(0, len(words) // 4)):
            words[k] = rng.choice(WORDS)
        texts.append(" ".join(words))
    return texts


def test_shingles_of_short_empty_and_unicode_texts():
    shingles = dedup.shingle(["abcdef", "abc", "", "ééé"], size=5)
    assert shingles.counts.tolist() == [2, 1, 0, 2]  # "ééé" is 6 bytes: two 5-byte windows
    # A short text is never equal to a window of a longer one.
    assert dedup.shingle(["abcde"], 5).hashes[0] != dedup.shingle(["abcd"], 5).hashes[0]
    with pytest.raises(ValueError, match="between 1 and 8"):
        dedup.shingle(["x"], size=9)


def test_jaccard_matches_python_sets():
    texts = ["the cat sat on the mat", "the cat sat on a mat", "dogs bark", ""]
    sets = dedup.shingle(texts, 3).unique()
    left, right = np.array([0, 0, 2]), np.array([1, 2, 3])
    found = dedup.jaccard(sets, left, right)

    def grams(t):
        data = t.encode()
        return {data[i : i + 3] for i in range(len(data) - 2)}

    for k, (i, j) in enumerate(zip(left, right, strict=True)):
        a, b = grams(texts[i]), grams(texts[j])
        expected = len(a & b) / len(a | b) if a | b else 0.0
        assert found[k] == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_near_duplicate_pairs_are_exactly_the_pairs_above_the_threshold(seed):
    texts = _corpus(seed)
    truth = _exact_pairs(texts, 0.6, 5)
    found = dedup.near_duplicate_pairs(dedup.comparable(texts), threshold=0.6)
    got = {(int(i), int(j)) for i, j in zip(found.left, found.right, strict=True)}
    assert got <= set(truth)  # verified exactly: never a pair below the threshold
    clear = {pair for pair, s in truth.items() if s >= 0.7}
    assert clear <= got  # pairs clearly above the threshold are never missed
    assert len(got) >= 0.97 * len(truth)
    exact = np.array([truth[p] for p in zip(found.left, found.right, strict=True)])
    checked = found.similarity < 0.8  # near the threshold: the exact value
    assert np.allclose(found.similarity[checked], exact[checked])
    assert np.all(np.abs(found.similarity - exact) < 0.15)  # far above it: the MinHash estimate


def test_signatures_are_deterministic_and_seeded():
    shingles = dedup.shingle(["some text here", "other text"], 4)
    a = dedup.signatures(shingles, 32, seed=1)
    assert np.array_equal(a, dedup.signatures(shingles, 32, seed=1, threads=1))
    assert not np.array_equal(a, dedup.signatures(shingles, 32, seed=2))


def test_lsh_bands_meet_the_recall_target():
    for threshold in (0.5, 0.6, 0.8):
        bands, rows = dedup.lsh_bands(threshold, 128)
        assert bands * rows <= 128
        assert 1 - (1 - threshold**rows) ** bands >= 0.985


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 60), st.integers(0, 2**31), st.floats(0.5, 0.99))
def test_cosine_pairs_match_brute_force(n, seed, threshold):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(max(n // 3, 1), 8))
    vectors = base[rng.integers(0, len(base), n)] + 0.2 * rng.normal(size=(n, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    found = dedup.cosine_pairs(vectors, threshold, block=7)
    full = vectors.astype(np.float32) @ vectors.astype(np.float32).T
    i, j = np.nonzero(np.triu(full >= threshold, 1))
    assert sorted(zip(found.left.tolist(), found.right.tolist(), strict=True)) == sorted(
        zip(i.tolist(), j.tolist(), strict=True)
    )
    other = vectors[: n // 2 + 1]
    cross = dedup.cosine_pairs(vectors, threshold, block=5, other=other)
    full = vectors.astype(np.float32) @ other.astype(np.float32).T
    assert len(cross) == int((full >= threshold).sum())


def test_components_name_groups_after_their_first_member():
    labels = dedup.components(6, np.array([4, 1, 2]), np.array([5, 2, 5]))
    assert labels.tolist() == [0, 1, 1, 3, 1, 1]
    assert dedup.components(0, np.array([], int), np.array([], int)).tolist() == []


def test_comparable_drops_punctuation_case_and_spacing():
    assert dedup.comparable(["Wait -- what?!", "wait what"]).to_pylist() == ["wait what"] * 2


def test_signatures_in_blocks_on_threads_change_nothing(monkeypatch):
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(20_000)), "short text"]
    shingles = dedup.shingle(texts + _corpus(3, n=60), 5)
    whole = dedup.signatures(shingles, 16, threads=1)
    monkeypatch.setattr(dedup, "_SIGNATURE_CHUNK", 1_000)  # one block per few texts
    assert np.array_equal(dedup.signatures(shingles, 16, threads=2), whole)


# -- the compiled loops against plain Python and numpy ------------------------------------------

_MASK64 = (1 << 64) - 1


def _mix_reference(value: int) -> int:
    """splitmix64's finaliser, top 32 bits, in Python integers."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 32


def _shingles_reference(text: str, size: int) -> list[int]:
    data = text.encode()
    if not data:
        return []
    if len(data) < size:
        return [_mix_reference(int.from_bytes(data, "little") | len(data) << 60 | 1 << 59)]
    windows = (data[k : k + size] for k in range(len(data) - size + 1))
    return [_mix_reference(int.from_bytes(w, "big") | size << 60) for w in windows]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(alphabet="ab é中\n", max_size=60), max_size=6),
    st.integers(1, 8),
)
def test_shingle_hashes_and_sets_match_python(texts, size):
    shingles, sets = dedup.shingle(texts, size), dedup.shingle_sets(texts, size)
    for i, text in enumerate(texts):
        expected = _shingles_reference(text, size)
        run = slice(shingles.offsets[i], shingles.offsets[i + 1])
        assert shingles.hashes[run].tolist() == expected
        assert sets.hashes[sets.offsets[i] : sets.offsets[i + 1]].tolist() == sorted(set(expected))


def test_long_shingle_sets_are_sorted_and_distinct():
    """Runs of more than 32 shingles take the radix sort."""
    rng = random.Random(5)
    texts = [" ".join(rng.choice(WORDS) for _ in range(300)) for _ in range(5)]
    sets = dedup.shingle_sets(texts, 5)
    for i, text in enumerate(texts):
        run = sets.hashes[sets.offsets[i] : sets.offsets[i + 1]].tolist()
        assert run == sorted(set(_shingles_reference(text, 5))) and len(run) > 32


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(alphabet="ab \n", max_size=80), max_size=6),
    st.integers(1, 8),
    st.integers(0, 40),
)
def test_unordered_shingle_sets_keep_first_occurrences(texts, size, unique_from):
    """The hash set's sets (what sketch uses): each text's distinct hashes in the order they
    first occur, or all of them for texts of fewer than ``unique_from`` shingles."""
    offsets, data = kernels.string_buffers(kernels.large_strings(texts))
    hashes, runs = kernels.shingle_hashes(
        data, offsets[:-1], offsets[1:], size, True, False, unique_from
    )
    for i, text in enumerate(texts):
        expected = _shingles_reference(text, size)
        if len(expected) >= unique_from:
            expected = list(dict.fromkeys(expected))
        assert hashes[runs[i] : runs[i + 1]].tolist() == expected


def test_the_hash_set_keeps_zero_the_sentinel_and_colliding_values_apart():
    """0 marks an empty slot; values equal in their low bits probe past each other (and
    around the end of the table)."""
    table = np.empty(1 << 12, dtype=np.uint32)
    colliding = [(k << 20) | 1023 for k in range(1, 40)]  # one slot of any table up to 2**20
    values = [0, 0xFFFFFFFF, 0, 7, *colliding, 0xFFFFFFFF, 7, *colliding[::-1], 0, 1023]
    run = np.array(values, dtype=np.uint32)
    distinct = kernels._first_distinct(run, table)
    assert run[:distinct].tolist() == list(dict.fromkeys(values))
    for repeated in ([0] * 50, [0xFFFFFFFF] * 50, [5]):
        run = np.array(repeated, dtype=np.uint32)
        assert kernels._first_distinct(run, table) == 1 and run[0] == repeated[0]


@pytest.mark.parametrize("length", range(10))
def test_minhash_of_any_run_length_matches_numpy(length):
    """Four shingles per pass, then the rest one at a time."""
    rng = np.random.default_rng(length)
    hashes = rng.integers(0, 2**32, 3 * length, dtype=np.uint64).astype(np.uint32)
    hashes[:2] = [0, 0xFFFFFFFF][: min(2, len(hashes))]
    a = (rng.integers(0, 2**31, 40, dtype=np.uint64) * 2 + 1).astype(np.uint32)
    b = rng.integers(0, 2**32, 40, dtype=np.uint64).astype(np.uint32)
    begins, ends = np.array([0, length, 2 * length]), np.array([length, 2 * length, 3 * length])
    out = np.full((3, 40), 2**32 - 1, dtype=np.uint32)
    kernels.minhash(hashes, begins, ends, a, b, out)
    for i in range(3):
        h = hashes[begins[i] : ends[i]]
        with np.errstate(over="ignore"):
            expected = (a[:, None] * h[None, :] + b[:, None]).min(axis=1) if length else 2**32 - 1
        assert np.array_equal(out[i], np.broadcast_to(expected, 40).astype(np.uint32))


def test_sketch_is_the_signatures_of_the_sorted_sets():
    """sketch's unsorted sets with repeats in short texts give the signatures and schemes
    that the exact sorted sets give: texts empty, shorter than a shingle, of one repeated
    shingle, short, in between and long."""
    texts = ["", "abc", "ab" * 300, "abcde" * 200, "x"] + _corpus(7, n=60)
    texts += _long_corpus(7, n=6) + _corpus(8, n=6, words=(60, 90))
    texts = dedup.comparable(texts)
    for threshold in (0.6, 0.9):
        found = dedup.sketch(texts, 5, 64, 3, None, threshold)
        sets = dedup.shingle_sets(texts, 5)
        short = np.flatnonzero((sets.counts > 0) & (sets.counts < 2 * 64 / threshold))
        long = np.flatnonzero(sets.counts >= 2 * 64)
        assert len(long) and len(np.intersect1d(short, long))  # every kind of text is there
        assert np.array_equal(found.short, short) and np.array_equal(found.long, long)
        assert np.array_equal(found.short_sig, dedup.signatures(sets, 64, 3, rows=short))
        one = dedup.one_permutation_signatures(sets, 64, 3, rows=long)
        assert np.array_equal(found.long_sig, one)


def test_sketch_in_many_chunks_packs_and_shrinks_the_signatures(monkeypatch):
    """Chunks of a few texts each give the signatures of one chunk, in arrays of exactly the
    rows signed (shrunk in place, not views that would keep the unused rows)."""
    texts = dedup.comparable(_corpus(9, n=40) + _long_corpus(9, n=8) + ["", "ab"])
    whole = dedup.sketch(texts, 5, 64, 3, None, 0.7)
    monkeypatch.setattr(dedup, "_SHINGLE_CHUNK", 300)
    chunked = dedup.sketch(texts, 5, 64, 3, None, 0.7)
    for scheme in ("short", "long"):
        sig = getattr(chunked, f"{scheme}_sig")
        assert np.array_equal(getattr(chunked, scheme), getattr(whole, scheme))
        assert np.array_equal(sig, getattr(whole, f"{scheme}_sig"))
        assert sig.base is None and sig.shape == (len(getattr(chunked, scheme)), 64)


def test_signatures_match_numpy():
    sets = dedup.shingle_sets(_corpus(4, n=40) + [""] + _long_corpus(4, n=5), 5)
    sig = dedup.signatures(sets, 64, seed=9)
    rng = np.random.default_rng(9)
    a = (rng.integers(0, 2**31, 64, dtype=np.uint64) * 2 + 1).astype(np.uint32)
    b = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    for i, count in enumerate(sets.counts):
        h = sets.hashes[sets.offsets[i] : sets.offsets[i + 1]]
        with np.errstate(over="ignore"):
            expected = (a[:, None] * h[None, :] + b[:, None]).min(axis=1) if count else 2**32 - 1
        assert np.array_equal(sig[i], np.broadcast_to(expected, 64).astype(np.uint32))

    one = dedup.one_permutation_signatures(sets, 64, seed=9)
    salt = np.random.default_rng(9).integers(0, 2**63, dtype=np.uint64)
    for i, count in enumerate(sets.counts):
        h = sets.hashes[sets.offsets[i] : sets.offsets[i + 1]].astype(np.uint64) ^ salt
        mixed = np.array([_mix_reference(int(v)) for v in h], dtype=np.uint64)
        bins = (mixed * np.uint64(64)) >> np.uint64(32)
        expected = np.full(64, 2**32 - 1, dtype=np.uint64)
        np.minimum.at(expected, bins.astype(np.int64), mixed)
        filled = expected != 2**32 - 1  # bins the text fills keep their least hash
        assert np.array_equal(one[i][filled], expected[filled]) and filled.any() == bool(count)


def test_densify_matches_numpy():
    """Each empty bin takes the next filled bin to its right (around the end), mixed with the
    distance; rows without shingles stay empty."""
    empty = 2**32 - 1
    rng = np.random.default_rng(4)
    sig = rng.integers(0, 2**32 - 1, (40, 16), dtype=np.uint64).astype(np.uint32)
    sig[rng.random(sig.shape) < 0.6] = empty
    sig[0], sig[1], sig[2], sig[3] = empty, 7, empty, empty
    sig[2, 0], sig[3, -1] = 0, 9  # one filled bin, first or last
    present = (sig != empty).any(axis=1)
    doubled = np.concatenate([sig[present], sig[present]], axis=1)
    positions = np.arange(32)
    filled = np.where(doubled != empty, positions, 32)
    source = np.minimum.accumulate(filled[:, ::-1], axis=1)[:, ::-1][:, :16]
    distance = (source - positions[:16]).astype(np.uint64)
    value = np.take_along_axis(doubled, source, axis=1).astype(np.uint64)
    packed = ((value << np.uint64(32)) | distance).ravel().tolist()
    borrowed = np.array([_mix_reference(v) for v in packed], np.uint32).reshape(distance.shape)
    expected = sig.copy()
    expected[present] = np.where(distance > 0, borrowed, doubled[:, :16])
    dedup._densify(sig, present)
    assert np.array_equal(sig, expected) and (sig[0] == empty).all() and present.sum() == 39


def test_jaccard_on_threads_matches_python_sets():
    texts = _corpus(5, n=200) + [""]
    sets = dedup.shingle_sets(texts, 4)
    rng = np.random.default_rng(0)
    left, right = rng.integers(0, len(texts), 12_000), rng.integers(0, len(texts), 12_000)
    grams = [set(_shingles_reference(t, 4)) for t in texts]
    expected = [
        len(grams[i] & grams[j]) / len(grams[i] | grams[j]) if grams[i] | grams[j] else 0.0
        for i, j in zip(left, right, strict=True)
    ]
    for threads in (1, 3):  # 12,000 pairs: split across the threads
        assert dedup.jaccard(sets, left, right, threads=threads).tolist() == expected


def test_signatures_of_chosen_rows_are_those_rows_of_all():
    sets = dedup.shingle_sets(_corpus(6, n=30) + [""] + _long_corpus(6, n=4), 5)
    rows = np.array([33, 0, 30, 7, 7])
    assert np.array_equal(dedup.signatures(sets, 32, rows=rows), dedup.signatures(sets, 32)[rows])
    assert np.array_equal(
        dedup.one_permutation_signatures(sets, 32, rows=rows),
        dedup.one_permutation_signatures(sets, 32)[rows],
    )


def test_a_pair_both_schemes_propose_keeps_the_higher_estimate():
    """Texts 0 and 2 share the first band under both schemes and agree on 5 of 8 positions
    in one and 7 in the other; texts 1 and 3 only under the first scheme."""
    base = np.arange(8, dtype=np.uint32)
    short_sig = np.array([base, base + 100, [0, 1, 2, 3, 4, 50, 60, 70], base + 100])
    long_sig = np.array([base, [0, 1, 2, 3, 4, 5, 6, 90]])
    sketches = dedup.Sketches(
        n=4,
        short=np.array([0, 1, 2, 3]),
        short_sig=short_sig.astype(np.uint32),
        long=np.array([0, 2]),
        long_sig=long_sig.astype(np.uint32),
    )
    left, right, estimate = sketches.candidates(bands=2, rows=4)
    assert (left.tolist(), right.tolist(), estimate.tolist()) == ([0, 1], [2, 3], [7 / 8, 1.0])


def _long_corpus(seed, n=150):
    """Texts of 250-400 words (one-permutation signatures) and edited copies of a third."""
    return _corpus(seed, n, words=(250, 400))


@pytest.mark.parametrize("seed", [0, 1])
def test_long_texts_are_found_as_exactly_as_short_ones(seed):
    texts = _long_corpus(seed)
    sets = dedup.shingle(dedup.comparable(texts)).unique()
    assert (sets.counts >= 2 * 128 / 0.6).mean() > 0.9  # one-permutation signatures only
    truth = _exact_pairs(texts, 0.6, 5)
    found = dedup.near_duplicate_pairs(dedup.comparable(texts), threshold=0.6)
    got = {(int(i), int(j)) for i, j in zip(found.left, found.right, strict=True)}
    assert got <= set(truth)
    assert {pair for pair, s in truth.items() if s >= 0.7} <= got
    assert len(got) >= 0.97 * len(truth)


def test_one_permutation_signatures_agree_as_often_as_the_texts_overlap():
    texts = _long_corpus(3, n=60)
    sets = dedup.shingle(dedup.comparable(texts)).unique()
    sig = dedup.one_permutation_signatures(sets, 128, seed=4)
    left, right = np.arange(20), np.arange(60, 80)  # each text and its edited copy
    estimate = (sig[left] == sig[right]).mean(axis=1)
    assert np.abs(estimate - dedup.jaccard(sets, left, right)).max() < 0.15
    empty = dedup.one_permutation_signatures(dedup.shingle(["", "x"]).unique(), 8)
    assert (empty[0] == np.iinfo(np.uint32).max).all() and (empty[1] != empty[0]).all()


def test_a_pair_across_the_two_signature_schemes_is_still_found():
    """A long text of repeated words and a short one with the same word set: the long one has
    many shingles but few distinct ones, so both get permutation signatures."""
    short = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    texts = [" ".join([short] * 40), short + " lambda", "something else entirely, and longer"]
    found = dedup.near_duplicate_pairs(dedup.comparable(texts), threshold=0.6)
    assert (found.left.tolist(), found.right.tolist()) == ([0], [1])


def test_shingling_in_chunks_changes_nothing(monkeypatch):
    texts = dedup.comparable(_long_corpus(5, n=40) + _corpus(5, n=40))
    whole = dedup.near_duplicate_pairs(texts, threshold=0.6)
    monkeypatch.setattr(dedup, "_SHINGLE_CHUNK", 300)
    monkeypatch.setattr(dedup, "_SIGNATURE_CHUNK", 50)
    chunked = dedup.near_duplicate_pairs(texts, threshold=0.6)
    assert np.array_equal(chunked.left, whole.left) and np.array_equal(chunked.right, whole.right)
    assert np.allclose(chunked.similarity, whole.similarity)


_TRICKY = " \t\n\u00a0\u2028\u3000.,!?;:-_\u2014\u00ab\u00bb()'\"a\u00e9\u4e2d\uff22\uff01\x1c\x85"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=_TRICKY, max_size=12), max_size=8))
def test_comparable_is_normalising_then_dropping_punctuation(texts):
    """The one-regex path gives what normalising, then replacing punctuation runs with spaces,
    then collapsing spaces gives."""
    import pyarrow.compute as pc

    from prefaudit.text import normalize

    array = normalize(texts)
    array = pc.replace_substring_regex(array, pattern=r"\pP+", replacement=" ")
    array = pc.replace_substring_regex(array, pattern=r"\s{2,}", replacement=" ")
    expected = pc.utf8_trim_whitespace(array).to_pylist()
    assert dedup.comparable(texts).to_pylist() == expected
    rows = np.arange(len(texts))[::-1]
    assert dedup.comparable(texts, rows).to_pylist() == expected[::-1]


@pytest.mark.parametrize("seed", [0, 1])
def test_band_candidates_are_the_pairs_of_each_bucket_by_position(seed):
    """Buckets keyed by band_keys, each ordered by position and paired as bucket_pairs pairs
    them (every text with its next 64 neighbours): what the Ray band-join does per bucket."""
    rng = np.random.default_rng(seed)
    sig = rng.integers(0, 2**32, (3_000, 16), dtype=np.uint32)
    # Buckets of 2-5 texts, and one of 150 (over the 64-neighbour window) in band 1 only.
    for _ in range(400):
        rows = rng.choice(len(sig), rng.integers(2, 6), replace=False)
        band = rng.integers(0, 4)
        sig[rows, band * 4 : band * 4 + 4] = sig[rows[0], band * 4 : band * 4 + 4]
    big = rng.choice(len(sig), 150, replace=False)
    sig[big, 4:8] = 7
    expected = set()
    for band in range(4):
        buckets = {}
        for i, key in enumerate(dedup.band_keys(sig, band, 4).tolist()):
            buckets.setdefault(key, []).append(i)
        for ids in buckets.values():
            left, right = dedup.bucket_pairs(np.array(ids))
            expected |= set(zip(left.tolist(), right.tolist(), strict=True))
    left, right = dedup._band_candidates(sig, 4, 4)
    assert set(zip(left.tolist(), right.tolist(), strict=True)) == expected
    assert len(left) == len(expected) and (left < right).all()
    assert np.all(np.diff(left * len(sig) + right) > 0)


def test_band_keys_match_numpy():
    sig = np.random.default_rng(2).integers(0, 2**32, (300, 16), dtype=np.uint64)
    sig = sig.astype(np.uint32)
    sig[:3] = [[0] * 16, [2**32 - 1] * 16, [0] * 16]
    rng = np.random.default_rng(12345)
    weights = (rng.integers(0, 2**62, 4, dtype=np.uint64) * 2 + 1).astype(np.uint64)
    with np.errstate(over="ignore"):
        for band in range(4):
            s = (sig[:, 4 * band : 4 * band + 4].astype(np.uint64) * weights).sum(axis=1)
            z = (s ^ (s >> np.uint64(31))) * np.uint64(0x7FB5D329728EA185)
            assert np.array_equal(dedup.band_keys(sig, band, 4), z ^ (z >> np.uint64(27)))


def test_shared_keys_are_the_buckets_of_two_or_more_by_position():
    """Keys equal in their high bits (one slot) but not all equal: only equal keys share."""
    keys = np.array([5 << 60, 7, (5 << 60) + 1, 7, 9, 5 << 60, (5 << 60) + 1, 7], np.uint64)
    members, buckets = kernels.shared_keys(keys)
    runs = {}  # each bucket one run, in any order of buckets
    for member, bucket in zip(members.tolist(), buckets.tolist(), strict=True):
        runs.setdefault(bucket, []).append(member)
    assert runs == {0: [0, 5], 1: [1, 3, 7], 2: [2, 6]} and len(set(buckets.tolist())) == 3
    assert sum(1 for k in range(1, len(buckets)) if buckets[k] != buckets[k - 1]) == 2
    for keys in (np.zeros(0, np.uint64), np.arange(50, dtype=np.uint64) << np.uint64(58)):
        assert [len(part) for part in kernels.shared_keys(keys)] == [0, 0]


@pytest.mark.parametrize("chunk", [7, 1 << 21])
@pytest.mark.parametrize("inner", [False, True])
def test_apart_neighbours_are_the_bucket_pairs_whose_groups_are_apart(monkeypatch, chunk, inner):
    """In chunks of any size, the pairs of _bucket_neighbours in its order; once the search
    skips, without the pairs whose texts are in one group (one inner group where both are
    within), as ``unjoined`` says."""
    rng = np.random.default_rng(3)
    n = 600
    keys = rng.integers(0, 40, n).astype(np.uint64) << np.uint64(40)  # buckets of ~15
    keys[:150] = 7  # and one past the 64-neighbour window
    positions = np.sort(rng.choice(3 * n, n, replace=False))  # the rows' texts
    monkeypatch.setattr(dedup, "_PROPOSAL_CHUNK", chunk)
    within = rng.random(3 * n) < 0.5 if inner else None
    search = dedup._GroupSearch(3 * n, None, within, kept=None)

    def pairs():
        got = [(a.copy(), b.copy()) for a, b in dedup._apart_neighbours(keys, positions, search)]
        assert all(0 < len(a) <= chunk for a, _ in got)
        return np.concatenate([a for a, _ in got]), np.concatenate([b for _, b in got])

    every = [np.concatenate([p[k] for p in dedup._bucket_neighbours(keys)]) for k in range(2)]
    got = pairs()
    assert got[0].tolist() == every[0].tolist() and got[1].tolist() == every[1].tolist()
    search.link(*rng.integers(0, 3 * n, (2, 2_000)), np.ones(2_000))
    search.skipping = True
    apart = search.unjoined(positions[every[0]], positions[every[1]])
    assert 0 < apart.sum() < len(apart)
    got = pairs()
    assert got[0].tolist() == every[0][apart].tolist()
    assert got[1].tolist() == every[1][apart].tolist()
    if chunk > 7:
        return
    # Links made between chunks: the next chunks leave out the pairs they join.
    search = dedup._GroupSearch(3 * n, None, within, kept=0)
    search.skipping = True
    chunks = dedup._apart_neighbours(keys, positions, search)
    a, b = next(chunks)
    assert a.tolist() == every[0][:7].tolist() and b.tolist() == every[1][:7].tolist()
    search.link(positions[a], positions[b], np.ones(len(a)))
    rest = [(x.copy(), y.copy()) for x, y in chunks]
    rest = [np.concatenate([part[k] for part in rest]) for k in range(2)]
    apart = search.unjoined(positions[every[0][7:]], positions[every[1][7:]])
    assert 0 < apart.sum() < len(apart)
    assert rest[0].tolist() == every[0][7:][apart].tolist()
    assert rest[1].tolist() == every[1][7:][apart].tolist()


def test_a_threshold_outside_0_1_is_a_setting_error_not_a_division():
    from prefaudit.errors import SettingError

    for threshold in (0, 1, 1.5):
        with pytest.raises(SettingError, match="between 0 and 1"):
            dedup.near_duplicate_pairs(["a b c d e f", "a b c d e g"], threshold=threshold)


def test_dictionary_encoded_and_all_missing_texts_are_read_as_strings():
    import pyarrow as pa

    texts = pa.array(["the same text", "other words", "the same text"]).dictionary_encode()
    assert dedup.shingle_sets(texts, 5).counts.tolist() == [9, 7, 9]
    assert dedup.shingle_sets(pa.array([None, None]), 5).counts.tolist() == [0, 0]


def test_a_signature_array_of_the_wrong_shape_or_type_is_refused():
    """The kernels write without bounds checks: ``out`` must fit exactly."""
    sets = dedup.shingle_sets(["some text here", "more text"], size=3)
    for out in (np.zeros((1, 16), np.uint32), np.zeros((2, 8), np.uint32), np.zeros((2, 16))):
        with pytest.raises(ValueError, match="out must be"):
            dedup.signatures(sets, num_perm=16, out=out)
        with pytest.raises(ValueError, match="out must be"):
            dedup.one_permutation_signatures(sets, num_perm=16, out=out)
    out = np.zeros((2, 16), np.uint32)
    assert dedup.signatures(sets, num_perm=16, out=out) is out


def _planted_sketches(seed):
    """Two schemes over 1,200 texts with random signatures, buckets of 2-5 planted in random
    bands of each, one bucket of 150 (over the 64-neighbour window) in two bands of the first,
    and texts that both schemes sign."""
    rng = np.random.default_rng(seed)
    n = 1_200
    short = np.sort(rng.choice(n, 900, replace=False))
    long = np.sort(rng.choice(n, 500, replace=False))
    sigs = []
    for positions in (short, long):
        sig = rng.integers(0, 2**32, (len(positions), 16), dtype=np.uint32)
        for _ in range(150):
            rows = rng.choice(len(sig), rng.integers(2, 6), replace=False)
            band = rng.integers(0, 4)
            sig[rows, band * 4 : band * 4 + 4] = sig[rows[0], band * 4 : band * 4 + 4]
            sig[rows[1:], 12:] = sig[rows[0], 12:]  # agree on more positions than chance
        sigs.append(sig)
    big = rng.choice(len(short), 150, replace=False)
    sigs[0][big, 4:8] = 7
    sigs[0][big[::2], 8:12] = 9
    # Pairs of texts both schemes sign, sharing a band in one scheme or in both.
    both = rng.permutation(np.intersect1d(short, long))[:120].reshape(-1, 2)
    for k, (i, j) in enumerate(both):
        for scheme, positions in enumerate((short, long)):
            if k % 3 == scheme:
                continue  # k % 3 == 2: both schemes
            a, b = np.searchsorted(positions, [i, j])
            sigs[scheme][b, :8] = sigs[scheme][a, :8]
    return dedup.Sketches(n, short, sigs[0], long, sigs[1])


@pytest.mark.parametrize("seed", [0, 1])
def test_proposals_give_each_candidate_once_with_its_estimate(seed):
    """Band by band, each pair comes from the first band that proposes it, with the higher
    estimate where both schemes propose it: the candidates of Sketches.candidates, each once,
    though no list of the pairs met is kept. With a floor, those whose estimate reaches it."""
    sketches = _planted_sketches(seed)
    left, right, estimate = sketches.candidates(bands=4, rows=4)
    bands = dedup._Bands(sketches, 4, 4)
    everything = dedup._GroupSearch(sketches.n, None, None, kept=None)  # never skips
    assert len(left) > 1_000
    first = None
    for floor in (0.0, 0.4, 0.7):
        parts = list(bands.proposals(everything, floor))
        got = [np.concatenate([p[k] for p in parts]) for k in range(3)]
        order = np.lexsort((got[1], got[0]))
        above = estimate >= floor
        assert above.any() and (floor == 0) == above.all()
        assert got[0][order].tolist() == left[above].tolist()
        assert got[1][order].tolist() == right[above].tolist()
        assert got[2][order].tolist() == estimate[above].tolist()
        # in the order the floor 0 gives them: a judge meets the pairs it keeps as before
        first = got if first is None else first
        kept = first[2] >= floor
        assert all(got[k].tolist() == first[k][kept].tolist() for k in range(3))
    # Asked pair by pair: the same estimates, and none for pairs no band proposes.
    assert bands.estimates(left, right).tolist() == estimate.tolist()
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, sketches.n, 2_000), rng.integers(0, sketches.n, 2_000)
    codes = set((left * sketches.n + right).tolist())
    a, b = np.minimum(a, b)[a != b], np.maximum(a, b)[a != b]
    unproposed = np.array([i * sketches.n + j not in codes for i, j in zip(a, b, strict=True)])
    assert (bands.estimates(a[unproposed], b[unproposed]) == -1).all()


FIELDS = ("left", "right", "similarity")


def _mixed_corpus(seed):
    """Short and long texts, with chains of edited copies (several links per group)."""
    texts = _corpus(seed, 150) + _long_corpus(seed, 60)
    rng = random.Random(seed)
    for text in texts[:40]:
        words = text.split()
        for _ in range(3):
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            texts.append(" ".join(words))
    return dedup.comparable(texts)


@pytest.mark.parametrize("seed", [0, 1])
def test_groups_are_the_components_of_the_pairs_whatever_the_budget(seed):
    texts = _mixed_corpus(seed)
    pairs = dedup.near_duplicate_pairs(texts, threshold=0.6)
    expected = dedup.components(len(texts), pairs.left, pairs.right)
    groups = dedup.near_duplicate_groups(texts, threshold=0.6)
    assert groups.complete and groups.within is None
    assert (groups.labels == expected).all()
    for field in ("left", "right", "similarity"):
        assert getattr(groups.links, field).tolist() == getattr(pairs, field).tolist()
    # Over the budget from the sixth link: pairs already in one group are not judged, and
    # only the first five links are kept.
    skipping = dedup.near_duplicate_groups(texts, threshold=0.6, kept=5)
    assert not skipping.complete and (skipping.labels == expected).all()
    assert len(skipping.links) == 5 and len(pairs) > 5
    found = {
        (i, j): s for i, j, s in zip(*(getattr(pairs, f).tolist() for f in FIELDS), strict=True)
    }
    kept = zip(*(getattr(skipping.links, f).tolist() for f in FIELDS), strict=True)
    assert all(found[(i, j)] == similarity for i, j, similarity in kept)
    assert dedup.near_duplicate_groups(texts, threshold=0.6, kept=len(pairs)).complete
    assert len(np.unique(expected)) < len(texts) - 50  # groups of several texts


@pytest.mark.parametrize("blocks", [False, True])
def test_groups_within_a_mask_and_through_accept_are_those_of_the_kept_links(monkeypatch, blocks):
    """Whatever the budget, and with the pairs in doubt checked in blocks of a few texts
    (past the budget, each block without the pairs earlier blocks joined)."""
    if blocks:
        monkeypatch.setattr(dedup, "_CHECK_BYTES", 2_000)
    texts = _mixed_corpus(2)
    pairs = dedup.near_duplicate_pairs(texts, threshold=0.6)
    within = np.random.default_rng(0).random(len(texts)) < 0.5

    def high(left, right, similarity):
        return similarity >= 0.75

    strong = pairs.similarity >= 0.75
    inside = strong & within[pairs.left] & within[pairs.right]
    for kept in (None, 0):
        groups = dedup.near_duplicate_groups(
            texts, threshold=0.6, accept=high, within=within, kept=kept
        )
        n = len(texts)
        assert (groups.labels == dedup.components(n, pairs.left[strong], pairs.right[strong])).all()
        assert (groups.within == dedup.components(n, pairs.left[inside], pairs.right[inside])).all()
    assert (groups.links.similarity >= 0.75).all()


def _with_a_crowd(seed):
    """The mixed corpus and 150 distinct texts differing by one word at their end: band
    buckets far over the 64-neighbour window, where the search pairs a text only with its
    nearest 64 on each side."""
    texts = _mixed_corpus(seed).to_pylist()
    rng = random.Random(seed)
    base = " ".join(rng.choice(WORDS) for _ in range(40))
    return dedup.comparable(texts + [f"{base} {w}{k}" for k, w in enumerate(WORDS * 2)][:150])


def test_past_the_budget_ask_says_of_each_pair_what_the_search_says():
    texts = _with_a_crowd(3)
    whole = dedup.near_duplicate_groups(texts, threshold=0.6)
    assert whole.complete and whole.ask is None
    links = set(zip(whole.links.left.tolist(), whole.links.right.tolist(), strict=True))
    skipping = dedup.near_duplicate_groups(texts, threshold=0.6, kept=10)
    assert not skipping.complete and len(skipping.links) == 10
    # Every pair of texts of one group: linked, or only through others (the crowd's far ends).
    left, right = [], []
    for label in np.unique(whole.labels):
        members = np.flatnonzero(whole.labels == label)
        for k, i in enumerate(members):
            left += [i] * (len(members) - k - 1)
            right += members[k + 1 :].tolist()
    left, right = np.array(left), np.array(right)
    truth = np.array([(i, j) in links for i, j in zip(left, right, strict=True)])
    assert truth.sum() > 5_000 and (~truth).sum() > 500
    assert skipping.ask(left, right).tolist() == truth.tolist()
    assert skipping.ask(right, left).tolist() == truth.tolist()  # either order


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=60))
def test_union_find_groups_are_the_connected_components(n, edges):
    left = np.array([a % n for a, _ in edges], dtype=np.int64)
    right = np.array([b % n for _, b in edges], dtype=np.int64)
    parent = np.arange(n, dtype=np.int64)
    half = len(left) // 2
    kernels.join(parent, left[:half], right[:half])
    kernels.roots(parent)  # flattened mid-search (as the search reads groups), then joined on
    apart = np.empty(len(left) - half, dtype=bool)
    kernels.apart(parent, left[half:], right[half:], apart)
    before = dedup.components(n, left[:half], right[:half])
    assert apart.tolist() == (before[left[half:]] != before[right[half:]]).tolist()
    kernels.join(parent, left[half:], right[half:])
    kernels.roots(parent)
    assert parent.tolist() == dedup.components(n, left, right).tolist()


@pytest.mark.parametrize("missing", [False, True])
def test_comparable_in_chunks_joins_them_as_arrow_does(monkeypatch, missing):
    from prefaudit import text

    monkeypatch.setattr(dedup, "CHUNK_ROWS", 7)
    texts = [f"Text  number {k}, é!" * (k % 4) for k in range(100)]
    if missing:  # an Arrow array keeps it missing
        texts[50] = None
    array = pa.array(texts, type=pa.large_string())
    joined = dedup.comparable(array)
    expected = text.normalize(array, drop_punctuation=True)
    assert joined.type == expected.type and joined.equals(expected)
    assert joined.null_count == int(missing)
    rows = np.array([99, 3, 3, 42, 0])
    assert dedup.comparable(texts, rows).to_pylist() == [joined[int(r)].as_py() for r in rows]


def test_exact_checks_in_blocks_of_bounded_text_change_nothing(monkeypatch):
    texts = _mixed_corpus(4)
    whole = dedup.near_duplicate_pairs(texts, threshold=0.6)
    monkeypatch.setattr(dedup, "_CHECK_BYTES", 2_000)  # a few texts per block
    blocks = list(dedup._check_blocks(dedup._source(texts), whole.left, whole.right))
    assert len(blocks) > 10
    assert sorted(np.concatenate(blocks).tolist()) == list(range(len(whole)))
    length = np.diff(kernels.string_buffers(kernels.large_strings(texts))[0])
    for block in blocks:  # a block's distinct texts hold at most the bound, or it is one pair
        involved = np.unique(np.r_[whole.left[block], whole.right[block]])
        assert length[involved].sum() <= 2_000 or len(block) == 1
    blocked = dedup.near_duplicate_pairs(texts, threshold=0.6)
    for field in ("left", "right", "similarity"):
        assert getattr(blocked, field).tolist() == getattr(whole, field).tolist()


def test_block_cuts_bound_the_distinct_texts_of_each_block():
    left, right = np.array([0, 0, 1, 2, 3, 3]), np.array([1, 1, 0, 3, 4, 0])
    length = np.array([10, 10, 10, 10, 10])
    # blocks {0,1} (three pairs, 20 bytes), {2,3,4} (30 bytes: 3 is there already), {3,0}
    assert kernels.block_cuts(left, right, length, 30).tolist() == [3, 5]
    # each new text past the bound, but a pair adding none stays
    assert kernels.block_cuts(left, right, length, 5).tolist() == [3, 4, 5]
    # a text paired with itself counts once: {0}, then {1} would make 20 bytes
    same = np.array([0, 0, 1])
    assert kernels.block_cuts(same, same, length, 15).tolist() == [2]
    empty = np.zeros(0, dtype=np.int64)
    assert kernels.block_cuts(empty, empty, length, 30).tolist() == []


@pytest.mark.parametrize("batch", [None, 1])
@pytest.mark.parametrize("held", [True, False])
def test_texts_normalised_as_they_are_read_are_searched_as_a_held_copy(monkeypatch, held, batch):
    """Held or read lazily, and with the pairs in doubt checked at the end or a batch at a
    time (``batch=1``: after every proposal, before and past the budget of links), the
    search finds the same pairs, groups and answers."""
    texts = _mixed_corpus(4).to_pylist()
    raw = [text.replace(" ", ",  ", 1).title() for text in texts]  # comparable: the same
    rows = 7 + np.arange(len(raw))  # rows of a column holding other texts too
    column = pa.array(["Skipped, never searched"] * 7 + raw + ["Nor this"])
    pairs = dedup.near_duplicate_pairs(texts, threshold=0.6)
    groups = dedup.near_duplicate_groups(texts, threshold=0.6, kept=5)
    some = np.random.default_rng(0).integers(0, len(texts), (2, 500))
    asked = groups.ask(*some)
    monkeypatch.setattr(dedup, "_HELD_BYTES", 1 << 30 if held else 0)
    monkeypatch.setattr(dedup, "_CHECK_BYTES", 2_000)  # blocks of a few texts
    monkeypatch.setattr(dedup, "_SHINGLE_CHUNK", 3_000)
    reads, read = [], dedup.comparable
    monkeypatch.setattr(dedup, "comparable", lambda t, r: reads.append(len(r)) or read(t, r))
    if batch is not None:
        for name in ("_DOUBT_PAIRS", "_DOUBT_PAIRS_SKIPPING"):
            monkeypatch.setattr(dedup, name, batch)

    source = dedup.ComparableTexts(column, rows)
    assert source.held == held and len(source) == len(texts)
    # bytes as held, else before normalising
    assert source.lengths.tolist() == [len(t) for t in (texts if held else raw)]
    found = dedup.near_duplicate_pairs(source, threshold=0.6)
    for field in ("left", "right", "similarity"):
        assert getattr(found, field).tolist() == getattr(pairs, field).tolist()
    source = dedup.ComparableTexts(column, rows)
    found = dedup.near_duplicate_groups(source, threshold=0.6, kept=5)
    assert (found.labels == groups.labels).all() and not found.complete
    assert found.ask(*some).tolist() == asked.tolist()
    assert source.words.tolist() == [t.count(" ") + 1 for t in texts]
    if batch is not None:
        return
    if held:  # normalised once, all together
        assert reads == [len(texts)] * 2
    else:  # a few texts at a time, some more than once (signed, then checked)
        assert max(reads) < len(texts) / 10 and sum(reads) > 2 * len(texts)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.none() | st.text(max_size=3), max_size=4), min_size=1, max_size=4),
    st.lists(st.integers(0, 1000), max_size=12),
)
def test_taking_rows_of_a_chunked_array_chunk_by_chunk_is_arrow_s_take(chunks, picks):
    array = pa.chunked_array([pa.array(c, type=pa.large_string()) for c in chunks])
    n = len(array)
    rows = np.array([p % n for p in picks] if n else [], dtype=np.int64)
    expected = array.combine_chunks().take(pa.array(rows, type=pa.int64()))
    assert kernels.take_rows(array, rows).equals(expected)
    with pytest.raises(IndexError):  # as Arrow's take, not a text silently left out
        kernels.take_rows(array, np.array([n]))


def test_column_strings_chain_columns_without_copying_arrow_backed_ones():
    import pandas as pd

    arrow = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["a", None], ["b"]])))
    plain = pd.Series(["c", None], dtype=object)
    joined = kernels.column_strings(arrow, plain)
    assert joined.type == pa.large_string() and joined.num_chunks == 3
    assert joined.to_pylist() == ["a", None, "b", "c", None]
    first = arrow.array._pa_array.chunk(0).cast(pa.large_string())
    assert joined.chunk(0).buffers()[2].address == first.buffers()[2].address


@pytest.mark.parametrize("held", [True, False])
def test_word_counts_of_texts_not_read_yet_are_read_for_them(monkeypatch, held):
    texts = ["One, two; three!", "", None, "four   five", "Six-seven eight nine"]
    expected = [3, 1, 1, 2, 4]  # punctuation dropped: "six seven eight nine"
    monkeypatch.setattr(dedup, "_HELD_BYTES", 1 << 30 if held else 0)
    for first in ([], [3, 0]):  # nothing read yet, or a part
        source = dedup.ComparableTexts(pa.array(texts, type=pa.large_string()))
        if first:
            assert source.read(np.array(first)).to_pylist() == ["four five", "one two three"]
        assert source.words.tolist() == expected
        assert not source.words.flags.writeable
