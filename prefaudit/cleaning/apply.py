"""Apply a cleaning policy to an audit's flags; every pair ends cleaned or quarantined.

Reviewers' verdicts (``review.jsonl``, read back by ``prefaudit review import``) come first and
override every step below: a pair a reviewer kept stays as labelled, one they flipped is
swapped, one they dropped goes to the quarantine (action ``drop``, issue ``review``); the steps
act only on the pairs nobody reviewed, and a reviewed pair's label counts as certain (weight 1;
soft label 1, or 0.5 where the reviewer called it a tie). The policy's steps are applied in this
order, each to the pairs the previous ones kept:

1. ``drop``: pairs with an issue from any listed check (a validator name: its ``issue``
   column; or ``validator/flag``: one of its flag columns) go to the quarantine, with every
   listed check's reason; then, with ``min_strength``, pairs whose ``strength`` (how
   strongly the raters prefer one response, in [-1, 1]) is nearer a tie than that, either
   way, go there too (raters' near-ties teach little and often noise);
2. ``dedupe``: of each group of duplicate pairs (a ``dedupe`` column) the first kept pair
   stays (a pair a reviewer kept or flipped, when the group has one), the others go to the
   quarantine ("duplicate of ...");
3. ``reorient_by_raters``: pairs a ``reorient`` column marks (the raters' consensus prefers
   the rejected response) are flipped;
4. ``flip_min_noise``: pairs whose ``flip`` score reaches this value (and were not flipped
   already) are flipped; pairs whose ``review`` score reaches it but were not flipped (the
   evidence was too weak to flip on) go to the quarantine for review;
5. ``select``: of the pairs still kept, the best share (or count) by a score built from the
   label's trust and the reference model's margin stays; the others go to the quarantine
   with their score (see prefaudit.cleaning.select);
6. ``weights``: ``confidence`` attaches ``weight`` = 1 - the ``confidence`` score;
   ``soft_label`` attaches ``soft_label`` = P(chosen better), after any flip; ``strength``
   attaches ``weight`` = the strength for the final chosen response (0 when it prefers the
   other one).

Which columns drive which step is declared by each validator (``Validator.cleaning``): this
module names no validator and no column of one, so renaming a column cannot switch a step
off without the contract test noticing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from prefaudit.cleaning.declared import declared
from prefaudit.cleaning.policy import CleaningPolicy
from prefaudit.cleaning.select import select
from prefaudit.errors import InputError


@dataclass
class Cleaned:
    """The outcome: cleaned pairs (TRL-ready rows), quarantined rows, and the flips."""

    cleaned: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    flips: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # The select step's summary (score, cut, prompt clusters before and after); None: no step.
    selection: dict[str, Any] | None = None
    # The reviewers' verdicts applied: counts per verdict and who decided what; None: none given.
    review: dict[str, Any] | None = None


# long: the steps in their order, each a call; reviewed pairs are set aside first and joined last
def clean(
    pairs: pd.DataFrame,
    flags: pd.DataFrame,
    policy: CleaningPolicy,
    reviews: Mapping[str, Mapping[str, Any]] | None = None,
) -> Cleaned:
    """Apply ``policy`` to ``pairs`` (a PairSet indexed by pair_id) given the audit's ``flags``
    (columns ``validator/column``, indexed by pair_id) and reviewers' verdicts (``reviews``:
    pair_id -> a review.jsonl record, checked against the pairs by
    :func:`prefaudit.outputs.applicable_reviews`)."""
    flags = flags.reindex(pairs.index)
    unknown = [pair_id for pair_id in reviews or {} if pair_id not in pairs.index]
    if unknown:
        raise InputError(f"a verdict for {unknown[0]!r}, which is not one of the pairs")
    verdicts = pd.Series({k: v["verdict"] for k, v in (reviews or {}).items()}, dtype=object)
    verdict = verdicts.reindex(pairs.index).fillna("")
    kept = verdict.eq("")  # the automatic steps act on the pairs nobody reviewed
    quarantine: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    _drop(pairs, flags, policy, kept, quarantine, counts)
    if policy.min_strength is not None:
        _near_ties(pairs, flags, policy.min_strength, kept, quarantine, counts)
    if policy.dedupe:
        _dedupe(pairs, flags, kept, quarantine, counts, taken=verdict.isin(["keep", "flip"]))
    flipped = pd.Series(False, index=pairs.index)
    flips = _flips(pairs, flags, policy, kept, flipped)
    if policy.flip_min_noise is not None:
        _review(pairs, flags, policy.flip_min_noise, kept & ~flipped, quarantine, counts)
        kept &= ~pd.Series(pairs.index.isin(list(quarantine)), index=pairs.index)
    selection = None
    if policy.select is not None:
        left, entries, selection = select(
            flags, pairs.index[kept.to_numpy()], flipped, policy.select
        )
        for flip in flips:  # scored as flipped, quarantined as it came: the flip is recorded
            if flip["pair_id"] in entries:
                entries[flip["pair_id"]]["flip"] = flip
        flips = [flip for flip in flips if flip["pair_id"] not in entries]
        quarantine.update(entries)
        kept.loc[left] = False
        if len(left):
            counts["select"] = len(left)
    review = None
    if reviews:
        flips = _reviewed(pairs, reviews, kept, flipped, quarantine, counts) + flips
        review = _review_summary(pairs, reviews)
    if flips:
        counts["flip"] = len(flips)
    cleaned = [
        _cleaned_row(
            pairs.loc[pair_id],
            pair_id,
            flags,
            policy,
            bool(flipped[pair_id]),
            (reviews or {}).get(pair_id),
        )
        for pair_id in pairs.index[kept.to_numpy()]
    ]
    rows = [
        _quarantine_row(pairs.loc[pair_id], pair_id, flags, quarantine[pair_id])
        for pair_id in pairs.index
        if pair_id in quarantine
    ]
    counts["input"] = len(pairs)
    counts["cleaned"] = len(cleaned)
    counts["quarantined"] = len(rows)
    return Cleaned(cleaned, rows, flips, counts, selection, review)


def _reviewed(pairs, reviews, kept, flipped, quarantine, counts) -> list[dict[str, str]]:
    """Apply the reviewers' verdicts: keep and flip join the kept pairs (a flip swapped), drop
    goes to the quarantine; returns the flips' manifest entries."""
    flips = []
    for pair_id in pairs.index:
        record = reviews.get(pair_id)
        if record is None:
            continue
        verdict, who = record["verdict"], _who(record)
        counts[f"review: {verdict}"] = counts.get(f"review: {verdict}", 0) + 1
        if verdict == "drop":
            quarantine[pair_id] = {
                "action": "drop",
                "issues": ["review"],
                "reasons": {"review": f"dropped by {who}"},
            }
            continue
        kept[pair_id] = True
        if verdict == "flip":
            flipped[pair_id] = True
            flips.append({"pair_id": pair_id, "by": "review", "reason": who})
    return flips


