"""``prefaudit review export``: the pairs to review, in a labelling tool's own import format.

Each export has an id (``csv-20270102T030405Z-1a2b``) that every exported record carries, and
a record in the audit folder's ``review/exports.json`` (the tool, the file, the time, how the
pairs were chosen, and each pair's texts key), so that :mod:`prefaudit.review.importing` knows
which pairs went out, and that a verdict is about the texts the reviewer read.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prefaudit import outputs
from prefaudit.errors import SettingError, UnknownNameError
from prefaudit.fileio import atomic_write, umask
from prefaudit.review.items import ReviewItem, review_items

TOOLS = ("csv", "label-studio", "argilla")
# What each tool's export is called inside the output folder: a file or a folder.
NAMES = {"csv": "review.csv", "label-studio": "label-studio", "argilla": "argilla"}


@dataclass
class ReviewExport:
    """What :func:`export_review` wrote: where, for which tool, how many pairs, chosen how."""

    folder: Path  # the audit folder
    to: str
    path: Path  # the file (csv) or folder (label-studio, argilla) written
    export_id: str
    pairs: int
    selection: str


def check_tool(to: str) -> None:
    """Refuse an unknown tool, and Argilla without its SDK, before anything is read."""
    if to not in TOOLS:
        raise UnknownNameError(f"to: unknown tool {to!r}; one of {', '.join(TOOLS)}", setting="to")
    if to == "argilla":
        from prefaudit.review.argilla_io import require_argilla

        require_argilla("to")


def export_review(
    folder: Path,
    flags: pd.DataFrame,
    texts: pd.DataFrame,
    *,
    ids: list[str],
    to: str,
    selection: str,
    out: str | Path | None = None,
) -> ReviewExport:
    """Write ``ids`` (with ``texts``, indexed by pair id) for ``to`` into ``out`` (default:
    ``folder/review``) and record the export in ``folder``. An export already there is never
    replaced: a reviewer may have written verdicts into it."""
    check_tool(to)
    target = (Path(out) if out is not None else folder / outputs.REVIEW_FOLDER) / NAMES[to]
    if target.exists():
        raise SettingError(
            f"out {target}: exists and may hold a reviewer's verdicts; import it first "
            f"(prefaudit review import {target}), then move it away, or export with --out",
            setting="out",
        )
    items = review_items(flags, texts, ids)
    stamp = dt.datetime.now(dt.timezone.utc)
    export_id = f"{to}-{stamp:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    _write(target, to, lambda path: _writer(to)(path, items, export_id, _name(folder)))
    outputs.add_export(
        folder,
        {
            "id": export_id,
            "to": to,
            "path": str(target),
            "created": stamp.isoformat(timespec="seconds"),
            "selection": selection,
            "fingerprint": outputs.saved_fingerprint(folder),
            "pairs": {item.pair_id: item.texts for item in items},
        },
    )
    return ReviewExport(folder, to, target, export_id, len(items), selection)


def _writer(to: str) -> Callable[[Path, list[ReviewItem], str, str], None]:
    if to == "csv":
        from prefaudit.review.csv_io import write_csv

        return write_csv
    if to == "label-studio":
        from prefaudit.review.label_studio_io import write_tasks

        return write_tasks
    from prefaudit.review.argilla_io import write_dataset

    return write_dataset


def _write(target: Path, to: str, write: Callable[[Path], None]) -> None:
    """``write`` into a temporary file or folder beside ``target``, then rename it into place:
    an export is there whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if NAMES[to].endswith(".csv"):
        atomic_write(target, write)
        return
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(stage, 0o777 & ~umask())  # mkdtemp makes 0700; a new folder follows umask
        write(stage)
        os.rename(stage, target)  # target is absent: the rename is the commit
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _name(folder: Path) -> str:
    """A dataset name from the audit folder's: prefaudit-<letters, digits, - and _>."""
    return "prefaudit-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", folder.resolve().name) or "review")
