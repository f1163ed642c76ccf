import pandas as pd
import pytest

from prefaudit.io import LoadError, load
from prefaudit.io.shapes import RowError, split_hh
from tests.helpers import pair, write_lines


def _load(tmp_path, records, **options):
    return load(str(write_lines(tmp_path / "in.jsonl", records)), **options)


def _reasons(data):
    return {(i.line, i.field): i.reason for i in data.report.rejected}


# --- flat -----------------------------------------------------------------------------------


def test_flat_with_optional_columns_and_generated_ids(tmp_path):
    data = _load(tmp_path, [pair(score_chosen=9, score_rejected=2.5, source="web"), pair("Other")])
    assert data.report.shape == "flat"
    assert data.pairs["score_chosen"].tolist()[0] == 9.0
    assert data.pairs["source"].iloc[0] == "web"
    assert pd.isna(data.pairs["source"].iloc[1])
    assert data.pairs.index.tolist() == data.pairs["pair_id"].tolist()
    assert all(len(i) == 16 for i in data.pairs.index)


def test_generated_ids_are_stable_and_exact_repeats_stay_separate(tmp_path):
    first = _load(tmp_path, [pair(), pair(), pair("Other")])
    again = _load(tmp_path, [pair(), pair(), pair("Other")])
    ids = first.pairs.index.tolist()
    assert ids == again.pairs.index.tolist()
    assert ids[1] == ids[0] + "-2"  # the repeat is loaded, for the duplication check to report
    assert first.report.pairs == 3


def test_given_ids_are_used_and_duplicates_rejected_with_first_line(tmp_path):
    data = _load(tmp_path, [pair(id="a"), pair(id="b"), pair(id="a"), pair(id=7)])
    assert data.pairs.index.tolist() == ["a", "b", "7"]
    assert _reasons(data) == {(3, "pair_id"): "duplicate pair id 'a' (first on line 1)"}


def test_a_generated_id_never_takes_an_id_the_input_gave(tmp_path):
    """A cleaned.jsonl carries content ids; rows appended without ids (one an exact repeat)
    must not collide with them (issue 21: the PairSet index had duplicates, exit 3)."""
    first = _load(tmp_path, [pair(), pair("Other")]).pairs.index.tolist()
    rows = [pair(id=first[0]), pair("Other", id=first[1]), pair(), pair(), pair("Other")]
    data = _load(tmp_path, rows)
    ids = data.pairs.index.tolist()
    assert data.report.rejected == [] and len(ids) == 5 and len(set(ids)) == 5
    assert ids[:2] == first and ids[2:] == [f"{first[0]}-2", f"{first[0]}-3", f"{first[1]}-2"]


def test_missing_null_and_wrongly_typed_fields(tmp_path):
    data = _load(
        tmp_path,
        [
            {"prompt": "Q", "chosen": "A"},
            {"prompt": "Q", "chosen": None, "rejected": "B"},
            {"prompt": "Q", "chosen": ["A"], "rejected": "B"},
            {"prompt": 5, "chosen": "A", "rejected": "B"},
            pair(score_chosen="high"),
            pair(score_chosen=True),
            pair(source=["x"]),
            pair(),
        ],
    )
    assert _reasons(data) == {
        (1, "rejected"): "missing",
        (2, "chosen"): "is null",
        (3, "chosen"): "must be a string, got a list (message lists need format='conversational')",
        (4, "prompt"): "must be a string, got a number",
        (5, "score_chosen"): "must be a number, got 'high'",
        (6, "score_chosen"): "must be a number, got true/false",
        (7, "source"): "must be a string, got a list",
    }
    assert data.report.pairs == 1


def test_empty_and_whitespace_texts_are_kept_with_a_warning(tmp_path):
    data = _load(tmp_path, [pair(chosen=""), pair(rejected=" \n\t")])
    assert data.report.pairs == 2
    assert [(w.line, w.field, w.reason) for w in data.report.warnings] == [
        (1, "chosen", "empty; kept"),
        (2, "rejected", "whitespace only; kept"),
    ]


