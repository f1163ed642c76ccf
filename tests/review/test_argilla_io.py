"""The Argilla dataset: built with the SDK's own classes, in its own on-disk form, read back by
the SDK; reviewers' responses (the SDK's Response objects) come back as verdicts."""

from __future__ import annotations

import json
import shutil
import sys
import uuid

import pytest

from prefaudit.cli import main
from prefaudit.outputs import read_review
from prefaudit.review.argilla_io import offline_client
from tests.review.conftest import FLAGGED, clean

rg = pytest.importorskip("argilla", reason="the test extra installs argilla")


def export(audited):
    assert main(["review", "export", str(audited.folder), "--to", "argilla"]) == 0
    return audited.folder / "review" / "argilla"


def test_the_dataset_is_in_argillas_own_on_disk_form(audited):
    folder = export(audited)
    assert rg.Argilla._default_client is None  # the caller's default client is left as it was
    model = json.loads((folder / ".argilla" / "dataset.json").read_text())
    assert rg._models.DatasetModel(**model).name == "prefaudit-audit"
    with offline_client(rg):
        settings = rg.Settings.from_json(folder / ".argilla" / "settings.json")
    assert [f.name for f in settings.fields] == ["prompt", "chosen", "rejected", "evidence"]
    assert not any(f.use_markdown for f in settings.fields)  # texts from the data stay text
    verdict, preference, note = settings.questions
    assert (verdict.name, verdict.required, list(verdict.labels)) == (
        "verdict",
        True,
        ["keep", "flip", "drop"],
    )
    assert (preference.name, list(preference.labels)) == (
        "preference",
        ["chosen", "rejected", "tie"],
    )
    assert (note.name, note.required) == ("note", False)
    properties = {m.name: m for m in settings.metadata}
    assert set(properties) == {"flagged_by", "content_score", "duplication_score", "export"}

    raw = json.loads((folder / "records.json").read_text())
    records = [rg.Record.from_dict(r) for r in raw]
    assert [r.id for r in records] == FLAGGED
    for record in records:
        record.api_model()  # the model the SDK sends to a server validates
        assert set(record.fields) <= {f.name for f in settings.fields}
        assert set(record.metadata) <= set(properties)
        assert set(record.metadata["flagged_by"]) <= set(properties["flagged_by"].options)
        assert record.metadata["export"] in properties["export"].options
        assert all(0 <= record.metadata[f"{c}_score"] <= 1 for c in ("content", "duplication"))
    empty = next(r for r in records if r.id == "empty")
    assert empty.fields["chosen"] == "" and "chosen is empty" in empty.fields["evidence"]
    assert not next(f for f in settings.fields if f.name == "chosen").required


def reviewed(folder, tmp_path, answers: dict) -> str:
    """The dataset as ``dataset.to_disk`` writes it back from a server after review: the
    records with their users' responses, written by the SDK's own JSON writer."""
    from argilla.records._io import JsonIO

    out = tmp_path / "reviewed"
    shutil.copytree(folder / ".argilla", out / ".argilla")
    records = [rg.Record.from_dict(r) for r in json.loads((folder / "records.json").read_text())]
    for record in records:
        for user, values in answers.get(record.id, {}).items():
            for question, value in values.items():
                record.responses.add(rg.Response(question, value, user_id=user))
    JsonIO.to_json(records, out / "records.json")
    return str(out)


def test_argilla_responses_come_back_as_verdicts_and_clean_applies_them(audited, tmp_path):
    ana, bo = uuid.uuid4(), uuid.uuid4()
    answers = {
        "same": {ana: {"verdict": "keep", "note": "fine as it is"}},
        "empty": {ana: {"verdict": "drop"}, bo: {"verdict": "drop", "preference": "rejected"}},
        "dup-b": {ana: {"verdict": "flip", "preference": "rejected"}, bo: {"verdict": "keep"}},
        "formula": {bo: {"preference": "tie"}},  # no verdict: not reviewed
    }
    path = reviewed(export(audited), tmp_path, answers)
    assert main(["review", "import", path, "--audit", str(audited.folder)]) == 0
    verdicts = {r["pair_id"]: r for r in read_review(audited.folder)}
    assert {k: (v["verdict"], v["reviewer"]) for k, v in verdicts.items()} == {
        "same": ("keep", f"argilla user {ana}"),
        "empty": ("drop", f"argilla user {ana}, argilla user {bo}"),
    }  # dup-b: the two disagree, so it stays unreviewed
    assert verdicts["same"]["note"] == "fine as it is"
    assert verdicts["empty"]["preference"] is None  # one said rejected, one said nothing
    done = clean(audited)
    assert "same" in set(done.pairs["pair_id"])
    assert set(done.quarantine["pair_id"]) == {"empty", "formula", "dup-b"}


def test_a_record_of_a_pair_that_was_not_exported_is_an_error_naming_it(audited, tmp_path, capsys):
    folder = export(audited)
    raw = json.loads((folder / "records.json").read_text())
    raw[3]["id"] = "ok-2"
    (folder / "records.json").write_text(json.dumps(raw))
    path = reviewed(folder, tmp_path, {"ok-2": {uuid.UUID(int=5): {"verdict": "keep"}}})
    assert main(["review", "import", path, "--audit", str(audited.folder)]) == 2
    err = capsys.readouterr().err
    assert "record 4 (id ok-2), user 00000000-0000-0000-0000-000000000005: pair_id: 'ok-2'" in err


def test_without_argillas_sdk_the_export_says_how_to_install_it(audited, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "argilla", None)  # as if it were not installed
    assert main(["review", "export", str(audited.folder), "--to", "argilla"]) == 2
    err = capsys.readouterr().err
    assert "Argilla's SDK, which is not installed: pip install argilla (option --to)" in err
    assert not (audited.folder / "review").exists()
