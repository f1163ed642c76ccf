import json

import pytest

from prefaudit.io.prompts import load_prompts
from prefaudit.io.schema import LoadError
from tests.helpers import write_lines


def test_text_file_one_prompt_per_line(tmp_path):
    path = tmp_path / "eval.txt"
    path.write_text("First question?\n\n  Second one  \n")
    assert load_prompts(path) == ["First question?", "Second one"]


def test_json_list_of_strings_and_jsonl_strings(tmp_path):
    listing = tmp_path / "eval.json"
    listing.write_text(json.dumps(["a?", "b?"]))
    assert load_prompts(listing) == ["a?", "b?"]
    lines = write_lines(tmp_path / "eval.jsonl", ['"c?"', '"d?"'])
    assert load_prompts(lines) == ["c?", "d?"]


def test_records_with_a_prompt_field(tmp_path):
    path = write_lines(
        tmp_path / "bench.jsonl",
        [{"question": "What is 2+2?", "answer": "4"}, {"turns": ["Hi there", "And then?"]}],
    )
    assert load_prompts(path) == ["What is 2+2?", "Hi there"]


def test_a_record_without_a_prompt_names_the_line(tmp_path):
    path = write_lines(tmp_path / "bench.jsonl", [{"question": "Q?"}, {"answer": "4"}])
    with pytest.raises(LoadError, match=r"bench.jsonl, line 2: no prompt field"):
        load_prompts(path)
    bad = write_lines(tmp_path / "bad.jsonl", [{"prompt": 7}])
    with pytest.raises(LoadError, match=r"line 1, field 'prompt': expected text"):
        load_prompts(bad)


def test_a_pair_dataset_in_hh_shape_gives_its_prompts(tmp_path):
    path = write_lines(
        tmp_path / "hh.jsonl",
        [
            {
                "chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!",
                "rejected": "\n\nHuman: Hi?\n\nAssistant: Go.",
            }
        ],
    )
    assert load_prompts(path) == ["\n\nHuman: Hi?"]


@pytest.mark.parametrize("text", ["", "\n  \n", "[]"])
def test_a_file_with_no_prompt_is_an_input_error(tmp_path, text):
    path = tmp_path / ("eval.json" if text == "[]" else "eval.txt")
    path.write_text(text)
    with pytest.raises(LoadError, match="holds no prompt"):
        load_prompts(path)


def test_chat_message_prompts_read_as_a_pairs_prompt_is(tmp_path):
    """An evaluation set in TRL's conversational form (content parts too), as pairs render it."""
    path = write_lines(
        tmp_path / "eval.jsonl",
        [
            {"prompt": [{"role": "user", "content": "What is 2+2?"}]},
            {
                "prompt": [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": "Who is it?"}],
                    }
                ]
            },
            {
                "prompt": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                ]
            },
        ],
    )
    assert load_prompts(path) == ["What is 2+2?", "Who is it?", "system: Be brief.\n\nuser: Hi"]
    bad = write_lines(tmp_path / "bad.jsonl", [{"prompt": [{"role": "user", "content": 3}]}])
    with pytest.raises(LoadError, match=r"bad.jsonl, line 1, field 'prompt': message 0: 'content'"):
        load_prompts(bad)
