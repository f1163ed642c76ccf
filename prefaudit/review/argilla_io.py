"""The review as an Argilla 2.x dataset, built with the ``argilla`` SDK's own classes and
written in its own on-disk form (``Dataset.to_disk``): ``.argilla/dataset.json``,
``.argilla/settings.json`` and ``records.json``. ``rg.Dataset.from_disk(folder, client=...)``
loads it into a server; ``dataset.to_disk(folder)`` writes it back with the reviewers'
responses, which :func:`read_records` reads.

The dataset: fields prompt, chosen, rejected and evidence (plain text, never markdown: they
come from the data); questions verdict (keep, flip, drop; required), preference (chosen,
rejected, tie) and note; metadata flagged_by, each check's score and the export id; each
record's id is its pair id. Argilla's on-disk records keep each response's value and user,
not its status: a draft answer reads as given, so export once reviewers have submitted.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from prefaudit.errors import InputError, SettingError
from prefaudit.fileio import write_bytes
from prefaudit.review.items import ReviewItem
from prefaudit.review.verdict import Verdict

GUIDELINES = """Each record is a preference pair an audit found suspect: a prompt, the response
labelled as chosen and the one labelled as rejected, and the evidence (which checks flagged
it, their scores and reasons, the raters' votes, the pairs it duplicates or contradicts).

Answer **verdict**: *keep* (the label is right: chosen is better), *flip* (the rejected
response is better: swap them) or *drop* (the pair should not be trained on: broken,
duplicated, harmful or undecidable). **preference** and **note** are optional.
"""
VERDICT_LABELS = {
    "keep": "keep: the label is right",
    "flip": "flip: rejected is better",
    "drop": "drop: do not train on it",
}
PREFERENCE_LABELS = {"chosen": "chosen is better", "rejected": "rejected is better", "tie": "tie"}


def require_argilla(setting: str | None = None):
    """The ``argilla`` module (2.x), or a :class:`SettingError` saying how to install it."""
    try:
        import argilla
    except ImportError:
        raise SettingError(
            "Argilla files are made and read with Argilla's SDK, which is not installed: "
            "pip install argilla",
            setting=setting,
        ) from None
    if int(argilla.__version__.split(".")[0]) < 2:
        raise SettingError(
            f"Argilla 2.x is needed (installed: {argilla.__version__}): pip install -U argilla",
            setting=setting,
        )
    return argilla


@contextlib.contextmanager
def offline_client(rg) -> Iterator[Any]:
    """An Argilla client that reaches no server. The SDK builds settings and datasets only
    with a client, whose constructor asks the server who is logged in: this one answers that
    question itself and refuses every other request. The default client the caller had is
    put back afterwards."""
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/me":
            user = {"id": str(uuid.UUID(int=0)), "username": "prefaudit", "role": "owner"}
            return httpx.Response(200, json=user)
        raise RuntimeError(f"prefaudit works offline; Argilla's SDK asked for {request.url}")

    previous = rg.Argilla._default_client
    client = rg.Argilla(
        api_url="http://argilla.invalid",
        api_key="offline",
        mounts={"all://": httpx.MockTransport(answer)},
    )
    try:
        yield client
    finally:
        rg.Argilla._default_client = previous
        client.http_client.close()


def write_dataset(folder: Path, items: list[ReviewItem], export_id: str, name: str) -> None:
    """``items`` as an Argilla dataset named ``name``, in ``folder`` (empty)."""
    rg = require_argilla("to")
    checks = sorted({check for item in items for check in item.scores})
    with offline_client(rg) as client:
        settings = _settings(rg, checks, export_id)
        workspace = rg.Workspace(name="prefaudit", id=uuid.UUID(int=0), client=client)
        dataset = rg.Dataset(name=name, settings=settings, workspace=workspace, client=client)
        dataset.to_disk(str(folder), with_records=False)
        records = [_record(rg, item, export_id).to_dict() for item in items]
    # What `dataset.records.to_json` writes (Record.to_dict of each), which from_disk reads.
    write_bytes(folder / "records.json", orjson.dumps(records))


def _settings(rg, checks: list[str], export_id: str):
    text = "Not markdown: the texts are shown as they are."
    return rg.Settings(
        guidelines=GUIDELINES,
        fields=[
            rg.TextField("prompt", title="Prompt", required=False, description=text),
            rg.TextField("chosen", title="Chosen (the label's winner)", required=False),
            rg.TextField("rejected", title="Rejected", required=False),
            rg.TextField("evidence", title="Why this pair is here (the audit's evidence)"),
        ],
        questions=[
            rg.LabelQuestion("verdict", labels=VERDICT_LABELS, title="Verdict", required=True),
            rg.LabelQuestion(
                "preference", labels=PREFERENCE_LABELS, title="Which is better?", required=False
            ),
            rg.TextQuestion("note", title="Note", required=False),
        ],
        metadata=[
            rg.TermsMetadataProperty("flagged_by", options=checks or None, title="Flagged by"),
            *(
                rg.FloatMetadataProperty(f"{check}_score", min=0.0, max=1.0, title=f"{check} score")
                for check in checks
            ),
            rg.TermsMetadataProperty("export", options=[export_id], visible_for_annotators=False),
        ],
        allow_extra_metadata=False,
    )


def _record(rg, item: ReviewItem, export_id: str):
    metadata: dict[str, Any] = {f"{check}_score": score for check, score in item.scores.items()}
    if item.flagged_by:
        metadata["flagged_by"] = item.flagged_by
    metadata["export"] = export_id
    fields = {
        # The texts' fields are optional: an empty response is a finding to show, not an error
        # (Argilla takes "" in an optional field; argilla-io/argilla#5359).
        "prompt": item.prompt,
        "chosen": item.chosen,
        "rejected": item.rejected,
        "evidence": item.evidence_text(),
    }
    return rg.Record(id=item.pair_id, fields=fields, metadata=metadata)


def read_records(path: Path) -> list[Verdict]:
    """Every user's answers on every record of an Argilla dataset folder (or its
    ``records.json``) as :class:`Verdict` s; a record nobody answered as one without."""
    rg = require_argilla()
    file = path / "records.json" if path.is_dir() else path
    try:
        raw = orjson.loads(file.read_bytes())
    except FileNotFoundError:
        raise InputError(
            f"{path}: no records.json; expected a folder Dataset.to_disk wrote"
        ) from None
    except orjson.JSONDecodeError as err:
        raise InputError(f"{file}: not JSON ({err})") from None
    if not isinstance(raw, list):
        raise InputError(f"{file}: expected a list of records, got {type(raw).__name__}")
    answers = []
    for number, data in enumerate(raw, 1):
        where = f"record {number}"
        try:
            record = rg.Record.from_dict(data)
        except Exception as err:  # the SDK's own checks (ValueError, ArgillaError, ...)
            raise InputError(f"{file} {where}: not an Argilla record ({err})") from None
        answers += _answers(record, where)
    return answers


def _answers(record, where: str) -> list[Verdict]:
    """One Verdict per user who answered ``record`` (responses with a status other than
    submitted are left out where the file has one)."""
    export = record.metadata.get("export")
    by_user: dict[str, dict[str, Any]] = {}
    for response in record.responses:
        status = getattr(response.status, "value", response.status)
        if status not in (None, "submitted"):
            continue
        by_user.setdefault(str(response.user_id), {})[response.question_name] = response.value
    if not by_user:
        return [Verdict(record.id, export, f"{where} (id {record.id})")]
    return [
        Verdict(
            record.id,
            export,
            f"{where} (id {record.id}), user {user}",
            verdict=values.get("verdict"),
            preference=values.get("preference"),
            reviewer=f"argilla user {user}",
            note=(values.get("note") or "").strip() or None,
        )
        for user, values in by_user.items()
    ]
