from hypothesis import given
from hypothesis import strategies as st

from prefaudit.text import normalize, text_features


def test_normalisation_examples():
    assert normalize(["  Ｈｅｌｌｏ,,,   WORLD!!\n", "ﬁne\u00a0day", "a - - b"]).to_pylist() == [
        "hello, world!",
        "fine day",
        "a - - b",
    ]


@given(st.lists(st.text(max_size=50), max_size=30))
def test_hashes_equal_exactly_when_normalised_texts_are_equal(texts):
    normalised = normalize(texts).to_pylist()
    hashes = text_features(texts, chunk_rows=7).normalized_hash  # several chunks, threaded
    for i in range(len(texts)):
        for j in range(len(texts)):
            if normalised[i] == normalised[j]:
                assert hashes[i] == hashes[j]


@given(st.text(max_size=50))
def test_normalisation_is_idempotent(text):
    once = normalize([text]).to_pylist()
    assert normalize(once).to_pylist() == once


def test_word_cut_never_ends_inside_a_word():
    from prefaudit.text import word_cut

    text = "I am interested in trying some Israeli dishes. Can you give me a recipe?"
    assert word_cut(text, 52) == "I am interested in trying some Israeli dishes. Can"
    assert word_cut(text, 51) == "I am interested in trying some Israeli dishes. Can "
    assert word_cut(text, 1000) == text
    assert word_cut(text, 0) == ""
    assert word_cut("x" * 50, 20) == "x" * 20  # one long word: cut where the limit falls


@given(st.text(max_size=80), st.integers(1, 60))
def test_word_cut_is_a_prefix_within_the_limit(text, limit):
    from prefaudit.text import word_cut

    head = word_cut(text, limit)
    assert text.startswith(head) and len(head) <= limit
    # Either nothing was left out, or the cut falls next to whitespace: no word cut in two.
    at_space = not head[-1:].strip() or not text[len(head) : len(head) + 1].strip()
    assert len(head) == min(len(text), limit) or at_space


def test_shape_counts_count_as_python_re_does_and_a_missing_text_as_empty():
    import pandas as pd
    import pyarrow as pa

    from prefaudit.text import shape_counts

    texts = ["Why?\n- one 2\n* two", "né 3 ÉÉ?", "", "  A  B\tc \x0b", "1. x\n2. y"]
    counts = shape_counts(pa.array([*texts, None]))
    series = pd.Series(texts)
    assert counts["words"][:-1].tolist() == series.str.count(r"\S+").tolist()
    assert counts["digits"][:-1].tolist() == series.str.count(r"\d").tolist()
    assert counts["questions"][:-1].tolist() == series.str.count(r"\?").tolist()
    assert {name: values[-1] for name, values in counts.items()} == dict.fromkeys(counts, 0.0)
