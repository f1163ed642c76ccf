"""The flagged-pair table's data: compact, compressed, and inert inside the HTML.

The rows travel as gzip-compressed JSON in base64 inside a ``<script type="application/json">``
block: base64 has no ``<``, so no text from the data can close the block, and the browser
decompresses it (``DecompressionStream``) only when the page has rendered. Texts are stored
once and referred to by number (a prompt shared by many pairs costs one copy). A text budget
keeps the file small for very large audits: past it, each text is cut to a common length,
and the cut says how much is left out and where the whole text is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prefaudit.report.text import decode, encode, visible

__all__ = ["TEXT_BUDGET", "decode", "encode", "table_data"]

# Characters of prompt and response text the report embeds at most (about 8-12 MB after
# compression for English text): the 100,000-pair budget of 25 MB with room for the rest.
TEXT_BUDGET = 24_000_000
TEXT_COLUMNS = ("prompt", "chosen", "rejected")


def table_data(
    flags: pd.DataFrame,
    validators: list[str],
    texts: pd.DataFrame | None,
    *,
    budget: int = TEXT_BUDGET,
) -> dict[str, Any]:
    """The table's rows: every pair with an issue, highest score first.

    ``flags`` is an audit's flags table (``<validator>/<column>`` columns); ``texts`` holds the
    flagged pairs' ``prompt``, ``chosen``, ``rejected`` (and ``row``, the input line), indexed
    by pair id, or None when the texts are not available.
    """
    flagged = flags[flags["any_issue"].to_numpy(dtype=bool)]
    tags = _tags(flagged, validators)
    strings: dict[str, int] = {}

    def code(value: str) -> int:
        return strings.setdefault(value, len(strings))

    scores = np.zeros(len(flagged))
    per_validator = []
    for v, name in enumerate(validators):
        issue = flagged[f"{name}/issue"].to_numpy(dtype=bool)
        score = np.nan_to_num(flagged[f"{name}/score"].to_numpy(dtype=float))
        scores = np.where(issue, np.maximum(scores, score), scores)
        reasons = flagged[f"{name}/reason"].astype("str").to_numpy()
        per_validator.append((v, issue, score, reasons))
    text_codes, cap, cut = _texts(flagged.index, texts, budget, code)
    lines = _lines(flagged.index, texts)
    tag_marks = [flagged[column].to_numpy(dtype=bool) for column in tags]
    rows = []
    for i, pair_id in enumerate(flagged.index):
        issues = [
            [v, round(float(score[i]), 4), code(str(reasons[i]))]
            for v, issue, score, reasons in per_validator
            if issue[i]
        ]
        own_tags = [t for t, marks in enumerate(tag_marks) if marks[i]]
        rows.append(
            [
                visible(str(pair_id)),
                lines[i],
                *text_codes[i],
                round(float(scores[i]), 4),
                issues,
                own_tags,
            ]
        )
    rows.sort(key=lambda row: (-row[5], row[0]))
    return {
        "validators": validators,
        "tags": tags,
        "strings": list(strings),
        "rows": rows,
        "texts": texts is not None,
        "text_cap": cap,
        "texts_cut": cut,
    }


def _tags(flagged: pd.DataFrame, validators: list[str]) -> list[str]:
    """Each validator's boolean sub-issue columns (``duplication/leaked``) that mark some pair."""
    tags = []
    for name in validators:
        for column in flagged.columns:
            if (
                column.startswith(f"{name}/")
                and column != f"{name}/issue"
                and flagged[column].dtype == bool
                and flagged[column].any()
            ):
                tags.append(column)
    return tags


def _texts(index: pd.Index, texts: pd.DataFrame | None, budget: int, code) -> tuple:
    """Per row, the string codes of its prompt, chosen and rejected (None without texts),
    the common length cap applied (None if none was needed) and how many texts were cut."""
    if texts is None or not len(index):
        return [[None, None, None]] * len(index), None, 0
    frame = texts.reindex(index)
    unique = pd.unique(frame[list(TEXT_COLUMNS)].fillna("").to_numpy().ravel())
    cap = _cap(np.array([len(t) for t in unique]), budget)
    cut = 0
    codes = []
    for values in frame[list(TEXT_COLUMNS)].itertuples(index=False):
        row = []
        for value in values:
            if not isinstance(value, str):
                row.append(None)
                continue
            if cap is not None and len(value) > cap:
                value = _cut(value, cap)
                cut += 1
            row.append(code(visible(value)))
        codes.append(row)
    return codes, cap, cut


def _cap(lengths: np.ndarray, budget: int) -> int | None:
    """The largest per-text length whose total stays within ``budget`` (None: no cap needed)."""
    if lengths.sum() <= budget:
        return None
    ordered = np.sort(lengths)
    # With cap c, the total is sum(lengths < c) + c * count(lengths >= c): find the largest c.
    below = np.concatenate([[0], np.cumsum(ordered)])
    for k in range(len(ordered)):
        remaining = len(ordered) - k
        cap = (budget - below[k]) // remaining
        if cap <= ordered[k]:
            return int(max(cap, 200))
    return None


def _cut(text: str, cap: int) -> str:
    return f"{text[:cap]}\n[… {len(text) - cap:,} more characters not shown in this report]"


def _lines(index: pd.Index, texts: pd.DataFrame | None) -> list[int | None]:
    if texts is None or "row" not in texts.columns:
        return [None] * len(index)
    rows = texts["row"].reindex(index)
    return [None if pd.isna(r) else int(r) for r in rows]
