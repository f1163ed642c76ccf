"""The cleaning section's review: what cleaning did to which pairs, and the evidence it read.

A flip or a drop is a decision about a label; the report shows each one (the first
``REVIEWED`` of each action) with its prompt and both responses side by side, the decision and
its reason, and every check's score and reason for that pair, so a reader can judge it where
it is reported. Flips come from the manifest (their texts from the audit's flagged texts), the
rest from ``quarantine.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prefaudit.chat import is_conversation, render_messages
from prefaudit.outputs import pair_evidence
from prefaudit.report.inputs import REVIEWED, ReportInputs

# Each action as the section names it, in the order the groups are shown.
ACTIONS = {
    "flip": "Flipped: chosen and rejected swapped",
    "drop": "Dropped by a check",
    "dedupe": "Repeats removed (one pair of each group kept)",
    "review": "Held for review (evidence too weak to flip)",
    "select": "Not selected",
}


@dataclass
class Reviewed:
    pair_id: str
    decision: str  # what cleaning did and why, as it recorded it
    evidence: list[tuple[str, float | None, str]]  # (check, score, reason) for the pair
    prompt: Any = None
    chosen: Any = None  # as labelled in the input (before any flip)
    rejected: Any = None
    in_table: bool = False  # the pair is in the flagged-pair table (a link leads there)

    @property
    def evidence_text(self) -> str:
        """One line per check: its name, its score for the pair and its reason."""
        return "\n".join(
            f"{check}{'' if score is None else f' ({score:.2f})'}: {reason}"
            for check, score, reason in self.evidence
        )


@dataclass
class ReviewGroup:
    action: str
    title: str
    total: int
    rows: list[Reviewed] = field(default_factory=list)


def review_groups(inputs: ReportInputs) -> list[ReviewGroup]:
    """The cleaning's decisions, grouped by action (empty without a cleaning manifest)."""
    manifest = inputs.manifest
    if not manifest:
        return []
    flags = inputs.result.flags
    groups = []
    flips = manifest.get("flips") or []
    if flips:
        rows = [_flipped(flip, inputs, flags) for flip in flips[:REVIEWED]]
        groups.append(ReviewGroup("flip", ACTIONS["flip"], len(flips), rows))
    for action, entries in sorted(inputs.quarantine.items(), key=lambda kv: _order(kv[0])):
        total = inputs.quarantined.get(action, len(entries))
        rows = [_quarantined(entry, flags) for entry in entries]
        groups.append(ReviewGroup(action, ACTIONS.get(action, action), total, rows))
    return groups


def _order(action: str) -> int:
    return list(ACTIONS).index(action) if action in ACTIONS else len(ACTIONS)


def _flipped(flip: dict[str, Any], inputs: ReportInputs, flags: pd.DataFrame) -> Reviewed:
    pair_id = str(flip["pair_id"])
    text = inputs.text(pair_id) or {}
    return Reviewed(
        pair_id,
        f"flipped by {flip.get('by')}: {flip.get('reason')}",
        pair_evidence(flags, pair_id),
        text.get("prompt"),
        text.get("chosen"),
        text.get("rejected"),
        _flagged(flags, pair_id),
    )


def _quarantined(entry: dict[str, Any], flags: pd.DataFrame) -> Reviewed:
    pair_id = str(entry["pair_id"])
    reasons = entry.get("reasons") or {}
    decision = "; ".join(f"{check}: {reason}" for check, reason in reasons.items())
    return Reviewed(
        pair_id,
        decision or str(entry.get("action")),
        pair_evidence(flags, pair_id),
        _plain(entry.get("prompt")),
        _plain(entry.get("chosen")),
        _plain(entry.get("rejected")),
        _flagged(flags, pair_id),
    )


def _flagged(flags: pd.DataFrame, pair_id: str) -> bool:
    return pair_id in flags.index and bool(flags.at[pair_id, "any_issue"])


def _plain(value: Any) -> Any:
    """A conversational prompt or response (a message list, as the quarantine writes it) as
    one text, the way the audit shows prompts."""
    return render_messages(value) if is_conversation(value) else value
