"""The review as a CSV a reviewer edits in a spreadsheet: one row per pair, the columns to fill
in first (``verdict``: keep, flip or drop; ``preference``, ``reviewer``, ``note``), then the
evidence and the texts.

Written in UTF-8 with a byte-order mark, which is how Excel recognises UTF-8; read back with
or without one (or as UTF-16, Excel's "Unicode Text"), with a comma, semicolon or tab between
fields (spreadsheets in some locales save with semicolons). Only ``pair_id``, ``export`` and the columns to fill in are read back.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from prefaudit.errors import InputError
from prefaudit.review.items import ReviewItem
from prefaudit.review.verdict import Verdict

FILLED_IN = ("verdict", "preference", "reviewer", "note")
READ_BACK = ("pair_id", "export", *FILLED_IN)
# A cell that starts with one of these is a formula to a spreadsheet: text from the data that
# does is written after an apostrophe, which spreadsheets show as text (OWASP, CSV injection).
FORMULA = ("=", "+", "-", "@", "\t", "\r")
# Excel holds at most 32,767 characters in a cell; longer texts are cut (with a note), so that
# the sheet opens whole. They are not read back.
CELL = 32_000


def write_csv(path: Path, items: list[ReviewItem], export_id: str, name: str) -> None:
    """The review sheet of ``items`` at ``path`` (``name``, the dataset's, is not needed)."""
    checks = sorted({check for item in items for check in item.scores})
    header = [
        *READ_BACK[:1],
        *FILLED_IN,
        "flagged_by",
        "evidence",
        "prompt",
        "chosen",
        "rejected",
        "raters",
        "partners",
        *(f"{check}_score" for check in checks),
        "line",
        "export",
    ]
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for item in items:
            texts = (item.evidence_text(), item.prompt, item.chosen, item.rejected)
            writer.writerow(
                [
                    _cell(item.pair_id),
                    *([""] * len(FILLED_IN)),
                    ", ".join(item.flagged_by),
                    *(_cell(text) for text in texts),
                    _cell(item.raters),
                    _cell(", ".join(item.partners)),
                    *(_score(item.scores.get(check)) for check in checks),
                    "" if item.line is None else item.line,
                    export_id,
                ]
            )


def _cell(text: str) -> str:
    text = str(text)
    if len(text) > CELL:
        text = text[:CELL] + f" [... {len(text) - CELL:,} more characters, cut for the sheet]"
    return "'" + text if text.startswith(FORMULA) else text


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def read_csv(path: Path) -> list[Verdict]:
    """Every row of a review sheet as a :class:`Verdict` (blank rows left out)."""
    raw = path.read_bytes()
    # Excel's "Unicode Text" is UTF-16 (with a byte-order mark) and tab-separated.
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err}); save the sheet as CSV UTF-8") from None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, 1 << 30))  # a long prompt is one field, not an error
    try:
        return _rows(path, reader)
    except csv.Error as err:
        raise InputError(f"{path} row {reader.line_num}: not CSV ({err})") from None
    finally:
        csv.field_size_limit(limit)


def _rows(path: Path, reader) -> list[Verdict]:
    header = [name.strip().lower() for name in next(reader, [])]
    missing = [name for name in ("pair_id", "verdict", "export") if name not in header]
    if missing:
        raise InputError(
            f"{path} row 1: no {', '.join(missing)} column; expected the header review export "
            f"wrote ({', '.join(READ_BACK)}, ...)"
        )
    column = {name: header.index(name) for name in READ_BACK if name in header}
    answers = []
    for number, row in enumerate(reader, 2):
        if not any(cell.strip() for cell in row):
            continue
        value = {name: _value(row, i) for name, i in column.items()}
        answers.append(
            Verdict(
                pair_id=_unescaped(value["pair_id"]),
                export=value["export"],
                where=f"row {number}",
                verdict=value["verdict"] and value["verdict"].lower(),
                preference=value.get("preference") and value["preference"].lower(),
                reviewer=value.get("reviewer"),
                note=value.get("note"),
            )
        )
    return answers


def _value(row: list[str], i: int) -> str | None:
    """A cell, trimmed; None when empty or absent."""
    text = row[i].strip() if i < len(row) else ""
    return text or None


def _unescaped(text: str | None) -> str | None:
    """A pair id as written before :func:`_cell` guarded it against formulas."""
    if text and text.startswith("'") and text[1:].startswith(FORMULA):
        return text[1:]
    return text
