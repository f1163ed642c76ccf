"""The pipeline: every command of the CLI is one function here, and nothing else orchestrates.

``audit``, ``check``, ``clean``, ``train``, ``clean_then_train``, ``review_export``,
``review_import``, ``write_report`` and ``demo`` take the CLI's options as keywords of the same
names and defaults (a test walks the parser to keep it so), write the same files in the same order to the same places, and return what the
CLI prints. Data may be a path (any format ``prefaudit audit`` reads), a pandas ``DataFrame``,
a Hugging Face ``Dataset`` or a :func:`load` result; tables come back as pandas, and
``clean`` gives the cleaned pairs back as the kind of table it was given.

Each command that writes into an output folder renders that folder's report once, last, so
the report shows everything the command added (rule results, cleaning, training).
"""

from __future__ import annotations

import contextlib
import inspect
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from prefaudit import outputs
from prefaudit.auditing import AuditResult, default_validators, embedding_setting, run_audit
from prefaudit.engines import ENGINES, RAY_BLOCK_ROWS
from prefaudit.errors import BadParameterError, InputError, SettingError, UnknownNameError
from prefaudit.fileio import claim_folder, write_jsonl
from prefaudit.io import LoadedData, load
from prefaudit.io.readers import split_suffix
from prefaudit.io.schema import (
    DEFAULT_BINARIZE,
    DEFAULT_MAX_CHARS,
    DEFAULT_RATING_SCORE,
    TEXT_COLUMNS,
)
from prefaudit.models.embeddings import embedder_from_env
from prefaudit.models.loading import check_model_source
from prefaudit.training.trackers import require as require_trackers
from prefaudit.validators import create_validator

DEFAULT_POLICY = "default"  # the built-in rule set (prefaudit/rules/files/default.yaml)
REPORTS = Path("reports")
# The keywords of `load` every command that reads a dataset accepts.
LOAD_OPTIONS = (
    "format",
    "mapping",
    "annotations",
    "on_bad_row",
    "max_chars",
    "label_scale",
    "binarize",
    "rating_score",
)


# -- audit ------------------------------------------------------------------------------------


# long: a keyword per option of `prefaudit audit` (same names and defaults) and the docstring
def audit(
    data: Any,
    *,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    annotations: str | Path | None = None,
    on_bad_row: str = "skip",
    max_chars: int = DEFAULT_MAX_CHARS,
    label_scale: str | None = None,
    binarize: str = DEFAULT_BINARIZE,
    rating_score: str = DEFAULT_RATING_SCORE,
    validators: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    against: str | Path | None = None,
    coverage_reference: str | Path | None = None,
    reference_model: str | None = None,
    reference_sample: int | None = None,
    policy_model: str | None = None,
    beta: float = 0.1,
    max_length: int = 2048,
    embedding_model: Any = None,
    report: bool = True,
    out: str | Path | None = None,
    reuse: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    ray_block_rows: int = RAY_BLOCK_ROWS,
) -> AuditResult | None:
    """Audit preference pairs, as ``prefaudit audit`` does.

    ``format``, ``mapping``, ``annotations``, ``on_bad_row``, ``max_chars``, ``label_scale``,
    ``binarize``, ``rating_score``: :func:`load`'s. ``validators``: names to run (default: all
    whose inputs are present); ``params``: ``{validator: {parameter: value}}``. ``against``: an evaluation set
    for the leakage check; ``coverage_reference``: prompts that matter. ``reference_model``
    (a causal LM: name, folder or "embedded") or ``reference_sample`` (score a seeded sample
    of N pairs) adds the reference-model pass, with ``max_length``; ``policy_model`` also
    scores the pairs under a trained policy for DPO's implicit rewards at ``beta``.
    ``embedding_model``: a sentence-transformers name or folder, an object with
    ``encode(texts)``, "off", or None for the default ($PREFAUDIT_EMBEDDING_MODEL, else the
    embedded all-MiniLM-L6-v2). With ``out``, the audit folder is written there (and its
    report unless ``report=False``); with ``reuse`` an audit already there of the same data
    and settings is read back instead of recomputed.

    ``engine="ray"`` runs the loading (per block of ``ray_block_rows`` records) and the
    per-pair model passes (embeddings, reference log-probs) on a Ray cluster, at
    ``ray_address`` or a local one, keeping each finished block so a re-run skips it; the
    validators then run here, unchanged: the results are the single process's
    (:mod:`prefaudit.engines.ray`; needs ``pip install 'prefaudit[ray]'``).

    Under ``torchrun`` or ``accelerate launch`` rank 0 audits and writes; the other processes
    only help score pairs under the reference model and return None.

    >>> import pandas as pd, prefaudit
    >>> pairs = pd.DataFrame({
    ...     "prompt": ["Capital of France?", "2+2?", "Say hi"],
    ...     "chosen": ["Paris.", "Four.", "Hi!"],
    ...     "rejected": ["Lyon.", "Four.", "No."]})
    >>> result = prefaudit.audit(pairs, validators=["content"])
    >>> result.metrics["content/identical_pairs"]
    1
    >>> result.flags.loc[result.flags["any_issue"], "content/reason"].tolist()
    ['chosen and rejected are identical after normalisation']
    """
    options = {k: v for k, v in locals().items() if k not in ("data", "out")}
    _refuse_inputs(out, data, options)
    with _staged(out) as stage:
        result, _ = _audit(data, out=stage, **options)
        if result is not None and stage is not None and report:
            _render(stage, shown_as=out)
    return result


# audit's keywords and their defaults (other commands take them as **audit_options).
AUDIT_OPTIONS = {
    name: p.default for name, p in inspect.signature(audit).parameters.items() if name != "data"
}


