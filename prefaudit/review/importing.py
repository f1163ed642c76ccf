"""``prefaudit review import``: reviewers' verdicts, read back from a tool's file, into the audit
folder's ``review.jsonl`` (which ``prefaudit clean`` applies before its other steps).

Nothing is lost: every exported pair comes back with a verdict or is counted as unreviewed
(no verdict, reviewers who disagree, or a row missing from the file); a verdict for a pair
that was not exported is an error naming its row. A new verdict replaces an earlier one for
the same pair; the others in ``review.jsonl`` stay.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefaudit import outputs
from prefaudit.errors import InputError
from prefaudit.review.verdict import Verdict


@dataclass
class ReviewImport:
    """What :func:`import_review` read and wrote."""

    file: Path
    folder: Path  # the audit folder
    source: str  # csv, label-studio or argilla
    exported: int  # pairs of the export(s) the file came from
    verdicts: dict[str, int]  # per verdict, the pairs this file decided
    unreviewed: list[str]  # exported pairs it did not decide (no verdict, disagreement, missing)
    missing: list[str] = field(default_factory=list)  # exported pairs not in the file at all
    disagreements: dict[str, list[str]] = field(default_factory=dict)  # pair -> verdicts given
    review_file: Path | None = None
    total: int = 0  # verdicts in review.jsonl after the import


def read_verdicts(file: Path) -> tuple[str, list[Verdict]]:
    """(the tool, every answer) of a reviewed file: a CSV, Label Studio's JSON export, or an
    Argilla dataset folder (``Dataset.to_disk``) or its ``records.json``."""
    if file.is_dir() or file.name == "records.json":
        from prefaudit.review.argilla_io import read_records

        return "argilla", read_records(file)
    if file.suffix.lower() in (".csv", ".tsv", ".txt"):
        from prefaudit.review.csv_io import read_csv

        return "csv", read_csv(file)
    if file.suffix.lower() == ".json":
        from prefaudit.review.label_studio_io import read_export

        return "label-studio", read_export(file)
    raise InputError(
        f"{file}: not a file prefaudit review import reads; expected the CSV review export "
        "wrote, Label Studio's JSON export (.json), or the folder Argilla's Dataset.to_disk wrote"
    )


def import_review(file: str | Path, folder: str | Path, *, reviewer: str | None = None):
    """Read the verdicts in ``file`` into ``folder/review.jsonl``; ``reviewer`` names who
    decided where the file does not say (a CSV row without one). Returns a
    :class:`ReviewImport`."""
    file, folder = Path(file), Path(folder)
    source, answers = read_verdicts(file)
    exports = {e["id"]: e for e in outputs.read_exports(folder)}
    for answer in answers:
        _check(answer, exports, file, folder, reviewer)
    decided, disagreements = _decide(answers)
    used = {a.export for a in answers}
    exported = {p: exports[e]["pairs"][p] for e in used for p in exports[e]["pairs"]}
    came_back = {a.pair_id for a in answers}
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    records = {
        pair_id: {
            "pair_id": pair_id,
            "verdict": answer.verdict,
            "preference": answer.preference,
            "reviewer": answer.reviewer,
            "note": answer.note,
            "source": source,
            "decided": answer.decided,
            "imported": now,
            "export": answer.export,
            "texts": exported[pair_id],
            "file": str(file),
        }
        for pair_id, answer in decided.items()
    }
    merged = _merge(outputs.read_review(folder), records)
    path = outputs.write_review(folder, merged)
    verdicts = {v: sum(a.verdict == v for a in decided.values()) for v in outputs.VERDICTS}
    return ReviewImport(
        file=file,
        folder=folder,
        source=source,
        exported=len(exported),
        verdicts=verdicts,
        unreviewed=[p for p in exported if p not in decided],
        missing=[p for p in exported if p not in came_back],
        disagreements=disagreements,
        review_file=path,
        total=len(merged),
    )


def _check(answer: Verdict, exports: dict, file: Path, folder: Path, reviewer) -> None:
    """An answer must name a pair of an export from ``folder`` and give valid values; fills in
    ``reviewer`` where the file has none. Errors name the file, the row and the field."""
    where = f"{file} {answer.where}"
    for name in ("pair_id", "export"):
        if not isinstance(getattr(answer, name), str) or not getattr(answer, name):
            raise InputError(
                f"{where}: {name}: missing; expected the value review export wrote there"
            )
    if answer.export not in exports:
        known = ", ".join(exports) or "none"
        raise InputError(
            f"{where}: export: {answer.export!r} is not an export of {folder} "
            f"(its exports: {known}); give the audit folder it came from with --audit"
        )
    if answer.pair_id not in exports[answer.export]["pairs"]:
        raise InputError(
            f"{where}: pair_id: {answer.pair_id!r} is not one of the pairs exported "
            f"({answer.export}); a verdict needs a pair that was sent for review"
        )
    for name, allowed in (("verdict", outputs.VERDICTS), ("preference", outputs.PREFERENCES)):
        value = getattr(answer, name)
        if value is not None and value not in allowed:
            raise InputError(
                f"{where}: {name}: expected {', '.join(allowed)} (or nothing), got {value!r}"
            )
    if answer.verdict is not None and not answer.reviewer:
        if not reviewer:
            raise InputError(
                f"{where}: reviewer: a verdict needs who gave it; fill in the reviewer, or "
                "give --reviewer NAME for the rows without one"
            )
        answer.reviewer = reviewer


def _decide(answers: Iterable[Verdict]) -> tuple[dict[str, Verdict], dict[str, list[str]]]:
    """One verdict per pair: reviewers who agree are joined; pairs whose reviewers disagree
    are left undecided (and returned with the verdicts given)."""
    given: dict[str, list[Verdict]] = {}
    for answer in answers:
        if answer.verdict is not None:
            given.setdefault(answer.pair_id, []).append(answer)
    decided, disagreements = {}, {}
    for pair_id, votes in given.items():
        verdicts = sorted({v.verdict for v in votes})
        if len(verdicts) > 1:
            disagreements[pair_id] = [f"{v.verdict} ({v.reviewer})" for v in votes]
            continue
        preferences = {v.preference for v in votes}
        decided[pair_id] = Verdict(
            pair_id,
            votes[0].export,
            votes[0].where,
            verdicts[0],
            preferences.pop() if len(preferences) == 1 else None,
            ", ".join(dict.fromkeys(str(v.reviewer) for v in votes)),
            "; ".join(dict.fromkeys(v.note for v in votes if v.note)) or None,
            max((str(v.decided) for v in votes if v.decided), default=None),
        )
    return decided, disagreements


def _merge(old: list[dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` with each pair's record replaced by its new one; new pairs after them."""
    merged = [new.get(record["pair_id"], record) for record in old]
    had = {record["pair_id"] for record in old}
    return merged + [record for pair_id, record in new.items() if pair_id not in had]
