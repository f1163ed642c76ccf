"""review.jsonl: what import writes and clean checks; a verdict is applied or clean stops."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import prefaudit
from prefaudit.cli import main
from prefaudit.errors import InputError
from prefaudit.outputs import REVIEW_FILE, read_review
from tests.review.conftest import POLICY

ROOT = Path(__file__).resolve().parents[2]


def reviewed(audited, encoding: str = "utf-8-sig", delimiter: str = ",") -> None:
    """Export the sheet, keep the pair "same" (by ana), save it as ``encoding``, import it."""
    assert main(["review", "export", str(audited.folder)]) == 0
    sheet = audited.folder / "review" / "review.csv"
    with open(sheet, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0].update(verdict="keep", reviewer="ana")
    with open(sheet, "w", encoding=encoding, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    assert main(["review", "import", str(sheet)]) == 0


def test_a_sheet_saved_as_excels_unicode_text_comes_back(audited):
    reviewed(audited, encoding="utf-16", delimiter="\t")
    assert [(r["pair_id"], r["verdict"]) for r in read_review(audited.folder)] == [("same", "keep")]


def test_clean_stops_at_a_verdict_whose_pair_changed_since_the_review(audited, capsys):
    reviewed(audited)
    text = audited.data.read_text().replace('"Same answer.", "rejected"', '"Other.", "rejected"')
    audited.data.write_text(text)
    out, checks = str(audited.folder), ["content", "duplication"]
    with pytest.raises(InputError) as err:  # the data is audited again into the folder first
        prefaudit.clean(str(audited.data), POLICY, out=out, validators=checks)
    path = audited.folder / REVIEW_FILE
    assert str(err.value).startswith(f"{path} line 1: pair 'same' changed since it was reviewed")
    policy = "default"  # the built-in rule set
    args = ["clean", str(audited.data), "--policy", policy, "--out", out, "--validators", "content"]
    assert main(args) == 2
    assert "changed since it was reviewed" in capsys.readouterr().err
    assert not (audited.folder / "cleaned.jsonl").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"pair_id": "same", "verdict": "keep"}', "line 2: reviewer: expected who decided"),
        (
            '{"pair_id": "same", "verdict": "kept", "reviewer": "a", "texts": "k"}',
            "line 2: verdict",
        ),
        ("[1]", "line 2: expected a JSON object, got list"),
        ("{oops", "line 2: not a JSON object"),
    ],
)
def test_a_bad_line_of_review_jsonl_is_an_error_naming_its_line_and_field(audited, line, message):
    reviewed(audited)
    path = audited.folder / REVIEW_FILE
    path.write_text(path.read_text().replace('"same"', '"empty"') + line + "\n")
    with pytest.raises(InputError, match=message):
        read_review(audited.folder)
