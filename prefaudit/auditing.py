"""The audit: a context of shared, lazily computed artefacts, the validator runner, the result."""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from prefaudit import __version__, memory, text
from prefaudit.errors import UnknownNameError
from prefaudit.io import LoadedData, LoadReport
from prefaudit.validators.base import (
    VALIDATORS,
    MissingInputError,
    Validator,
    ValidatorResult,
    create_validator,
)

log = logging.getLogger(__name__)


class AuditContext:
    """What validators read: the pairs, optional annotations, and artefacts computed once.

    Artefacts (lengths, normalised-text hashes; later embeddings and reference log-probs) are
    computed on first request and cached for the rest of the audit, so two validators asking
    for the same thing pay for it once.
    """

    def __init__(
        self,
        pairs: pd.DataFrame,
        annotations: pd.DataFrame | None = None,
        *,
        load_report: LoadReport | None = None,
        embedder: Any = "env",
        reference_scorer: Any = None,
        artefacts: Mapping[tuple, Any] | None = None,
    ):
        self.pairs = pairs
        self.annotations = annotations
        self.load_report = load_report
        # Anything with `encode(texts) -> unit vectors`; "auto" builds the default Embedder on
        # first use (the embedded all-MiniLM-L6-v2); a string names a model; None turns
        # embeddings off; "env" reads PREFAUDIT_EMBEDDING_MODEL (see embedder_from_env).
        self.embedder = embedder
        # A ReferenceScorer to use instead of loading the model a validator names (tests, or a
        # model already in memory).
        self.reference_scorer = reference_scorer
        self.results: dict[str, ValidatorResult] = {}  # results of validators that already ran
        self.notes: list[str] = []  # what a reader of the result should know (skipped parts...)
        # Artefacts computed elsewhere (the Ray engine: embeddings, reference log-probs), under
        # the keys the methods below compute them under; they are not computed again.
        self._cache: dict[tuple, Any] = dict(artefacts or {})

    def artefact(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The cached value for ``key``, computing it on first use."""
        if key not in self._cache:
            started = time.perf_counter()
            self._cache[key] = compute()
            log.debug("computed %s in %.2fs", key, time.perf_counter() - started)
        return self._cache[key]

    def require(self, validator: Validator) -> None:
        """Raise :class:`MissingInputError` naming what ``validator`` needs and the audit lacks."""
        for need in validator.requires:
            if need == "annotations":
                if self.annotations is None:
                    raise MissingInputError(
                        f"validator {validator.name!r} needs annotations (pair_id, annotator, label): "
                        "give an annotations file or load a long table with an annotator column",
                        setting="annotations",
                    )
            elif need not in self.pairs.columns:
                raise MissingInputError(
                    f"validator {validator.name!r} needs the column {need!r}, which the pairs lack "
                    f"(they have: {', '.join(map(str, self.pairs.columns))})"
                )

    def lengths(self, column: str) -> np.ndarray:
        """Characters per text of ``column``."""
        return self.artefact(
            ("chars", column), lambda: self.pairs[column].str.len().to_numpy(dtype=np.int64)
        )

    def text_features(self, column: str) -> text.TextFeatures:
        """Lengths, word counts, normalised-text hashes and tails of ``column``, in one pass."""
        return self.artefact(
            ("text_features", column), lambda: text.text_features(self.pairs[column])
        )

    def embed(self, texts) -> np.ndarray:
        """Unit-length embeddings of ``texts``; raises ``EmbeddingsUnavailable`` when there are none."""
        return self._encoder().encode(list(texts))

    def _encoder(self) -> Any:
        """The embedder, resolved (and built) on first use; raises ``EmbeddingsUnavailable``
        when embeddings are off."""
        from prefaudit.models.embeddings import Embedder, EmbeddingsUnavailable, embedder_from_env

        if self.embedder == "env":
            self.embedder = embedder_from_env()
        if self.embedder is None:
            raise EmbeddingsUnavailable("embeddings are turned off")
        if isinstance(self.embedder, str):
            self.embedder = Embedder(None if self.embedder == "auto" else self.embedder)
        return self.embedder

    def embeddings(self, column: str) -> np.ndarray:
        """Embeddings of every text of ``column`` (each distinct text embedded once)."""

        def compute() -> np.ndarray:
            # Asked first: with embeddings off, the texts were factorised (a copy of the
            # distinct ones) for nothing.
            encoder = self._encoder()
            codes, uniques = pd.factorize(self.pairs[column])
            return encoder.encode(list(uniques))[codes]

        return self.artefact(("embeddings", column), compute)

    def reference_logps(
        self, model: str | None, max_length: int, rows: np.ndarray, progress: bool = False
    ) -> tuple[pd.DataFrame, Any]:
        """Reference-model log-probs of the pairs at positions ``rows`` (and the scorer used)."""
        from prefaudit.models.reference import SCORE_COLUMNS, ReferenceScorer

        scorer = self.reference_scorer
        if isinstance(scorer, dict):  # given per model name (tests; a policy and its reference)
            scorer = scorer.get(model)
        if scorer is None:
            scorer = self.artefact(
                ("reference_scorer", model, max_length),
                lambda: ReferenceScorer(model, max_length=max_length),
            )

        def compute() -> pd.DataFrame:
            pairs = self.pairs.iloc[rows]
            messages = pairs["prompt_messages"].tolist() if "prompt_messages" in pairs else None
            if not len(pairs):
                return pd.DataFrame(columns=list(SCORE_COLUMNS))
            return scorer.score(
                pairs["prompt"].tolist(),
                pairs["chosen"].tolist(),
                pairs["rejected"].tolist(),
                messages,
                progress=progress,
            )

        key = ("reference_logps", model, max_length, tuple(int(r) for r in rows))
        return self.artefact(key, compute), scorer

    def near_duplicate_pairs(self, texts, **settings):
        """:func:`prefaudit.dedup.near_duplicate_pairs` of ``texts``, with the candidate pairs
        from an engine's band-join when one is set (artefact ``("near_duplicate_candidates",)``:
        a function of the texts, or None where they are few enough to search here)."""
        from prefaudit import dedup

        engine = self._cache.get(("near_duplicate_candidates",))
        candidates = engine(texts, **settings) if engine is not None else None
        return dedup.near_duplicate_pairs(texts, candidates=candidates, **settings)

    def near_duplicate_groups(self, texts, **settings):
        """:func:`prefaudit.dedup.near_duplicate_groups` of ``texts``, with the candidate pairs
        from an engine's band-join when one is set (as :meth:`near_duplicate_pairs`)."""
        from prefaudit import dedup

        engine = self._cache.get(("near_duplicate_candidates",))
        candidates = engine(texts, **settings) if engine is not None else None
        return dedup.near_duplicate_groups(texts, candidates=candidates, **settings)

    def prompt_list(self, path: str | Path) -> list[str]:
        """The prompts of an extra input (an evaluation set, prompts that matter), read once
        per audit however many validators ask (see :func:`prefaudit.io.prompts.load_prompts`)."""
        from prefaudit.io.prompts import load_prompts

        return self.artefact(("prompts", str(path)), lambda: load_prompts(path))

    def normalized_hashes(self, column: str) -> np.ndarray:
        """64-bit hashes of the normalised texts of ``column`` (see :func:`prefaudit.text.normalize`)."""
        return self.text_features(column).normalized_hash


