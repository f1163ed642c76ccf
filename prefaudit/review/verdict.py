"""One reviewer's answer on one pair, as the readers of each tool's file give it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Verdict:
    """One reviewer's answer on one pair, as a tool's file gives it (``verdict`` None: the pair
    came back without one)."""

    pair_id: Any
    export: Any
    where: str  # "row 5", "task 3 (id 17)", "record 4": for messages
    verdict: Any = None
    preference: Any = None
    reviewer: Any = None
    note: Any = None
    decided: Any = None  # when, as the tool recorded it (None: not recorded)