def test_a_ten_megabyte_text_is_rejected_with_its_size(tmp_path):
    data = _load(tmp_path, [pair(chosen="x" * 10_000_000), pair()])
    assert data.report.pairs == 1
    assert _reasons(data) == {
        (
            1,
            "chosen",
        ): "has 10,000,000 characters, over the limit of 1,000,000 (raise max_chars)"
    }
    assert _load(tmp_path, [pair(chosen="x" * 10_000_000)], max_chars=20_000_000).report.pairs == 1


def test_on_bad_row_fail_lists_the_errors(tmp_path):
    with pytest.raises(LoadError) as caught:
        _load(tmp_path, [pair(), "{bad", {"prompt": "Q", "chosen": "A"}], on_bad_row="fail")
    message = str(caught.value)
    assert "2 row(s) could not be loaded" in message
    assert "line 2: malformed JSON" in message
    assert "line 3, field 'rejected': missing" in message


# --- column mapping and detection ------------------------------------------------------------


def test_aliases_and_user_mapping(tmp_path):
    records = [{"instruction": "Q", "good": "A", "bad": "B"}]
    data = _load(tmp_path, records, mapping={"chosen": "good", "rejected": "bad"})
    assert data.pairs[["prompt", "chosen", "rejected"]].values.tolist() == [["Q", "A", "B"]]
    assert data.report.mapping["prompt"] == "instruction"


def test_mapping_errors_name_the_problem(tmp_path):
    with pytest.raises(LoadError, match="unknown field 'question'"):
        _load(tmp_path, [pair()], mapping={"question": "prompt"})
    with pytest.raises(LoadError, match="has no column 'nope'"):
        _load(tmp_path, [pair()], mapping={"prompt": "nope"})


def test_undetectable_shape_lists_the_columns(tmp_path):
    with pytest.raises(LoadError, match=r"cannot tell the shape.*columns: a, b"):
        _load(tmp_path, [{"a": 1, "b": 2}])
    with pytest.raises(LoadError, match="no prompt column"):
        _load(tmp_path, [{"chosen": "A", "rejected": "B"}])


def test_forced_format_with_missing_fields(tmp_path):
    with pytest.raises(
        LoadError, match=r"shape 'side_by_side' needs the field\(s\) response_a, response_b, label"
    ):
        _load(tmp_path, [pair()], format="side_by_side")


# --- conversational -------------------------------------------------------------------------


def _msg(role, content):
    return {"role": role, "content": content}


def test_conversational_implicit_prompt_is_the_shared_messages(tmp_path):
    prefix = [_msg("system", "Be brief."), _msg("user", "Hi?")]
    record = {
        "chosen": [*prefix, _msg("assistant", "Hello!")],
        "rejected": [*prefix, _msg("assistant", "Go away.")],
    }
    data = _load(tmp_path, [record])
    assert data.report.shape == "conversational"
    row = data.pairs.iloc[0]
    assert row["prompt_messages"] == prefix
    assert (row["prompt"], row["chosen"], row["rejected"]) == (
        "system: Be brief.\n\nuser: Hi?",
        "Hello!",
        "Go away.",
    )


def test_conversational_explicit_prompt_string_or_messages(tmp_path):
    records = [
        {
            "prompt": "Hi?",
            "chosen": [_msg("assistant", "Hello!")],
            "rejected": [_msg("assistant", "No.")],
        },
        {
            "prompt": [_msg("user", "Yo?")],
            "chosen": [_msg("assistant", "Hey")],
            "rejected": [_msg("assistant", "...")],
        },
    ]
    data = _load(tmp_path, records)
    assert data.pairs["prompt"].tolist() == ["Hi?", "Yo?"]
    assert data.pairs["prompt_messages"].iloc[0] == [_msg("user", "Hi?")]


def test_conversational_bad_messages(tmp_path):
    records = [
        {"chosen": [_msg("user", "Q"), _msg("assistant", "A")], "rejected": "oops"},
        {"chosen": [_msg("user", "Q"), {"content": "A"}], "rejected": [_msg("user", "Q")]},
        {"chosen": [_msg("user", "Q"), _msg("assistant", None)], "rejected": [_msg("user", "Q")]},
    ]
    data = _load(tmp_path, records, format="conversational")
    assert _reasons(data) == {
        (1, "rejected"): "must be a list of {role, content} messages, got a string "
        "(a string response needs a prompt column)",
        (2, "chosen"): "message 1 must be an object with a string 'role'",
        (3, "chosen"): "message 1: 'content' must be a string or a list of content parts, got null",
    }