def _who(record: Mapping[str, Any]) -> str:
    """The reviewer, where they decided, and their note: "ana (label-studio): a typo"."""
    where = f" ({record['source']})" if record.get("source") else ""
    note = f": {record['note']}" if record.get("note") else ""
    return f"{record['reviewer']}{where}{note}"


def _review_summary(pairs, reviews) -> dict[str, Any]:
    """For the manifest: how many of each verdict, and who decided what, in file order."""
    keys = ("verdict", "preference", "reviewer", "source", "decided", "note", "export")
    decisions = [
        {"pair_id": pair_id, **{key: reviews[pair_id].get(key) for key in keys}}
        for pair_id in pairs.index
        if pair_id in reviews
    ]
    verdicts = {v: sum(d["verdict"] == v for d in decisions) for v in ("keep", "flip", "drop")}
    return {"verdicts": verdicts, "decisions": decisions}


def _drop(pairs, flags, policy: CleaningPolicy, kept, quarantine, counts) -> None:
    """Quarantine the kept pairs with an issue from a check in ``policy.drop``."""
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


def _near_ties(pairs, flags, threshold: float, kept, quarantine, counts) -> None:
    """Quarantine the kept pairs whose ``strength`` is under ``threshold`` either way."""
    for validator, column, action in declared(flags, "strength"):
        strength = flags[column].astype(float)
        hit = (strength.abs() < threshold).fillna(False) & kept
        for pair_id in pairs.index[hit.to_numpy()]:
            reason = action.reason.format(score=strength[pair_id], threshold=threshold)
            quarantine[pair_id] = {
                "action": "drop",
                "issues": [column],
                "reasons": {validator: reason},
            }
        if hit.any():
            counts[f"drop: {column}"] = int(hit.sum())
        kept &= ~hit


def _dedupe(pairs, flags, kept, quarantine, counts, taken) -> None:
    """Keep the first kept pair of each duplicate group; quarantine the others. A group with a
    pair in ``taken`` (kept by a reviewer) has its pair already: its other members go."""
    for validator, column, _ in declared(flags, "dedupe"):
        # A pair's group: the pair it duplicates, or itself (the group's first member).
        original = flags[column]

        def group_of(pair_id: str, original=original) -> str:
            of = original[pair_id]
            return of if isinstance(of, str) and of else pair_id

        # Each group's pair that stays: a reviewer's first, else the first kept one.
        keeper = {group_of(pair_id): pair_id for pair_id in pairs.index[taken.to_numpy()][::-1]}
        for pair_id in pairs.index[kept.to_numpy()]:
            group = group_of(pair_id)
            if group not in keeper:
                keeper[group] = pair_id
                continue
            kept[pair_id] = False
            quarantine[pair_id] = {
                "action": "dedupe",
                "issues": [column],
                "reasons": {validator: f"duplicate of {keeper[group]} (one per group kept)"},
            }
            counts["dedupe"] = counts.get("dedupe", 0) + 1


