"""Map records of the shapes people actually have onto the canonical PairSet.

Shapes: ``flat`` (prompt/chosen/rejected strings), ``conversational`` (TRL message lists; a
message's content may be a list of parts, and a message-list prompt may come with string
responses), ``hh`` (Anthropic HH transcripts), ``side_by_side`` (two responses and a label) and
``annotations`` (one row per pair x annotator). Each record becomes a pair (or an annotation)
or a :class:`LoadIssue` naming its line and field; nothing is dropped silently. After loading,
every message's content is a string.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import xxhash

from prefaudit.chat import (
    HH_ASSISTANT,
    hh_messages,
    render_messages,
)
from prefaudit.io.scales import LabelError, label_key
from prefaudit.io.schema import (
    PAIR_COLUMNS,
    SHAPES,
    TEXT_COLUMNS,
    LoadError,
    LoadIssue,
    LoadReport,
    describe_type,
)

# Column names recognised without a --map, tried in order after the canonical name.
ALIASES: dict[str, tuple[str, ...]] = {
    "pair_id": ("id", "pair", "uid"),
    "prompt": ("instruction", "question", "input", "query", "conversation_prefix"),
    "chosen": ("preferred", "winner_response"),
    "rejected": ("dispreferred", "loser_response"),
    "response_a": ("output_1", "completion_a", "answer_a", "response_1", "response1"),
    "response_b": ("output_2", "completion_b", "answer_b", "response_2", "response2"),
    "label": ("preference", "winner", "choice"),
    "annotator": ("rater", "worker", "judge", "annotator_id", "worker_id"),
    "score_chosen": ("chosen_score", "chosen_rating"),
    "score_rejected": ("rejected_score", "rejected_rating"),
    "model_chosen": ("chosen_model",),
    "model_rejected": ("rejected_model",),
    "model_a": ("generator_1", "model_1"),
    "model_b": ("generator_2", "model_2"),
    "source": ("dataset", "subset"),
    "split": (),
    # Written by `prefaudit clean` for conservative / robust DPO; read by `prefaudit train`.
    "weight": ("sample_weight",),
    "soft_label": (),
    "score_gap": (),  # written with the pairs a ratings input makes
    # Per-response ratings (the ratings layout): one row per rated response, or a nested list.
    "response": ("completion",),
    "score": ("rating",),
    "completions": (),
    "model": ("generator",),
}
MAPPABLE = tuple(ALIASES)

_REQUIRED = {
    "flat": ("prompt", "chosen", "rejected"),
    "conversational": ("chosen", "rejected"),
    "hh": ("chosen", "rejected"),
    "side_by_side": ("prompt", "response_a", "response_b", "label"),
    "annotations": ("prompt", "response_a", "response_b", "label", "annotator"),
    "ratings": ("prompt",),  # and a response and score, or completions: prefaudit.io.ratings
}
_PASSTHROUGH = ("source", "split")
OPTIONAL_VALUES = (
    "score_chosen",
    "score_rejected",
    "score_gap",
    "model_chosen",
    "model_rejected",
    "source",
    "split",
    "weight",
    "soft_label",
)
# Optional fields a pair-per-record input may carry, and those of them that are numbers.
_PAIR_EXTRAS = (
    "score_chosen",
    "score_rejected",
    "score_gap",
    "model_chosen",
    "model_rejected",
    *_PASSTHROUGH,
    "weight",
    "soft_label",
)
_NUMBERS = {"score_chosen", "score_rejected", "score_gap", "weight", "soft_label"}
_TEXT_CHUNK = 8192  # pairs whose texts are moved into Arrow at once (PairBuilder)
_MISSING = object()

# Content parts (the OpenAI and Hugging Face multimodal message form) that carry text, and the
# key holding it: chat completions' "text", the Responses API's input/output text, and an
# assistant's "refusal", which is its answer as much as a text part is.
_TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}
# Text parts are joined with a newline, as vLLM joins them for chat templates that take a
# string (transformers' `serve` joins them with a space for text-only models; VLM templates
# such as Qwen2.5-VL's and Llama 4's write them one after another): the parts stay apart
# without gluing a word of one to a word of the next.
PART_SEPARATOR = "\n"


class RowError(Exception):
    """A record that cannot become a pair; carries the field and the reason."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


