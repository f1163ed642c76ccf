"""A small audited dataset for the review loop's tests: ten pairs, four flagged (two with
identical responses, one empty chosen response, a copy of another pair), audited by content
and duplication."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import pair, write_lines

PAIRS = [
    pair("What is 2+2?", "It is 4.", "It is 5.", pair_id="ok-1"),
    pair("Name a colour.", "Same answer.", "Same answer.", pair_id="same"),
    pair("Say hello.", "", "Hello there!", pair_id="empty"),
    pair("Capital of France?", "Paris.", "Lyon.", pair_id="dup-a"),
    pair("Capital of France?", "Paris.", "Lyon.", pair_id="dup-b"),
    pair('=HYPERLINK("http://x")', "=1+1", "=1+1", pair_id="formula"),
    pair("Spell cat.", "C-A-T.", "K-A-T.", pair_id="ok-2"),
    pair("Is ice cold?", "Yes, ice is cold.", "No, ice is hot.", pair_id="ok-3"),
    pair("Largest planet?", "Jupiter.", "Mars.", pair_id="ok-4"),
    pair("Boiling point of water at sea level?", "100 C.", "50 C.", pair_id="ok-5"),
]
FLAGGED = ["same", "empty", "dup-b", "formula"]  # dup-b copies dup-a, the first of its group
POLICY = {"drop": ["content"], "dedupe": True}  # a clean: section as a dict


@dataclass
class Audited:
    data: Path  # the pairs file
    folder: Path  # its audit folder


@pytest.fixture
def audited(tmp_path) -> Audited:
    import prefaudit

    data = write_lines(tmp_path / "pairs.jsonl", PAIRS)
    folder = tmp_path / "audit"
    prefaudit.audit(str(data), validators=["content", "duplication"], out=folder)
    return Audited(data, folder)


def clean(audited: Audited, policy=None):
    """``prefaudit clean`` of the audited pairs with the audit folder's verdicts."""
    import prefaudit

    return prefaudit.clean(
        str(audited.data), policy or POLICY, audit=audited.folder, out=audited.folder
    )
