"""The canonical tables (PairSet, Annotations) and the load report that accounts for every row."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from prefaudit.errors import SettingError

# Columns every PairSet has, in this order.
PAIR_COLUMNS = ("pair_id", "prompt", "chosen", "rejected")
# Columns a PairSet may have, when the input carries them.
OPTIONAL_PAIR_COLUMNS = (
    "prompt_messages",  # chat turns before the responses: list of {"role", "content"}
    "score_chosen",
    "score_rejected",
    "score_gap",  # ratings inputs: score_chosen - score_rejected (> 0: ties never make pairs)
    "source",
    "split",
    "model_chosen",
    "model_rejected",
    "weight",  # per-pair loss weight >= 0 (from `prefaudit clean`)
    "soft_label",  # P(chosen is better) in [0, 1], for conservative DPO (from `prefaudit clean`)
    "tie",  # side-by-side inputs: the label (or the raters' aggregate) was a tie
    "chosen_position",  # side-by-side inputs: "a" or "b", where the chosen response was shown
    "row",  # where the pair came from: line (text files) or record number (others), 1-based
)
TEXT_COLUMNS = ("prompt", "chosen", "rejected")

# The Annotations table: one row per (pair, annotator) judgement, relative to the pair's
# chosen/rejected orientation. `value` is the annotator's probability that `chosen` is better
# (1.0 chosen, 0.0 rejected, 0.5 tie; graded or continuous labels in between).
ANNOTATION_COLUMNS = ("pair_id", "annotator", "label", "value")
OPTIONAL_ANNOTATION_COLUMNS = ("chosen_position", "raw_label", "row")
ANNOTATION_LABELS = ("chosen", "rejected", "tie")

SHAPES = ("flat", "conversational", "hh", "side_by_side", "annotations", "ratings")
ON_BAD_ROW = ("skip", "fail")
# Per-response ratings (the ratings layout): how a prompt's rated responses become pairs, and
# which number is a response's score (prefaudit.io.ratings).
BINARIZE_POLICIES = ("best-worst", "best-random", "all-gap:M")
DEFAULT_BINARIZE = "best-worst"  # best vs worst: the widest gap, one pair per prompt
DEFAULT_RATING_SCORE = "mean"  # the aspects' ratings averaged (UltraFeedback's fine-grained)
DEFAULT_MAX_CHARS = 1_000_000  # a text longer than this is almost always a pasting or export error


@dataclass(frozen=True)
class LoadIssue:
    """One row that was rejected (or loaded with a warning), and why."""

    file: str
    line: int | None  # 1-based line, or record number for formats without lines
    field: str | None
    reason: str
    severity: str = "rejected"  # "rejected": the row is not in the PairSet; "warning": it is
    unit: str = "line"  # what `line` counts: "line" or "record"
    # The row as read (a dict, or the raw line's text), kept for rejected.jsonl; not in audit.json.
    record: Any = field(default=None, repr=False, compare=False)

    def location(self) -> str:
        where = f"{self.file}"
        if self.line is not None:
            where += f", {self.unit} {self.line}"
        if self.field:
            where += f", field '{self.field}'"
        return where

    def __str__(self) -> str:
        return f"{self.location()}: {self.reason}"


@dataclass
class LoadReport:
    """How an input became a PairSet: every row read is either accepted or rejected.

    ``rows_read == rows_accepted + rows_rejected`` always holds. For long annotation tables
    several accepted rows make one pair, so ``pairs <= rows_accepted`` there.
    """

    files: list[str] = field(default_factory=list)
    file_type: str = ""
    shape: str = ""
    mapping: dict[str, str] = field(default_factory=dict)
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    pairs: int = 0
    annotations: int = 0
    annotation_rows_read: int = 0
    annotation_rows_rejected: int = 0
    rejected: list[LoadIssue] = field(default_factory=list)
    warnings: list[LoadIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""
    # Per label column read: its scale (prefaudit.io.scales.LabelScale.to_dict), how it was
    # chosen, and the rows per value (ColumnReading.summary).
    label_scales: list[dict[str, Any]] = field(default_factory=list)
    # Per-response ratings (the ``ratings`` layout; rows_read counts rating rows): how they
    # were read, scored and binarised, and where each went (prefaudit.io.ratings).
    ratings: dict[str, Any] | None = None
    # Interval alpha between the raters of the responses' scores, when some have two or more.
    rating_agreement: dict[str, Any] | None = None

    def reject(self, issue: LoadIssue) -> None:
        self.rejected.append(_bounded(issue))

    def warn(self, issue: LoadIssue) -> None:
        self.warnings.append(
            LoadIssue(issue.file, issue.line, issue.field, issue.reason, "warning", issue.unit)
        )

    def rejected_records(self) -> list[dict[str, Any]]:
        """The rejected rows with their content and reasons, as written to ``rejected.jsonl``."""
        return [{**_issue_dict(i), "record": _storable(i.record)} for i in self.rejected]

    def to_dict(self) -> dict[str, Any]:
        # Not asdict(self): it would deep-copy every rejected row's record (and recurse
        # without limit into a row nested 600 deep).
        data = {f.name: copy.copy(getattr(self, f.name)) for f in fields(self)}
        data["rejected"] = [_issue_dict(i) for i in self.rejected]
        data["warnings"] = [_issue_dict(i) for i in self.warnings]
        data["rejected_rows"] = self.rows_rejected
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadReport:
        data = {k: v for k, v in data.items() if k != "rejected_rows"}
        data["rejected"] = [LoadIssue(**i) for i in data.get("rejected", [])]
        data["warnings"] = [LoadIssue(**i) for i in data.get("warnings", [])]
        return cls(**data)

    def summary(self) -> str:
        text = (
            f"{self.rows_read} rows read, {self.rows_accepted} accepted, "
            f"{self.rows_rejected} rejected -> {self.pairs} pairs"
        )
        if self.annotations:
            text += f", {self.annotations} annotations"
        if self.ratings:
            text += f" from ratings of {self.ratings['prompts']} prompts"
        if self.warnings:
            text += f", {len(self.warnings)} warnings"
        return text


def describe_type(value: Any) -> str:
    """How error messages name a value's JSON type: 'a list', 'a string', 'null'..."""
    if value is None:
        return "null"
    names = {
        list: "a list",
        str: "a string",
        dict: "an object",
        bool: "true/false",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), type(value).__name__)