def resolve_mapping(columns: Iterable[str], user_map: dict[str, str], file: str) -> dict[str, str]:
    """Canonical name -> column name in the input, from ``mapping`` first, then known aliases."""
    columns = set(columns)
    for canonical, column in user_map.items():
        if canonical not in ALIASES:
            raise LoadError(
                f"mapping {canonical}={column}: unknown field {canonical!r}; "
                f"expected one of {', '.join(MAPPABLE)}",
                setting="mapping",
            )
        if columns and column not in columns:
            raise LoadError(
                f"mapping {canonical}={column}: {file} has no column {column!r} "
                f"(found: {', '.join(sorted(columns))})",
                setting="mapping",
            )
    mapping = dict(user_map)
    taken = set(mapping.values())
    for canonical, aliases in ALIASES.items():
        if canonical in mapping:
            continue
        for name in (canonical, *aliases):
            if name in columns and name not in taken:
                mapping[canonical] = name
                taken.add(name)
                break
    return mapping


def detect_shape(sample: list[dict[str, Any]], mapping: dict[str, str], file: str) -> str:
    """Which shape the sampled records have (see the module docstring)."""
    has = {c for c in mapping if any(mapping[c] in r for r in sample)}
    if {"response_a", "response_b"} <= has:
        return "annotations" if "annotator" in has else "side_by_side"
    if {"chosen", "rejected"} <= has:
        values = [r.get(mapping["chosen"]) for r in sample]
        prompts = [r.get(mapping["prompt"]) for r in sample] if "prompt" in has else []
        # By majority, so that one malformed row does not decide the shape of the file; a
        # message-list prompt with string responses is conversational too.
        if _mostly_lists(values) or _mostly_lists(prompts):
            return "conversational"
        if "prompt" in has:
            return "flat"
        if any(isinstance(v, str) and HH_ASSISTANT in v for v in values):
            return "hh"
        raise LoadError(
            f"{file}: has chosen/rejected but no prompt column, and chosen does not look like an "
            "Anthropic HH transcript ('\\n\\nHuman: ...\\n\\nAssistant: ...'); "
            "map the prompt column (mapping prompt=COLUMN)",
            setting="mapping",
        )
    # Per-response ratings: a list of rated completions, or a response and its score.
    if "completions" in has and _mostly_lists([r.get(mapping["completions"]) for r in sample]):
        return "ratings"
    if {"prompt", "response", "score"} <= has:
        return "ratings"
    columns = sorted({k for r in sample for k in r})
    raise LoadError(
        f"{file}: cannot tell the shape of the records (columns: {', '.join(columns) or 'none'}); "
        "expected prompt/chosen/rejected, chosen/rejected message lists, HH transcripts, "
        "prompt/response_a/response_b/label, or the same with an annotator column, "
        "or per-response ratings (prompt/response/score, or a completions list). "
        "Give the format, and map fields to COLUMN names (mapping prompt=instruction)",
        setting="mapping",
    )


def check_required(shape: str, mapping: dict[str, str], columns: set[str], file: str) -> None:
    missing = [c for c in _REQUIRED[shape] if mapping.get(c) not in columns]
    if missing and columns:
        raise LoadError(
            f"{file}: shape {shape!r} needs the field(s) {', '.join(missing)}, which no column "
            f"provides (found: {', '.join(sorted(columns))}); map FIELD=COLUMN",
            setting="mapping",
        )


def content_id(*texts: str) -> str:
    """A stable id from content: 16 hex digits of xxh3-64 over the texts."""
    return xxhash.xxh3_64_hexdigest("\x1f".join(texts).encode("utf-8", "surrogatepass"))


