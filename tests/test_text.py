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