@dataclass
class AuditResult:
    """Everything an audit produced; :mod:`prefaudit.outputs` saves it as ``audit.json`` +
    ``flags.parquet`` (``to_dict``/``from_dict`` round-trip without loss)."""

    load: LoadReport
    validators: dict[str, ValidatorResult]
    pair_ids: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    notes: list[str] = field(default_factory=list)
    # Settings that change results but belong to no validator: the embedding model, as the
    # audit resolved it ("auto", a name or folder, "off"); a saved audit is reused only when
    # they are the same. "embedding_runtime" (when a model was loaded) says which path
    # embedded: bf16 BertEncoder or fp32 sentence-transformers, and why.
    settings: dict[str, Any] = field(default_factory=dict)
    # The audited data, when this result was computed in this process (not saved in JSON): the
    # report's flagged-pair texts and the pair-level rules read it.
    data: LoadedData | None = field(default=None, repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        return self.load.fingerprint

    @property
    def metrics(self) -> dict[str, Any]:
        """All validators' metrics in one flat dict."""
        return {k: v for result in self.validators.values() for k, v in result.metrics.items()}

    @property
    def flags(self) -> pd.DataFrame:
        """One row per pair, columns ``<validator>/<column>``, plus ``any_issue``."""
        frames = [r.flags.add_prefix(f"{name}/") for name, r in self.validators.items()]
        index = pd.Index(self.pair_ids, dtype="str", name="pair_id")
        flags = pd.concat(frames, axis=1).reindex(index) if frames else pd.DataFrame(index=index)
        issue_columns = [f"{name}/issue" for name in self.validators]
        flags["any_issue"] = flags[issue_columns].any(axis=1) if issue_columns else False
        return flags

    def to_dict(self, include_flags: bool = False) -> dict[str, Any]:
        data = {
            "prefaudit_version": __version__,
            "created": self.created,
            "fingerprint": self.fingerprint,
            "load": self.load.to_dict(),
            "validators": {name: r.to_dict(include_flags) for name, r in self.validators.items()},
            "timings": self.timings,
            "versions": self.versions,
            "notes": self.notes,
            "settings": self.settings,
        }
        if include_flags:
            data["pair_ids"] = self.pair_ids
        return data

    def to_json(self, include_flags: bool = True) -> str:
        return orjson.dumps(self.to_dict(include_flags), option=orjson.OPT_SERIALIZE_NUMPY).decode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], flags: pd.DataFrame | None = None) -> AuditResult:
        """Rebuild a result; flags come from ``data`` or, for ``audit.json``, from ``flags.parquet``."""
        validators = {}
        for name, entry in data["validators"].items():
            own = None
            if flags is not None:
                own = flags[[c for c in flags.columns if c.startswith(f"{name}/")]]
                own = own.rename(columns=lambda c: c.split("/", 1)[1]).rename_axis(None)
            validators[name] = ValidatorResult.from_dict(name, entry, own)
        pair_ids = data["pair_ids"] if flags is None else [str(i) for i in flags.index]
        return cls(
            LoadReport.from_dict(data["load"]),
            validators,
            pair_ids,
            dict(data.get("timings", {})),
            dict(data.get("versions", {})),
            data.get("created", ""),
            list(data.get("notes", [])),
            settings=dict(data.get("settings", {})),
        )

    @classmethod
    def from_json(cls, text_: str | bytes) -> AuditResult:
        return cls.from_dict(orjson.loads(text_))