class PairBuilder:
    """Collects pairs column by column and checks what every shape shares."""

    def __init__(self, report: LoadReport, file: str, unit: str, max_chars: int):
        self.report, self.file, self.unit, self.max_chars = report, file, unit, max_chars
        self.columns: dict[str, list[Any]] = {c: [] for c in (*PAIR_COLUMNS, "row")}
        # The texts, moved into Arrow every _TEXT_CHUNK pairs: a million pairs' texts as
        # Python strings (2-4 bytes a character once one is not Latin-1) held beside their
        # Arrow copy peaked at 3x the loaded frame.
        self.texts: dict[str, list[Any]] = {c: [] for c in TEXT_COLUMNS}
        self.optional: dict[str, list[Any]] = {}
        self._ids: dict[str, int] = {}
        self._repeats: dict[str, int] = {}

    def text(self, record: dict, column: str | None, field: str) -> str:
        value = record.get(column, _MISSING) if column else _MISSING
        if value is _MISSING:
            raise RowError(field, "missing")
        if value is None:
            raise RowError(field, "is null")
        if not isinstance(value, str):
            hint = (
                " (message lists need format='conversational')" if isinstance(value, list) else ""
            )
            raise RowError(field, f"must be a string, got {describe_type(value)}{hint}")
        return self.checked(value, field)

    def checked(self, value: str, field: str) -> str:
        if len(value) > self.max_chars:
            raise RowError(
                field,
                f"has {len(value):,} characters, over the limit of {self.max_chars:,} "
                "(raise max_chars)",
            )
        return value

    def add(self, line: int, values: dict[str, Any], pair_id: Any = None) -> str:
        """Add one pair and return its id; ``values`` holds the texts and any optional columns."""
        for name, value in values.items():  # ids, sources, model names: no text escapes max_chars
            if name not in TEXT_COLUMNS and isinstance(value, str):
                self.checked(value, name)
        if pair_id is not None and isinstance(pair_id, str):
            self.checked(pair_id, "pair_id")
        if pair_id is None:
            pair_id = self._generated_id(values)
        else:
            pair_id = str(pair_id)
            if pair_id in self._ids:
                first = self._ids[pair_id]
                raise RowError(
                    "pair_id", f"duplicate pair id {pair_id!r} (first on {self.unit} {first})"
                )
        self._ids[pair_id] = line
        for field in TEXT_COLUMNS:
            text = values[field]
            if not text or text.isspace():  # isspace scans in place; strip() would copy
                what = "empty" if not text else "whitespace only"
                self.report.warn(LoadIssue(self.file, line, field, f"{what}; kept", unit=self.unit))
        n = len(self.columns["pair_id"])
        cols = self.columns
        cols["pair_id"].append(pair_id)
        cols["prompt"].append(values["prompt"])
        cols["chosen"].append(values["chosen"])
        cols["rejected"].append(values["rejected"])
        cols["row"].append(line)
        if len(cols["prompt"]) == _TEXT_CHUNK:
            self._move_texts()
        for name, value in values.items():
            if name in TEXT_COLUMNS or value is None:
                continue
            column = self.optional.get(name)
            if column is None:
                column = self.optional[name] = [None] * n
            column.append(value)
        for column in self.optional.values():
            if len(column) == n:
                column.append(None)
        return pair_id

    def _generated_id(self, values: dict[str, Any]) -> str:
        base = content_id(values["prompt"], values["chosen"], values["rejected"])
        count = self._repeats.get(base, 0) + 1
        # Exact repeats load as separate pairs (the duplication check reports them); an id the
        # input gave (a cleaned.jsonl carries these content ids) is never generated again.
        pair_id = base if count == 1 else f"{base}-{count}"
        while pair_id in self._ids:
            count += 1
            pair_id = f"{base}-{count}"
        self._repeats[base] = count
        return pair_id

    def _move_texts(self) -> None:
        import pyarrow as pa

        for name in TEXT_COLUMNS:
            self.texts[name].append(pa.array(self.columns[name], type=pa.large_string()))
            self.columns[name].clear()
        pa.default_memory_pool().release_unused()  # the input's pages read so far

    def frame(self, mapped: set[str] = frozenset()):
        """The PairSet; optional columns the input maps are kept even when all values are null.
        Called once, when every pair is in: it takes the texts out of the builder."""
        import pandas as pd
        import pyarrow as pa

        self._move_texts()  # (which gives back what reading the input left cached)
        data = dict(self.columns)
        for name in TEXT_COLUMNS:  # one array each; its chunks are freed before the next
            chunks, self.texts[name] = self.texts[name], []
            data[name] = pd.array(pa.concat_arrays(chunks), dtype="str")
            del chunks
            pa.default_memory_pool().release_unused()
        data.update(self.optional)
        renamed = {"model_a": "model_chosen", "model_b": "model_rejected"}
        for name in mapped:
            name = renamed.get(name, name)
            if name in OPTIONAL_VALUES and name not in data:
                data[name] = [None] * len(data["pair_id"])
        frame = pd.DataFrame(data)
        frame["row"] = frame["row"].astype("int64")
        for name in PAIR_COLUMNS:  # typed as text also when there are no rows
            frame[name] = frame[name].astype("str")
        for name in _NUMBERS:
            if name in frame:
                frame[name] = frame[name].astype("float64")
        if "tie" in frame:
            frame["tie"] = frame["tie"].fillna(False).astype(bool)
        return frame.set_index("pair_id", drop=False).rename_axis(None)


