"""Which pairs go to review, and the evidence each carries."""

from __future__ import annotations

import pandas as pd
import pytest

from prefaudit.errors import SettingError
from prefaudit.outputs import read_audit, read_flagged_texts, texts_key
from prefaudit.review.items import review_items, select_pairs
from tests.review.conftest import FLAGGED


def test_every_flagged_pair_is_selected_in_file_order(audited):
    flags = read_audit(audited.folder).flags
    assert select_pairs(flags) == (FLAGGED, "flagged by a check")
    assert select_pairs(flags, "duplication")[0] == ["same", "dup-b", "formula"]


def test_a_checks_top_suspects_come_most_suspect_first_flagged_or_not(audited):
    flags = read_audit(audited.folder).flags
    ids, how = select_pairs(flags, "content", top=4)
    scores = flags.loc[ids, "content/score"].tolist()
    assert ids[:3] == ["same", "empty", "formula"] and how == "the top 4 by content's score"
    assert scores == sorted(scores, reverse=True) and not flags.at[ids[3], "content/issue"]
    assert select_pairs(flags, top=1)[0] == ["same"]  # a pair's highest score of any check


@pytest.mark.parametrize(
    ("validator", "top", "setting"),
    [("agreement", None, "validator"), (None, 0, "top"), ("content", True, "top")],
)
def test_an_unknown_check_or_a_bad_count_is_refused_naming_the_setting(
    audited, validator, top, setting
):
    flags = read_audit(audited.folder).flags
    with pytest.raises(SettingError) as err:
        select_pairs(flags, validator, top)
    assert err.value.setting == setting
    if setting == "validator":
        assert "it has content, duplication" in str(err.value)


def test_the_evidence_names_the_checks_their_scores_and_reasons_and_the_partners(audited):
    flags = read_audit(audited.folder).flags
    texts = read_flagged_texts(audited.folder)
    (item,) = review_items(flags, texts, ["dup-b"])
    assert (item.prompt, item.chosen, item.rejected, item.line) == (
        "Capital of France?",
        "Paris.",
        "Lyon.",
        5,
    )
    assert item.texts == texts_key("Capital of France?", "Paris.", "Lyon.")
    assert item.flagged_by == ["duplication"] and item.scores == {
        "content": 0.0,
        "duplication": 1.0,
    }
    assert item.partners == ["dup-a (duplicate)"]
    assert item.evidence_text() == (
        "flagged by: duplication\n"
        "duplication (1.00): exact copy of pair dup-a after normalisation\n"
        "partners: dup-a (duplicate)"
    )


def test_the_raters_votes_and_contradicting_pairs_are_part_of_the_evidence():
    ids = ["a", "b", "c"]
    flags = pd.DataFrame(
        {
            "agreement/score": [0.9, 0.1, 0.0],
            "agreement/issue": [True, False, False],
            "agreement/reason": [
                "the raters prefer the rejected response (1 chosen, 2 rejected)",
                "",
                "",
            ],
            "agreement/raters": [3, 1, 0],
            "agreement/majority_label": ["rejected", "chosen", ""],
            "agreement/agreement": [2 / 3, 1.0, float("nan")],
            "duplication/contradiction_group": ["a", "a", ""],
            "any_issue": [True, False, False],
        },
        index=ids,
    )
    texts = pd.DataFrame({"prompt": ["q"] * 3, "chosen": ["x"] * 3, "rejected": ["y"] * 3}, ids)
    a, b, c = review_items(flags, texts, ids)
    assert (a.raters, b.raters, c.raters) == (
        "3 raters; 2 say rejected",
        "1 rater; 1 say chosen",
        "",
    )
    assert (a.partners, b.partners, c.partners) == (
        ["b (contradiction)"],
        ["a (contradiction)"],
        [],
    )
    assert "raters: 3 raters; 2 say rejected" in a.evidence_text()
    assert b.evidence_text().startswith("flagged by: no check (a top suspect by score)")