def default_validators(context: AuditContext | LoadedData, also: Iterable[str] = ()) -> list[str]:
    """Every registered validator that runs by default and whose inputs this audit has, then
    ``also`` (opt-in checks such as ``reference``) where not already there."""
    if isinstance(context, LoadedData):
        context = AuditContext(context.pairs, context.annotations)
    names = []
    for name, cls in VALIDATORS.items():
        if not cls.runs_by_default:
            continue
        try:
            context.require(cls())
        except MissingInputError:
            continue
        names.append(name)
    return names + [name for name in also if name not in names]


def run_audit(
    data: LoadedData | pd.DataFrame,
    *,
    validators: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    annotations: pd.DataFrame | None = None,
    embedder: Any = "env",
    reference_scorer: Any = None,
    artefacts: Mapping[tuple, Any] | None = None,
) -> AuditResult:
    """Run validators over loaded pairs.

    ``validators`` defaults to every registered one whose inputs are present; naming one whose
    inputs are missing raises :class:`MissingInputError`. ``params`` maps a validator name to
    its keyword arguments. ``embedder`` is what validators embed texts with: "auto" (the
    embedded default, loaded only if a validator asks), a sentence-transformers model name or
    folder, an object with ``encode(texts)``, None for no embeddings, or "env" (the default:
    ``PREFAUDIT_EMBEDDING_MODEL`` if set, else "auto"). ``artefacts``: per-pair artefacts
    already computed (by :mod:`prefaudit.engines.ray`), under :class:`AuditContext`'s keys.

    >>> import pandas as pd
    >>> pairs = pd.DataFrame({"prompt": ["Hi"], "chosen": ["Hello!"], "rejected": ["Hello!"]}, index=["p1"])
    >>> result = run_audit(pairs, validators=["content"])
    >>> result.metrics["content/identical_pairs"]
    1
    """
    if isinstance(data, LoadedData):
        pairs, annotations, report = data.pairs, data.annotations, data.report
    else:
        pairs, report = (
            data,
            LoadReport(rows_read=len(data), rows_accepted=len(data), pairs=len(data)),
        )
        data = LoadedData(pairs, annotations, report)
    context = AuditContext(pairs, annotations, load_report=report, artefacts=artefacts)
    context.embedder, context.reference_scorer = embedder, reference_scorer
    names = list(validators) if validators is not None else default_validators(context)
    params = dict(params or {})
    unknown = set(params) - set(names)
    if unknown:
        raise UnknownNameError(
            f"parameters given for validators that do not run: {', '.join(sorted(unknown))}",
            setting="params",
        )
    timings = {name: _run_one(context, name, params.get(name, {})) for name in _ordered(names)}
    settings = {"embedding_model": embedding_setting(embedder)}
    runtime = getattr(context.embedder, "runtime", None)  # an Embedder that loaded its model
    if isinstance(runtime, str):
        settings["embedding_runtime"] = runtime  # which path embedded: bf16 or fp32, and why
    return AuditResult(
        load=report,
        validators=dict(context.results),
        pair_ids=[str(i) for i in pairs.index],
        timings=timings,
        versions=_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        notes=list(context.notes),
        settings=settings,
        data=data,
    )