class ShapeMapper:
    """Turns one record of a given shape into values for :class:`PairBuilder`."""

    def __init__(self, shape: str, mapping: dict[str, str], builder: PairBuilder):
        if shape not in SHAPES:
            raise LoadError(f"unknown format {shape!r}; expected one of {', '.join(SHAPES)}")
        if shape == "annotations":
            raise LoadError(
                "long annotation tables are grouped by AnnotationGrouper, not ShapeMapper"
            )
        self.shape, self.mapping, self.builder = shape, mapping, builder
        self.convert = getattr(self, f"_{shape}")
        self.row_warnings: list[tuple[str, str]] = []  # (field, reason) for the current row
        self._mapped: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        # Content parts that are not text (images, audio), by type: the current row's, and
        # those of the pairs loaded (for the load report's note).
        self._row_left_out: Counter[str] = Counter()
        self.left_out: Counter[str] = Counter()
        self.pairs_with_left_out = 0

    def row_accepted(self) -> None:
        """The current row became a pair: its left-out content parts count."""
        if self._row_left_out:
            self.left_out.update(self._row_left_out)
            self.pairs_with_left_out += 1
        self._row_left_out.clear()

    def notes(self) -> list[str]:
        """What the load report should say about the rows this mapper converted."""
        if not self.pairs_with_left_out:
            return []
        pairs = len(self.builder.columns["pair_id"])
        return [
            f"{self.pairs_with_left_out:,} of {pairs:,} pairs had content parts that are not "
            f"text ({_kinds(self.left_out)}), left out: the audit reads the text parts only"
        ]

    def pair_id(self, record: dict) -> Any:
        column = self.mapping.get("pair_id")
        value = record.get(column) if column else None
        if isinstance(value, (dict, list)):
            raise RowError("pair_id", f"must be a string or number, got {describe_type(value)}")
        return None if value in (None, "") else value

    def extras(self, record: dict, names: tuple[str, ...]) -> dict[str, Any]:
        """The optional fields ``names`` that this input maps and ``record`` has."""
        mapped = self._mapped.get(names)
        if mapped is None:  # resolved once per file, not per row
            mapped = self._mapped[names] = [
                (n, self.mapping[n]) for n in names if n in self.mapping
            ]
        out = {}
        for name, column in mapped:
            if column not in record:
                continue
            value = record[column]
            if name in _NUMBERS:
                out[name] = _number(value, name)
                if name in ("weight", "soft_label") and out[name] is not None:
                    _check_weight(out[name], name)
            elif value is None or value == "":
                continue
            elif isinstance(value, (dict, list)):
                raise RowError(name, f"must be a string, got {describe_type(value)}")
            else:
                out[name] = str(value)
        return out

    def _flat(self, record: dict) -> dict[str, Any]:
        b, m = self.builder, self.mapping
        values = {
            "prompt": b.text(record, m.get("prompt"), "prompt"),
            "chosen": b.text(record, m.get("chosen"), "chosen"),
            "rejected": b.text(record, m.get("rejected"), "rejected"),
        }
        values.update(
            self.extras(
                record,
                _PAIR_EXTRAS,
            )
        )
        return values

    def _hh(self, record: dict) -> dict[str, Any]:
        b, m = self.builder, self.mapping
        chosen = b.text(record, m.get("chosen"), "chosen")
        rejected = b.text(record, m.get("rejected"), "rejected")
        prompt, chosen_reply, rejected_reply, diverged = split_hh(chosen, rejected)
        if diverged is not None:
            self.row_warnings.append(
                (
                    "chosen",
                    "chosen and rejected transcripts differ before their final assistant turn "
                    f"(first difference at character {diverged + 1}); the prompt is the turns both "
                    "share and each response includes the later turns",
                )
            )
        values = {
            "prompt": prompt,
            "chosen": chosen_reply,
            "rejected": rejected_reply,
            "prompt_messages": hh_messages(prompt),
        }
        extra = _PAIR_EXTRAS
        values.update(self.extras(record, extra))
        return values

    def _conversational(self, record: dict) -> dict[str, Any]:
        self._row_left_out.clear()
        m = self.mapping
        prompt_value = record.get(m["prompt"], _MISSING) if "prompt" in m else _MISSING
        given = prompt_value is not _MISSING and prompt_value is not None
        chosen = _responses(record.get(m.get("chosen"), _MISSING), "chosen", given)
        rejected = _responses(record.get(m.get("rejected"), _MISSING), "rejected", given)
        if not given:
            shared = 0  # TRL's implicit prompt: the messages chosen and rejected share
            while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
                shared += 1
            prompt_messages, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
        else:
            if isinstance(prompt_value, str):
                prompt_messages = [{"role": "user", "content": prompt_value}]
            else:
                prompt_messages = _messages(prompt_value, "prompt")
            # Some datasets (UltraFeedback-binarized) repeat the prompt turns inside chosen
            # and rejected: the responses are what follows them.
            k = len(prompt_messages)
            if chosen[:k] == prompt_messages and rejected[:k] == prompt_messages:
                chosen, rejected = chosen[k:], rejected[k:]
        b = self.builder
        prompt_messages = self._text_only(prompt_messages, "prompt")
        values = {
            "prompt": b.checked(render_messages(prompt_messages), "prompt"),
            "chosen": b.checked(self._response_text(chosen, "chosen"), "chosen"),
            "rejected": b.checked(self._response_text(rejected, "rejected"), "rejected"),
            "prompt_messages": prompt_messages,
        }
        values.update(self.extras(record, _PAIR_EXTRAS))
        return values

    def _text_only(self, messages: list[dict[str, Any]], field: str) -> list[dict[str, str]]:
        """``messages`` as {role, content} only; the content parts that were not text are
        counted for the row and named in a warning on ``field``."""
        for message in messages:
            if _LEFT_OUT in message:
                break
        else:  # the common case, kept cheap: nothing was left out
            return messages
        left_out = Counter(kind for m in messages for kind in m.get(_LEFT_OUT, ()))
        self._row_left_out.update(left_out)
        self.row_warnings.append(
            (
                field,
                f"{left_out.total()} content part(s) that are not text left out "
                f"({_kinds(left_out)}): the audit reads the text parts only",
            )
        )
        return [{"role": m["role"], "content": m["content"]} for m in messages]

    def _response_text(self, messages: list[dict[str, Any]], field: str) -> str:
        """A response's text; one with no text, only parts that are not text (an image), is
        not an empty response but one a text audit cannot read, so the row is rejected."""
        text = render_messages(self._text_only(messages, field), roles=False)
        if not text and any(m.get(_LEFT_OUT) for m in messages):
            kinds = _kinds(Counter(k for m in messages for k in m.get(_LEFT_OUT, ())))
            raise RowError(field, f"has no text, only content parts that are not text ({kinds})")
        return text

    def side_fields(self, record: dict) -> tuple[str, str, str, float | str]:
        """The prompt, the two responses as shown, and the label as the column reader takes it
        (its meaning waits for the whole column: prefaudit.io.scales)."""
        b, m = self.builder, self.mapping
        prompt = b.text(record, m.get("prompt"), "prompt")
        first = b.text(record, m.get("response_a"), "response_a")
        second = b.text(record, m.get("response_b"), "response_b")
        return prompt, first, second, label_field(record, m.get("label"))

    def _side_by_side(self, record: dict) -> dict[str, Any]:
        """The record's values with the label unread: ``orient`` makes the pair once the
        label column's scale is known."""
        prompt, first, second, label = self.side_fields(record)
        extras = self.extras(record, ("model_a", "model_b", *_PASSTHROUGH))
        return {
            "prompt": prompt,
            "response_a": first,
            "response_b": second,
            "label": label,
            **extras,
        }


