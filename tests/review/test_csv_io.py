"""The review sheet: exported, filled in as a spreadsheet saves it, imported, applied by clean."""

from __future__ import annotations

import csv
import json

import pytest

from prefaudit.cli import main
from prefaudit.outputs import read_review
from tests.review.conftest import FLAGGED, clean


def export(audited, *args: str) -> list[list[str]]:
    """``prefaudit review export DIR --to csv``: the sheet's rows (header first)."""
    assert main(["review", "export", str(audited.folder), "--to", "csv", *args]) == 0
    with open(audited.folder / "review" / "review.csv", encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def save(audited, rows: list[list[str]], delimiter: str = ",") -> str:
    """The sheet as a spreadsheet saves it: UTF-8 with a byte-order mark."""
    path = audited.folder / "review" / "review.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return str(path)


def fill(rows: list[list[str]], **answers: tuple[str, ...]) -> list[list[str]]:
    """Fill in verdict, preference, reviewer and note of the rows of some pairs."""
    header = rows[0]
    for row in rows[1:]:
        for name, value in zip(
            ("verdict", "preference", "reviewer", "note"), answers.get(row[0], ()), strict=False
        ):
            row[header.index(name)] = value
    return rows


def test_a_filled_in_sheet_comes_back_and_clean_applies_it_before_its_policy(audited, capsys):
    rows = export(audited)
    assert [row[0] for row in rows[1:]] == FLAGGED
    assert rows[0][:5] == ["pair_id", "verdict", "preference", "reviewer", "note"]
    rows = fill(
        rows,
        same=("Keep", "", "ana", "both fine, says the guide"),  # content would drop it
        empty=("drop", "", "ana"),
        **{"dup-b": ("flip", "rejected", "bo", "Lyon is the capital here")},
    )
    path = save(audited, rows, delimiter=";")  # a spreadsheet in a comma-decimal locale
    capsys.readouterr()
    assert main(["review", "import", path]) == 0
    out = capsys.readouterr().out
    assert "3 verdicts (keep 1, flip 1, drop 1)" in out
    assert "1 of the 4 exported pairs stay unreviewed" in out

    verdicts = {r["pair_id"]: r for r in read_review(audited.folder)}
    assert {k: (v["verdict"], v["reviewer"]) for k, v in verdicts.items()} == {
        "same": ("keep", "ana"),
        "empty": ("drop", "ana"),
        "dup-b": ("flip", "bo"),
    }
    assert verdicts["dup-b"]["preference"] == "rejected" and verdicts["dup-b"]["source"] == "csv"

    done = clean(audited)
    cleaned = {r["pair_id"]: r for r in done.pairs.to_dict("records")}
    quarantined = {r["pair_id"]: r for r in done.quarantine.to_dict("records")}
    assert sorted(cleaned) == ["dup-b", "ok-1", "ok-2", "ok-3", "ok-4", "ok-5", "same"]
    assert (cleaned["dup-b"]["chosen"], cleaned["dup-b"]["rejected"]) == ("Lyon.", "Paris.")
    assert quarantined["empty"]["issues"] == ["review"]
    assert quarantined["empty"]["reasons"] == {"review": "dropped by ana (csv)"}
    assert quarantined["formula"]["action"] == "drop"  # nobody reviewed it: the policy decides
    # The reviewer kept dup-b: the copy it duplicates goes, not the reviewed pair.
    assert quarantined["dup-a"]["reasons"] == {
        "duplication": "duplicate of dup-b (one per group kept)"
    }
    manifest = json.loads((audited.folder / "manifest.json").read_text())
    assert manifest["review"]["verdicts"] == {"keep": 1, "flip": 1, "drop": 1}
    assert manifest["review"]["file"] == str(audited.folder / "review.jsonl")
    who = {
        d["pair_id"]: (d["verdict"], d["reviewer"], d["note"])
        for d in manifest["review"]["decisions"]
    }
    assert who["same"] == ("keep", "ana", "both fine, says the guide")
    assert {
        "pair_id": "dup-b",
        "by": "review",
        "reason": "bo (csv): Lyon is the capital here",
    } in manifest["flips"]
    assert manifest["counts"]["review: keep"] == 1


def test_cells_from_the_data_that_a_spreadsheet_would_run_as_formulas_are_text(audited):
    rows = export(audited)
    header, formula = rows[0], next(row for row in rows if row[0] == "formula")
    assert formula[header.index("prompt")] == '\'=HYPERLINK("http://x")'
    assert formula[header.index("chosen")] == "'=1+1"


def test_a_verdict_for_a_pair_that_was_not_exported_is_an_error_naming_the_row(audited, capsys):
    rows = fill(export(audited), same=("keep", "", "ana"))
    rows[2][0] = "ok-1"  # a pair the audit did not send for review
    path = save(audited, rows)
    assert main(["review", "import", path]) == 2
    err = capsys.readouterr().err
    assert f"{path} row 3: pair_id: 'ok-1' is not one of the pairs exported" in err
    assert not (audited.folder / "review.jsonl").exists()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            ("maybe", "", "ana"),
            "row 2: verdict: expected keep, flip, drop (or nothing), got 'maybe'",
        ),
        (("keep", "both", "ana"), "row 2: preference: expected chosen, rejected, tie"),
        (("keep", "", ""), "row 2: reviewer: a verdict needs who gave it"),
    ],
)
def test_a_bad_answer_is_an_error_naming_the_row_and_field(audited, capsys, answer, message):
    path = save(audited, fill(export(audited), same=answer))
    assert main(["review", "import", path]) == 2
    assert message in capsys.readouterr().err