def _flips(pairs, flags, policy: CleaningPolicy, kept, flipped) -> list[dict[str, str]]:
    """Mark in ``flipped`` the kept pairs to re-orient; returns one manifest entry each."""
    flips = []
    if policy.reorient_by_raters:
        for validator, column, action in declared(flags, "reorient"):
            hit = _column(flags, column) & kept & ~flipped
            flips += [
                {"pair_id": pair_id, "by": action.by or validator, "reason": action.reason}
                for pair_id in pairs.index[hit.to_numpy()]
            ]
            flipped |= hit
    if policy.flip_min_noise is not None:
        threshold = policy.flip_min_noise
        for validator, column, action in declared(flags, "flip"):
            score = flags[column].astype(float)
            hit = (score >= threshold).fillna(False) & kept & ~flipped
            flips += [
                {
                    "pair_id": pair_id,
                    "by": action.by or validator,
                    "reason": action.reason.format(score=score[pair_id], threshold=threshold),
                }
                for pair_id in pairs.index[hit.to_numpy()]
            ]
            flipped |= hit
    return flips


def _review(pairs, flags, threshold: float, candidates, quarantine, counts) -> None:
    """Quarantine the ``candidates`` whose ``review`` score reaches ``threshold``."""
    for validator, column, action in declared(flags, "review"):
        score = flags[column].astype(float)
        hit = (score >= threshold).fillna(False) & candidates
        for pair_id in pairs.index[hit.to_numpy()]:
            reason = action.reason.format(score=score[pair_id], threshold=threshold)
            quarantine[pair_id] = {
                "action": "review",
                "issues": [column],
                "reasons": {validator: reason},
            }
            counts["review"] = counts.get("review", 0) + 1
        candidates &= ~hit


def _cleaned_row(
    row, pair_id, flags, policy: CleaningPolicy, flipped: bool, review: Mapping | None
) -> dict[str, Any]:
    out = {"pair_id": pair_id, **_trl_row(row, swap=flipped), **_per_response(row, flipped)}
    if review is not None:  # a person read the pair: its (final) label is taken as certain
        if policy.weights == "confidence":
            out["weight"] = 1.0
        elif policy.weights == "soft_label":
            out["soft_label"] = 0.5 if review.get("preference") == "tie" else 1.0
    elif policy.weights == "confidence":
        score = _first_value(flags, pair_id, "confidence")
        if score is not None:
            # After a flip, the confidence is that the new label is right.
            out["weight"] = float(score if flipped else 1 - score)
    elif policy.weights == "soft_label":
        soft = _first_value(flags, pair_id, "soft_label")
        if soft is not None:
            out["soft_label"] = float(1 - soft if flipped else soft)
    elif policy.weights == "strength":
        strength = _first_value(flags, pair_id, "strength")
        if strength is not None:
            out["weight"] = max(0.0, float(-strength if flipped else strength))
    return out


def _first_value(flags, pair_id, kind: str) -> float | None:
    """The first declared ``kind`` column of ``pair_id`` that has a value."""
    for _, column, _ in declared(flags, kind):
        value = flags.at[pair_id, column]
        if pd.notna(value):
            return value
    return None


def _quarantine_row(row, pair_id, flags, entry: dict[str, Any]) -> dict[str, Any]:
    scores = {
        c.split("/")[0]: float(flags.at[pair_id, c])
        for c in flags.columns
        if c.endswith("/score") and pd.notna(flags.at[pair_id, c]) and flags.at[pair_id, c] > 0
    }
    return {"pair_id": pair_id, **_trl_row(row, swap=False), **entry, "scores": scores}


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


def _per_response(row: pd.Series, swap: bool) -> dict[str, Any]:
    """What the input said of each response (a ratings input's scores and models), kept with
    its response through a flip; ``score_gap`` is the chosen's score minus the rejected's."""
    out = {}
    for name in ("score", "model"):
        values = [row.get(f"{name}_chosen"), row.get(f"{name}_rejected")]
        if any(value is not None and value == value for value in values):
            chosen, rejected = values[::-1] if swap else values
            out |= {f"{name}_chosen": chosen, f"{name}_rejected": rejected}
    if "score_chosen" in out and row.get("score_gap") is not None:
        out["score_gap"] = -row["score_gap"] if swap else row["score_gap"]
    return out


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
