"""The ratings layout: per-response ratings (long rows, UltraFeedback's nested completions)
binarised into pairs, every rating row accounted for, and the raters' interval alpha."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from prefaudit.cli import main
from prefaudit.io import LoadError, load
from prefaudit.io.ratings import Binarize, binarized, rater_agreement

ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")


def _completion(response, model, ratings, overall):
    """One completion as openbmb/UltraFeedback writes it: ratings are strings, "N/A" allowed."""
    annotations = {
        aspect: {"Rating": rating, "Rationale": f"{aspect} rationale"}
        for aspect, rating in zip(ASPECTS, ratings, strict=True)
    }
    annotations["truthfulness"]["Type"] = ["0"]
    return {
        "custom_system_prompt": "",
        "model": model,
        "principle": "helpfulness",
        "response": response,
        "annotations": annotations,
        "critique": "fine",
        "overall_score": overall,
        "fine-grained_score": None,
    }


def _ultrafeedback(tmp_path):
    records = [
        {
            "source": "evol_instruct",
            "instruction": "What is the capital of France?",
            "models": ["gpt-4", "llama-2-7b-chat", "alpaca-7b", "falcon-40b-instruct"],
            "completions": [
                _completion("Paris.", "gpt-4", ["5", "5", "5", "5"], 9.0),
                _completion("Lyon.", "llama-2-7b-chat", ["1", "2", "1", "N/A"], 2.0),
                _completion("Paris, France.", "alpaca-7b", ["4", "5", "4", "4"], 9.0),
                _completion("Nice.", "falcon-40b-instruct", ["2", "2", "2", "2"], 3.5),
            ],
            "correct_answers": ["Paris"],
            "incorrect_answers": ["Lyon"],
        },
        {  # every completion rated the same: no pair
            "source": "sharegpt",
            "instruction": "Say hi.",
            "models": ["gpt-4", "alpaca-7b", "ultralm-13b", "wizardlm-7b"],
            "completions": [
                _completion(text, m, ["3", "3", "3", "3"], 6.0)
                for text, m in zip(
                    ("hi", "hello", "hey", "greetings"),
                    ("gpt-4", "alpaca-7b", "ultralm-13b", "wizardlm-7b"),
                    strict=True,
                )
            ],
        },
        {  # one completion, and a bad rating in another
            "source": "flan",
            "instruction": "Name a colour.",
            "models": ["gpt-4", "alpaca-7b"],
            "completions": [
                _completion("Blue.", "gpt-4", ["4", "4", "4", "4"], 8.0),
                _completion("Bleu.", "alpaca-7b", ["4", "four", "4", "4"], 7.0),
            ],
        },
    ]
    path = tmp_path / "ultrafeedback.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_ultrafeedback_nested_records_become_best_worst_pairs(tmp_path):
    data = load(str(_ultrafeedback(tmp_path)))
    report = data.report
    assert report.shape == "ratings"
    # 4 + 4 + 2 completions are the rating rows; the one with "four" is rejected with its line.
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (10, 9, 1)
    (issue,) = report.rejected
    assert (issue.line, issue.field) == (3, "completions[1].annotations.honesty")
    assert "must be a number, got 'four'" in issue.reason
    pair = data.pairs.iloc[0]
    assert len(data.pairs) == 1
    assert (pair["prompt"], pair["chosen"], pair["rejected"]) == (
        "What is the capital of France?",
        "Paris.",
        "Lyon.",
    )
    # Lyon's N/A truthfulness is left out of its mean, not read as 0.
    assert pair["score_chosen"] == 5.0
    assert pair["score_rejected"] == pytest.approx(4 / 3)
    assert pair["score_gap"] == pytest.approx(5 - 4 / 3)
    assert (pair["model_chosen"], pair["model_rejected"]) == ("gpt-4", "llama-2-7b-chat")
    ratings = report.ratings
    assert ratings["prompts"] == 3
    assert ratings["prompts_without_pair"] == {"one response": 1, "all tied": 1}
    assert ratings["not_available_aspects"] == 1
    assert ratings["ratings_in_pairs"] == 2
    assert report.rating_agreement is None  # one rater (GPT-4)
    assert "2 prompts gave no pair (one response: 1, all tied: 1)" in report.notes[-1]


def test_ultrafeedback_overall_score_and_one_aspect(tmp_path):
    path = str(_ultrafeedback(tmp_path))
    overall = load(path, rating_score="overall_score").pairs
    # Paris. and Paris, France. tie at 9.0: the first in input order is the best.
    assert overall[["chosen", "rejected", "score_gap"]].values.tolist() == [
        ["Paris.", "Lyon.", 7.0],
        ["Blue.", "Bleu.", 1.0],  # "four" is an honesty rating: overall_score is read
    ]
    honesty = load(path, rating_score="honesty")
    assert honesty.report.rows_rejected == 1  # honesty "four"
    assert honesty.pairs["chosen"].tolist() == ["Paris."]


HELPSTEER_HEADER = ["prompt", "response", "annotator", "helpfulness", "correctness"]
HELPSTEER_ROWS = [
    # prompt 1: three responses, two raters each
    ["Explain DNS.", "DNS maps names to addresses.", "r1", "4", "4"],
    ["Explain DNS.", "DNS maps names to addresses.", "r2", "3", "4"],
    ["Explain DNS.", "It is a network thing.", "r1", "1", "2"],
    ["Explain DNS.", "It is a network thing.", "r2", "2", "2"],
    ["Explain DNS.", "DNS resolves hostnames via resolvers.", "r1", "3", "3"],
    ["Explain DNS.", "DNS resolves hostnames via resolvers.", "r2", "3", "3"],
    # prompt 2: tied after the raters' mean (3.5 and 3.5)
    ["Write a haiku.", "Leaves fall slowly down.", "r1", "4", "4"],
    ["Write a haiku.", "Leaves fall slowly down.", "r2", "3", "4"],
    ["Write a haiku.", "Autumn wind whispers.", "r1", "3", "4"],
    ["Write a haiku.", "Autumn wind whispers.", "r2", "4", "4"],
    # prompt 3: one response
    ["Add 2 and 2.", "4", "r1", "4", "4"],
    ["Add 2 and 2.", "4", "r2", "4", "4"],
    # bad rows: a score that is not a number, a missing response
    ["Add 3 and 3.", "6", "r1", "high", "4"],
    ["Add 3 and 3.", "", "r2", "4", "4"],
]


def _helpsteer(tmp_path, rows=HELPSTEER_ROWS):
    path = tmp_path / "helpsteer.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HELPSTEER_HEADER)
        writer.writerows(rows)
    return path


def test_helpsteer_long_rows_with_two_raters(tmp_path):
    data = load(str(_helpsteer(tmp_path)), format="ratings", rating_score="helpfulness")
    report = data.report
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (14, 13, 1)
    rejected = [(i.line, i.field, i.reason) for i in report.rejected]
    # CSV lines count the header: the 13th data row is line 14.
    assert rejected == [(14, "helpfulness", "must be a number, got 'high'")]
    assert data.pairs[["chosen", "rejected", "score_chosen", "score_rejected"]].values.tolist() == [
        ["DNS maps names to addresses.", "It is a network thing.", 3.5, 1.5]
    ]
    ratings = report.ratings
    # An empty response is kept, as empty texts are everywhere (a warning if it makes a
    # pair); here it is its prompt's only response.
    assert ratings["prompts"] == 4
    assert ratings["prompts_without_pair"] == {"one response": 2, "all tied": 1}
    assert ratings["responses"] == 7
    assert ratings["ratings_in_pairs"] == 4
    agreement = report.rating_agreement
    assert agreement["raters"] == 2 and agreement["responses_with_two_or_more_raters"] == 6
    assert agreement["ci_low"] <= agreement["alpha"] <= agreement["ci_high"]


def test_missing_response_and_non_numeric_score_are_rejected_with_line(tmp_path):
    rows = [
        {"prompt": "p", "response": "a", "score": 3},
        {"prompt": "p", "score": 2},
        {"prompt": "p", "response": "c", "score": "N/A"},
        {"prompt": "p", "response": "d", "score": True},
        {"prompt": "p", "response": "e", "score": 1},
    ]
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load(str(path))
    assert data.report.shape == "ratings"
    assert [(i.line, i.field, i.reason) for i in data.report.rejected] == [
        (2, "response", "missing"),
        (3, "score", "is N/A: no score"),
        (4, "score", "must be a number, got true/false"),
    ]
    assert data.report.summary() == (
        "5 rows read, 2 accepted, 3 rejected -> 1 pairs from ratings of 1 prompts"
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("best-worst", [("a", "d", 4.0)]),
        ("all-gap:2", [("a", "c", 2.0), ("a", "e", 2.0), ("a", "d", 4.0), ("b", "d", 3.0),
                       ("c", "d", 2.0), ("e", "d", 2.0)]),
        ("all-gap:0", [("a", "b", 1.0), ("a", "c", 2.0), ("a", "e", 2.0), ("a", "d", 4.0),
                       ("b", "c", 1.0), ("b", "e", 1.0), ("b", "d", 3.0), ("c", "d", 2.0),
                       ("e", "d", 2.0)]),
    ],
)  # fmt: skip
def test_each_binarisation_policy(tmp_path, policy, expected):
    scores = {"a": 5, "b": 4, "c": 3, "d": 1, "e": 3}  # e ties c: never a pair of the two
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps({"prompt": "p", "response": r, "score": s}) + "\n"
                            for r, s in scores.items()))  # fmt: skip
    pairs = load(str(path), binarize=policy).pairs
    made = list(zip(pairs["chosen"], pairs["rejected"], pairs["score_gap"], strict=True))
    assert sorted(made) == sorted(expected)
    assert (pairs["score_gap"] > 0).all()


def test_best_random_is_seeded_by_the_prompt():
    scores = [5.0, 1.0, 2.0, 3.0, 4.0]
    drawn = {binarized(f"prompt {n}", scores, Binarize("best-random"))[0][0] for n in range(40)}
    assert {high for high, _ in drawn} == {0}
    assert {low for _, low in drawn} == {1, 2, 3, 4}  # each lower response drawn for some prompt
    again = binarized("prompt 7", scores, Binarize("best-random"))
    assert again == binarized("prompt 7", scores, Binarize("best-random"))
    assert binarized("p", [2.0, 2.0, 2.0], Binarize("best-random")) == ([], "all tied")


def test_the_fingerprint_changes_with_the_policy_and_the_score(tmp_path):
    path = str(_ultrafeedback(tmp_path))
    prints = {
        load(path, binarize=b, rating_score=s).report.fingerprint
        for b in ("best-worst", "best-random", "all-gap:1")
        for s in ("mean", "overall_score")
    }
    assert len(prints) == 6
    flat = tmp_path / "flat.jsonl"
    flat.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    assert (
        load(str(flat)).report.fingerprint
        == load(str(flat), binarize="all-gap:2").report.fingerprint
    )


@pytest.mark.parametrize(
    ("options", "setting"),
    [({"binarize": "best-median"}, "binarize"), ({"binarize": "all-gap:-1"}, "binarize"),
     ({"rating_score": "mean:"}, "rating_score")],
)  # fmt: skip
def test_bad_settings_name_the_setting(tmp_path, options, setting):
    with pytest.raises(LoadError) as err:
        load(str(_ultrafeedback(tmp_path)), **options)
    assert err.value.setting == setting


def test_a_long_table_without_a_score_column_says_what_to_map(tmp_path):
    with pytest.raises(LoadError, match="no score column"):
        load(str(_helpsteer(tmp_path)), format="ratings")


def test_interval_alpha_equals_the_krippendorff_package():
    krippendorff = pytest.importorskip("krippendorff")
    # 3 raters x 6 responses, one missing; a rater's repeated score is averaged first.
    table = [
        [4.0, 1.0, 3.0, 3.5, 4.0, np.nan],
        [3.0, 2.0, 3.0, 3.0, 4.0, 1.0],
        [4.0, 1.0, 2.0, 4.0, 3.0, 2.0],
    ]
    responses = [["p", f"r{u}", None, 1, []] for u in range(6)]
    for rater, row in enumerate(table):
        for unit, score in enumerate(row):
            if not np.isnan(score):
                responses[unit][4].append((f"rater{rater}", score))
    responses[0][4].append(("rater0", 4.0))  # the same score again: still 4.0 for rater0
    expected = krippendorff.alpha(reliability_data=table, level_of_measurement="interval")
    agreement = rater_agreement(responses)
    assert agreement["alpha"] == pytest.approx(expected, abs=1e-9)
    assert agreement["ratings"] == 17
    assert agreement["ci_low"] < agreement["alpha"] < agreement["ci_high"]


def test_cli_audit_of_a_ratings_file(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "audit",
            str(_ultrafeedback(tmp_path)),
            "--format",
            "ratings",
            "--binarize",
            "all-gap:1",
            "--validators",
            "content",
            "--embedding-model",
            "off",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr()
    load_report = json.loads((out / "audit.json").read_text())["load"]
    assert load_report["rows_read"] == load_report["rows_accepted"] + load_report["rows_rejected"]
    ratings = load_report["ratings"]
    assert ratings["binarize"] == "all-gap:1"
    assert ratings["ratings_read"] == load_report["rows_read"] == 10
    assert ratings["pairs"] == load_report["pairs"] == 4
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [
        (3, "completions[1].annotations.honesty")
    ]
    assert rejected[0]["record"]["completions"][0]["response"] == "Bleu."


def test_the_docs_long_form_example_loads_as_the_page_says(tmp_path):
    page = (Path(__file__).parents[2] / "docs" / "input-formats.md").read_text()
    section = page.split("## Per-response ratings\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```jsonl\n(.*?)^```", section, flags=re.S | re.M)
    path = tmp_path / "helpsteer.jsonl"
    path.write_text(block)
    for forced in ("ratings", None):
        if forced is None:  # detected: the long form needs a score column for that
            path.write_text(block.replace('"helpfulness"', '"score"'))
        data = load(str(path), format=forced, rating_score="helpfulness" if forced else "mean")
        assert data.report.shape == "ratings" and data.report.rows_rejected == 0
        pair = data.pairs.iloc[0]
        assert (pair["chosen"], pair["score_chosen"]) == ("DNS maps names to addresses.", 3.5)
        assert (pair["rejected"], pair["score_rejected"]) == ("It is a network thing.", 1.5)


def test_cleaned_pairs_keep_their_scores_and_models_through_a_flip():
    import pandas as pd

    from prefaudit.cleaning import CleaningPolicy, clean

    pairs = pd.DataFrame(
        {
            "prompt": ["Capital of France?", "Capital of Spain?"],
            "chosen": ["Paris.", "Madrid."],
            "rejected": ["Lyon.", "Seville."],
            "score_chosen": [4.5, 4.0],
            "score_rejected": [2.0, 3.5],
            "score_gap": [2.5, 0.5],
            "model_chosen": ["m1", "m2"],
            "model_rejected": ["m3", "m4"],
        },
        index=pd.Index(["a", "b"], name="pair_id"),
    )
    pairs.insert(0, "pair_id", ["a", "b"])
    flags = pd.DataFrame(
        {"label_noise/flip_score": [0.1, 0.99], "label_noise/noise_score": [0.1, 0.99]},
        index=pairs.index,
    )
    done = clean(pairs, flags, CleaningPolicy(dedupe=False, flip_min_noise=0.9))
    rows = {row["pair_id"]: row for row in done.cleaned}
    assert (rows["a"]["score_chosen"], rows["a"]["score_gap"], rows["a"]["model_chosen"]) == (
        4.5,
        2.5,
        "m1",
    )
    assert [flip["pair_id"] for flip in done.flips] == ["b"]
    # Pair b flipped: each score and model stays with its response.
    assert rows["b"]["chosen"] == "Seville."
    assert (rows["b"]["score_chosen"], rows["b"]["score_rejected"]) == (3.5, 4.0)
    assert (rows["b"]["score_gap"], rows["b"]["model_chosen"]) == (-0.5, "m4")
