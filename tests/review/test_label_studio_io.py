"""The Label Studio project: a labeling config and tasks its SDK reads, and its JSON export
(annotations made with the SDK's own classes) read back into verdicts."""

from __future__ import annotations

import json

import pytest

from prefaudit.cli import main
from prefaudit.outputs import read_review
from tests.review.conftest import FLAGGED, clean

label_interface = pytest.importorskip(
    "label_studio_sdk.label_interface", reason="the test extra installs label-studio-sdk"
)


def export(audited):
    assert main(["review", "export", str(audited.folder), "--to", "label-studio"]) == 0
    folder = audited.folder / "review" / "label-studio"
    config = (folder / "config.xml").read_text()
    return label_interface.LabelInterface(config), json.loads((folder / "tasks.json").read_text())


def test_the_labeling_config_and_the_tasks_are_what_label_studio_reads(audited):
    interface, tasks = export(audited)
    interface.validate()  # the schema, unique names, toName targets, attributes
    assert {c.name: c.tag for c in interface.controls} == {
        "preference": "Choices",
        "verdict": "Choices",
        "note": "TextArea",
    }
    assert interface.get_control("verdict").labels == ["keep", "flip", "drop"]
    assert interface.get_control("preference").labels == ["chosen", "rejected", "tie"]
    assert [task["data"]["pair_id"] for task in tasks] == FLAGGED
    assert all(interface.validate_task(task) for task in tasks)  # every $value has its data
    dup = next(task["data"] for task in tasks if task["data"]["pair_id"] == "dup-b")
    assert dup["evidence"].endswith("partners: dup-a (duplicate)")
    assert dup["scores"] == {"content": 0.0, "duplication": 1.0} and dup["line"] == 5


def annotation(interface, user, answers: dict, **extra) -> dict:
    """An annotation as Label Studio's JSON export holds it, its result made by the SDK."""
    value = label_interface.objects.AnnotationValue(
        completed_by=user if isinstance(user, int) else user["id"],
        result=interface.create_regions(answers),
    ).model_dump()
    if not isinstance(user, int):
        value["completed_by"] = user  # exports may expand the user
    value.update(id=extra.pop("id", 1), created_at="2027-01-02T03:04:05.000000Z", **extra)
    assert interface.validate_annotation(value), value
    return value


def test_label_studio_annotations_come_back_as_verdicts_and_clean_applies_them(audited):
    interface, tasks = export(audited)
    ana = {"id": 7, "email": "ana@example.com", "first_name": "Ana"}
    answers = {
        "same": [annotation(interface, ana, {"verdict": "keep", "note": "fine"}, id=11)],
        "empty": [
            annotation(interface, 8, {"verdict": "drop", "preference": "rejected"}, id=12),
            annotation(interface, ana, {"verdict": "drop"}, id=13),
            annotation(interface, 9, {"verdict": "keep"}, id=14, was_cancelled=True),
        ],
        "dup-b": [
            annotation(interface, 8, {"verdict": "flip"}, id=15, updated_at="2027-01-03T00:00:00Z")
        ],
    }
    exported = [
        {
            "id": number,
            "data": task["data"],
            "annotations": answers.get(task["data"]["pair_id"], []),
            "predictions": [],
            "meta": {},
            "inner_id": number,
            "total_annotations": len(answers.get(task["data"]["pair_id"], [])),
        }
        for number, task in enumerate(tasks, 101)
    ]
    path = audited.folder.parent / "project-1-at-2027-01-03.json"  # where a browser saves it
    path.write_text(json.dumps(exported))
    assert main(["review", "import", str(path), "--audit", str(audited.folder)]) == 0

    verdicts = {r["pair_id"]: r for r in read_review(audited.folder)}
    assert {k: (v["verdict"], v["reviewer"]) for k, v in verdicts.items()} == {
        "same": ("keep", "ana@example.com"),
        "empty": ("drop", "label-studio user 8, ana@example.com"),  # both said drop
        "dup-b": ("flip", "label-studio user 8"),
    }
    assert verdicts["same"]["note"] == "fine" and verdicts["same"]["source"] == "label-studio"
    assert verdicts["dup-b"]["decided"] == "2027-01-03T00:00:00Z"
    done = clean(audited)
    cleaned = {r["pair_id"]: r for r in done.pairs.to_dict("records")}
    assert "same" in cleaned and cleaned["dup-b"]["chosen"] == "Lyon."
    assert set(done.quarantine["pair_id"]) == {"empty", "formula", "dup-a"}


def test_a_task_of_a_pair_that_was_not_exported_is_an_error_naming_it(audited, capsys):
    interface, tasks = export(audited)
    tasks[1]["id"] = 5
    tasks[1]["data"]["pair_id"] = "ok-3"
    tasks[1]["annotations"] = [annotation(interface, 8, {"verdict": "keep"})]
    path = audited.folder.parent / "export.json"
    path.write_text(json.dumps(tasks))
    assert main(["review", "import", str(path), "--audit", str(audited.folder)]) == 2
    err = capsys.readouterr().err
    assert f"{path} task 2 (id 5), annotation 1: pair_id: 'ok-3' is not one of the pairs" in err


def test_a_file_outside_the_audit_folder_needs_audit(audited, capsys):
    _, tasks = export(audited)
    path = audited.folder.parent / "export.json"
    path.write_text(json.dumps(tasks))
    assert main(["review", "import", str(path)]) == 2
    assert "is not inside an audit folder; give the one" in capsys.readouterr().err