def _issue_dict(issue: LoadIssue) -> dict[str, Any]:
    return {f.name: getattr(issue, f.name) for f in fields(issue) if f.name != "record"}


# Characters of a rejected row kept for rejected.jsonl: a 100 MB row is not held in memory
# (nor written again) to say why it was rejected; its line in the input has all of it.
KEPT_RECORD_CHARS = 100_000


def _bounded(issue: LoadIssue) -> LoadIssue:
    record = issue.record
    if record is None or isinstance(record, (int, float, bool)):
        return issue
    text = record if isinstance(record, str) else None
    if text is None:
        try:
            size = len(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY, default=str))
        except orjson.JSONEncodeError:
            return issue  # nested too deep to measure: kept as its JSON text when written
        if size <= KEPT_RECORD_CHARS:
            return issue
        text = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()
    if len(text) <= KEPT_RECORD_CHARS:
        return issue
    kept = f"{text[:KEPT_RECORD_CHARS]}… (cut: {len(text):,} characters in all)"
    return LoadIssue(
        issue.file, issue.line, issue.field, issue.reason, issue.severity, issue.unit, record=kept
    )


def _storable(record: Any) -> Any:
    """A rejected row's record as ``rejected.jsonl`` can hold it: as read, or as its JSON text
    when it is nested deeper than the JSON writer goes (255 levels)."""
    try:
        orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
    except orjson.JSONEncodeError:
        try:
            return json.dumps(record, ensure_ascii=False, default=str)
        except (RecursionError, ValueError):
            return repr(record)[:100_000]
    return record


class LoadError(SettingError):
    """The input cannot be loaded (or, with ``on_bad_row='fail'``, has bad rows).

    ``setting`` names the setting whose value caused it (``format``, ``on_bad_row``), as
    :class:`~prefaudit.errors.SettingError` does; None when the input itself is at fault.
    """

    def __init__(
        self, message: str, issues: list[LoadIssue] | None = None, *, setting: str | None = None
    ):
        self.issues = list(issues or [])
        if self.issues:
            shown = "\n".join(f"  - {i}" for i in self.issues[:20])
            more = len(self.issues) - 20
            message += "\n" + shown + (f"\n  ... and {more} more" if more > 0 else "")
        super().__init__(message, setting=setting)
