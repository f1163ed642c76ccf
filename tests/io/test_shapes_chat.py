"""Chat shapes users have (issue 20 part 4): message content as a list of parts (the OpenAI and
Hugging Face multimodal form) and a message-list prompt with string responses. The records are
written here as the public datasets and APIs write them."""

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefaudit.io import load
from prefaudit.io.shapes import PART_SEPARATOR
from tests.helpers import write_lines

LEFT_OUT = "content part(s) that are not text left out ({}): the audit reads the text parts only"


def _load(tmp_path, records, **options):
    return load(str(write_lines(tmp_path / "in.jsonl", records)), **options)


def _texts(data):
    return data.pairs[["prompt", "chosen", "rejected"]].values.tolist()


def _issues(issues):
    return {(i.line, i.field): i.reason for i in issues}


def _user(*parts):
    return [{"role": "user", "content": list(parts)}]


def _assistant(*parts):
    return [{"role": "assistant", "content": list(parts)}]


def _text(text):
    return {"type": "text", "text": text}


# HuggingFaceH4/rlaif-v_formatted (TRL's vision DPO example): an image placeholder before the
# question; the image itself is in a separate `images` column.
RLAIF_V = {
    "prompt": _user({"type": "image"}, _text("Who is wearing the red hat?")),
    "chosen": _assistant(_text("The man on the left wears a red baseball cap.")),
    "rejected": _assistant(_text("Nobody in the picture wears a hat.")),
    "images": ["<PIL image>"],
}
# OpenAI chat completions: image_url and input_audio parts beside the text.
OPENAI = {
    "prompt": [
        {"role": "system", "content": "You describe pictures."},
        {
            "role": "user",
            "content": [
                _text("What is in this image?"),
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "input_audio", "input_audio": {"data": "UklGR...", "format": "wav"}},
            ],
        },
    ],
    "chosen": _assistant(_text("A grey cat asleep on a windowsill.")),
    "rejected": _assistant({"type": "refusal", "refusal": "I can't help with that."}),
}


def test_content_parts_load_as_their_text_and_other_parts_are_counted(tmp_path):
    data = _load(tmp_path, [RLAIF_V, OPENAI])
    assert data.report.shape == "conversational" and data.report.rows_rejected == 0
    assert _texts(data) == [
        [
            "Who is wearing the red hat?",
            "The man on the left wears a red baseball cap.",
            "Nobody in the picture wears a hat.",
        ],
        [
            "system: You describe pictures.\n\nuser: What is in this image?",
            "A grey cat asleep on a windowsill.",
            "I can't help with that.",  # a refusal is the assistant's answer
        ],
    ]
    assert data.pairs["prompt_messages"].iloc[1] == [
        {"role": "system", "content": "You describe pictures."},
        {"role": "user", "content": "What is in this image?"},
    ]
    assert _issues(data.report.warnings) == {
        (1, "prompt"): "1 " + LEFT_OUT.format("image x 1"),
        (2, "prompt"): "2 " + LEFT_OUT.format("image_url x 1, input_audio x 1"),
    }
    assert data.report.notes == [
        "2 of 2 pairs had content parts that are not text (image x 1, image_url x 1, "
        "input_audio x 1), left out: the audit reads the text parts only"
    ]


def test_several_text_parts_are_joined_with_a_newline(tmp_path):
    record = {
        "prompt": _user(_text("Translate to French:"), _text("Good morning.")),
        "chosen": _assistant(_text("Bonjour."), {"text": "(formal)"}),  # no type: Qwen's form
        "rejected": _assistant({"type": "output_text", "text": "Bonsoir."}),
    }
    data = _load(tmp_path, [record])
    assert PART_SEPARATOR == "\n"
    assert _texts(data) == [
        ["Translate to French:\nGood morning.", "Bonjour.\n(formal)", "Bonsoir."]
    ]
    assert data.report.warnings == [] and data.report.notes == []