# long: the pipeline's one place that chooses the engine, loading and reuse
def _audit(
    data: Any,
    *,
    out=None,
    report=True,
    reuse=False,
    embedding_model=None,
    engine="local",
    ray_address=None,
    ray_block_rows=RAY_BLOCK_ROWS,
    **options,
) -> tuple[AuditResult | None, bool]:
    """:func:`audit` without drawing the report (the command that runs it draws it last), also
    saying whether a saved audit was reused."""
    embedding = _check_settings(options, embedding_model)
    ray_engine = _ray_engine(engine, ray_address, ray_block_rows)
    if ray_engine is not None and not isinstance(data, LoadedData):
        kwargs = {k: options[k] for k in LOAD_OPTIONS if k in options}
        loaded = ray_engine.load_blocks(data, block_rows=ray_block_rows, **kwargs)
    else:
        loaded = _loaded(data, options)
    _require_pairs(loaded)
    if out is not None:
        _refuse_other_runs(out, loaded)
    names, params = _plan(loaded, **{k: v for k, v in options.items() if k not in LOAD_OPTIONS})
    several, rank = _launch()
    if rank > 0:  # a helper process: score in step with rank 0, which reports
        if "reference" in (names or ()):
            settings = {"reference": params.get("reference", {})}
            run_audit(loaded, validators=["reference"], params=settings, embedder=None)
        return None, False
    # An evaluation file or embedding model may change under the same name: no reuse then;
    # nor when launched, where the other processes wait for rank 0 to score with them.
    fixed = not (options.get("against") or options.get("coverage_reference") or embedding_model)
    if reuse and out is not None and fixed and not several:
        settings = {"embedding_model": embedding}
        saved = outputs.reusable_audit(out, loaded, names, params, settings)
        if saved is not None:
            saved.data = loaded
            return saved, True
    embedder, artefacts = _embedder(embedding_model), None
    if ray_engine is not None:  # the per-pair model passes on the cluster, the checks here
        planned = names if names is not None else default_validators(loaded)
        artefacts = ray_engine.artefacts(
            loaded, planned, params, embedder, block_rows=ray_block_rows
        )
    result = run_audit(
        loaded, validators=names, params=params, embedder=embedder, artefacts=artefacts
    )
    if out is not None:
        outputs.save_audit(out, result, loaded, texts=report)
    return result, False


def _ray_engine(engine: str, address: str | None, block_rows: int):
    """:mod:`prefaudit.engines.ray`, joined to its cluster, when ``engine`` is "ray" (else
    None); settings that cannot work are refused before the data is read."""
    if engine not in ENGINES:
        raise SettingError(
            f"engine must be one of {', '.join(ENGINES)}, got {engine!r}", setting="engine"
        )
    if engine != "ray":
        if address is not None:
            raise SettingError("ray_address needs engine='ray'", setting="ray_address")
        return None
    if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1:
        raise SettingError(
            f"ray_block_rows must be a whole number >= 1, got {block_rows!r}",
            setting="ray_block_rows",
        )
    if _launch()[0]:
        raise SettingError(
            "engine='ray' under torchrun / accelerate launch: use one or the other (Ray shares "
            "the work out itself)",
            setting="engine",
        )
    from prefaudit.engines import ray as ray_engine

    ray_engine.connect(address)
    return ray_engine


def _check_settings(options: Mapping[str, Any], embedding_model: Any) -> str:
    """Check what can be checked before the data is read (a model path given to the wrong
    option, a parameter of the wrong type costs nothing to find); returns the embedding model
    as the audit will record it."""
    _check_reference_settings(*(options.get(k, AUDIT_OPTIONS[k]) for k in _REFERENCE_SETTINGS))
    for name, values in (options.get("params") or {}).items():
        try:
            create_validator(name, **values)
        except UnknownNameError as err:
            raise UnknownNameError(str(err), setting="params") from None
    for key in ("annotations", "against", "coverage_reference"):
        value = options.get(key)
        local = isinstance(value, (str, Path)) and not str(value).startswith("hf:")
        if local and not Path(split_suffix(str(value))[0]).exists():  # FOLDER:SPLIT too
            raise SettingError(f"{key}: no such file {value}", setting=key)
    embedder = _embedder(embedding_model)
    name = embedder_from_env() if embedder == "env" else embedder
    if isinstance(name, str) and name != "auto":
        given = embedding_model is not None
        check_model_source(name, "embedding_model" if given else "PREFAUDIT_EMBEDDING_MODEL")
    return embedding_setting(embedder)


def _refuse_other_runs(out: str | Path, data: LoadedData) -> None:
    """Refuse to audit other data into a folder holding training runs (the report would show
    them as this data's); they are not removed, they may have cost hours."""
    runs = [name for name in outputs.TRAINING_RUNS if (Path(out) / name).exists()]
    if runs and outputs.saved_fingerprint(out) not in (None, data.report.fingerprint):
        raise SettingError(
            f"out {out}: holds training runs ({', '.join(runs)}) of other data; write this "
            "audit into another folder, or move them away",
            setting="out",
        )


def _require_pairs(data: LoadedData) -> None:
    """Raise :class:`InputError` when no pair loaded, naming the commonest kinds of rejection,
    each with its count and first row: an audit of nothing would pass every rule. Nothing is
    written: an output folder holds a whole audit or none."""
    report = data.report
    if len(data.pairs):
        return
    where = ", ".join(report.files) or "the data"
    text = (
        f"{where}: no pair loaded ({report.rows_read} rows read, {report.rows_rejected} rejected)"
    )
    if report.rejected:
        kinds = [_reason_kind(issue.reason) for issue in report.rejected]
        first: dict[str, Any] = {}
        for kind, issue in zip(kinds, report.rejected, strict=True):
            first.setdefault(kind, issue)
        reasons = Counter(kinds)
        (kind, count), *others = reasons.most_common(_REASONS_SHOWN)
        text += f"; commonest reason ({_rows(count)}), e.g. {first[kind]}"
        for kind, count in others:
            text += f"\n  also ({_rows(count)}), e.g. {first[kind]}"
        if len(reasons) > _REASONS_SHOWN:
            text += f"\n  and {len(reasons) - _REASONS_SHOWN} other reasons"
    raise InputError(text)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


_REASONS_SHOWN = 5  # kinds of rejection an input that loaded no pair is told about


def _reason_kind(reason: str) -> str:
    """A rejection reason without its particulars (numbers, quoted values)."""
    return re.sub(r"'[^']*'|\d[\d,.]*", "_", reason)


