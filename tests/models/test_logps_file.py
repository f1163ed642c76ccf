"""TRL's reference columns for cleaned rows (``with_trl_columns``): all or nothing, flips
swapped, and one reason per cause when they are left out. No model: the reference pass's flags
are written by hand."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from prefaudit.models.logps_file import TRL_COLUMNS, with_trl_columns


def _reference(**changes) -> SimpleNamespace:
    """The reference validator's result for pairs p0..p3, all scored the way TRL tokenises
    them, with ``changes`` as {column: {pair_id: value}}."""
    flags = pd.DataFrame(
        {
            "scored": True,
            "truncated": False,
            "boundary_mismatch": False,
            "layout_mismatch": False,
            "chosen_logps": [-1.0, -2.0, -3.0, -4.0],
            "rejected_logps": [-10.0, -20.0, -30.0, -40.0],
            "prompt_tokens": [5, 6, 7, 8],
            "chosen_tokens": [3, 3, 3, 30],
            "rejected_tokens": [4, 4, 4, 4],
        },
        index=[f"p{i}" for i in range(4)],
    )
    for column, values in changes.items():
        for pair_id, value in values.items():
            flags.loc[pair_id, column] = value
    info = {"model": "org/model", "model_identity": "org/model|float32", "sampled": False}
    return SimpleNamespace(flags=flags, info=info, params={"sample": None, "max_length": 2048})


def _rows(*ids: str) -> list[dict]:
    return [{"pair_id": i, "prompt": "q", "chosen": "c", "rejected": "r"} for i in ids]


def test_every_row_gets_its_pairs_values_and_a_flipped_pair_has_them_swapped():
    rows, status = with_trl_columns(_rows("p0", "p1", "p3"), _reference(), flipped={"p1"})
    assert [(r["ref_chosen_logps"], r["ref_rejected_logps"]) for r in rows] == [
        (-1.0, -10.0),
        (-20.0, -2.0),
        (-4.0, -40.0),
    ]
    assert status == {
        "written": True,
        "columns": list(TRL_COLUMNS),
        "model": "org/model",
        "model_identity": "org/model|float32",
        "longest_pair_tokens": 38,  # p3: 8 prompt + 30 chosen tokens
    }


@pytest.mark.parametrize(
    "changes, reason",
    [
        (
            {"scored": {"p1": False}, "truncated": {"p1": True}},
            "1 of the 3 cleaned pairs was longer than --max-length 2048 tokens",
        ),
        (
            {"scored": {"p0": False, "p2": False}},
            "2 of the 3 cleaned pairs were not scored (no prompt)",
        ),
        (
            {"boundary_mismatch": {"p2": True}},
            "1 of the 3 cleaned pairs was tokenised otherwise by TRL where prompt and response meet",
        ),
        (
            {"layout_mismatch": {"p0": True, "p1": True, "p2": True}},
            "3 of the 3 cleaned pairs were laid out otherwise by TRL (a chat template that ends "
            "the assistant turn with more than the EOS token, or none; or a response ending in "
            "the EOS text)",
        ),
    ],
    ids=["too long", "not scored", "boundary", "layout"],
)
def test_one_pair_that_trl_would_score_otherwise_leaves_the_columns_out_of_every_row(
    changes, reason
):
    given = _rows("p0", "p1", "p2")
    rows, status = with_trl_columns(given, _reference(**changes), flipped=set())
    assert rows == given
    assert status == {"written": False, "reason": reason}


def test_pairs_left_out_of_a_sample_name_the_sample_and_only_cleaned_pairs_count():
    reference = _reference(scored={"p2": False, "p3": False})
    reference.info["sampled"] = True
    reference.params["sample"] = 2
    _, status = with_trl_columns(_rows("p0", "p1", "p2"), reference, flipped=set())
    assert status["reason"] == "1 of the 3 cleaned pairs was not scored (--ref-sample 2)"
    # The unscored pairs were all quarantined: the cleaned ones carry the columns.
    rows, status = with_trl_columns(_rows("p0", "p1"), reference, flipped=set())
    assert status["written"] and all(np.isfinite(r["ref_chosen_logps"]) for r in rows)


def test_no_reference_pass_or_an_older_audit_says_so():
    given = _rows("p0")
    assert with_trl_columns(given, None, flipped=set()) == (
        given,
        {"written": False, "reason": "the audit ran no reference model (--ref-model)"},
    )
    older = _reference()
    older.flags = older.flags.drop(columns=["layout_mismatch"])
    _, status = with_trl_columns(given, older, flipped=set())
    assert status["reason"] == "the audit predates the check of TRL's tokenisation: audit again"