def label_field(record: dict, column: str | None) -> float | str:
    """A record's label as :func:`prefaudit.io.scales.label_key` gives it; RowError if none."""
    if column is None or column not in record:
        raise RowError("label", "missing")
    try:
        return label_key(record[column])
    except LabelError as err:
        raise RowError("label", err.reason) from None


def orient(prompt: str, first: str, second: str, p_first: float, extras: dict) -> dict[str, Any]:
    """A side-by-side comparison as a pair: chosen = the response the label prefers.

    Ties keep the shown order (chosen = A) and are marked ``tie``.
    """
    first_wins = p_first >= 0.5
    values = {
        "prompt": prompt,
        "chosen": first if first_wins else second,
        "rejected": second if first_wins else first,
        "chosen_position": "a" if first_wins else "b",
        "tie": p_first == 0.5,
    }
    models = (extras.pop("model_a", None), extras.pop("model_b", None))
    if not first_wins:
        models = models[::-1]
    values["model_chosen"], values["model_rejected"] = models
    values.update(extras)
    return values


def split_hh(chosen: str, rejected: str) -> tuple[str, str, str, int | None]:
    """Split two HH transcripts into (prompt, chosen reply, rejected reply, divergence).

    The prompt is the conversation before the final assistant turn; when the two transcripts
    differ earlier, it is the conversation up to the last assistant turn both share, and
    ``divergence`` is the index of their first differing character (else None).
    """
    cut = chosen.rfind(HH_ASSISTANT)
    if cut >= 0 and rejected.rfind(HH_ASSISTANT) == cut and chosen[:cut] == rejected[:cut]:
        start = cut + len(HH_ASSISTANT)
        return chosen[:cut], chosen[start:].strip(), rejected[start:].strip(), None
    common = _common_prefix_length(chosen, rejected)
    cut = chosen.rfind(HH_ASSISTANT, 0, common)
    if cut < 0:
        raise RowError(
            "chosen",
            "chosen and rejected transcripts share no complete turn before their assistant replies",
        )
    start = cut + len(HH_ASSISTANT)
    return chosen[:cut], chosen[start:].strip(), rejected[start:].strip(), common