def _plan(
    data: LoadedData,
    *,
    validators=None,
    params=None,
    against=None,
    coverage_reference=None,
    reference_model=None,
    reference_sample=None,
    policy_model=None,
    beta=0.1,
    max_length=2048,
) -> tuple[list[str] | None, dict[str, dict[str, Any]]]:
    """The validators to run and their parameters, once the settings that belong to one
    validator are placed; a setting for a validator not among ``validators`` is an error."""
    names = _names(validators)
    params = {name: dict(values) for name, values in (params or {}).items()}
    for setting, value, validator, key in (
        ("against", against, "duplication", "against"),
        ("coverage_reference", coverage_reference, "coverage", "reference"),
    ):
        if not value:
            continue
        if names is not None and validator not in names:
            raise SettingError(
                f"{setting} needs the {validator} validator (add it to the validators)",
                setting=setting,
            )
        params.setdefault(validator, {})[key] = str(value)
    if reference_model or reference_sample or policy_model:
        model = None if reference_model in (None, "embedded") else reference_model
        reference = {"model": model, "sample": reference_sample, "max_length": max_length}
        if policy_model:
            reference.update(policy=policy_model, beta=beta)
        if names is None:
            names = default_validators(data, also=["reference"])
        elif "reference" not in names:
            names.append("reference")
        params.setdefault("reference", {}).update(reference)
    return names, params


_REFERENCE_SETTINGS = ("reference_model", "reference_sample", "policy_model", "beta", "max_length")


def _check_reference_settings(model, sample, policy, beta, max_length) -> None:
    """The reference pass's settings, checked before anything is loaded or scored."""
    check_model_source(model, "reference_model")
    check_model_source(policy, "policy_model")
    for setting, value, low in (("reference_sample", sample, 0), ("max_length", max_length, 1)):
        if value is not None and (isinstance(value, bool) or value < low):
            raise SettingError(f"{setting} must be >= {low}, got {value!r}", setting=setting)
    if beta <= 0:
        raise SettingError(f"beta must be > 0, got {beta!r}", setting="beta")


def _names(validators: Iterable[str] | str | None) -> list[str] | None:
    if validators is None:
        return None
    if isinstance(validators, str):  # "a,b" as the command line gives it
        return [n.strip() for n in validators.split(",") if n.strip()]
    return list(validators)


def _embedder(option: Any) -> Any:
    """``embedding_model`` in run_audit's terms: None -> "env", "off" -> None."""
    if option is None:
        return "env"
    if isinstance(option, str) and option.strip().lower() in ("off", "none"):
        return None
    return str(option) if isinstance(option, Path) else option


def _render(
    folder: str | Path, result: AuditResult | None = None, *, shown_as: str | Path | None = None
) -> Path | None:
    """Draw ``folder``'s report again when it holds an audit; the flagged pairs' texts are
    saved first when missing and ``result`` holds its data. ``shown_as``: the folder
    ``folder`` is the stage of (the page names it, and so does the path returned)."""
    if not outputs.has_audit(folder):
        return None
    from prefaudit.report import write_report as render

    has_texts = (Path(folder) / outputs.TEXTS_FILE).exists()
    if result is not None and result.data is not None and not has_texts:
        outputs.write_flagged_texts(folder, result.data.pairs, result.flags)
    path = render(folder, shown_as=shown_as)
    return path if shown_as is None else Path(shown_as) / path.name


def _staged(out: str | Path | None):
    """:func:`outputs.staged` in the process that writes (rank 0); helper processes under
    torchrun write nothing, so they get ``out`` itself."""
    if out is not None and _launch()[1] > 0:
        return contextlib.nullcontext(out)
    return outputs.staged(out)


def _claimed(out: Path):
    """``out`` held for writing (:func:`~prefaudit.fileio.claim_folder`) by the process that
    writes (rank 0), for a command that writes into it in place (training)."""
    if _launch()[1] > 0:
        return contextlib.nullcontext()
    return claim_folder(out)


def _refuse_inputs(
    out: str | Path | None, data: Any, options: Mapping[str, Any], junit: Any = None
) -> None:
    """Refuse an ``out`` (or ``junit``) that would overwrite one of the command's inputs."""
    files = [data, *(options.get(k) for k in _INPUT_FILES)]
    outputs.refuse_inputs(out, files, targets=[junit])


# Keywords that name files a command reads (besides ``data``).
_INPUT_FILES = (
    "annotations",
    "against",
    "coverage_reference",
    "rules",
    "baseline",
    "policy",
    "config",
    "eval_data",
    "reference_logps",
)


def _launch() -> tuple[bool, int]:
    """(launched as several processes, this process's rank), read without torch."""
    from prefaudit.models.distributed import launched

    rank, world = launched()
    return world > 1, rank