def test_reviewer_names_the_rows_that_leave_it_empty(audited):
    path = save(audited, fill(export(audited), same=("keep",)))
    assert main(["review", "import", path, "--reviewer", "cy"]) == 0
    assert [(r["pair_id"], r["reviewer"]) for r in read_review(audited.folder)] == [("same", "cy")]


def test_rows_deleted_from_the_sheet_and_disagreements_stay_unreviewed(audited, capsys):
    rows = fill(export(audited), same=("keep", "", "ana"), empty=("drop", "", "ana"))
    rows = [row for row in rows if row[0] not in ("dup-b", "formula")]  # deleted by a reviewer
    rows.append(list(rows[2]))  # a second reviewer on "empty", who disagrees
    rows[-1][1:4] = ["keep", "", "bo"]
    capsys.readouterr()
    assert main(["review", "import", save(audited, rows)]) == 0
    out = capsys.readouterr().out
    assert "3 of the 4 exported pairs stay unreviewed" in out
    assert "2 exported pairs are not in the file, e.g. dup-b" in out
    assert "reviewers disagree on empty: drop (ana), keep (bo) (left unreviewed)" in out
    assert [r["pair_id"] for r in read_review(audited.folder)] == ["same"]


def test_a_later_import_replaces_that_pairs_verdict_and_keeps_the_others(audited):
    first = fill(export(audited), same=("keep", "", "ana"), empty=("drop", "", "ana"))
    main(["review", "import", save(audited, first)])
    second = fill(
        export(audited, "--out", str(audited.folder / "round-2")), same=("flip", "", "bo")
    )
    path = audited.folder / "round-2" / "review.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(second)
    assert main(["review", "import", str(path)]) == 0
    verdicts = {r["pair_id"]: (r["verdict"], r["reviewer"]) for r in read_review(audited.folder)}
    assert verdicts == {"same": ("flip", "bo"), "empty": ("drop", "ana")}


def test_an_export_already_there_is_never_replaced(audited, capsys):
    export(audited)
    assert main(["review", "export", str(audited.folder)]) == 2
    assert "exists and may hold a reviewer's verdicts; import it first" in capsys.readouterr().err


def test_a_top_suspect_without_saved_texts_needs_the_audited_data(audited, capsys):
    args = ["review", "export", str(audited.folder), "--validator", "content", "--top", "4"]
    assert main(args) == 2
    assert "have no texts in" in capsys.readouterr().err
    other = audited.data.with_name("other.jsonl")
    other.write_text(audited.data.read_text().replace("Spell cat.", "Spell dog."))
    assert main([*args, "--data", str(other)]) == 2
    assert "not the data audited in" in capsys.readouterr().err
    assert main([*args, "--data", str(audited.data)]) == 0
    with open(audited.folder / "review" / "review.csv", encoding="utf-8-sig") as f:
        ids = [row["pair_id"] for row in csv.DictReader(f)]
    assert ids[:3] == ["same", "empty", "formula"] and len(ids) == 4
