"""The Python API: the CLI's commands as functions, on files, DataFrames or datasets.

``prefaudit.load``, ``prefaudit.audit``, ``prefaudit.clean`` and ``prefaudit.train`` accept a
path (any format ``prefaudit audit`` reads), a pandas ``DataFrame`` or a Hugging Face
``Dataset``; what they return holds pandas tables, and ``clean`` gives the cleaned pairs back
as the kind of table it was given. The modules underneath are named ``auditing``,
``cleaning`` and ``training`` so that these functions can have the short names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from prefaudit.auditing import AuditResult, plan_validators, run_audit, save_outputs
from prefaudit.io import LoadedData, load


def audit(
    data: Any,
    *,
    validators: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    annotations: str | Path | None = None,
    mapping: Mapping[str, str] | None = None,
    format: str | None = None,
    against: str | Path | None = None,
    coverage_reference: str | Path | None = None,
    reference_model: str | None = None,
    reference_sample: int | None = None,
    embedder: Any = "env",
    out: str | Path | None = None,
) -> AuditResult:
    """Audit preference pairs, as ``prefaudit audit`` does.

    ``data``: a path, a ``DataFrame``, a ``datasets.Dataset`` or a :func:`load` result;
    ``mapping`` and ``format`` are :func:`load`'s. ``against``: an evaluation set for the
    leakage check; ``coverage_reference``: prompts that matter; ``reference_model``: a causal
    LM (name, folder, or "embedded") to score the pairs under, on ``reference_sample`` of them.
    ``embedder`` is :func:`prefaudit.auditing.run_audit`'s. With ``out``, everything the CLI
    writes (audit.json, flags.parquet, index.html...) is written there.

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
    loaded = data if isinstance(data, LoadedData) else _load(data, mapping, format, annotations)
    reference = None
    if reference_model is not None or reference_sample is not None:
        model = None if reference_model in (None, "embedded") else reference_model
        reference = {"model": model, "sample": reference_sample}
    names, settings = plan_validators(
        loaded,
        validators,
        params or {},
        inputs=(
            ("against", against, "duplication", "against"),
            ("coverage_reference", coverage_reference, "coverage", "reference"),
        ),
        reference=reference,
    )
    result = run_audit(loaded, validators=names, params=settings, embedder=embedder)
    if out is not None:
        save_outputs(out, result, loaded)
    return result


@dataclass
class CleanResult:
    """What :func:`clean` returns: the cleaned pairs and the quarantine as tables of the kind
    the data came in (``DataFrame`` or ``Dataset``), the flips, the counts, and the audit."""

    pairs: Any
    quarantine: Any
    flips: list[dict[str, str]]
    counts: dict[str, int]
    audit: AuditResult


def clean(
    data: Any,
    policy: Any = "rules/default.yaml",
    *,
    result: AuditResult | None = None,
    out: str | Path | None = None,
    **audit_options: Any,
) -> CleanResult:
    """Clean pairs with a policy, as ``prefaudit clean`` does; no pair is lost (each is in the
    cleaned pairs or in the quarantine, with its reasons).

    ``policy``: a rule file with a ``clean:`` section, a ``CleaningPolicy``, or a dict of its
    fields. ``result``: an audit of ``data`` to use (else :func:`audit` runs, with
    ``audit_options``). With ``out``, the audit and cleaned.jsonl, quarantine.jsonl and
    manifest.json are written there.

    >>> import pandas as pd, prefaudit
    >>> pairs = pd.DataFrame({"prompt": ["Q1", "Q2"], "chosen": ["Yes.", "Same"], "rejected": ["No.", "same"]})
    >>> cleaned = prefaudit.clean(pairs, {"drop": ["content"]}, validators=["content"])
    >>> cleaned.counts["cleaned"], cleaned.counts["quarantined"], type(cleaned.pairs).__name__
    (1, 1, 'DataFrame')
    """
    from prefaudit.cleaning import CleaningPolicy, write_cleaned
    from prefaudit.cleaning import clean as apply_policy

    if isinstance(policy, (str, Path)):
        from prefaudit.rules import load_policy

        policy = load_policy(policy)
    elif isinstance(policy, Mapping):
        policy = CleaningPolicy(**{k: tuple(v) if k == "drop" else v for k, v in policy.items()})
    if result is None:
        result = audit(data, **audit_options)
    elif result.data is None:
        raise ValueError("result: an audit computed in this process is needed (it holds the pairs)")
    loaded = result.data
    cleaned = apply_policy(loaded.pairs, result.flags, policy)
    if out is not None:
        write_cleaned(Path(out), cleaned, policy, loaded.report.fingerprint)
        save_outputs(out, result, loaded)  # after the manifest, so the report shows the cleaning
    return CleanResult(
        _like(data, pd.DataFrame(cleaned.cleaned)),
        _like(data, pd.DataFrame(cleaned.quarantine)),
        cleaned.flips,
        cleaned.counts,
        result,
    )


