"""hashed_words is scikit-learn's HashingVectorizer(ngram_range=(1, 2), alternate_sign=False,
norm="l2"): the same CSR matrix, indices, row pointers and values, bit for bit."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.utils import murmurhash3_32

from prefaudit.words import hashed_words, word_counts
from tests.helpers import real_texts


def sklearn_words(texts, n_features=2**14):
    vectorizer = HashingVectorizer(
        n_features=n_features, ngram_range=(1, 2), alternate_sign=False, norm="l2"
    )
    return vectorizer.transform(texts)


def assert_same(ours, theirs):
    assert ours.shape == theirs.shape
    assert np.array_equal(ours.indptr, theirs.indptr)
    assert np.array_equal(ours.indices, theirs.indices)
    assert np.array_equal(ours.data, theirs.data)  # exactly: the same floats
    assert (ours != theirs).nnz == 0


def test_real_texts_with_and_without_non_ascii_characters(hh_file, alpaca_file):
    texts = real_texts(hh_file, alpaca_file, 150, 150)
    assert sum(not text.isascii() for text in texts) > 50  # curly quotes, accents, emoji
    assert_same(hashed_words(texts, threads=2), sklearn_words(texts))


EDGES = [
    "",
    "a b c",  # one-character words: no token
    "one",  # one token, no bigram
    "snake_case __init__ x_1 2024 42nd",
    "?!... --- ,,,",  # punctuation only
    "line\nbreak\ttab\r\nend  two  spaces",
    "UPPER Case MiXeD",
    "repeat repeat repeat repeat",  # counts above 1 (and a repeated bigram)
    "Don’t — “quoted” • café CAFÉ naïve ½ x² 안녕하세요 😊 emoji🚀rocket",
    "e\u0301 combining, Ⱥ lowers to three bytes, ǅ titlecase, ß",
    "ΣΟΦΟΣ ΟΔΟΣ",  # lower case by context: σοφος
    "İstanbul",  # lower case of two characters
    "\x00\x01 control\x7f chars",
]


@pytest.mark.parametrize("n_features", [2**14, 1000, 7, 2**20, 2**23])  # 2**23: sorted rows
def test_edge_cases(n_features):
    assert_same(hashed_words(EDGES, n_features), sklearn_words(EDGES, n_features))


def test_a_token_hashed_to_minus_2_to_the_31():
    token = "aivlts3m"  # found by inverting MurmurHash3 (its last block) for this hash
    assert murmurhash3_32(token, seed=0) == -(2**31)
    texts = [token, f"{token} {token.upper()} and more"]
    for n_features in (2**14, 1000, 12345):
        assert_same(hashed_words(texts, n_features), sklearn_words(texts, n_features))


def test_missing_texts_are_rows_of_zeros_and_inputs_of_any_kind():
    texts = ["The cat sat.", None, "a dog ran", "", "Ünïcode text"]
    expected = sklearn_words([text or "" for text in texts])
    assert hashed_words(texts)[1].nnz == 0
    for given_as in (
        texts,
        pd.Series(texts),
        pd.Index(texts),
        pa.array(texts, pa.string()),
        pa.chunked_array([texts[:2], texts[2:]]),
    ):
        assert_same(hashed_words(given_as), expected)
    # a slice of an Arrow array: its offsets start past 0
    sliced = pa.array(["skipped text"] + texts, pa.large_string()).slice(1)
    assert_same(hashed_words(sliced), expected)


def test_threads_and_chunks_give_the_same_matrix():
    rng = np.random.default_rng(0)
    vocabulary = np.array(["alpha", "Beta", "gamma_1", "δέλτα", "x", "42", "it’s", "ΟΔΟΣ", "İ"])
    texts = [" ".join(rng.choice(vocabulary, rng.integers(0, 40))) for _ in range(300)]
    expected = sklearn_words(texts)
    for threads in (1, 3):
        assert_same(hashed_words(texts, threads=threads), expected)


def test_no_texts_and_a_bad_width():
    assert hashed_words([]).shape == (0, 2**14)
    with pytest.raises(ValueError, match="n_features"):
        hashed_words(["a text"], n_features=0)


ALPHABET = "aZ_09 .,\n\t-'’“—éÉΣσςİı²½😊안Ⱥǅ\u0301\u200d\xa0"


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(alphabet=ALPHABET, max_size=60), min_size=1, max_size=8),
    n_features=st.sampled_from([1, 31, 1000, 2**14]),
)
def test_random_texts(texts, n_features):
    assert_same(hashed_words(texts, n_features), sklearn_words(texts, n_features))


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=5))
def test_random_unicode_texts(texts):
    assert_same(hashed_words(texts), sklearn_words(texts))


# -- word_counts: CountVectorizer's vocabulary and matrix ------------------------------------


def sklearn_counts(texts, stop_words, bigrams, dtype=np.int64):
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(
        stop_words=stop_words, ngram_range=(1, 2 if bigrams else 1), dtype=dtype
    )
    return vectorizer.fit_transform(texts), vectorizer.vocabulary_


def assert_same_counts(texts, stop_words=None, bigrams=False, dtype=np.int64):
    """Both raise the same ValueError (no vocabulary), or give the same vocabulary and the
    same matrix: row pointers, indices in the same order, values and their type."""
    try:
        theirs, vocabulary = sklearn_counts(texts, stop_words, bigrams, dtype)
    except ValueError as err:
        with pytest.raises(ValueError, match="empty vocabulary"):
            word_counts(texts, stop_words=stop_words, bigrams=bigrams, dtype=dtype)
        assert "empty vocabulary" in str(err)
        return
    ours, found = word_counts(texts, stop_words=stop_words, bigrams=bigrams, dtype=dtype)
    assert found == vocabulary
    assert ours.dtype == theirs.dtype and ours.indices.dtype == theirs.indices.dtype
    assert_same(ours, theirs)


@pytest.mark.parametrize("stop_words", [None, "english"])
@pytest.mark.parametrize("bigrams", [False, True])
def test_word_counts_on_real_texts(hh_file, alpaca_file, stop_words, bigrams):
    texts = real_texts(hh_file, alpaca_file, 150, 150)
    assert_same_counts(texts, stop_words, bigrams)


@pytest.mark.parametrize("stop_words", [None, "english", ["the", "Case", "repeat", "σοφος"]])
@pytest.mark.parametrize("bigrams", [False, True])
def test_word_counts_edge_cases(stop_words, bigrams):
    assert_same_counts(EDGES, stop_words, bigrams, dtype=np.float64)


def test_word_counts_grows_its_tables_and_raises_on_stop_words_only():
    """Thousands of distinct words and pairs (every table grows several times) give
    scikit-learn's vocabulary; texts of stop words only give its error."""
    rng = np.random.default_rng(0)
    words = [f"w{k}x" for k in range(20_000)]
    texts = [" ".join(rng.choice(words, rng.integers(0, 60))) for _ in range(2_000)]
    assert_same_counts(texts, "english", True)
    assert_same_counts(["the and of", "", "a an"], "english", False)
    with pytest.raises(ValueError, match="stop_words"):
        word_counts(["a text"], stop_words="german")


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(st.text(alphabet=ALPHABET + "thebandof", max_size=60), min_size=1, max_size=8),
    bigrams=st.booleans(),
)
def test_word_counts_of_random_texts(texts, bigrams):
    assert_same_counts(texts, "english", bigrams)
