"""The review as a Label Studio project: ``tasks.json`` (one task per pair, in Label Studio's
import format: ``[{"data": {...}}]``) and ``config.xml`` (the labeling config: the prompt, both
responses and the evidence as text, a preference and a keep/flip/drop choice, a note).

Reading back takes Label Studio's JSON export: tasks with their ``annotations``, each with a
``result`` list and ``completed_by`` (a user id, or a user with an email). Cancelled (skipped)
annotations are left out. Writing and reading need nothing installed: the files are plain JSON
and XML (the tests check them with the SDK's ``LabelInterface``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from prefaudit.errors import InputError
from prefaudit.fileio import write_bytes, write_json
from prefaudit.review.items import ReviewItem
from prefaudit.review.verdict import Verdict

TASKS = "tasks.json"
CONFIG = "config.xml"
# The labeling config. Text tags show their value as text (never as markup); the choices'
# values are what `review import` reads back (verdict, preference), the text area a note.
LABEL_CONFIG = """<View>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Chosen (the label's winner)"/>
  <Text name="chosen" value="$chosen"/>
  <Header value="Rejected"/>
  <Text name="rejected" value="$rejected"/>
  <Header value="Why this pair is here (the audit's evidence)"/>
  <Text name="evidence" value="$evidence"/>
  <Header value="Which response is better?"/>
  <Choices name="preference" toName="prompt" choice="single" showInline="true">
    <Choice value="chosen" hint="the chosen response"/>
    <Choice value="rejected" hint="the rejected response"/>
    <Choice value="tie" hint="neither"/>
  </Choices>
  <Header value="Verdict: keep the pair as labelled, flip its label, or drop it"/>
  <Choices name="verdict" toName="prompt" choice="single" showInline="true" required="true">
    <Choice value="keep"/>
    <Choice value="flip"/>
    <Choice value="drop"/>
  </Choices>
  <Header value="Note (optional)"/>
  <TextArea name="note" toName="prompt" rows="2" maxSubmissions="1" editable="true"/>
</View>
"""


def write_tasks(folder: Path, items: list[ReviewItem], export_id: str, name: str) -> None:
    """``tasks.json`` and ``config.xml`` of ``items`` in ``folder``."""
    tasks = [
        {
            "data": {
                "pair_id": item.pair_id,
                "prompt": item.prompt,
                "chosen": item.chosen,
                "rejected": item.rejected,
                "evidence": item.evidence_text(),
                "flagged_by": ", ".join(item.flagged_by),
                "scores": item.scores,
                "line": item.line,
                "export": export_id,
            }
        }
        for item in items
    ]
    write_json(folder / TASKS, tasks)
    write_bytes(folder / CONFIG, LABEL_CONFIG.encode("utf-8"))


def read_export(path: Path) -> list[Verdict]:
    """Every annotation of Label Studio's JSON export as a :class:`Verdict` (a task without
    one as a Verdict without a verdict)."""
    try:
        tasks = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise InputError(f"{path}: not JSON ({err})") from None
    if not isinstance(tasks, list):
        raise InputError(
            f"{path}: expected Label Studio's JSON export (a list of tasks), "
            f"got {type(tasks).__name__}"
        )
    answers = []
    for number, task in enumerate(tasks, 1):
        where = f"task {number}" + (
            f" (id {task['id']})" if isinstance(task, dict) and "id" in task else ""
        )
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            raise InputError(f"{path} {where}: data: missing; expected a Label Studio task")
        done = [a for a in task.get("annotations") or [] if _counts(a, path, where)]
        for annotation in done or [None]:
            answers.append(_verdict(data, annotation, where))
    return answers


def _counts(annotation: Any, path: Path, where: str) -> bool:
    """Whether an annotation is a reviewer's answer (skipped ones are not)."""
    if not isinstance(annotation, dict) or not isinstance(annotation.get("result", []), list):
        raise InputError(f"{path} {where}: annotations: expected objects with a result list")
    return not annotation.get("was_cancelled")


def _verdict(data: dict, annotation: dict | None, where: str) -> Verdict:
    answer = Verdict(data.get("pair_id"), data.get("export"), where)
    if annotation is None:
        return answer
    values = {
        r.get("from_name"): r.get("value") or {}
        for r in annotation.get("result") or []
        if isinstance(r, dict)
    }
    answer.verdict = _choice(values.get("verdict"))
    answer.preference = _choice(values.get("preference"))
    note = (values.get("note") or {}).get("text") or []
    answer.note = " ".join(str(t) for t in note).strip() or None
    answer.reviewer = _reviewer(annotation.get("completed_by"))
    answer.decided = annotation.get("updated_at") or annotation.get("created_at")
    answer.where += f", annotation {annotation['id']}" if "id" in annotation else ""
    return answer


def _choice(value: Any) -> Any:
    """The one choice of a single-choice answer (a list of one); anything else as it is, for
    the import to name."""
    choices = value.get("choices") if isinstance(value, dict) else None
    if isinstance(choices, list) and len(choices) == 1:
        return choices[0]
    return choices or None


def _reviewer(user: Any) -> str | None:
    """Label Studio's ``completed_by``: a user id, or a user object (its email, else its id)."""
    if isinstance(user, dict):
        if user.get("email"):
            return str(user["email"])
        user = user.get("id")
    return None if user is None else f"label-studio user {user}"
