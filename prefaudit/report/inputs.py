"""What a report is drawn from: the files an audit folder holds, read without recomputing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from prefaudit import outputs
from prefaudit.auditing import AuditResult
from prefaudit.errors import InputError


@dataclass
class TrainingRun:
    """A training run in the audit folder: its summary.json and metrics.jsonl lines."""

    name: str
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]


@dataclass
class ReportInputs:
    """An audit and whatever else its folder holds: rule results, cleaning, training."""

    folder: Path
    result: AuditResult
    texts: pd.DataFrame | None = None
    check: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    runs: list[TrainingRun] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    # The first quarantined pairs of each cleaning action (with their texts), for review.
    quarantine: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # How many pairs each action quarantined (a pair two checks dropped counts once).
    quarantined: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: str | Path) -> ReportInputs:
        """Read ``folder`` (``audit.json`` and ``flags.parquet`` are required)."""
        folder = Path(folder)
        for name in (outputs.AUDIT_FILE, outputs.FLAGS_FILE):
            if not (folder / name).exists():
                raise InputError(f"{folder}: no {name} here; audit the data into this folder first")
        result = outputs.read_audit(folder)
        check = outputs.read_json(folder / outputs.CHECK_FILE)
        if check is not None and check.get("fingerprint") != result.fingerprint:
            check = None  # a check of other data (an older run in the same folder)
        manifest = outputs.read_json(folder / outputs.MANIFEST_FILE)
        if manifest is not None and manifest.get("input_fingerprint") != result.fingerprint:
            manifest = None
        runs = [run for name in outputs.TRAINING_RUNS if (run := _run(folder / name, name))]
        comparison = outputs.read_json(folder / outputs.COMPARISON_FILE)
        texts = outputs.read_flagged_texts(folder)
        quarantine, counts = _quarantine(folder / outputs.QUARANTINE_FILE) if manifest else ({}, {})
        return cls(folder, result, texts, check, manifest, runs, comparison, quarantine, counts)

    def text(self, pair_id: str) -> dict[str, Any] | None:
        """The prompt, chosen and rejected of a flagged pair (None when not saved)."""
        if self.texts is None or pair_id not in self.texts.index:
            return None
        return self.texts.loc[pair_id].to_dict()


REVIEWED = 50  # quarantined pairs of each action the report shows (all are in the file)


def _quarantine(path: Path, limit: int = REVIEWED) -> tuple[dict[str, list], dict[str, int]]:
    """The first ``limit`` rows of each action in ``quarantine.jsonl`` and each action's
    count, read line by line (a large cleaning's quarantine need not fit in memory)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    if not path.exists():
        return rows, counts
    with open(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = orjson.loads(line)
            action = str(row.get("action"))
            counts[action] = counts.get(action, 0) + 1
            kept = rows.setdefault(action, [])
            if len(kept) < limit:
                kept.append(row)
    return rows, counts


def _run(folder: Path, name: str) -> TrainingRun | None:
    summary = outputs.read_json(folder / "summary.json")
    if summary is None:
        return None
    return TrainingRun(name, summary, outputs.read_jsonl(folder / "metrics.jsonl"))
