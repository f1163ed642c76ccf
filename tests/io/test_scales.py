"""Label scales are read per column, never per row (issue 20 part 1)."""

import csv
import json
import re

import numpy as np
import pandas as pd
import pytest

from prefaudit.cli import main
from prefaudit.errors import SettingError
from prefaudit.io import load
from prefaudit.io.scales import LabelError, LabelScale, label_key, read_column
from tests.helpers import KRIPPENDORFF_2011, long_table, write_lines


def _read(values, **options):
    return read_column([label_key(v) for v in values], **options)


def _reasons(data):
    return {(i.line, i.field): i.reason for i in data.report.rejected}


# --- one column, one scale -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "column,spec,kind,p_first",
    [
        (["a", "B", "tie", "model_a"], "labels", "choice_tie", [1, 0, 0.5, 1]),
        ([1, 2, 1.5, "2"], "1..2", "choice_tie", [1, 0, 0.5, 0]),
        ([1, 2, 1.25], "1..2", "probability", [1, 0, 0.75]),  # AlpacaEval: 1 + P(B better)
        (
            ["A much better", "A slightly better", "B slightly better"],
            "labels",
            "labels",
            [1, 0.75, 0.25],
        ),
        (["a", "a slightly better"], "labels", "labels", [1, 0.75]),  # "slightly": not the top
        (["A>>B", "A>B", "A=B", "B>A", "B>>A"], "labels", "labels", [1, 0.75, 0.5, 0.25, 0]),
        (["a>b", "b>a", "a=b"], "labels", "choice_tie", [1, 0, 0.5]),  # one grade: a choice
        ([-3, 0, 3, 1], "-3..3", "graded", [1, 0.5, 0, 1 / 3]),  # HelpSteer3: -3 = A much better
        ([1, 4, 7, 2], "1..7", "likert", [1, 0.5, 0, 5 / 6]),
        ([1, 2, 3, 4], "1..4", "likert", [1, 2 / 3, 1 / 3, 0]),  # even: no tie
        ([0.25, 0.5, 1], "0..1", "probability", [0.75, 0.5, 0]),
    ],
)
def test_a_column_is_read_on_one_scale(column, spec, kind, p_first):
    reading = _read(column)
    assert (reading.scale.spec, reading.scale.kind) == (spec, kind)
    assert reading.p_first.tolist() == pytest.approx(p_first)
    assert reading.reasons == [None] * len(column)


def test_the_same_number_means_what_its_column_says():
    """2 is B on AlpacaEval's 1..2, 'A better' on a 1..7 scale, 'B better' on -3..3."""
    assert _read([1, 2]).p_first[1] == 0.0
    assert _read([1, 2, 7]).p_first[1] == pytest.approx(5 / 6)
    assert _read([-3, 2, 3]).p_first[1] == pytest.approx(1 / 6)


@pytest.mark.parametrize(
    "value,message",
    [
        (None, "is null (no preference recorded)"),
        (float("nan"), "is NaN (no preference recorded)"),
        ("nan", "is NaN"),
        ("  ", "is empty (no preference recorded)"),
        (True, "must be a label or a number, got true/false"),
        ([1], "must be a label or a number, got a list"),
    ],
)
def test_a_value_no_scale_reads_is_a_row_error(value, message):
    with pytest.raises(LabelError, match=re.escape(message)):
        label_key(value)


def test_values_off_the_scale_are_named_and_counted():
    reading = _read([1, 2, 1.5, 0, "maybe", 2])  # AlpacaEval's unparsed 0
    assert reading.scale.spec == "1..2"
    assert reading.reasons[3] == "0 is not on this column's label scale 1..2"
    assert reading.reasons[4].startswith("unknown label 'maybe'")
    assert reading.counts == {"1": 1, "1.5": 1, "2": 2}
    assert reading.outside == {"maybe": 1, "0": 1}


def test_a_typo_past_a_gap_does_not_stretch_the_scale():
    reading = _read([-3, -1, 0, 2, 3] * 40 + [9])
    assert reading.scale.spec == "-3..3" and np.isnan(reading.p_first[-1])
    # A rarely used real end (the point below it is used) stays.
    assert _read([1, 2, 3, 4, 5, 6] * 40 + [7]).scale.spec == "1..7"