def chat_messages(value: Any, field: str) -> list[dict[str, str]]:
    """``value`` as chat messages whose content is a string: a list of content parts becomes
    its text parts joined, the others left out; raises :class:`RowError` naming ``field``."""
    return [{"role": m["role"], "content": m["content"]} for m in _messages(value, field)]


# The key under which a message read by :func:`_messages` holds the types of its content
# parts that are not text (taken off again by ShapeMapper._text_only).
_LEFT_OUT = "_left_out"


def _messages(value: Any, field: str) -> list[dict[str, Any]]:
    """A list of chat messages, each content a string: a list of content parts becomes its
    text parts joined (:data:`PART_SEPARATOR`), the other parts' types kept under
    :data:`_LEFT_OUT`."""
    if value is _MISSING:
        raise RowError(field, "missing")
    if not _is_list(value):
        raise RowError(
            field, f"must be a list of {{role, content}} messages, got {describe_type(value)}"
        )
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RowError(field, f"message {index} must be an object with a string 'role'")
        content = message.get("content")
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": content})
            continue
        if not _is_list(content):
            raise RowError(
                field,
                f"message {index}: 'content' must be a string or a list of content parts, "
                f"got {describe_type(content)}",
            )
        text, left_out = _parts_text(content, field, index)
        messages.append({"role": message["role"], "content": text})
        if left_out:  # only then: the message equals the same text given as a string
            messages[-1][_LEFT_OUT] = left_out
    return messages


