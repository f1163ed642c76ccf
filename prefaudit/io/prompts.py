"""Prompt lists: an evaluation set or a list of use cases to compare training prompts against."""

from __future__ import annotations

from pathlib import Path

from prefaudit.chat import render_messages
from prefaudit.io.readers import open_records, read_all
from prefaudit.io.schema import LoadError, LoadIssue
from prefaudit.io.shapes import ALIASES, RowError, chat_messages

# Fields that hold the prompt in common evaluation sets (AlpacaEval, MT-Bench, GSM8K, MMLU...).
PROMPT_FIELDS = ("prompt", *ALIASES["prompt"], "text", "problem", "turns")


def load_prompts(path: str | Path) -> list[str]:
    """The prompts of ``path``: a ``.txt`` file (one per line), a JSON/JSONL list of strings,
    records with a prompt field (``prompt``, ``instruction``, ``question``...), or any pair
    dataset :func:`prefaudit.load` reads (its prompts are used).

    Blank lines of a text file are skipped; any other record without a prompt is an error that
    names the file and line.
    """
    prompts = _prompts(str(path))
    if not prompts:  # a check against nothing would report nothing, silently
        raise LoadError(f"{path}: holds no prompt")
    return prompts


def _prompts(path: str) -> list[str]:
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() not in (".gz", ".gzip")]
    if suffixes and suffixes[-1] == ".txt":
        lines = read_all(Path(path)).decode("utf-8", errors="replace").splitlines()
        return [line.strip() for line in lines if line.strip()]
    source = open_records(path)
    prompts: list[str] = []
    for number, item in source.items:
        if isinstance(item, LoadIssue):
            if isinstance(item.record, str) and item.reason.startswith("expected a JSON object"):
                prompts.append(item.record)  # a list of plain strings
                continue
            raise LoadError(str(item))
        field = next((f for f in PROMPT_FIELDS if f in item), None)
        if field is None:
            if not prompts:  # no prompt field at all: a pair dataset in another shape
                from prefaudit.io.loader import load

                return load(path).pairs["prompt"].tolist()
            raise LoadError(
                f"{path}, {source.unit} {number}: no prompt field (expected one of "
                f"{', '.join(PROMPT_FIELDS)})"
            )
        value = item[field]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = _conversation(value, f"{path}, {source.unit} {number}", field)
        elif isinstance(value, list):  # MT-Bench style turns: the first turn is the prompt
            value = value[0] if value else ""
        if not isinstance(value, str):
            raise LoadError(
                f"{path}, {source.unit} {number}, field '{field}': expected text, "
                f"got {type(value).__name__}"
            )
        prompts.append(value)
    return prompts


def _conversation(messages: list, where: str, field: str) -> str:
    """A prompt given as chat messages, as a pair's prompt is rendered."""
    try:
        return render_messages(chat_messages(messages, field))
    except RowError as err:
        raise LoadError(f"{where}, field '{field}': {err.reason}") from None