def test_zeros_and_ones_are_not_silently_read_as_a_winners_index():
    """AlpacaEval's 1s with its unparsed 0s: read on 0..1 every 1 would turn from A into B."""
    reading = _read([1, 1, 1, 0])
    assert reading.scale.spec == "1..2" and reading.p_first[:3].tolist() == [1, 1, 1]
    assert "declare label_scale 0..1 if 0 means A" in reading.how
    assert _read([0, 1, 1], declared="0..1").p_first.tolist() == [1, 0, 0]  # an index: 0 = A


def test_ambiguous_ones_and_twos_follow_the_rule_or_the_declaration():
    only = _read([1, 2, 2, 1])
    assert only.scale.spec == "1..2" and "only 1 and 2" in only.how
    declared = _read([1, 2, 2, 1], declared="1..7")
    assert declared.scale.spec == "1..7" and declared.how == "declared"
    assert declared.p_first.tolist() == pytest.approx([1, 5 / 6, 5 / 6, 1])
    reversed_ = _read([7, 1], declared="7..1")  # 7 favours A
    assert reversed_.p_first.tolist() == [1.0, 0.0]
    assert reversed_.scale.direction.startswith("7 favours A")


@pytest.mark.parametrize("spec", ["1..1", "a..b", "1.5..4", "0-7", ""])
def test_a_bad_declaration_names_the_setting(spec):
    with pytest.raises(SettingError, match="label_scale") as caught:
        _read([1], declared=spec)
    assert caught.value.setting == "label_scale"


def test_the_scale_round_trips_as_a_dict():
    scale = _read([-3, 3, 0]).scale
    assert LabelScale.from_dict(scale.to_dict()) == scale
    assert (scale.tie, scale.level, scale.span, scale.graded) == (0, "ordinal", 6.0, True)
    assert _read(["A>>B", "B>A", "A=B"]).scale.span == _read(["A>>B", "B>A"]).scale.span == 4.0


# --- real-shaped tables through the loader ---------------------------------------------------------


def test_a_helpsteer3_style_long_table_is_read_on_its_graded_scale(tmp_path):
    """-3..3 (HelpSteer3's overall preference): read row by row, its 1s and 2s loaded as A and B
    and the rest were rejected; now every value is read and one off the scale is rejected."""
    rows = long_table(KRIPPENDORFF_2011, shift=-3) + [
        {**long_table([[1]])[0], "pair_id": "x", "annotator": "coder_A", "label": 5}
    ]
    data = load(str(write_lines(tmp_path / "helpsteer.jsonl", rows)), label_scale="-3..3")
    report = data.report
    assert (report.rows_read, report.rows_accepted, report.pairs) == (42, 41, 12)
    assert _reasons(data) == {(42, "label"): "5 is not on this column's label scale -3..3"}
    (entry,) = report.label_scales
    assert entry["scale"]["spec"] == "-3..3" and entry["how"] == "declared"
    assert entry["scale"]["direction"].startswith("-3 favours A (the first response), 3 favours B")
    counts = {"-3": 0, "-2": 9, "-1": 13, "0": 11, "1": 5, "2": 3, "3": 0}  # unused ends too
    assert list(entry["counts"].items()) == list(counts.items())
    assert any(n.startswith("label column 'label'") and "-3..3" in n for n in report.notes)
    # P(chosen better) per rating: unit 1's three raters said -2 (A clearly better) -> 5/6.
    unit = data.annotations[data.annotations["pair_id"] == "u1"]
    assert unit["value"].tolist() == pytest.approx([5 / 6] * 3)
    assert unit["raw_label"].tolist() == ["-2"] * 3
    # Identified, not declared: the ends seen are -2..2; the same values, the same pairs.
    found = load(str(write_lines(tmp_path / "seen.jsonl", rows[:-1])))
    assert found.report.label_scales[0]["scale"]["spec"] == "-2..2"
    assert found.pairs["chosen"].tolist() == data.pairs["chosen"].tolist()


def test_a_seven_point_likert_csv_with_missing_ratings(tmp_path):
    rows = long_table(KRIPPENDORFF_2011, shift=2)  # 3..7: a 1..7 scale whose 1 and 2 went unused
    rows[3]["label"] = ""  # a rating left empty
    rows[7]["label"] = None
    path = tmp_path / "likert.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = load(str(path), label_scale="1..7")
    assert _reasons(data) == {
        (5, "label"): "is empty (no preference recorded)",
        (9, "label"): "is empty (no preference recorded)",  # CSV writes None as empty
    }
    scale = data.report.label_scales[0]["scale"]
    assert (scale["kind"], scale["tie"], scale["level"]) == ("likert", 4, "ordinal")
    ties = data.annotations[data.annotations["raw_label"] == "4"]
    assert set(ties["label"]) == {"tie"} and (ties["value"] == 0.5).all()
    # Identified instead: 3..7 is not a scale that starts at 1, so it is read as 1..7 all the same.
    assert load(str(path)).report.label_scales[0]["scale"]["spec"] == "1..7"


