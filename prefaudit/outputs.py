"""The output folder: every file prefaudit writes there and reads back, in one place.

An audit folder holds ``audit.json`` and ``flags.parquet`` (the audit), ``rejected.jsonl``
(input rows that could not be loaded), ``reference_logps.parquet`` (when the reference pass
ran), ``flagged_texts.parquet`` (the texts the report's table shows); cleaning adds
``cleaned.jsonl``, ``quarantine.jsonl`` and ``manifest.json`` (and ``cleaned.parquet`` on
request); ``check`` adds ``check.json``;
training adds ``train/`` (and ``train-raw/``, ``comparison.json``); the human review loop adds
``review/`` (what ``review export`` wrote and ``review/exports.json``, its record) and
``review.jsonl`` (the reviewers' verdicts, which cleaning applies). ``index.html`` is drawn
from these by :mod:`prefaudit.report`. Every file is written atomically.

This module sits above the audit core (which writes nothing) and below the report, the
cleaning and the pipeline (:mod:`prefaudit.api`), which use it.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import xxhash

from prefaudit import __version__
from prefaudit.auditing import AuditResult, default_validators
from prefaudit.errors import InputError, SettingError
from prefaudit.fileio import (
    claim_folder,
    recover_swap,
    swap_folder,
    umask,
    write_json,
    write_jsonl,
    write_parquet,
)
from prefaudit.io import LoadedData
from prefaudit.io.schema import TEXT_COLUMNS
from prefaudit.validators import create_validator

log = logging.getLogger(__name__)
AUDIT_FILE = "audit.json"
FLAGS_FILE = "flags.parquet"
REJECTED_FILE = "rejected.jsonl"
REFERENCE_FILE = "reference_logps.parquet"
# The prompt and responses of the flagged pairs, for the report's table (the audit's other
# files hold figures, not texts).
TEXTS_FILE = "flagged_texts.parquet"
CHECK_FILE = "check.json"
CLEANED_FILE = "cleaned.jsonl"
CLEANED_PARQUET = "cleaned.parquet"  # the same rows, on request (`clean --parquet`)
QUARANTINE_FILE = "quarantine.jsonl"
MANIFEST_FILE = "manifest.json"
COMPARISON_FILE = "comparison.json"
REPORT_FILE = "index.html"
# The human review loop: the verdicts `review import` reads back (cleaning applies them), and
# the folder `review export` writes into by default, with the record of each export.
REVIEW_FILE = "review.jsonl"
REVIEW_FOLDER = "review"
REVIEW_EXPORTS = "review/exports.json"
VERDICTS = ("keep", "flip", "drop")
PREFERENCES = ("chosen", "rejected", "tie")
TRAINING_RUNS = ("train", "train-raw")  # subfolders `clean-then-train` writes
# The rows `train` rejected from its data and its evaluation data, in its output folder.
TRAIN_REJECTED = ("rejected-train.jsonl", "rejected-eval.jsonl")
# A training run's experiment trackers (`report_to`): the ids --resume continues, and the
# TensorBoard event files.
TRACKERS_FILE = "trackers.json"
TENSORBOARD_FOLDER = "tensorboard"
# What an audit folder holds about its data beyond the audit: removed when an audit of other
# data replaces the audit (training runs are never removed: api refuses that folder instead).
DERIVED = (
    CHECK_FILE,
    CLEANED_FILE,
    CLEANED_PARQUET,
    QUARANTINE_FILE,
    MANIFEST_FILE,
    COMPARISON_FILE,
)
# Every name a command may write at the top of an output folder or of a training run.
WRITTEN = (
    AUDIT_FILE,
    FLAGS_FILE,
    REJECTED_FILE,
    REFERENCE_FILE,
    TEXTS_FILE,
    *DERIVED,
    REPORT_FILE,
    "metrics.jsonl",
    "summary.json",
    TRACKERS_FILE,
    *TRAIN_REJECTED,
)
_STAGE = ".{}.staging-"  # + random letters: the sibling folder a command writes into


@contextlib.contextmanager
def staged(out: str | Path | None) -> Iterator[Path | None]:
    """A folder to write ``out``'s new files into, swapped in for ``out`` in one step when the
    block ends without an error (and dropped when it raises): a kill at any moment leaves
    ``out`` as it was or as the command left it, never half of each. ``None`` when ``out`` is.

    The stage starts as a copy of ``out`` made of hard links (no data is copied; every write
    replaces a file by renaming, never writes through a link), so what else ``out`` holds (a
    training run, the demo's data) is there after the swap. ``out`` is claimed for the whole
    block (:func:`~prefaudit.fileio.claim_folder`: a second writer is refused), so stages left
    by killed commands are removed first. A mount point, or the current folder or one above
    it, cannot be swapped: its files are written in place, one by one.
    """
    if out is None:
        yield None
        return
    out = Path(os.path.abspath(out))
    out = out.resolve() if out.is_symlink() else out
    with claim_folder(out):
        if _in_place(out):
            yield out
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        recover_swap(out)
        for stale in out.parent.glob(glob.escape(_STAGE.format(out.name)) + "*"):
            shutil.rmtree(stale, ignore_errors=True)  # its writer is gone: we hold the claim
        stage = Path(tempfile.mkdtemp(prefix=_STAGE.format(out.name), dir=out.parent))
        try:
            if out.is_dir():
                stage.rmdir()
                try:
                    shutil.copytree(out, stage, symlinks=True, copy_function=_link_or_copy)
                except shutil.Error as err:  # a list of (file, copy, why): the first says it
                    source, _, why = err.args[0][0]
                    raise InputError(f"{out}: {source} cannot be copied ({why})") from err
            else:  # mkdtemp makes 0700; a new folder follows the umask
                os.chmod(stage, 0o777 & ~umask())
            yield stage
            swap_folder(stage, out)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _in_place(out: Path) -> bool:
    """Whether ``out`` is written in place, with a warning saying why."""
    if out.is_dir() and os.path.ismount(out):
        why = "a mount point"
    elif out.resolve() == (here := Path.cwd().resolve()) or out.resolve() in here.parents:
        why = "the current folder or one above it"
    else:
        return False
    log.warning("%s is %s: its files are replaced one by one, not together", out, why)
    return True


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)


# Folders a training run replaces whole inside its output folder.
REPLACED_FOLDERS = ("model", "checkpoints", TENSORBOARD_FOLDER)


def refuse_inputs(
    out: str | Path | None, inputs: Iterable[Any], targets: Iterable[Any] = ()
) -> None:
    """Raise :class:`SettingError` when ``out`` is a file, or when something a command would
    write or replace is one of its ``inputs`` (the same file by path or inode, or a file inside
    a folder a training run replaces): a file named like an output in ``out``, a file among
    ``targets`` (``junit``). prefaudit never writes over what it reads."""
    given = [Path(i) for i in inputs if isinstance(i, (str, Path)) and Path(i).is_file()]
    written = [(Path(t), "junit") for t in targets if t is not None]
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise SettingError(f"out {out}: is a file, not a folder", setting="out")
        written += [(out / name, "out") for name in WRITTEN]
        replaced = [(out / name).resolve() for name in REPLACED_FOLDERS]
        for path in given:
            if any(folder in path.resolve().parents for folder in replaced):
                raise SettingError(
                    f"out {out}: a training run there replaces {path}, which is an input; "
                    "write the results into another folder",
                    setting="out",
                )
    for target, setting in written:
        for path in given:
            if target.exists() and os.path.samefile(target, path):
                raise SettingError(
                    f"{setting} {target}: would overwrite {path}, which is an input; "
                    "write the results elsewhere",
                    setting=setting,
                )


def save_audit(out: str | Path, result: AuditResult, data: LoadedData, *, texts: bool) -> Path:
    """Write an audit into ``out``: flags.parquet, audit.json, rejected.jsonl,
    reference_logps.parquet (when the reference pass ran) and, with ``texts``, the flagged
    pairs' texts for the report. An earlier audit's files this one does not write (log-probs,
    texts, report; and when it was of other data, the :data:`DERIVED` files) are removed:
    ``out`` holds one audit and what was made from it. Call it inside :func:`staged`, so the
    files change together."""
    out = Path(out)
    if saved_fingerprint(out) not in (None, result.fingerprint):  # the folder held other data
        for name in DERIVED:
            (out / name).unlink(missing_ok=True)
    write_parquet(out / FLAGS_FILE, result.flags)
    write_json(out / AUDIT_FILE, result.to_dict(include_flags=False))
    write_jsonl(out / REJECTED_FILE, data.report.rejected_records())
    if "reference" in result.validators:
        from prefaudit.models.logps_file import write_reference_logps

        reference = result.validators["reference"]
        write_reference_logps(
            out / REFERENCE_FILE, reference.flags, data.pairs, reference.info.get("model_identity")
        )
    else:  # an earlier audit's log-probs would be taken for this one's
        (out / REFERENCE_FILE).unlink(missing_ok=True)
    if texts:
        write_flagged_texts(out, data.pairs, result.flags)
    else:  # no report for this audit: an earlier one's would show other results
        (out / TEXTS_FILE).unlink(missing_ok=True)
        (out / REPORT_FILE).unlink(missing_ok=True)
    return out


def saved_fingerprint(folder: str | Path) -> str | None:
    """The input fingerprint of the audit saved in ``folder`` (None when there is none)."""
    try:
        return orjson.loads((Path(folder) / AUDIT_FILE).read_bytes()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def read_audit(folder: str | Path) -> AuditResult:
    """The audit saved in ``folder`` by :func:`save_audit`; a damaged one is an
    :class:`InputError` naming the folder."""
    folder = Path(folder)
    try:
        data = orjson.loads((folder / AUDIT_FILE).read_bytes())
        flags = pd.read_parquet(folder / FLAGS_FILE).drop(columns=["any_issue"])
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, OSError) as err:  # orjson, Arrow and pandas errors
        raise InputError(f"{folder}: the saved audit cannot be read ({err})") from err
    flags.index = flags.index.astype("str")
    _require_declared(folder, data.get("validators", {}), flags)
    return AuditResult.from_dict(data, flags)


def _require_declared(folder: Path, validators: Mapping[str, Any], flags: pd.DataFrame) -> None:
    """An audit saved by an earlier version may lack a column cleaning now reads (label_noise's
    flip_score): cleaned with it, that step would quietly do something else. Refused."""
    from prefaudit.validators import VALIDATORS

    missing = [
        f"{name}/{action.column}"
        for name in validators
        if name in VALIDATORS
        for action in VALIDATORS[name].cleaning
        if f"{name}/{action.column}" not in flags
    ]
    if missing:
        raise InputError(
            f"{folder}: the saved audit lacks {', '.join(missing)}: it was made by an earlier "
            "version of prefaudit; audit the data again"
        )


def has_audit(folder: str | Path) -> bool:
    return (Path(folder) / AUDIT_FILE).exists() and (Path(folder) / FLAGS_FILE).exists()


def reusable_audit(
    folder: str | Path,
    data: LoadedData,
    names: list[str] | None,
    params: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any] | None = None,
) -> AuditResult | None:
    """The audit saved in ``folder`` if running this one would compute exactly the same: the
    same input (and load options), the same validators, each with the same parameters, and
    the same ``settings`` (:attr:`AuditResult.settings`, e.g. the embedding model)."""
    if not has_audit(folder):
        return None
    try:
        saved = read_audit(folder)
    except Exception:  # an unreadable or older audit is simply recomputed
        return None
    if saved.fingerprint != data.report.fingerprint:
        return None
    if any(saved.settings.get(key) != value for key, value in (settings or {}).items()):
        return None
    expected = names if names is not None else default_validators(data)
    if set(saved.validators) != set(expected):
        return None
    for name in expected:
        wanted = create_validator(name, **params.get(name, {})).get_params()
        if dict(saved.validators[name].params) != wanted:
            return None
    return saved


def flagged_texts(pairs: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """The texts (and input lines) of the pairs with any issue, indexed by pair id."""
    columns = [c for c in (*TEXT_COLUMNS, "row") if c in pairs.columns]
    flagged = flags.index[flags["any_issue"].to_numpy(dtype=bool)]
    texts = pairs.loc[pairs.index.isin(flagged), columns]
    texts.index = texts.index.astype("str").rename("pair_id")
    return texts


def write_flagged_texts(folder: str | Path, pairs: pd.DataFrame, flags: pd.DataFrame) -> Path:
    """Save :func:`flagged_texts` into ``folder`` for the report."""
    return write_parquet(Path(folder) / TEXTS_FILE, flagged_texts(pairs, flags))


def read_flagged_texts(folder: str | Path) -> pd.DataFrame | None:
    path = Path(folder) / TEXTS_FILE
    if not path.exists():
        return None
    texts = pd.read_parquet(path)
    texts.index = texts.index.astype("str")
    return texts


def pair_evidence(flags: pd.DataFrame, pair_id: str) -> list[tuple[str, float | None, str]]:
    """Every check that says something about a pair: (check, its score, its reason), for the
    report's cleaning review and the files a reviewer reads."""
    if pair_id not in flags.index:
        return []
    row = flags.loc[pair_id]
    out = []
    for column in flags.columns:
        if not column.endswith("/reason") or not isinstance(row[column], str) or not row[column]:
            continue
        check = column.removesuffix("/reason")
        score = row.get(f"{check}/score")
        out.append((check, None if pd.isna(score) else float(score), row[column]))
    return out


def write_check(out: str | Path, check: Mapping[str, Any]) -> Path:
    """``check.json``: a rule file's results for the audit with ``check["fingerprint"]``."""
    return write_json(Path(out) / CHECK_FILE, dict(check))


def write_cleaned(
    out: str | Path,
    cleaned,
    policy,
    fingerprint: str,
    *,
    ref_logps: Mapping[str, Any] | None = None,
    parquet: bool = False,
) -> None:
    """cleaned.jsonl, quarantine.jsonl and manifest.json in ``out``, each written atomically
    (``cleaned`` is a :class:`prefaudit.cleaning.Cleaned`, ``policy`` its CleaningPolicy;
    ``ref_logps``: whether the cleaned rows carry TRL's reference columns, and why not, see
    :func:`prefaudit.models.logps_file.with_trl_columns`). With ``parquet``, the cleaned rows
    also as cleaned.parquet; without, an earlier one is removed (it would hold other rows)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / CLEANED_FILE, cleaned.cleaned)
    if parquet:
        write_parquet(out / CLEANED_PARQUET, pd.DataFrame(cleaned.cleaned))
    else:
        (out / CLEANED_PARQUET).unlink(missing_ok=True)
    write_jsonl(out / QUARANTINE_FILE, cleaned.quarantine)
    write_json(
        out / MANIFEST_FILE,
        {
            "input_fingerprint": fingerprint,
            "policy": policy.to_dict(),
            "counts": cleaned.counts,
            "flips": cleaned.flips,
            "selection": cleaned.selection,
            "ref_logps": dict(ref_logps) if ref_logps is not None else None,
            # Who decided what: the reviewers' verdicts applied before the policy's steps.
            "review": cleaned.review,
            "versions": {"prefaudit": __version__, "pandas": pd.__version__},
        },
    )


def read_json(path: str | Path) -> dict[str, Any] | None:
    """A JSON file of the folder, or None when it is absent."""
    path = Path(path)
    if not path.exists():
        return None
    return orjson.loads(path.read_bytes())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL file of the folder ([] when it is absent)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


# -- the human review loop --------------------------------------------------------------------


def texts_key(prompt: Any, chosen: Any, rejected: Any) -> str:
    """A pair's prompt and responses as one short key (xxh64): a verdict is about the texts the
    reviewer read, and applies only while the pair still has them."""
    return xxhash.xxh64(orjson.dumps([prompt, chosen, rejected])).hexdigest()


def read_review(folder: str | Path) -> list[dict[str, Any]]:
    """The verdicts in ``folder/review.jsonl`` ([] when there is none), each checked and given
    its ``line``; a bad line is an :class:`InputError` naming the file, line and field."""
    path = Path(folder) / REVIEW_FILE
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    with open(path, "rb") as handle:
        for line, text in enumerate(handle, 1):
            if not text.strip():
                continue
            record = _review_line(path, line, text)
            if record["pair_id"] in seen:
                raise InputError(
                    f"{path} line {line}: pair_id: a second verdict for {record['pair_id']!r} "
                    f"(the first is on line {seen[record['pair_id']]}); keep one"
                )
            seen[record["pair_id"]] = line
            records.append({**record, "line": line})
    return records


def _review_line(path: Path, line: int, text: bytes) -> dict[str, Any]:
    """One line of review.jsonl, checked field by field."""
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise InputError(f"{path} line {line}: not a JSON object ({err})") from None
    if not isinstance(record, dict):
        raise InputError(f"{path} line {line}: expected a JSON object, got {type(record).__name__}")
    checks = (
        ("pair_id", lambda v: isinstance(v, str) and v != "", "the pair's id (text)"),
        ("verdict", lambda v: v in VERDICTS, " or ".join(VERDICTS)),
        ("reviewer", lambda v: isinstance(v, str) and v.strip() != "", "who decided (text)"),
        ("texts", lambda v: isinstance(v, str) and v != "", "the key of the texts reviewed"),
        (
            "preference",
            lambda v: v is None or v in PREFERENCES,
            "null or " + ", ".join(PREFERENCES),
        ),
        ("note", lambda v: v is None or isinstance(v, str), "null or text"),
    )
    for field_name, ok, expected in checks:
        if not ok(record.get(field_name)):
            raise InputError(
                f"{path} line {line}: {field_name}: expected {expected}, "
                f"got {record.get(field_name)!r}"
            )
    return record


def write_review(folder: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """``folder/review.jsonl``, one verdict per line (their ``line`` left out), atomically."""
    rows = [{k: v for k, v in r.items() if k != "line"} for r in records]
    return write_jsonl(Path(folder) / REVIEW_FILE, rows)


def applicable_reviews(folder: str | Path, pairs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The verdicts of ``folder/review.jsonl`` by pair id, each checked against ``pairs``: a
    verdict whose pair is gone or whose texts changed since the review cannot be applied, and
    is an :class:`InputError` naming its line (never skipped: it is a person's decision)."""
    path = Path(folder) / REVIEW_FILE
    reviews = {}
    for record in read_review(folder):
        pair_id, where = record["pair_id"], f"{path} line {record['line']}"
        if pair_id not in pairs.index:
            raise InputError(
                f"{where}: pair {pair_id!r} is not in the data, so its verdict cannot be "
                "applied; remove the line, or clean the data it was reviewed on"
            )
        row = pairs.loc[pair_id]
        if texts_key(row["prompt"], row["chosen"], row["rejected"]) != record["texts"]:
            raise InputError(
                f"{where}: pair {pair_id!r} changed since it was reviewed (its prompt or "
                "responses differ); remove the line, or export the pair for review again"
            )
        reviews[pair_id] = record
    return reviews


def read_exports(folder: str | Path) -> list[dict[str, Any]]:
    """The record of every ``review export`` from ``folder`` (``review/exports.json``)."""
    path = Path(folder) / REVIEW_EXPORTS
    if not path.exists():
        return []
    try:
        return list(orjson.loads(path.read_bytes())["exports"])
    except (orjson.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(
            f"{path}: the record of the review exports cannot be read ({err})"
        ) from None


def add_export(folder: str | Path, export: Mapping[str, Any]) -> Path:
    """Add one export's record (its id, tool, file, time and pairs) to ``review/exports.json``."""
    exports = [*read_exports(folder), dict(export)]
    return write_json(Path(folder) / REVIEW_EXPORTS, {"exports": exports})