def embedding_setting(embedder: Any) -> str:
    """How ``embedder`` (run_audit's keyword) is recorded in :attr:`AuditResult.settings`:
    what its vectors depend on (:func:`~prefaudit.models.embeddings.embedding_source`: the
    embedded model and its version, a name, a folder with a signature of its files), "off",
    or "object <type>" for an encoder given in code."""
    from prefaudit.models.embeddings import embedder_from_env, embedding_source

    if isinstance(embedder, str) and embedder == "env":
        embedder = embedder_from_env()
    if embedder is None:
        return "off"
    if isinstance(embedder, str):
        return embedding_source(embedder)
    return f"object {type(embedder).__name__}"


def _run_one(context: AuditContext, name: str, params: Mapping[str, Any]) -> float:
    """Run validator ``name`` on ``context`` (its result goes to ``context.results``); returns
    the seconds it took."""
    validator = create_validator(name, **params)
    context.require(validator)
    started = time.perf_counter()
    result = validator.run(context)
    memory.give_back()  # what the validator freed, before the next one maps its own arrays
    seconds = round(time.perf_counter() - started, 4)
    if not result.flags.index.equals(context.pairs.index):
        raise RuntimeError(f"validator {name!r} returned flags for other pairs than it was given")
    context.results[name] = result
    flagged = result.flags["issue"].sum()
    log.info("%s: %d of %d pairs flagged in %.2fs", name, flagged, len(context.pairs), seconds)
    return seconds


def _ordered(names: list[str]) -> list[str]:
    """Validators in an order where each runs after those it ``uses`` (when they run at all)."""
    for name in names:
        if name not in VALIDATORS:
            raise UnknownNameError(
                f"unknown validator {name!r}; available: {', '.join(VALIDATORS)}",
                setting="validators",
            )
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in path:
            raise ValueError(f"validators use each other in a cycle: {' -> '.join((*path, name))}")
        for used in VALIDATORS[name].uses:
            if used in names:
                visit(used, (*path, name))
        done.append(name)

    for name in names:
        visit(name, ())
    return done


def _versions() -> dict[str, str]:
    versions = {"prefaudit": __version__, "python": platform.python_version()}
    for module in ("numpy", "pandas", "pyarrow", "torch", "transformers", "sentence_transformers"):
        if module in sys.modules:  # report what this audit used, without importing more
            versions[module] = getattr(sys.modules[module], "__version__", "unknown")
    return versions
