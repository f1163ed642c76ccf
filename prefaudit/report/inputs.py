"""What a report is drawn from: the files an audit folder holds, read without recomputing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from prefaudit.auditing import AuditResult
from prefaudit.fileio import write_parquet
from prefaudit.report.table import TEXT_COLUMNS

# The prompt and responses of the flagged pairs, saved by the audit for the report's table
# (the audit's other files hold figures, not texts).
TEXTS_FILE = "flagged_texts.parquet"
TRAINING_RUNS = ("train", "train-raw")  # subfolders `clean-then-train` writes


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

    @classmethod
    def read(cls, folder: str | Path) -> ReportInputs:
        """Read ``folder`` (``audit.json`` and ``flags.parquet`` are required)."""
        folder = Path(folder)
        for name in ("audit.json", "flags.parquet"):
            if not (folder / name).exists():
                raise FileNotFoundError(
                    f"{folder}: no {name} here; run `prefaudit audit DATA --out {folder}` first"
                )
        result = AuditResult.read(folder)
        texts = None
        if (folder / TEXTS_FILE).exists():
            texts = pd.read_parquet(folder / TEXTS_FILE)
            texts.index = texts.index.astype("str")
        check = _json(folder / "check.json")
        if check is not None and check.get("fingerprint") != result.fingerprint:
            check = None  # a check of other data (an older run in the same folder)
        manifest = _json(folder / "manifest.json")
        if manifest is not None and manifest.get("input_fingerprint") != result.fingerprint:
            manifest = None
        runs = [run for name in TRAINING_RUNS if (run := _run(folder / name, name))]
        return cls(folder, result, texts, check, manifest, runs, _json(folder / "comparison.json"))

    def text(self, pair_id: str) -> dict[str, Any] | None:
        """The prompt, chosen and rejected of a flagged pair (None when not saved)."""
        if self.texts is None or pair_id not in self.texts.index:
            return None
        return self.texts.loc[pair_id].to_dict()


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


def _json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    return orjson.loads(path.read_bytes())


def _run(folder: Path, name: str) -> TrainingRun | None:
    summary = _json(folder / "summary.json")
    if summary is None:
        return None
    metrics = []
    if (folder / "metrics.jsonl").exists():
        with open(folder / "metrics.jsonl", "rb") as handle:
            metrics = [orjson.loads(line) for line in handle if line.strip()]
    return TrainingRun(name, summary, metrics)