# -- check ------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    """What :func:`check` returns: one ``RuleResult`` per rule, whether the check passed (no
    failed rule of severity error), the audit, and where the time went."""

    results: list
    passed: bool
    audit: AuditResult
    timings: dict[str, float]
    rules: str
    report: Path | None = None


def check(
    data: Any,
    rules: str | Path,
    *,
    out: str | Path | None = None,
    junit: str | Path | None = None,
    baseline: str | Path | None = None,
    **audit_options: Any,
) -> CheckResult | None:
    """Audit (or reuse the audit in ``out`` of the same data) and evaluate a rule file, as
    ``prefaudit check`` does. ``data`` may also be an :class:`AuditResult` (pair-level rules
    need one computed in this process). ``junit``: also write JUnit XML there;
    ``baseline``: an earlier audit.json whose metrics may not get worse beyond the rule file's
    drift tolerance. ``audit_options`` are :func:`audit`'s. With ``out``, ``check.json`` is
    written there. Returns None in a helper process under torchrun."""
    from prefaudit.rules import baseline_metrics, load_rules

    started = time.perf_counter()
    ruleset = load_rules(rules)
    if ruleset.label_scale is not None and audit_options.get("label_scale") is None:
        audit_options["label_scale"] = ruleset.label_scale  # the option overrides the file
    old = baseline_metrics(baseline) if baseline is not None else None
    if ruleset.has_clean:
        _policy(rules)  # a rule file whose clean: section is wrong fails here too
    timings = {"read rules": time.perf_counter() - started}
    # A baseline inside out would be replaced by this run's audit: the next run's drift gate
    # would compare with it, not with the fixed reference a baseline is. Refused as an input.
    _refuse_inputs(out, data, {**audit_options, "rules": rules, "baseline": baseline}, junit)
    with _staged(out) as stage:
        done = _check(data, ruleset, old, timings, out=stage, **audit_options)
        if done is not None and stage is not None:
            _write_check(done, stage, baseline, out, report=audit_options.get("report", True))
    if done is not None and junit is not None:
        from prefaudit.fileio import write_bytes
        from prefaudit.rules import junit_xml

        write_bytes(junit, junit_xml(done.results))
    return done


def _check(data, ruleset, old, timings, *, out, **audit_options) -> CheckResult | None:
    """:func:`check`'s audit and evaluation, writing the audit (if computed) into ``out``."""
    from prefaudit.rules import evaluate, import_great_expectations

    mark = time.perf_counter()
    reused = False
    if isinstance(data, AuditResult):
        _no_audit_options(audit_options, "check was given an audit")
        result = data
    else:
        options = {"reuse": True, **audit_options}
        result, reused = _audit(data, out=out, **options)
        if result is None:
            return None
    timings["load + audit" + (" (reused)" if reused else "")] = time.perf_counter() - mark
    mark = time.perf_counter()
    import_great_expectations()  # timed on its own: it dominates a check of a saved audit
    timings["import great-expectations"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pairs = result.data.pairs if result.data is not None else pd.DataFrame(index=result.pair_ids)
    results = evaluate(ruleset, result, pairs, old)
    timings["evaluate rules"] = time.perf_counter() - mark
    passed = not any(r.fails_check for r in results)
    return CheckResult(results, passed, result, timings, ruleset.path)


def _write_check(done: CheckResult, stage, baseline, out, *, report: bool) -> None:
    """check.json (and the report) in ``stage``, the stage of ``out``."""
    outputs.write_check(
        stage,
        {
            "fingerprint": done.audit.fingerprint,  # the report shows this audit's rules only
            "rules_file": done.rules,
            "baseline": None if baseline is None else str(baseline),
            "passed": done.passed,
            "results": [r.to_dict() for r in done.results],
            "timings": {k: round(v, 3) for k, v in done.timings.items()},
        },
    )
    if report:
        done.report = _render(stage, done.audit, shown_as=out)


# -- clean ------------------------------------------------------------------------------------


@dataclass
class CleanResult:
    """What :func:`clean` returns: the cleaned pairs and the quarantine as tables of the kind
    the data came in (``DataFrame`` or ``Dataset``), the flips, the counts, and the audit."""

    pairs: Any
    quarantine: Any
    flips: list[dict[str, str]]
    counts: dict[str, int]
    audit: AuditResult
    report: Path | None = None
    # The select step's summary (see prefaudit.cleaning.select); None when the policy has none.
    selection: dict[str, Any] | None = None
    # Whether the cleaned pairs carry TRL's ref_chosen_logps / ref_rejected_logps, under which
    # model, or why not (manifest.json's "ref_logps"; see with_trl_columns).
    ref_logps: dict[str, Any] | None = None
    # The reviewers' verdicts applied (review.jsonl of the audit folder): counts per verdict,
    # who decided what, and the file; None when there were none.
    review: dict[str, Any] | None = None


def clean(
    data: Any,
    policy: Any = DEFAULT_POLICY,
    *,
    audit: str | Path | AuditResult | None = None,
    out: str | Path | None = None,
    parquet: bool = False,
    **audit_options: Any,
) -> CleanResult | None:
    """Clean pairs with a policy, as ``prefaudit clean`` does; no pair is lost (each is in the
    cleaned pairs or in the quarantine, with its reasons).

    ``policy``: a rule file with a ``clean:`` section, a ``CleaningPolicy``, or a dict of its
    fields. ``audit``: an audit of ``data`` to use — an :class:`AuditResult` computed in this
    process or a folder one was saved in (it must be of the same data) — else the data is
    audited (reusing an audit in ``out`` of the same data and settings) with
    ``audit_options``, :func:`audit`'s keywords. With ``out``, the audit and cleaned.jsonl,
    quarantine.jsonl and manifest.json are written there (with ``parquet``, cleaned.parquet
    too). The reviewers' verdicts in the audit folder's review.jsonl (``audit`` when a folder,
    else ``out``; see :func:`review_import`) are applied before the policy's steps, and
    override them. When the audit scored every cleaned pair under a reference model the way TRL
    tokenises it, the cleaned pairs carry TRL's ``ref_chosen_logps`` and
    ``ref_rejected_logps``; ``ref_logps`` of the result says under which model, or why not.
    Returns None in a helper process under torchrun.

    >>> import pandas as pd, prefaudit
    >>> pairs = pd.DataFrame({"prompt": ["Q1", "Q2"], "chosen": ["Yes.", "Same"], "rejected": ["No.", "same"]})
    >>> cleaned = prefaudit.clean(pairs, {"drop": ["content"]}, validators=["content"])
    >>> cleaned.counts["cleaned"], cleaned.counts["quarantined"], type(cleaned.pairs).__name__
    (1, 1, 'DataFrame')
    """
    _refuse_inputs(out, data, {**audit_options, "policy": policy})
    with _staged(out) as stage:
        done = _clean(
            data, policy, audit=audit, out=stage, shown_as=out, parquet=parquet, **audit_options
        )
        if done is not None and stage is not None and audit_options.get("report", True):
            done.report = _render(stage, done.audit, shown_as=out)
    return done


def _clean(
    data, policy, *, audit=None, out=None, shown_as=None, parquet=False, **audit_options
) -> CleanResult | None:
    """:func:`clean` without drawing the report; ``shown_as``: the folder ``out`` is the
    stage of."""
    from prefaudit.cleaning import clean as apply_policy
    from prefaudit.models.logps_file import with_trl_columns

    if isinstance(policy, (str, Path)) and audit_options.get("label_scale") is None:
        from prefaudit.rules import load_rules

        scale = load_rules(policy).label_scale  # the policy file's load: section
        audit_options = {**audit_options, **({"label_scale": scale} if scale else {})}
    policy = _policy(policy)
    result = _given_audit(data, audit, audit_options)
    if result is None:
        result, _ = _audit(data, out=out, **{"reuse": True, **audit_options})
        if result is None:
            return None
    elif out is not None:  # the folder holds the audit its cleaned files come from
        report = audit_options.get("report", True)
        outputs.save_audit(out, result, result.data, texts=report)
    loaded = result.data
    # Reviewers' verdicts live beside the audit they were made on (`review import`); read
    # from the folder itself, not its stage, so that messages and the manifest name it.
    folder = audit if isinstance(audit, (str, Path)) else (shown_as or out)
    reviews = outputs.applicable_reviews(folder, loaded.pairs) if folder is not None else {}
    cleaned = apply_policy(loaded.pairs, result.flags, policy, reviews)
    if cleaned.review is not None:
        cleaned.review["file"] = str(Path(folder) / outputs.REVIEW_FILE)
    rows, ref_logps = with_trl_columns(
        cleaned.cleaned,
        result.validators.get("reference"),
        {flip["pair_id"] for flip in cleaned.flips},
    )
    cleaned = replace(cleaned, cleaned=rows)
    if out is not None:
        outputs.write_cleaned(
            out, cleaned, policy, loaded.report.fingerprint, ref_logps=ref_logps, parquet=parquet
        )
    return CleanResult(
        _like(data, pd.DataFrame(cleaned.cleaned)),
        _like(data, pd.DataFrame(cleaned.quarantine)),
        cleaned.flips,
        cleaned.counts,
        result,
        selection=cleaned.selection,
        ref_logps=ref_logps,
        review=cleaned.review,
    )


def _given_audit(data, audit, options: Mapping[str, Any]) -> AuditResult | None:
    """The audit ``clean`` was given (a result, or a folder of the same data), or None."""
    if audit is None:
        return None
    if isinstance(audit, AuditResult):
        if audit.data is None:
            raise SettingError(
                "audit: an audit computed in this process is needed (it holds the pairs); "
                "give the folder it was saved in instead",
                setting="audit",
            )
        _no_audit_options(options, "clean was given an audit", allowed=LOAD_OPTIONS)
        if data is None or data is audit.data:
            return audit
        loaded = _loaded(data, options)
        if audit.fingerprint != loaded.report.fingerprint:
            raise SettingError(
                "audit: that audit is of other data (input fingerprints differ)", setting="audit"
            )
        return audit
    loaded = _loaded(data, options)
    try:
        result = outputs.read_audit(audit)
    except (OSError, ValueError, KeyError) as err:
        raise SettingError(
            f"{audit}: cannot read the audit there ({err})", setting="audit"
        ) from err
    if result.fingerprint != loaded.report.fingerprint:
        raise SettingError(
            f"{audit}: that audit is of other data (input fingerprints differ)", setting="audit"
        )
    result.data = loaded
    return result


def _no_audit_options(options: Mapping[str, Any], why: str, allowed: Iterable[str] = ()) -> None:
    """Raise when ``options`` hold audit settings that would be ignored (an audit was given)."""
    ignored = sorted(set(options) - {"report", *allowed})
    if ignored:
        raise BadParameterError(
            f"{why}: its settings are fixed, so {', '.join(ignored)} would be ignored; "
            "leave them out or audit again",
            setting=ignored[0],
        )


def _policy(policy: Any):
    """A CleaningPolicy from a rule file, a CleaningPolicy or a dict of its fields."""
    from prefaudit.cleaning import CleaningPolicy
    from prefaudit.cleaning.policy import load_policy, policy_from_mapping

    if isinstance(policy, CleaningPolicy):
        return policy
    if isinstance(policy, Mapping):
        return policy_from_mapping(policy)
    return load_policy(policy)


# -- train ------------------------------------------------------------------------------------


# long: its docstring (a runnable example, every keyword explained) is half of it
def train(
    data: Any,
    config: Any = None,
    *,
    out: str | Path | None = None,
    eval_data: Any = None,
    reference_logps: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    on_bad_row: str = "skip",
    max_chars: int = DEFAULT_MAX_CHARS,
    label_scale: str | None = None,
    binarize: str = DEFAULT_BINARIZE,
    rating_score: str = DEFAULT_RATING_SCORE,
    **settings: Any,
):
    """Train DPO, as ``prefaudit train`` does; returns a ``TrainResult`` (``out``, ``steps``,
    ``eval_metrics``, ``summary``) and writes the model, metrics.jsonl and summary.json to
    ``out``: by default ``train/`` beside ``data`` when ``data`` is a file in an audit folder
    (reports/x/cleaned.jsonl -> reports/x/train, and that folder's report gains the run),
    else ``reports/<name of data>/train``.

    ``data``: a path, ``DataFrame``, ``Dataset``, :func:`load` result or :func:`clean` result
    (its cleaned pairs), read with the load keywords. ``config``: a ``TrainConfig`` or a YAML
    file of its fields; ``settings`` override single fields (``max_steps=50``,
    ``model="path/or/name"``). ``eval_data``: held-out pairs (default: a stable share of
    ``data``). ``reference_logps``: an audit's reference_logps.parquet, reused for the pairs
    it matches. Needs the ``models`` extra (torch, transformers). One step on the embedded
    SmolLM2-135M-Instruct (about 20 s on a 2-core CPU):

    >>> import tempfile, pandas as pd, prefaudit
    >>> pairs = pd.DataFrame({"prompt": ["Say hi.", "Say bye."], "chosen": ["Hi!", "Bye!"],
    ...                       "rejected": ["No.", "Hi!"]})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     run = prefaudit.train(pairs, out=out, max_steps=1, batch_size=2, eval_fraction=0)
    ...     print(run.steps, run.summary["train_pairs"], sorted(p.name for p in run.out.iterdir()))
    1 2 ['metrics.jsonl', 'model', 'summary.json']
    """
    from prefaudit.training import train as run_training

    out = Path(out) if out is not None else _train_out(data)
    inputs = {"config": config, "eval_data": eval_data, "reference_logps": reference_logps}
    _refuse_inputs(out, data, inputs)
    _check_logps_file(reference_logps)
    config = _checked(_config(config, settings))
    load_options = {
        "format": format,
        "mapping": mapping,
        "on_bad_row": on_bad_row,
        "max_chars": max_chars,
        "label_scale": label_scale,
        "binarize": binarize,
        "rating_score": rating_score,
    }
    loaded = _pairs(data, load_options)
    evaluated = None if eval_data is None else _pairs(eval_data, load_options)
    # The audit folder whose report shows the run is held too: its report is redrawn.
    with _claimed(out.parent if outputs.has_audit(out.parent) else out):
        run = run_training(
            loaded.pairs,
            config,
            out,
            eval_pairs=None if evaluated is None else evaluated.pairs,
            reference_logps=reference_logps,
            resume=resume,
            progress=progress,
        )
        run.loads = [d.report for d in (loaded, evaluated) if d is not None]
        if _launch()[1] == 0:  # helper processes under torchrun write nothing
            _write_train_rejected(out, loaded, evaluated)
            run.report = _render(out.parent)  # when the run went into an audit folder
    return run


def _check_logps_file(path: str | Path | None) -> None:
    """A ``reference_logps`` given to :func:`train` must be an audit's log-prob file."""
    if path is None:
        return
    from prefaudit.models.logps_file import REFERENCE_COLUMNS

    problem = f"{path} is a folder" if Path(path).is_dir() else f"no such file {path}"
    if Path(path).is_file():
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            missing = set(REFERENCE_COLUMNS) - set(pq.read_schema(path).names)
            problem = f"{path} lacks the columns {sorted(missing)}" if missing else ""
        except (pa.ArrowException, OSError) as err:
            problem = f"{path} is not a Parquet file ({err})"
    if problem:
        raise SettingError(
            f"reference_logps: {problem}; expected an audit's reference_logps.parquet",
            setting="reference_logps",
        )


def _write_train_rejected(out: Path, *loaded: LoadedData | None) -> None:
    """The rows ``train`` rejected from its data and evaluation data, beside the run (an
    earlier run's are removed): every row accounted for."""
    for name, done in zip(outputs.TRAIN_REJECTED, loaded, strict=True):
        (out / name).unlink(missing_ok=True)
        if done is not None and done.report.rejected:
            write_jsonl(out / name, done.report.rejected_records())


def _train_out(data: Any) -> Path:
    """train/ beside an audit folder's file, else reports/<name of data>/train."""
    if isinstance(data, (str, Path)) and outputs.has_audit(Path(data).parent):
        return Path(data).parent / "train"
    return default_out(data) / "train"


@dataclass
class CleanThenTrainResult:
    """What :func:`clean_then_train` returns: the cleaning, the training runs (``"cleaned"``,
    and ``"raw"`` when compared; each a ``TrainResult``) and the held-out comparison (None
    without a raw run)."""

    cleaned: CleanResult
    runs: dict[str, Any]
    comparison: dict[str, Any] | None
    report: Path | None = None


# long: three commands' keywords and the order they run in (claim, stage, train, report)
def clean_then_train(
    data: Any,
    policy: Any = DEFAULT_POLICY,
    config: Any = None,
    *,
    out: str | Path | None = None,
    compare_raw: bool = False,
    eval_data: Any = None,
    audit: str | Path | AuditResult | None = None,
    resume: bool = False,
    progress: bool = False,
    parquet: bool = False,
    **options: Any,
) -> CleanThenTrainResult:
    """Audit, clean and train on the cleaned pairs, as ``prefaudit clean-then-train`` does:
    the audit and cleaned files go to ``out`` (default: reports/<name of data>), the run to
    ``out/train``; with ``compare_raw`` a second run on the raw pairs (same steps, same
    held-out pairs) goes to ``out/train-raw`` and ``out/comparison.json``. The audit's
    reference log-probs are reused when it scored the pairs under the same model.

    ``options``: :func:`audit`'s keywords and ``TrainConfig`` fields (``max_length``, when
    given, serves both; when not, training takes ``config``'s, else the audit's 2048);
    ``policy``, ``audit`` and ``parquet`` are :func:`clean`'s; ``config`` and ``eval_data``
    :func:`train`'s. notebooks/02_clean_then_train.ipynb runs it end to end.
    """
    from prefaudit.training.compare import train_cleaned

    if _launch()[0]:
        raise SettingError(
            "clean-then-train runs in one process; on several GPUs clean first, then launch "
            "the training of OUT/cleaned.jsonl with torchrun"
        )
    audit_options, settings = _split_options(options)
    if config is None:  # the audit's max_length serves training too, unless a config sets it
        default = AUDIT_OPTIONS["max_length"]
        settings.setdefault("max_length", audit_options.get("max_length", default))
    out = Path(out) if out is not None else default_out(data)
    inputs = {**audit_options, "policy": policy, "config": config, "eval_data": eval_data}
    _refuse_inputs(out, data, inputs)
    config = _checked(_config(config, settings))  # a bad setting fails before the audit
    load_options = {k: v for k, v in audit_options.items() if k in LOAD_OPTIONS}
    load_options.pop("annotations", None)
    with _claimed(out):
        with _staged(out) as stage:  # the audit and the cleaned files change together
            cleaned = _clean(
                data,
                policy,
                audit=audit,
                out=stage,
                shown_as=out,
                parquet=parquet,
                **audit_options,
            )
            if not compare_raw:  # an earlier comparison was with the run this one replaces
                shutil.rmtree(stage / "train-raw", ignore_errors=True)
                (stage / outputs.COMPARISON_FILE).unlink(missing_ok=True)
        done = train_cleaned(
            load(out / outputs.CLEANED_FILE).pairs,  # what a user of the file trains on
            cleaned.audit.data.pairs if compare_raw else None,
            config,
            out,
            eval_pairs=None if eval_data is None else _pairs(eval_data, load_options).pairs,
            reference_logps=out / outputs.REFERENCE_FILE,
            resume=resume,
            progress=progress,
        )
        report = _render(out, cleaned.audit) if audit_options.get("report", True) else None
    return CleanThenTrainResult(cleaned, done.runs, done.comparison, report)


def _split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(audit keywords, TrainConfig fields) of ``options``; ``max_length`` goes to both."""
    from prefaudit.training import TrainConfig

    audit_names = set(AUDIT_OPTIONS)
    train_names = {f.name for f in fields(TrainConfig)}
    unknown = set(options) - audit_names - train_names
    if unknown:
        raise BadParameterError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return (
        {k: v for k, v in options.items() if k in audit_names},
        {k: v for k, v in options.items() if k in train_names},
    )


def _checked(config):
    """``config``, once its model is found (or can be fetched) and its trackers' packages
    are installed: checked before any data is read or audited."""
    check_model_source(config.model, "model")
    require_trackers(config.report_to)
    return config


def _config(config: Any, settings: Mapping[str, Any]):
    """A TrainConfig from a TrainConfig, a YAML file or None, with ``settings`` on top
    (``model="embedded"`` is the default model)."""
    from prefaudit.training import TrainConfig

    settings = dict(settings)
    if settings.get("model") == "embedded":
        settings["model"] = None
    unknown = sorted(set(settings) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise BadParameterError(f"unknown training setting(s): {', '.join(unknown)}")
    if config is None:
        return TrainConfig(**settings)
    if isinstance(config, (str, Path)):
        return TrainConfig.from_yaml(config, **settings)
    if not isinstance(config, TrainConfig):
        raise SettingError(
            f"config: expected a TrainConfig or a YAML file, got {type(config).__name__}",
            setting="config",
        )
    return replace(config, **settings) if settings else config


# -- review ---------------------------------------------------------------------------------


def review_export(
    folder: str | Path,
    *,
    to: str = "csv",
    validator: str | None = None,
    top: int | None = None,
    data: Any = None,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    annotations: str | Path | None = None,
    on_bad_row: str = "skip",
    max_chars: int = DEFAULT_MAX_CHARS,
    label_scale: Any = None,
    binarize: str = DEFAULT_BINARIZE,
    rating_score: str = DEFAULT_RATING_SCORE,
    out: str | Path | None = None,
):
    """Write the pairs of the audit in ``folder`` that a person should look at, with the
    evidence (the checks that flagged each, their scores and reasons, the raters' votes, its
    duplicate partners), in a labelling tool's own import format, as ``prefaudit review
    export`` does; returns a ``ReviewExport`` (``path``, ``export_id``, ``pairs``).

    ``to``: ``csv`` (a sheet to fill in), ``label-studio`` (tasks.json and config.xml) or
    ``argilla`` (an Argilla 2.x dataset folder, ``Dataset.to_disk``'s form; needs ``pip
    install argilla``). Which pairs: every flagged pair; ``validator``: those one check
    flagged; ``top``: the N highest scores (of ``validator``, else of any check). ``out``: the
    folder to write into (default: ``folder/review``). The audit folder keeps the texts of
    flagged pairs only: for others (a top suspect nobody flagged, an audit made without its
    report) give ``data``, read with the load keywords as it was audited.

    >>> import pandas as pd, tempfile, prefaudit
    >>> pairs = pd.DataFrame({"prompt": ["Hi", "Yo"], "chosen": ["Hello!", "Same"], "rejected": ["Go.", "same"]})
    >>> folder = tempfile.mkdtemp()
    >>> _ = prefaudit.audit(pairs, validators=["content"], out=folder)
    >>> done = prefaudit.review_export(folder, to="csv")
    >>> done.pairs, done.path.name
    (1, 'review.csv')
    """
    from prefaudit.review import check_tool, export_review, select_pairs

    check_tool(to)
    folder = _audit_folder(folder, "folder")
    result = outputs.read_audit(folder)
    ids, selection = select_pairs(result.flags, validator, top)
    if not ids:
        raise InputError(
            f"{folder}: no pair to export: none is {selection} (--validator NAME --top N "
            "exports a check's highest scores, flagged or not)"
        )
    load_options = {k: v for k, v in locals().items() if k in LOAD_OPTIONS}
    texts = _review_texts(folder, result, ids, data, load_options)
    with claim_folder(folder):
        return export_review(
            folder, result.flags, texts, ids=ids, to=to, selection=selection, out=out
        )


def _audit_folder(folder: str | Path, setting: str) -> Path:
    """``folder`` when it holds an audit, else a :class:`SettingError` saying so."""
    if not outputs.has_audit(folder):
        raise SettingError(
            f"{setting} {folder}: no audit there (audit.json and flags.parquet); "
            "run prefaudit audit into it first",
            setting=setting,
        )
    return Path(folder)


def _review_texts(folder: Path, result: AuditResult, ids, data, options) -> pd.DataFrame:
    """The prompt, responses and input line of each of ``ids``: from the folder's flagged
    texts, and from ``data`` (which must be the audited data) for the others."""
    columns = [*TEXT_COLUMNS, "row"]
    texts = outputs.read_flagged_texts(folder)
    texts = pd.DataFrame(columns=columns) if texts is None else texts
    missing = [pair_id for pair_id in ids if pair_id not in texts.index]
    if not missing:
        return texts
    if data is None:
        raise SettingError(
            f"{len(missing)} of the {len(ids)} pairs to export (e.g. {missing[0]!r}) have no "
            f"texts in {folder}, which keeps the flagged pairs' only; give the audited data",
            setting="data",
        )
    loaded = _loaded(data, options)
    if loaded.report.fingerprint != result.fingerprint:
        raise SettingError(
            f"data {data}: not the data audited in {folder} (the input fingerprints differ); "
            "give the same file with the same load options (--map, --annotations, ...)",
            setting="data",
        )
    pairs = loaded.pairs[[c for c in columns if c in loaded.pairs.columns]]
    return pd.concat([texts, pairs.loc[missing]])


def review_import(
    file: str | Path, *, audit: str | Path | None = None, reviewer: str | None = None
):
    """Read reviewers' verdicts back from ``file`` into the audit folder's ``review.jsonl``, as
    ``prefaudit review import`` does; ``prefaudit clean`` (and :func:`clean` with that folder)
    applies them before the policy's other steps. Returns a ``ReviewImport`` (``verdicts``
    per kind, ``unreviewed`` and ``missing`` pairs, ``disagreements``).

    ``file``: the CSV export wrote (filled in), Label Studio's JSON export of the project, or
    the folder Argilla's ``Dataset.to_disk`` wrote. ``audit``: the audit folder the pairs were
    exported from (default: the folder ``file`` is in, or the nearest one above it).
    ``reviewer``: who decided, for CSV rows that leave the reviewer column empty. A verdict
    for a pair that was not exported is an error naming its row; an exported pair without a
    verdict stays unreviewed (counted), and reviewers who disagree leave it so.
    """
    from prefaudit.review import import_review

    file = Path(file)
    if not file.exists():
        raise SettingError(f"file {file}: no such file or folder", setting="file")
    folder = _audit_folder(audit, "audit") if audit is not None else _folder_of(file)
    with claim_folder(folder):
        return import_review(file, folder, reviewer=reviewer)


def _folder_of(file: Path) -> Path:
    """The audit folder ``file`` is in (it or the nearest folder above it with an audit)."""
    for folder in Path(file).resolve().parents:
        if outputs.has_audit(folder):
            return folder
    raise SettingError(
        f"{file} is not inside an audit folder; give the one its pairs were exported from "
        "with --audit DIR",
        setting="audit",
    )


# -- report and demo --------------------------------------------------------------------------


def write_report(folder: str | Path) -> Path:
    """Render ``folder/index.html`` again from the audit saved in ``folder`` (nothing is
    recomputed), as ``prefaudit report`` does; returns its path."""
    from prefaudit.report import write_report as render

    return render(folder)


def to_html(result: AuditResult, path: str | Path) -> Path:
    """Write the HTML report of an audit computed in this process to ``path`` (one
    self-contained file).

    >>> import pandas as pd, tempfile, pathlib, prefaudit
    >>> pairs = pd.DataFrame({"prompt": ["Hi", "Yo"], "chosen": ["Hello!", "Hey."], "rejected": ["Hello!", "Go."]})
    >>> result = prefaudit.audit(pairs, validators=["content"])
    >>> path = prefaudit.to_html(result, pathlib.Path(tempfile.mkdtemp()) / "report.html")
    >>> "Content: empty, identical" in path.read_text()
    True
    """
    from prefaudit.fileio import write_bytes
    from prefaudit.report import ReportInputs, render_report

    path = Path(path)
    texts = None
    if result.data is not None:
        texts = outputs.flagged_texts(result.data.pairs, result.flags)
    html = render_report(ReportInputs(path.parent, result, texts))
    return write_bytes(path, html.encode("utf-8", "replace"))


@dataclass
class DemoResult:
    """What :func:`demo` returns: the generated data, its audit, and per planted defect how
    many the matching check found (``planted``)."""

    data: Any  # prefaudit.demo.DemoData
    audit: AuditResult
    planted: list[dict[str, Any]]
    out: Path


def demo(
    out: str | Path = "reports/demo",
    *,
    pairs: int = 400,
    seed: int = 0,
    reference_sample: int = 24,
) -> DemoResult:
    """Generate the synthetic demo dataset into ``out/data``, audit it into ``out`` (with the
    reference model on a sample of ``reference_sample`` pairs; 0: none), and count the
    planted defects each check found, as ``prefaudit demo`` does."""
    from prefaudit.demo import check_pairs, generate_demo, planted_found

    check_pairs(pairs)
    out = Path(out)
    data = generate_demo(out / "data", pairs=pairs, seed=seed)
    loaded = load(str(data.pairs), annotations=str(data.annotations))
    eval_prompts = str(data.eval_prompts)
    names, params = _plan(
        loaded,
        against=eval_prompts,
        coverage_reference=eval_prompts,
        reference_sample=reference_sample,
    )
    result = run_audit(loaded, validators=names, params=params)
    result.notes.append("synthetic demo dataset generated by prefaudit demo")
    with outputs.staged(out) as stage:
        outputs.save_audit(stage, result, loaded, texts=True)
        _render(stage, shown_as=out)
    return DemoResult(data, result, planted_found(result, data.planted), out)


# -- inputs -----------------------------------------------------------------------------------


def default_out(data: Any) -> Path:
    """reports/<name of data>: where the CLI writes when no output folder is given."""
    if not isinstance(data, (str, Path)):
        return REPORTS / "data"
    data = str(data)
    name = (
        data.rstrip("/").split(":")[-1] if data.startswith("hf:") else Path(data.rstrip("/")).name
    )
    for suffix in (".gz", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet"):
        name = name.removesuffix(suffix)
    return REPORTS / (name.replace("/", "_") or "audit")


def _loaded(data: Any, options: Mapping[str, Any]) -> LoadedData:
    """``data`` loaded with the load keywords among ``options``."""
    if isinstance(data, LoadedData):
        return data
    kwargs = {k: options[k] for k in LOAD_OPTIONS if k in options}
    kwargs["mapping"] = dict(kwargs.get("mapping") or {})
    return load(data, **kwargs)


def _pairs(data: Any, options: Mapping[str, Any] | None = None) -> LoadedData:
    """Anything :func:`train` accepts, loaded; no pair loaded is an error."""
    if isinstance(data, CleanResult):
        data = data.pairs
    loaded = _loaded(data, options or {})
    _require_pairs(loaded)
    return loaded


def _like(original: Any, frame: pd.DataFrame) -> Any:
    """``frame`` as a ``datasets.Dataset`` when the data came as one, else as it is."""
    if type(original).__name__ == "Dataset" and hasattr(original, "column_names"):
        import datasets

        return datasets.Dataset.from_pandas(frame, preserve_index=False)
    return frame