def test_a_response_with_no_text_is_rejected_and_a_prompt_with_none_kept(tmp_path):
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    records = [
        {
            "prompt": _user(image),
            "chosen": _assistant(_text("A.")),
            "rejected": _assistant(_text("B.")),
        },
        {
            "prompt": _user(_text("Draw a cat")),
            "chosen": _assistant(image),
            "rejected": _assistant(_text("No.")),
        },
    ]
    data = _load(tmp_path, records)
    assert _texts(data) == [["", "A.", "B."]]
    assert _issues(data.report.rejected) == {
        (2, "chosen"): "has no text, only content parts that are not text (image_url x 1)"
    }
    assert [(i.line, i.field, i.reason) for i in data.report.warnings] == [
        (1, "prompt", "empty; kept"),
        (1, "prompt", "1 " + LEFT_OUT.format("image_url x 1")),
    ]
    # The rejected row's image is not counted: the note covers the pairs loaded.
    assert data.report.notes == [
        "1 of 1 pairs had content parts that are not text (image_url x 1), left out: the audit "
        "reads the text parts only"
    ]


def test_malformed_parts_reject_the_row_naming_message_and_part(tmp_path):
    ok = _assistant(_text("fine"))
    records = [
        {"prompt": _user("just a string"), "chosen": ok, "rejected": ok},
        {"prompt": _user({"image_url": "x"}), "chosen": ok, "rejected": ok},
        {
            "prompt": _user(_text("Q")),
            "chosen": _assistant({"type": "text", "text": None}),
            "rejected": ok,
        },
        {
            "prompt": _user(_text("Q")),
            "chosen": ok,
            "rejected": [{"role": "assistant", "content": 7}],
        },
    ]
    data = _load(tmp_path, records)
    assert len(data.pairs) == 0
    assert _issues(data.report.rejected) == {
        (
            1,
            "prompt",
        ): 'message 0, part 0: must be an object such as {"type": "text", "text": ...}, '
        "got a string",
        (2, "prompt"): "message 0, part 0: 'type' must be a string, got null",
        (3, "chosen"): "message 0, part 0: a 'text' part's 'text' must be a string, got null",
        (
            4,
            "rejected",
        ): "message 0: 'content' must be a string or a list of content parts, got a number",
    }
    assert {i.file for i in data.report.rejected} == {str(tmp_path / "in.jsonl")}


def test_implicit_prompt_with_parts_counts_the_shared_turns_once_as_the_prompt(tmp_path):
    question = _user({"type": "image"}, _text("What breed?"))
    record = {
        "chosen": [*question, *_assistant(_text("A corgi."))],
        "rejected": [*question, *_assistant(_text("A cat."))],
    }
    data = _load(tmp_path, [record])
    assert _texts(data) == [["What breed?", "A corgi.", "A cat."]]
    assert _issues(data.report.warnings) == {(1, "prompt"): "1 " + LEFT_OUT.format("image x 1")}


def test_prompt_repeated_as_parts_inside_the_responses_is_stripped(tmp_path):
    # UltraFeedback-binarized repeats the prompt in chosen and rejected; here as text parts.
    question = _user(_text("What is 2+2?"))
    record = {
        "prompt": "What is 2+2?",
        "chosen": [*question, *_assistant(_text("4"))],
        "rejected": [*question, *_assistant(_text("5"))],
    }
    assert _texts(_load(tmp_path, [record])) == [["What is 2+2?", "4", "5"]]


