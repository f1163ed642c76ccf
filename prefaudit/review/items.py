"""The pairs a reviewer is shown, with the evidence that sent each one to review.

:func:`select_pairs` picks them from an audit's flags (every flagged pair, the pairs one check
flagged, or the top N suspects by score); :func:`review_items` gathers, per pair, what a
reviewer needs to decide: the texts, which checks flagged it, every check's score and reason,
the raters' votes and the pairs it duplicates or contradicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prefaudit import outputs
from prefaudit.errors import SettingError

# The columns that hold the raters' votes (agreement's): how many rated, the label most gave,
# and the share that gave it.
RATERS = ("agreement/raters", "agreement/majority_label", "agreement/agreement")
# Columns whose value names a group of pairs by its first pair's id, and what its members are
# to each other: exact or near duplicates (the column `dedupe` reads), and contradictions (the
# same prompt and responses labelled the other way).
PARTNERS = {
    "duplication/duplicate_of": "duplicate",
    "duplication/contradiction_group": "contradiction",
}
LISTED = 20  # partners named per pair; the rest are counted


@dataclass
class ReviewItem:
    """One pair as a reviewer sees it."""

    pair_id: str
    prompt: str
    chosen: str  # as labelled: the label's winner
    rejected: str
    texts: str  # outputs.texts_key of the three: the verdict applies to these texts
    line: int | None = None  # the input line (or record) the pair came from
    flagged_by: list[str] = field(default_factory=list)  # the checks with an issue
    scores: dict[str, float] = field(default_factory=dict)  # every check's score, in [0, 1]
    evidence: list[tuple[str, float | None, str]] = field(default_factory=list)
    raters: str = ""  # "3 raters; most (2) say rejected"
    partners: list[str] = field(default_factory=list)  # "demo-0003 (duplicate)"

    def evidence_text(self) -> str:
        """Why the pair is here, one line per fact, for the reviewer to read beside it."""
        lines = [
            "flagged by: " + (", ".join(self.flagged_by) or "no check (a top suspect by score)")
        ]
        lines += [
            f"{check}{'' if score is None else f' ({score:.2f})'}: {reason}"
            for check, score, reason in self.evidence
        ]
        if self.raters:
            lines.append(f"raters: {self.raters}")
        if self.partners:
            lines.append(f"partners: {', '.join(self.partners)}")
        return "\n".join(lines)


def checks(flags: pd.DataFrame) -> list[str]:
    """The checks (validators) of an audit's flags, in column order."""
    return [c.removesuffix("/score") for c in flags.columns if c.endswith("/score")]


def select_pairs(
    flags: pd.DataFrame, validator: str | None = None, top: int | None = None
) -> tuple[list[str], str]:
    """(the ids of the pairs to review, how they were chosen): every flagged pair, or those
    ``validator`` flagged, in file order; with ``top``, the N highest scores (of ``validator``,
    else a pair's highest of any check), flagged or not, most suspect first (ties in file
    order)."""
    if validator is not None and validator not in checks(flags):
        raise SettingError(
            f"validator {validator!r}: not a check of this audit; it has "
            f"{', '.join(checks(flags)) or 'none'}",
            setting="validator",
        )
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise SettingError(f"top must be a whole number >= 1, got {top!r}", setting="top")
    if top is None:
        column = f"{validator}/issue" if validator else "any_issue"
        hit = flags[column].map(lambda v: bool(v) if v is not None and v == v else False)
        return list(flags.index[hit.to_numpy(dtype=bool)]), f"flagged by {validator or 'a check'}"
    if validator:
        score = flags[f"{validator}/score"].astype(float)
    else:
        score = flags[[f"{c}/score" for c in checks(flags)]].astype(float).max(axis=1)
    order = score.dropna().sort_values(ascending=False, kind="stable")
    return list(order.index[:top]), f"the top {top} by {validator or 'any check'}'s score"


def review_items(flags: pd.DataFrame, texts: pd.DataFrame, ids: list[str]) -> list[ReviewItem]:
    """The :class:`ReviewItem` of each of ``ids``; ``texts`` (indexed by pair id) holds their
    prompt, chosen, rejected and, when known, input ``row``."""
    partners = _partners(flags)
    items = []
    for pair_id in ids:
        text = texts.loc[pair_id]
        row = flags.loc[pair_id]
        line = text.get("row")
        items.append(
            ReviewItem(
                pair_id=str(pair_id),
                prompt=text["prompt"],
                chosen=text["chosen"],
                rejected=text["rejected"],
                texts=outputs.texts_key(text["prompt"], text["chosen"], text["rejected"]),
                line=None if line is None or pd.isna(line) else int(line),
                flagged_by=[c for c in checks(flags) if _true(row.get(f"{c}/issue"))],
                scores=_scores(row, checks(flags)),
                evidence=outputs.pair_evidence(flags, pair_id),
                raters=_raters(row),
                partners=partners.get(pair_id, []),
            )
        )
    return items


def _true(value) -> bool:
    return value is not None and value == value and bool(value)


def _scores(row: pd.Series, names: list[str]) -> dict[str, float]:
    values = {name: row.get(f"{name}/score") for name in names}
    return {name: float(v) for name, v in values.items() if v is not None and np.isfinite(v)}


def _raters(row: pd.Series) -> str:
    """The raters' votes in a few words ("" when nobody rated the pair)."""
    raters, label, share = (row.get(c) for c in RATERS)
    if raters is None or pd.isna(raters) or not raters:
        return ""
    n = int(raters)
    if not label or label == "split" or share is None or pd.isna(share):
        return f"{n} rater{'s' * (n != 1)}, split"
    return f"{n} rater{'s' * (n != 1)}; {round(share * n)} say {label}"


def _partners(flags: pd.DataFrame) -> dict[str, list[str]]:
    """Per pair, the other members of each group it belongs to (at most ``LISTED`` named)."""
    found: dict[str, list[str]] = {}
    for column, kind in PARTNERS.items():
        if column not in flags:
            continue
        group = flags[column].map(lambda v: v if isinstance(v, str) and v else None)
        # A group's first pair is named by the others and carries no value of its own.
        firsts = set(group.dropna())
        group = group.where(group.notna(), pd.Series(flags.index, index=flags.index))
        members = group[group.isin(firsts)].groupby(group[group.isin(firsts)], sort=False)
        for _, ids in members:
            for pair_id in ids.index:
                others = [p for p in ids.index if p != pair_id]
                named = [f"{p} ({kind})" for p in others[:LISTED]]
                if len(others) > LISTED:
                    named.append(f"{len(others) - LISTED} more")
                found.setdefault(pair_id, []).extend(named)
    return found
