import math

import numpy as np
import pytest

from prefaudit.auditing import AuditContext
from prefaudit.validators import ContentValidator
from tests.helpers import pairs_frame

GOOD = "Boil the eggs for seven minutes, then cool them in cold water."
BAD = "Just look it up."
NORMAL = [(f"Question {i}?", GOOD + f" Tip {i}.", BAD) for i in range(10)]


def _run(rows, validator=None, **columns):
    pairs = pairs_frame(rows, **columns)
    return (validator or ContentValidator()).run(AuditContext(pairs))


def _mask(result, column="issue"):
    return result.flags[column].tolist()


def _with(index, row):
    rows = list(NORMAL)
    rows[index] = row
    return rows


def test_clean_data_has_no_issue():
    result = _run(NORMAL)
    assert not any(_mask(result))
    assert (result.flags["score"] <= 0.2).all()
    assert result.metrics["content/identical_pairs"] == 0


def test_identical_after_normalisation():
    result = _run(_with(3, ("Q?", "Hello,   World!!!", "hello, world!")))
    assert _mask(result, "identical") == [i == 3 for i in range(10)]
    assert _mask(result) == [i == 3 for i in range(10)]
    assert result.flags["score"].iloc[3] == 1.0
    assert result.flags["reason"].iloc[3] == "chosen and rejected are identical after normalisation"
    assert result.metrics["content/identical_pairs"] == 1


def test_different_punctuation_is_not_identical():
    assert not any(_mask(_run(_with(3, ("Q?", "Hello. World.", "Hello! World!"))), "identical"))


@pytest.mark.parametrize("blank", ["", "   \n"])
def test_empty_response(blank):
    result = _run(_with(4, ("Q?", GOOD, blank)))
    assert _mask(result, "empty_response") == [i == 4 for i in range(10)]
    assert result.flags["reason"].iloc[4] == "rejected is empty"
    assert result.metrics["content/empty_responses"] == 1


def test_response_ending_on_a_connector_is_truncated():
    cut = "You should first preheat the oven and then carefully mix the flour and"
    result = _run(_with(2, ("Q?", cut, BAD)))
    assert _mask(result, "truncated") == [i == 2 for i in range(10)]
    assert result.flags["reason"].iloc[2] == "chosen ends mid-sentence ('...ly mix the flour and')"


@pytest.mark.parametrize(
    "complete",
    [
        "Here is the fix for your loop:\n    total = total + price * quantity;",
        "Call it like this: console.log(format(date, 'yyyy'));",
        "The C function ends when it reaches the final return 0;",
        "You will find the full reference at https://docs.python.org/3/library/",
        "Copy the binary into the folder /usr/local/bin/ or ~/bin/",
    ],
)
def test_complete_code_and_urls_are_not_called_truncated(complete):
    """13 of 28 "ends mid-sentence" flags on 3,000 AlpacaEval pairs were code ending in ';'
    or a URL ending in '/'."""
    result = _run(_with(2, ("Q?", complete, BAD)))
    assert not any(_mask(result, "truncated")), result.flags["reason"].iloc[2]


def test_only_a_bad_chosen_response_spoils_the_pair():
    """An empty, one-character or cut-off *rejected* response against a good chosen one is a
    valid, easy DPO pair; the same as the chosen one is not."""
    cut = "You should first preheat the oven and then carefully mix the flour and"
    rows = [*NORMAL[:4], ("Q?", GOOD, ""), ("Q?", GOOD, "k"), ("Q?", GOOD, cut), ("Q?", "", BAD)]
    rows += [("Q?", cut, BAD), ("Q?", GOOD, GOOD)]
    result = _run(rows)
    assert _mask(result) == [False] * 4 + [True] * 6
    assert _mask(result, "bad_chosen") == [False] * 7 + [True, True, False]
    assert _mask(result, "identical") == [False] * 9 + [True]


def test_short_reply_ending_on_a_connector_is_not_called_truncated():
    assert not any(_mask(_run(_with(2, ("Q?", "Yes, and", BAD)))))


def test_many_responses_stopping_at_one_length_is_a_cap():
    long_text = "word " * 400
    rows = [(f"Q{i}?", GOOD + f" {i}", BAD) for i in range(30)]
    capped = [3, 7, 11, 15, 19, 23]
    for i in capped:
        rows[i] = (f"Q{i}?", long_text[:300] + str(i)[-1], BAD)  # all exactly 301 characters
    result = _run(rows)
    assert result.metrics["content/length_cap_chars"] == 301
    assert np.flatnonzero(_mask(result, "truncated")).tolist() == capped


def test_templated_answers_of_equal_length_are_not_a_cap():
    rows = [
        (f"Q{i}?", GOOD + f" Tip {i % 10}.", BAD) for i in range(30)
    ]  # all 69 characters, finished
    result = _run(rows)
    assert result.metrics["content/length_cap_chars"] is None
    assert not any(_mask(result, "truncated"))


def test_extreme_lengths():
    result = _run(_with(1, ("Q?", GOOD, "k")))
    assert _mask(result, "extreme_length") == [i == 1 for i in range(10)]
    huge = _run(_with(6, ("Q?", "loop " * 5000, BAD)))
    assert _mask(huge, "extreme_length") == [i == 6 for i in range(10)]
    assert huge.flags["reason"].iloc[6] == "chosen has an extreme length (25,000 characters)"


def test_length_bias_metrics():
    # Chosen is longer in 8 of 10 pairs.
    rows = [("Q", "long answer " * 3, "short") for _ in range(8)] + [
        ("Q", "short", "long answer " * 3) for _ in range(2)
    ]
    metrics = _run(rows).metrics
    assert metrics["content/chosen_longer_rate"] == 0.8
    low, high = (
        metrics["content/chosen_longer_rate_ci_low"],
        metrics["content/chosen_longer_rate_ci_high"],
    )
    assert 0.45 < low < 0.8 < high < 1.0
    assert metrics["content/length_bias_p_value"] == pytest.approx(
        0.109375
    )  # two-sided binomial, 8 of 10
    # mean(x) / rms(x) with x = +-log(37/6): (8 - 2) / 10
    assert metrics["content/length_label_correlation"] == pytest.approx(0.6)


def test_length_score_correlation_when_scores_exist():
    rows = [("Q", "a" * n, "b" * 10) for n in (5, 10, 20, 40)]
    result = _run(rows, score_chosen=[1.0, 2.0, 3.0, 4.0], score_rejected=[0.0, 0.0, 0.0, 0.0])
    assert result.metrics["content/length_score_spearman"] == pytest.approx(1.0)
    assert _run(rows).metrics["content/length_score_spearman"] is None


def test_metrics_are_finite_or_none():
    for value in _run(NORMAL).metrics.values():
        assert value is None or not (isinstance(value, float) and math.isnan(value))