def test_parts_read_from_parquet_and_a_dataframe_as_arrow_writes_them(tmp_path):
    """Arrow gives every part every key (an image part's text is null), and pandas gives the
    lists as numpy arrays."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    record = {k: RLAIF_V[k] for k in ("prompt", "chosen", "rejected")}
    pq.write_table(pa.Table.from_pylist([record, record]), tmp_path / "rlaif.parquet")
    expected = [
        "Who is wearing the red hat?",
        "The man on the left wears a red baseball cap.",
        "Nobody in the picture wears a hat.",
    ]
    for source in (str(tmp_path / "rlaif.parquet"), pd.read_parquet(tmp_path / "rlaif.parquet")):
        data = load(source)
        assert data.report.shape == "conversational" and data.report.rows_rejected == 0
        assert _texts(data) == [expected, expected]
        assert len(data.report.warnings) == 2


# -- a message-list prompt with string responses ----------------------------------------------


def test_a_message_list_prompt_with_string_responses_is_conversational(tmp_path):
    records = [
        {
            "prompt": [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "Capital of France?"},
            ],
            "chosen": "Paris.",
            "rejected": "Lyon.",
        },
        {
            "prompt": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "Tell me a joke."},
            ],
            "chosen": "Why did the chicken cross the road? To get to the other side.",
            "rejected": [{"role": "assistant", "content": "No."}],  # rows may mix the two
        },
    ]
    for forced in (None, "conversational"):
        data = _load(tmp_path, records, format=forced)
        assert data.report.shape == "conversational" and data.report.rows_rejected == 0
        assert _texts(data) == [
            ["system: Answer in one word.\n\nuser: Capital of France?", "Paris.", "Lyon."],
            [
                "user: Hi\n\nassistant: Hello! How can I help?\n\nuser: Tell me a joke.",
                "Why did the chicken cross the road? To get to the other side.",
                "No.",
            ],
        ]
        assert data.pairs["prompt_messages"].iloc[0] == records[0]["prompt"]  # system kept


def test_a_string_response_without_a_prompt_is_rejected_with_the_reason(tmp_path):
    record = {"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    data = _load(tmp_path, [{**record, "rejected": "B"}], format="conversational")
    assert _issues(data.report.rejected) == {
        (1, "rejected"): "must be a list of {role, content} messages, got a string "
        "(a string response needs a prompt column)"
    }


def test_flat_forced_on_a_message_list_prompt_still_says_what_to_do(tmp_path):
    record = {"prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hello!", "rejected": "No."}
    data = _load(tmp_path, [record], format="flat")
    assert _issues(data.report.rejected) == {
        (1, "prompt"): "must be a string, got a list (message lists need format='conversational')"
    }


def test_a_file_of_one_shape_is_never_an_error_about_another(tmp_path):
    """The symptom of the issue: every row rejected. Both shapes now load through the CLI."""
    from prefaudit.cli import main

    path = write_lines(tmp_path / "pairs.jsonl", [RLAIF_V, OPENAI])
    out = tmp_path / "out"
    assert main(["audit", str(path), "--out", str(out), "--validators", "content"]) == 0
    audit = json.loads((out / "audit.json").read_text())
    assert audit["load"]["pairs"] == 2 and audit["load"]["rejected_rows"] == 0
    assert (out / "rejected.jsonl").read_text() == ""


# -- property: any message list is accounted for ------------------------------------------------

text = st.text(max_size=12)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(text, inner, max_size=2),
    max_leaves=4,
)
part = st.one_of(
    st.builds(_text, text),
    st.just({"type": "image"}),
    st.just({"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}),
    st.fixed_dictionaries({"type": json_value, "text": json_value}),
    json_value,
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system"]) | json_value,
        "content": text | st.lists(part, max_size=3) | json_value,
    }
)
messages = st.lists(message, max_size=3)
record = st.fixed_dictionaries(
    {},
    optional={
        "prompt": messages | text | json_value,
        "chosen": messages | text,
        "rejected": messages | text,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(record, min_size=1, max_size=12))
def test_any_chat_record_is_a_pair_of_strings_or_a_rejected_row(tmp_path, records):
    records = [RLAIF_V, *records]  # the columns are there: the rows are what is generated
    data = _load(tmp_path, records, format="conversational")
    report = data.report
    assert report.rows_read == len(records) == report.rows_accepted + report.rows_rejected
    assert report.pairs == len(data.pairs) == report.rows_accepted
    for pair in data.pairs.to_dict("records"):
        assert all(isinstance(pair[k], str) for k in ("prompt", "chosen", "rejected"))
        assert all(set(m) == {"role", "content"} for m in pair["prompt_messages"])
        assert all(isinstance(m["content"], str) for m in pair["prompt_messages"])
    left_out = {w.line for w in report.warnings if "not text left out" in w.reason}
    assert left_out <= set(data.pairs["row"])
    counted = [n for n in report.notes if "content parts that are not text" in n]
    if left_out:
        (note,) = counted
        assert note.startswith(f"{len(left_out)} of {len(data.pairs)} pairs had")
    else:
        assert counted == []
