"""Cleaning: an audit and a policy in, a cleaned dataset and a quarantine out, nothing lost.

A policy is the ``clean:`` section of a rules file (see ``rules/default.yaml``). Its actions
are applied in this order, each to the pairs the previous ones kept:

1. ``drop``: pairs with an issue from any listed check (a validator name: its ``issue``
   column; or ``validator/flag``: one of its flag columns) go to the quarantine, with every
   listed check's reason;
2. ``dedupe``: of each group of duplicate pairs (``duplication/duplicate_of``) the first kept
   pair stays, the others go to the quarantine ("duplicate of ...");
3. ``reorient_by_raters``: pairs whose raters' consensus prefers the rejected response
   (``agreement/contradicted``) are flipped;
4. ``flip_min_noise``: pairs whose ``label_noise/noise_score`` reaches this value (and were not
   re-oriented) are flipped;
5. ``weights``: ``confidence`` attaches ``weight`` = 1 - noise score; ``soft_label`` attaches
   ``soft_label`` = the raters' P(chosen better), after any flip.

Every input pair ends in exactly one of ``cleaned.jsonl`` and ``quarantine.jsonl``;
``manifest.json`` counts each action and reason and lists every flip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

WEIGHTS = ("none", "confidence", "soft_label")


@dataclass(frozen=True)
class CleaningPolicy:
    """What to do with the audited pairs (the ``clean:`` section of a rules file)."""

    drop: tuple[str, ...] = ()
    dedupe: bool = True
    reorient_by_raters: bool = False
    flip_min_noise: float | None = None
    weights: str = "none"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["drop"] = list(self.drop)
        return out


@dataclass
class Cleaned:
    """The outcome: cleaned pairs (TRL-ready rows), quarantined rows, and the flips."""

    cleaned: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    flips: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def clean(pairs: pd.DataFrame, flags: pd.DataFrame, policy: CleaningPolicy) -> Cleaned:
    """Apply ``policy`` to ``pairs`` (a PairSet indexed by pair_id) given the audit's ``flags``
    (columns ``validator/column``, indexed by pair_id)."""
    flags = flags.reindex(pairs.index)
    kept = pd.Series(True, index=pairs.index)
    quarantine: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}

    for name in policy.drop:
        hit = _column(flags, name)
        for pair_id in pairs.index[hit.to_numpy() & kept.to_numpy()]:
            entry = quarantine.setdefault(pair_id, {"action": "drop", "issues": [], "reasons": {}})
            entry["issues"].append(name)
            validator = name.split("/")[0]
            reason = flags.get(f"{validator}/reason")
            if reason is not None and reason[pair_id]:
                entry["reasons"][validator] = reason[pair_id]
        kept &= ~hit
    for entry in quarantine.values():
        for issue in entry["issues"]:
            counts[f"drop: {issue}"] = counts.get(f"drop: {issue}", 0) + 1

    if policy.dedupe and "duplication/duplicate_of" in flags:
        # A pair's group: the pair it duplicates, or itself (the group's first member).
        original = flags["duplication/duplicate_of"]
        seen: set[str] = set()
        for pair_id in pairs.index[kept.to_numpy()]:
            group = (
                original[pair_id]
                if isinstance(original[pair_id], str) and original[pair_id]
                else pair_id
            )
            if group in seen:
                kept[pair_id] = False
                quarantine[pair_id] = {
                    "action": "dedupe",
                    "issues": ["duplication/duplicate_of"],
                    "reasons": {"duplication": f"duplicate of {group} (one per group kept)"},
                }
                counts["dedupe"] = counts.get("dedupe", 0) + 1
            else:
                seen.add(group)

    flipped = pd.Series(False, index=pairs.index)
    flips = []
    if policy.reorient_by_raters and "agreement/contradicted" in flags:
        hit = _column(flags, "agreement/contradicted") & kept
        for pair_id in pairs.index[hit.to_numpy()]:
            flips.append(
                {
                    "pair_id": pair_id,
                    "by": "raters",
                    "reason": "raters' consensus prefers the rejected response",
                }
            )
        flipped |= hit
    if policy.flip_min_noise is not None and "label_noise/noise_score" in flags:
        noise = flags["label_noise/noise_score"].astype(float)
        hit = (noise >= policy.flip_min_noise).fillna(False) & kept & ~flipped
        for pair_id in pairs.index[hit.to_numpy()]:
            flips.append(
                {
                    "pair_id": pair_id,
                    "by": "label_noise",
                    "reason": f"noise score {noise[pair_id]:.3f} >= {policy.flip_min_noise}",
                }
            )
        flipped |= hit
    if flips:
        counts["flip"] = len(flips)

    cleaned = []
    for pair_id in pairs.index[kept.to_numpy()]:
        row = pairs.loc[pair_id]
        out = _trl_row(row, swap=bool(flipped[pair_id]))
        out = {"pair_id": pair_id, **out}
        if policy.weights == "confidence" and "label_noise/noise_score" in flags:
            noise = flags.at[pair_id, "label_noise/noise_score"]
            if pd.notna(noise):
                # After a flip, the confidence is that the new label is right.
                out["weight"] = float(noise if flipped[pair_id] else 1 - noise)
        elif policy.weights == "soft_label" and "agreement/soft_label" in flags:
            soft = flags.at[pair_id, "agreement/soft_label"]
            if pd.notna(soft):
                out["soft_label"] = float(1 - soft if flipped[pair_id] else soft)
        cleaned.append(out)
    rows = []
    for pair_id in pairs.index:
        if pair_id in quarantine:
            row = pairs.loc[pair_id]
            entry = quarantine[pair_id]
            scores = {
                c.split("/")[0]: float(flags.at[pair_id, c])
                for c in flags.columns
                if c.endswith("/score")
                and pd.notna(flags.at[pair_id, c])
                and flags.at[pair_id, c] > 0
            }
            rows.append(
                {"pair_id": pair_id, **_trl_row(row, swap=False), **entry, "scores": scores}
            )
    counts["input"] = len(pairs)
    counts["cleaned"] = len(cleaned)
    counts["quarantined"] = len(rows)
    return Cleaned(cleaned, rows, flips, counts)


def _column(flags: pd.DataFrame, name: str) -> pd.Series:
    """A check's boolean column: ``validator`` -> its ``issue``; ``validator/flag`` as is
    (absent: no pair has it)."""
    column = name if "/" in name else f"{name}/issue"
    if column not in flags:
        return pd.Series(False, index=flags.index)
    values = flags[column]
    if values.dtype == object:
        values = values.map(lambda v: bool(v) if v is not None and v == v else False)
    return values.fillna(False).astype(bool)


def _trl_row(row: pd.Series, swap: bool) -> dict[str, Any]:
    """prompt / chosen / rejected as TRL reads them: conversational when the input was."""
    chosen, rejected = (
        (row["rejected"], row["chosen"]) if swap else (row["chosen"], row["rejected"])
    )
    messages = row.get("prompt_messages")
    if isinstance(messages, (list, np.ndarray)) and len(messages):
        return {
            "prompt": [dict(m) for m in messages],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
    return {"prompt": row["prompt"], "chosen": chosen, "rejected": rejected}


def write_cleaned(out: Path, result: Cleaned, policy: CleaningPolicy, fingerprint: str) -> None:
    """cleaned.jsonl, quarantine.jsonl and manifest.json in ``out``, each written atomically."""
    import prefaudit
    from prefaudit.fileio import write_json, write_jsonl

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "cleaned.jsonl", result.cleaned)
    write_jsonl(out / "quarantine.jsonl", result.quarantine)
    write_json(
        out / "manifest.json",
        {
            "input_fingerprint": fingerprint,
            "policy": policy.to_dict(),
            "counts": result.counts,
            "flips": result.flips,
            "versions": {"prefaudit": prefaudit.__version__, "pandas": pd.__version__},
        },
    )