def train(
    data: Any,
    config: Any = None,
    *,
    out: str | Path = "reports/train",
    eval_data: Any = None,
    reference_logps: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    **settings: Any,
):
    """Train DPO, as ``prefaudit train`` does; returns a ``TrainResult`` (``out``, ``steps``,
    ``eval_metrics``, ``summary``) and writes the model, metrics.jsonl and summary.json to
    ``out``.

    ``data``: a path, ``DataFrame``, ``Dataset``, :func:`load` result or :func:`clean` result
    (its cleaned pairs). ``config``: a ``TrainConfig`` or a YAML file of its fields;
    ``settings`` override single fields (``max_steps=50``, ``model="path/or/name"``).
    ``eval_data``: held-out pairs (default: a stable share of ``data``). Needs the ``models``
    extra (torch, transformers). One step on the embedded SmolLM2-135M-Instruct (about 20 s on
    a 2-core CPU; notebooks/02_clean_then_train.ipynb goes further):

    >>> import tempfile, pandas as pd, prefaudit
    >>> pairs = pd.DataFrame({"prompt": ["Say hi.", "Say bye."], "chosen": ["Hi!", "Bye!"],
    ...                       "rejected": ["No.", "Hi!"]})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     run = prefaudit.train(pairs, out=out, max_steps=1, batch_size=2, eval_fraction=0)
    ...     print(run.steps, run.summary["train_pairs"], sorted(p.name for p in run.out.iterdir()))
    1 2 ['metrics.jsonl', 'model', 'summary.json']
    """
    from prefaudit.training import train as run_training

    eval_pairs = None if eval_data is None else _pairs(eval_data)
    return run_training(
        _pairs(data),
        _config(config, settings),
        out,
        eval_pairs=eval_pairs,
        reference_logps=reference_logps,
        resume=resume,
        progress=progress,
    )


@dataclass
class CleanThenTrainResult:
    """What :func:`clean_then_train` returns: the cleaning, the training runs (``"cleaned"``,
    and ``"raw"`` when compared; each a ``TrainResult``) and the held-out comparison (None
    without a raw run)."""

    cleaned: CleanResult
    runs: dict[str, Any]
    comparison: dict[str, Any] | None


def clean_then_train(
    data: Any,
    policy: Any = "rules/default.yaml",
    config: Any = None,
    *,
    out: str | Path,
    compare_raw: bool = False,
    eval_data: Any = None,
    result: AuditResult | None = None,
    audit_options: Mapping[str, Any] | None = None,
    resume: bool = False,
    progress: bool = False,
    **settings: Any,
) -> CleanThenTrainResult:
    """Audit, clean and train on the cleaned pairs, as ``prefaudit clean-then-train`` does:
    the audit and cleaned files go to ``out``, the run to ``out/train``; with ``compare_raw``
    a second run on the raw pairs (same steps, same held-out pairs) goes to ``out/train-raw``
    and ``out/comparison.json``. The audit's reference log-probs are reused when it scored the
    pairs under the same model. ``policy``, ``result`` and ``audit_options`` (keywords of
    :func:`audit`) are :func:`clean`'s; ``config``, ``eval_data`` and ``settings`` are
    :func:`train`'s. notebooks/02_clean_then_train.ipynb runs it end to end.
    """
    from prefaudit.training.compare import train_cleaned

    out = Path(out)
    config = _config(config, settings)  # a bad setting fails before the audit, not after
    cleaned = clean(data, policy, result=result, out=out, **dict(audit_options or {}))
    pairs = load(out / "cleaned.jsonl").pairs  # what a user of the file trains on
    done = train_cleaned(
        pairs,
        cleaned.audit.data.pairs if compare_raw else None,
        config,
        out,
        eval_pairs=None if eval_data is None else _pairs(eval_data),
        reference_logps=out / "reference_logps.parquet",
        resume=resume,
        progress=progress,
    )
    from prefaudit.report import write_report

    write_report(out)  # the report gains the cleaning and the training runs
    return CleanThenTrainResult(cleaned, done.runs, done.comparison)


def _config(config: Any, settings: Mapping[str, Any]):
    """A TrainConfig from a TrainConfig, a YAML file or None, with ``settings`` on top."""
    from prefaudit.training import TrainConfig

    if config is None:
        return TrainConfig(**settings)
    if isinstance(config, (str, Path)):
        return TrainConfig.from_yaml(config, **settings)
    return replace(config, **settings) if settings else config


def _load(data: Any, mapping, format, annotations) -> LoadedData:
    return load(data, mapping=dict(mapping or {}), format=format, annotations=annotations)


def _pairs(data: Any) -> pd.DataFrame:
    """The PairSet of anything :func:`train` accepts."""
    if isinstance(data, CleanResult):
        data = data.pairs
    if isinstance(data, LoadedData):
        return data.pairs
    return load(data).pairs


def _like(original: Any, frame: pd.DataFrame) -> Any:
    """``frame`` as a ``datasets.Dataset`` when the data came as one, else as it is."""
    if type(original).__name__ == "Dataset" and hasattr(original, "column_names"):
        import datasets

        return datasets.Dataset.from_pandas(frame, preserve_index=False)
    return frame