# --- Anthropic HH -----------------------------------------------------------------------------


def test_hh_multi_turn_prompt_is_the_shared_prefix(tmp_path):
    prefix = "\n\nHuman: Hi\n\nAssistant: Hello, how can I help?\n\nHuman: Tell me a joke"
    record = {
        "chosen": prefix + "\n\nAssistant: Why did the chicken...",
        "rejected": prefix + "\n\nAssistant: No.",
    }
    data = _load(tmp_path, [record])
    row = data.pairs.iloc[0]
    assert data.report.shape == "hh"
    assert (row["prompt"], row["chosen"], row["rejected"]) == (
        prefix,
        "Why did the chicken...",
        "No.",
    )
    assert [m["role"] for m in row["prompt_messages"]] == ["user", "assistant", "user"]
    assert row["prompt_messages"][2]["content"] == "Tell me a joke"


def test_hh_transcripts_that_diverge_early_keep_the_later_turns_and_warn():
    chosen = "\n\nHuman: Q\n\nAssistant: A1\n\nHuman: more?\n\nAssistant: A2"
    rejected = "\n\nHuman: Q\n\nAssistant: B1"
    prompt, c, r, diverged = split_hh(chosen, rejected)
    assert (prompt, c, r) == ("\n\nHuman: Q", "A1\n\nHuman: more?\n\nAssistant: A2", "B1")
    assert diverged == len("\n\nHuman: Q\n\nAssistant: ")
    with pytest.raises(RowError, match="share no complete turn"):
        split_hh("\n\nHuman: Q1\n\nAssistant: A", "\n\nHuman: Q2\n\nAssistant: B")


# --- side by side and long annotation tables --------------------------------------------------


def test_side_by_side_orients_by_the_label_and_marks_ties(tmp_path):
    rows = [
        {
            "prompt": "Q1",
            "response_a": "A",
            "response_b": "B",
            "label": "b",
            "model_a": "m1",
            "model_b": "m2",
        },
        {"prompt": "Q2", "response_a": "A", "response_b": "B", "label": "tie"},
    ]
    data = _load(tmp_path, rows)
    first, second = data.pairs.iloc[0], data.pairs.iloc[1]
    assert (
        first["chosen"],
        first["rejected"],
        first["chosen_position"],
        first["model_chosen"],
    ) == ("B", "A", "b", "m2")
    assert (second["chosen"], second["tie"], first["tie"]) == ("A", True, False)


def test_long_table_groups_rows_into_pairs_and_annotations(tmp_path):
    base = {"instruction": "Q", "output_1": "A", "output_2": "B"}
    rows = [
        {**base, "annotator": "r1", "preference": 2},
        {**base, "annotator": "r2", "preference": 2},
        {**base, "annotator": "r3", "preference": 1},
        {**base, "annotator": "r4", "preference": None},
        {**base, "output_2": "C", "annotator": "r1", "preference": 1.5},
    ]
    data = _load(tmp_path, rows)
    assert data.report.shape == "annotations"
    assert (
        data.report.rows_read,
        data.report.rows_accepted,
        data.report.rows_rejected,
        data.report.pairs,
    ) == (5, 4, 1, 2)
    assert _reasons(data) == {(4, "label"): "is null (no preference recorded)"}
    ab = data.pairs.iloc[0]
    assert (ab["chosen"], ab["rejected"], ab["chosen_position"]) == ("B", "A", "b")
    table = data.annotations
    assert table.loc[table.pair_id == ab.name, "label"].tolist() == ["chosen", "chosen", "rejected"]
    assert table.loc[table.pair_id == ab.name, "value"].tolist() == [1.0, 1.0, 0.0]
    assert data.pairs.iloc[1]["tie"]