def test_an_arena_style_table_keeps_its_two_kinds_of_tie(tmp_path):
    rows = [
        {
            "prompt": f"Q{i}",
            "response_a": "A",
            "response_b": "B",
            "model_a": "m1",
            "model_b": "m2",
            "winner": w,
        }
        for i, w in enumerate(["model_a", "model_b", "tie", "tie (bothbad)", "model_b", "both"])
    ]
    data = load(str(write_lines(tmp_path / "arena.jsonl", rows)))
    assert data.report.shape == "side_by_side"
    (entry,) = data.report.label_scales
    assert (entry["scale"]["kind"], entry["column"]) == ("choice_tie", "winner")
    assert entry["counts"] == {"model_a": 1, "tie": 1, "tie (bothbad)": 1, "model_b": 2}
    assert _reasons(data)[(6, "label")].startswith("unknown label 'both'")
    assert data.pairs["tie"].tolist() == [False, False, True, True, False]
    assert data.pairs["model_chosen"].tolist() == ["m1", "m2", "m1", "m1", "m2"]


def test_a_side_by_side_column_of_graded_strings(tmp_path):
    labels = ["A>>B", "A>B", "A=B", "B>A", "B>>A"]
    rows = [
        {"prompt": f"Q{i}", "response_a": "A", "response_b": "B", "label": v}
        for i, v in enumerate(labels)
    ]
    data = load(str(write_lines(tmp_path / "sbs.jsonl", rows)))
    assert data.report.label_scales[0]["scale"]["values"] == labels
    assert data.pairs["chosen_position"].tolist() == ["a", "a", "a", "b", "b"]
    assert data.pairs["tie"].tolist() == [False, False, True, False, False]


def test_an_annotations_file_with_a_graded_column(tmp_path):
    pairs = write_lines(
        tmp_path / "pairs.jsonl",
        [{"id": f"p{i}", "prompt": "Q", "chosen": f"c{i}", "rejected": "r"} for i in range(3)],
    )
    notes = write_lines(
        tmp_path / "notes.jsonl",
        [
            {"pair_id": "p0", "annotator": "r1", "label": -3},
            {"pair_id": "p0", "annotator": "r2", "label": 1},
            {"pair_id": "p1", "annotator": "r1", "label": 0},
            {"pair_id": "p2", "annotator": "r1", "label": 7},  # a typo, off the scale
            {"pair_id": "p2", "annotator": "r2", "label": "chosen"},  # a plain word: the chosen end
        ]
        + [{"pair_id": "p1", "annotator": f"r{i}", "label": i % 7 - 3} for i in range(3, 200)],
    )
    data = load(str(pairs), annotations=str(notes))
    entry = data.report.label_scales[0]
    assert entry["scale"]["spec"] == "-3..3" and entry["annotations"]
    assert entry["scale"]["direction"].startswith("-3 favours chosen, 3 favours rejected")
    assert data.report.annotation_rows_rejected == 1
    assert data.annotations["value"].tolist()[:4] == pytest.approx([1, 1 / 3, 0.5, 1])