def _responses(value: Any, field: str, prompt_given: bool) -> list[dict[str, Any]]:
    """A response as messages: a message list, or, beside a prompt, a string (one assistant
    turn; a message-list prompt often comes with string responses)."""
    if isinstance(value, str):
        if prompt_given:
            return [{"role": "assistant", "content": value}]
        raise RowError(
            field,
            "must be a list of {role, content} messages, got a string "
            "(a string response needs a prompt column)",
        )
    return _messages(value, field)


def _parts_text(parts: Any, field: str, index: int) -> tuple[str, tuple[str, ...]]:
    """The text of a message's content parts, and the types of the parts that are not text."""
    texts, left_out = [], []
    for number, part in enumerate(parts):
        where = f"message {index}, part {number}"
        if not isinstance(part, dict):
            raise RowError(
                field,
                f'{where}: must be an object such as {{"type": "text", "text": ...}}, '
                f"got {describe_type(part)}",
            )
        kind = part.get("type")
        if kind is None and isinstance(part.get("text"), str):
            kind = "text"  # {"text": ...} without a type, as Qwen's chat templates accept
        if not isinstance(kind, str):
            raise RowError(field, f"{where}: 'type' must be a string, got {describe_type(kind)}")
        key = _TEXT_PARTS.get(kind)
        if key is None:
            left_out.append(kind)
            continue
        text = part.get(key)
        if not isinstance(text, str):
            raise RowError(
                field,
                f"{where}: a {kind!r} part's {key!r} must be a string, got {describe_type(text)}",
            )
        texts.append(text)
    return PART_SEPARATOR.join(texts), tuple(left_out)


def _kinds(counts: Counter[str]) -> str:
    """Part types and their counts, commonest first: 'image x 2, input_audio x 1'."""
    return ", ".join(f"{kind} x {n}" for kind, n in counts.most_common())


def _is_list(value: Any) -> bool:
    # A list as JSON and Parquet give it; a numpy array in a pandas DataFrame read from Parquet.
    return isinstance(value, (list, tuple, np.ndarray))


def _mostly_lists(values: list[Any]) -> bool:
    return 2 * sum(_is_list(v) for v in values) > len(values) > 0


def _number(value: Any, field: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowError(field, "must be a number, got true/false")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise RowError(field, f"must be a number, got {value!r}"[:200])


def _check_weight(value: float, field: str) -> None:
    """A loss weight is a finite number >= 0; a soft label a probability in [0, 1]."""
    top = 1.0 if field == "soft_label" else np.inf
    if not 0.0 <= value <= top or not np.isfinite(value):
        expected = "between 0 and 1" if field == "soft_label" else "a finite number >= 0"
        raise RowError(field, f"must be {expected}, got {value}")


def _common_prefix_length(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # binary search on slice equality: C-speed comparisons, log(n) of them
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