def test_long_table_rows_showing_a_pair_in_the_other_order_are_the_same_pair(tmp_path):
    """Raters shown the responses in a random order rated one pair, not two (each order made a
    pair of its own: two raters of 805 pairs read as 1,610 pairs of one rater each)."""
    ab = {"instruction": "Q", "output_1": "A", "output_2": "B"}
    ba = {"instruction": "Q", "output_1": "B", "output_2": "A"}
    rows = [
        {**ab, "annotator": "r1", "preference": 2},
        {**ba, "annotator": "r2", "preference": 1},
        {**ba, "annotator": "r3", "preference": 2},
        {**ba, "annotator": "r4", "preference": None},  # rejected, and counted
    ]
    data = _load(tmp_path, rows)
    report = data.report
    counts = (report.rows_read, report.rows_accepted, report.rows_rejected, report.pairs)
    assert counts == (4, 3, 1, 1)
    only = data.pairs.iloc[0]
    assert (only["chosen"], only["rejected"], only["chosen_position"]) == ("B", "A", "b")
    table = data.annotations
    assert table["label"].tolist() == ["chosen", "chosen", "rejected"]
    assert table["value"].tolist() == [1.0, 1.0, 0.0]
    # Where each rater saw the chosen response B: second, first, first.
    assert table["chosen_position"].tolist() == ["b", "a", "a"]


def test_long_table_with_ids_takes_the_responses_in_either_order(tmp_path):
    base = {"id": "x", "prompt": "Q", "annotator": "r1", "label": "a"}
    rows = [
        {**base, "response_a": "A", "response_b": "B"},
        {**base, "response_a": "B", "response_b": "A", "annotator": "r2"},  # prefers B
        {**base, "response_a": "B", "response_b": "A", "annotator": "r3", "label": "b"},
    ]
    data = _load(tmp_path, rows)
    assert not data.report.rejected and data.pairs.index.tolist() == ["x"]
    assert (data.pairs.iloc[0]["chosen"], data.pairs.iloc[0]["chosen_position"]) == ("A", "a")
    assert data.annotations["label"].tolist() == ["chosen", "rejected", "chosen"]
    assert data.annotations["chosen_position"].tolist() == ["a", "b", "b"]


def test_long_table_with_ids_rejects_rows_whose_texts_disagree(tmp_path):
    rows = [
        {
            "id": "x",
            "prompt": "Q",
            "response_a": "A",
            "response_b": "B",
            "annotator": "r1",
            "label": "a",
        },
        {
            "id": "x",
            "prompt": "Q",
            "response_a": "A",
            "response_b": "Z",
            "annotator": "r2",
            "label": "a",
        },
    ]
    data = _load(tmp_path, rows)
    assert _reasons(data) == {(2, "pair_id"): "pair id 'x' has other texts on line 1"}


def test_separate_annotations_file(tmp_path):
    pairs = write_lines(tmp_path / "pairs.jsonl", [pair(id="p1"), pair("Q2", id="p2")])
    annotations = write_lines(
        tmp_path / "ann.jsonl",
        [
            {"pair_id": "p1", "annotator": "r1", "label": "chosen", "chosen_position": "b"},
            {"pair_id": "p1", "annotator": "r2", "label": 0.25},
            {"pair_id": "p9", "annotator": "r1", "label": "chosen"},
            {"pair_id": "p2", "annotator": "r1", "label": "maybe"},
        ],
    )
    data = load(str(pairs), annotations=str(annotations))
    table = data.annotations
    assert table[["pair_id", "annotator", "label", "value"]].values.tolist() == [
        ["p1", "r1", "chosen", 1.0],
        ["p1", "r2", "rejected", 0.25],
    ]
    assert table["chosen_position"].iloc[0] == "b" and pd.isna(table["chosen_position"].iloc[1])
    assert (data.report.annotation_rows_read, data.report.annotation_rows_rejected) == (4, 2)
    reasons = {(i.file.endswith("ann.jsonl"), i.line): i.reason for i in data.report.rejected}
    assert reasons[(True, 3)] == "unknown pair id 'p9': no loaded pair has it"
    assert reasons[(True, 4)].startswith("unknown label 'maybe'")
    assert data.report.rows_rejected == 0  # the pairs file itself was clean


# --- regressions found by a review ------------------------------------------------------------


