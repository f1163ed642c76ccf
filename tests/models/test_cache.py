import numpy as np

from prefaudit.models.cache import VectorCache, text_keys


def test_cache_round_trip_and_missing_keys(tmp_path):
    cache = VectorCache(tmp_path, "model-x", kind="embeddings")
    keys = text_keys(["a", "b"])
    cache.add(keys, np.eye(2, dtype=np.float32))
    found, vectors = VectorCache(tmp_path, "model-x", kind="embeddings").lookup(
        text_keys(["b", "zzz", "a"])
    )
    assert found.tolist() == [True, False, True]
    assert vectors.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    other_model, _ = VectorCache(tmp_path, "model-y", kind="embeddings").lookup(keys)
    assert not other_model.any()


def test_damaged_cache_shard_is_ignored_with_a_warning(tmp_path, caplog):
    cache = VectorCache(tmp_path, "model-x", kind="embeddings")
    cache.add(text_keys(["a"]), np.ones((1, 2), dtype=np.float32))
    (cache.folder / "broken.npz").write_bytes(b"not a zip file")
    found, _ = VectorCache(tmp_path, "model-x", kind="embeddings").lookup(text_keys(["a"]))
    assert found.tolist() == [True]
    assert "damaged embedding cache shard" in caplog.text


def test_kinds_and_dtypes_are_kept_apart(tmp_path):
    keys = text_keys(["pair"])
    VectorCache(tmp_path, "m", kind="reference", dtype=np.float64).add(
        keys, np.array([[-175.01780519]])
    )
    found, _ = VectorCache(tmp_path, "m", kind="embeddings").lookup(keys)
    assert not found.any()
    found, values = VectorCache(tmp_path, "m", kind="reference", dtype=np.float64).lookup(keys)
    assert found.all() and values[0, 0] == -175.01780519  # float64 kept exactly


def test_a_model_saved_again_into_the_same_folder_is_another_source(tmp_path):
    import os

    from prefaudit.models.cache import source_identity

    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "weights.bin").write_bytes(b"v1")
    first = source_identity(model)
    assert first.startswith(f"{model}@") and source_identity(str(model)) == first
    (model / "sub" / "weights.bin").write_bytes(b"v2")  # same size, newer
    os.utime(model / "sub" / "weights.bin", ns=(1, 1))
    assert source_identity(model) != first
    assert source_identity("org/hub-model") == "org/hub-model"
