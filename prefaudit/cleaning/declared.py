"""Which flag columns drive which cleaning step: the validators' own declarations
(``Validator.cleaning``), so the cleaning package names no validator and no column of one."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from prefaudit.validators import VALIDATORS, CleaningAction


def declared(flags: pd.DataFrame, kind: str) -> Iterator[tuple[str, str, CleaningAction]]:
    """(validator, flags column, action) for every declared action of ``kind`` whose column
    this audit has (the validator ran), in registry order."""
    for name, cls in VALIDATORS.items():
        for action in cls.cleaning:
            column = f"{name}/{action.column}"
            if action.kind == kind and column in flags:
                yield name, column, action


def declaring(*kinds: str) -> list[str]:
    """The validators that declare an action of any of ``kinds`` (for messages)."""
    return [
        name
        for name, cls in VALIDATORS.items()
        if any(action.kind in kinds for action in cls.cleaning)
    ]