def test_long_table_row_with_a_bad_optional_field_is_rejected_not_fatal(tmp_path):
    rows = [
        {
            "prompt": "p1",
            "response_a": "a1",
            "response_b": "b1",
            "label": 1,
            "annotator": "x",
            "model_a": ["bad"],
        },
        {"prompt": "p2", "response_a": "a2", "response_b": "b2", "label": 2, "annotator": "x"},
    ]
    data = _load(tmp_path, rows)
    assert data.report.pairs == 1
    assert _reasons(data) == {(1, "model_a"): "must be a string, got a list"}


def test_annotations_file_adds_to_a_long_tables_own_judgements(tmp_path):
    long = write_lines(
        tmp_path / "long.jsonl",
        [
            {
                "id": "P1",
                "prompt": "Q",
                "response_a": "A",
                "response_b": "B",
                "annotator": r,
                "label": "a",
            }
            for r in ("x", "y")
        ],
    )
    extra = write_lines(
        tmp_path / "extra.jsonl", [{"pair_id": "P1", "annotator": "z", "label": "chosen"}]
    )
    data = load(str(long), annotations=str(extra))
    assert sorted(data.annotations["annotator"]) == ["x", "y", "z"]


def test_conversational_prompt_repeated_inside_the_responses_is_stripped(tmp_path):
    question = _msg("user", "What is 2+2?")
    record = {
        "prompt": "What is 2+2?",
        "chosen": [question, _msg("assistant", "4")],
        "rejected": [question, _msg("assistant", "5")],
    }
    row = _load(tmp_path, [record]).pairs.iloc[0]
    assert (row["prompt"], row["chosen"], row["rejected"]) == ("What is 2+2?", "4", "5")


def test_hh_without_a_leading_blank_line_keeps_every_turn(tmp_path):
    record = {
        "chosen": "Human: hi\n\nAssistant: yo\n\nHuman: and?\n\nAssistant: good",
        "rejected": "Human: hi\n\nAssistant: yo\n\nHuman: and?\n\nAssistant: bad",
    }
    row = _load(tmp_path, [record]).pairs.iloc[0]
    assert [(m["role"], m["content"]) for m in row["prompt_messages"]] == [
        ("user", "hi"),
        ("assistant", "yo"),
        ("user", "and?"),
    ]


def test_hh_keeps_model_columns(tmp_path):
    record = {
        "chosen": "\n\nHuman: hi\n\nAssistant: a",
        "rejected": "\n\nHuman: hi\n\nAssistant: b",
        "model_chosen": "m1",
        "model_rejected": "m2",
    }
    row = _load(tmp_path, [record]).pairs.iloc[0]
    assert (row["model_chosen"], row["model_rejected"]) == ("m1", "m2")


def test_ids_and_other_kept_fields_obey_max_chars_and_huge_rejected_rows_are_cut(tmp_path):
    rows = [pair(id="i" * 50), pair("Q2", source="s" * 50), pair("Q3", "x" * 300_000), pair("Q4")]
    data = _load(tmp_path, rows, max_chars=40)
    assert len(data.pairs) == 1
    fields = {issue.line: issue.field for issue in data.report.rejected}
    assert fields == {1: "pair_id", 2: "source", 3: "chosen"}
    kept = data.report.rejected_records()[2]["record"]
    assert isinstance(kept, str) and len(kept) < 100_100 and "characters in all)" in kept


def test_texts_moved_into_arrow_in_chunks_stay_with_their_rows(tmp_path):
    """The builder moves texts into Arrow every _TEXT_CHUNK pairs: across several chunks,
    with rejected rows between them, each pair keeps its own prompt and responses."""
    from prefaudit.io.shapes import _TEXT_CHUNK

    records, expected = [], {}
    for k in range(2 * _TEXT_CHUNK + 500):
        if k % 997 == 3:
            records.append({"prompt": f"bad {k}", "chosen": None, "rejected": "x"})
            continue
        texts = (f"prompt {k} — ü", f"chosen {k} 😊", f"rejected {k}")
        records.append(dict(zip(("prompt", "chosen", "rejected"), texts, strict=True)))
        expected[k + 1] = texts  # by line
    data = _load(tmp_path, records)
    pairs = data.pairs
    assert len(pairs) == len(expected) and str(pairs["chosen"].dtype) == "str"
    texts = zip(pairs["prompt"], pairs["chosen"], pairs["rejected"], strict=True)
    found = dict(zip(pairs["row"], texts, strict=True))
    assert found == expected