def test_a_declared_scale_enters_the_fingerprint(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", long_table(KRIPPENDORFF_2011))
    plain, declared = load(str(path)), load(str(path), label_scale="1..5")
    assert plain.report.label_scales[0]["scale"] == declared.report.label_scales[0]["scale"]
    assert plain.report.fingerprint != declared.report.fingerprint
    assert load(str(path), label_scale="1..5").report.fingerprint == declared.report.fingerprint


def test_a_bad_declaration_fails_before_the_data_is_read(tmp_path, capsys):
    with pytest.raises(SettingError) as caught:
        load(str(tmp_path / "absent.jsonl"), label_scale="1..1")
    assert caught.value.setting == "label_scale"
    path = write_lines(tmp_path / "t.jsonl", long_table(KRIPPENDORFF_2011))
    code = main(["audit", str(path), "--label-scale", "seven", "--out", str(tmp_path / "o")])
    assert code == 2 and "label_scale 'seven'" in capsys.readouterr().err


def test_the_cli_and_a_rule_file_declare_the_scale(tmp_path, capsys):
    path = write_lines(tmp_path / "t.jsonl", long_table(KRIPPENDORFF_2011, shift=-3))
    out = tmp_path / "out"
    assert (
        main(
            [
                "audit",
                str(path),
                "--label-scale=-3..3",
                "--validators",
                "agreement",
                "--no-report",
                "--embedding-model",
                "off",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    audit = json.loads((out / "audit.json").read_text())
    assert audit["load"]["label_scales"][0]["scale"]["spec"] == "-3..3"
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nload:\n  label_scale: 1..7\nmetrics: {}\n")
    import prefaudit

    done = prefaudit.check(str(path), str(rules), validators=["agreement"], embedding_model="off")
    assert done.audit.data.report.label_scales[0]["scale"]["spec"] == "1..7"
    # The option overrides the file.
    done = prefaudit.check(
        str(path), str(rules), validators=["agreement"], embedding_model="off", label_scale="-3..3"
    )
    assert done.audit.data.report.label_scales[0]["scale"]["spec"] == "-3..3"
    rules.write_text("version: 1\nload:\n  label_scale: seven\n")
    with pytest.raises(
        prefaudit.errors.InputError, match=r"rules.yaml, line 3: label_scale 'seven'"
    ):
        prefaudit.check(str(path), str(rules))


def test_a_policy_files_load_section_declares_the_scale_for_clean(tmp_path):
    import prefaudit

    path = write_lines(tmp_path / "t.jsonl", long_table(KRIPPENDORFF_2011))
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nload: {label_scale: '1..7'}\nclean:\n  min_strength: 0.2\n")
    done = prefaudit.clean(str(path), str(policy), validators=["agreement"], embedding_model="off")
    assert done.audit.data.report.label_scales[0]["scale"]["spec"] == "1..7"
    # On 1..7 the tie is 4: unit 7 (every coder said 4) is the near-tie; on 1..5 (read from the
    # values) it is 3: units 3, 4 and 12.
    assert done.quarantine["pair_id"].tolist() == ["u7"]
    found = prefaudit.clean(str(path), {"min_strength": 0.2}, validators=["agreement"])
    assert sorted(found.quarantine["pair_id"]) == ["u12", "u3", "u4"]


def test_binary_labels_load_exactly_as_before(tmp_path):
    base = {"instruction": "Q", "output_1": "A", "output_2": "B"}
    rows = [
        {**base, "annotator": f"r{i}", "preference": v} for i, v in enumerate([1, 2, 2, 1.5, 0])
    ]
    data = load(str(write_lines(tmp_path / "ab.jsonl", rows)))
    assert data.annotations["value"].tolist() == [0.0, 1.0, 1.0, 0.5]
    assert _reasons(data) == {(5, "label"): "0 is not on this column's label scale 1..2"}
    assert data.report.label_scales[0]["scale"]["kind"] == "choice_tie"


def test_a_pair_whose_first_row_is_off_the_scale_is_the_pair_its_kept_rows_make(tmp_path):
    """The label column is read after the rows are grouped: a pair is still taken as its first
    kept row shows it (order, models, line), as when a bad label was rejected on sight."""
    ab = {"instruction": "Q", "output_1": "A", "output_2": "B", "generator_1": "m1"}
    ba = {"instruction": "Q", "output_1": "B", "output_2": "A", "generator_2": "m1"}
    kept = [{**ab, "annotator": "j2", "preference": 1}, {**ba, "annotator": "j3", "preference": 2}]
    other = [{**ab, "instruction": f"Q{i}", "annotator": "j1", "preference": 2} for i in range(3)]
    rows = [{**ba, "annotator": "j1", "preference": 0}, *kept, *other]
    data = load(str(write_lines(tmp_path / "t.jsonl", rows)))
    alone = load(str(write_lines(tmp_path / "alone.jsonl", [*kept, *other])))
    assert _reasons(data) == {(1, "label"): "0 is not on this column's label scale 1..2"}
    columns = ["prompt", "chosen", "rejected", "chosen_position", "model_chosen"]
    assert data.pairs[columns].equals(alone.pairs[columns])
    assert data.pairs["row"].tolist() == [2, 4, 5, 6]  # the first kept row's line
    assert data.report.rejected_records()[0]["record"]["generator_2"] == "m1"


def test_a_frame_of_labels_is_read_the_same_way():
    frame = pd.DataFrame(long_table(KRIPPENDORFF_2011, shift=-3))
    data = load(frame)
    assert data.report.label_scales[0]["scale"]["spec"] == "-2..2"
    assert len(data.annotations) == 41 and not data.report.rejected
