from pathlib import Path

import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefaudit.cleaning import CleaningPolicy, clean
from prefaudit.cleaning.policy import load_policy
from prefaudit.outputs import write_cleaned
from prefaudit.rules import RuleFileError
from tests.helpers import pairs_frame

REPO = Path(__file__).resolve().parents[1]


def _pairs(n: int) -> pd.DataFrame:
    return pairs_frame([(f"q{i}", f"good {i}", f"bad {i}") for i in range(n)])


def _flags(index, **columns) -> pd.DataFrame:
    return pd.DataFrame(columns, index=index)


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 25),
    drop=st.lists(st.sampled_from(["content", "duplication/degenerate", "agreement"]), max_size=3),
    dedupe=st.booleans(),
    reorient=st.booleans(),
    flip=st.one_of(st.none(), st.floats(0.51, 1.0)),
    weights=st.sampled_from(["none", "confidence", "soft_label"]),
)
def test_every_pair_lands_in_exactly_one_of_cleaned_and_quarantine(
    data, n, drop, dedupe, reorient, flip, weights
):
    pairs = _pairs(n)
    ids = list(pairs.index)
    booleans = st.lists(st.booleans(), min_size=n, max_size=n)
    originals = [data.draw(st.sampled_from([None, *ids[:k]])) if k else None for k in range(n)]
    flags = _flags(
        pairs.index,
        **{
            "content/issue": data.draw(booleans),
            "content/reason": ["why"] * n,
            "duplication/degenerate": data.draw(booleans),
            "duplication/duplicate_of": originals,
            "agreement/issue": data.draw(booleans),
            "agreement/contradicted": data.draw(booleans),
            "agreement/soft_label": data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)),
            "label_noise/noise_score": data.draw(
                st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=n, max_size=n)
            ),
            "label_noise/flip_score": data.draw(
                st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=n, max_size=n)
            ),
        },
    )
    policy = CleaningPolicy(tuple(drop), dedupe, reorient, flip, weights)
    result = clean(pairs, flags, policy)
    cleaned = [r["pair_id"] for r in result.cleaned]
    quarantined = [r["pair_id"] for r in result.quarantine]
    assert sorted(cleaned + quarantined) == sorted(ids)  # nothing lost, nothing twice
    assert {f["pair_id"] for f in result.flips} <= set(cleaned)  # only kept pairs are flipped
    assert result.counts["cleaned"] + result.counts["quarantined"] == n
    for row in result.quarantine:
        assert row["action"] in ("drop", "dedupe", "review") and row["issues"]
        if row["action"] == "review":  # held, not flipped: the model's score alone reached it
            assert flip is not None
            assert flags.at[row["pair_id"], "label_noise/noise_score"] >= flip


def test_actions_run_in_the_documented_order_and_say_why():
    pairs = _pairs(7)
    flags = _flags(
        pairs.index,
        **{
            "content/issue": [True, False, False, False, False, False, False],
            "content/reason": ["empty response", "", "", "", "", "", ""],
            # p2 and p3 copy p1; p1 stays.
            "duplication/duplicate_of": [None, None, "p1", "p1", None, None, None],
            "agreement/contradicted": [False, False, False, False, True, False, False],
            "agreement/soft_label": [1.0, 1.0, 1.0, 1.0, 0.1, 0.8, 1.0],
            "label_noise/noise_score": [0.99, 0.2, 0.2, 0.2, 0.97, 0.96, 0.98],
            # p6's score is the preference model's alone: held for review, not flipped.
            "label_noise/flip_score": [0.99, None, None, None, 0.97, 0.96, None],
        },
    )
    policy = CleaningPolicy(("content",), True, True, 0.95, "confidence")
    result = clean(pairs, flags, policy)
    assert [r["pair_id"] for r in result.cleaned] == ["p1", "p4", "p5"]
    dropped = {r["pair_id"]: r for r in result.quarantine}
    assert dropped["p0"]["action"] == "drop" and dropped["p0"]["reasons"] == {
        "content": "empty response"
    }
    assert dropped["p2"]["action"] == dropped["p3"]["action"] == "dedupe"
    assert "duplicate of p1" in dropped["p3"]["reasons"]["duplication"]
    # p4: the raters re-orient it (not counted again by the noise score); p5: the noise score.
    assert result.flips == [
        {
            "pair_id": "p4",
            "by": "raters",
            "reason": "raters' consensus prefers the rejected response",
        },
        {
            "pair_id": "p5",
            "by": "label_noise",
            "reason": "noise score 0.960 >= 0.95, backed by scores, raters or the reference model",
        },
    ]
    assert dropped["p6"]["action"] == "review"
    assert "on the preference model alone" in dropped["p6"]["reasons"]["label_noise"]
    rows = {r["pair_id"]: r for r in result.cleaned}
    assert rows["p5"]["chosen"] == "bad 5" and rows["p5"]["rejected"] == "good 5"
    assert rows["p5"]["weight"] == pytest.approx(0.96)  # confidence in the flipped label
    assert rows["p1"]["weight"] == pytest.approx(0.8)
    assert result.counts["drop: content"] == 1 and result.counts["dedupe"] == 2
    assert result.counts["review"] == 1


def test_conversational_pairs_stay_conversational_and_soft_labels_follow_flips(tmp_path):
    turns = [{"role": "user", "content": "hi"}]
    pairs = _pairs(2)
    pairs["prompt_messages"] = [turns, turns]
    flags = _flags(
        pairs.index,
        **{"agreement/contradicted": [True, False], "agreement/soft_label": [0.2, 0.9]},
    )
    result = clean(pairs, flags, CleaningPolicy(reorient_by_raters=True, weights="soft_label"))
    first, second = result.cleaned
    assert first["prompt"] == turns
    assert first["chosen"] == [{"role": "assistant", "content": "bad 0"}]
    assert first["soft_label"] == pytest.approx(0.8) and second["soft_label"] == pytest.approx(0.9)
    write_cleaned(tmp_path, result, CleaningPolicy(), "abc")
    manifest = orjson.loads((tmp_path / "manifest.json").read_bytes())
    assert manifest["input_fingerprint"] == "abc" and manifest["counts"]["flip"] == 1
    lines = (tmp_path / "cleaned.jsonl").read_text().splitlines()
    assert len(lines) == 2 and (tmp_path / "quarantine.jsonl").read_text() == ""


@pytest.mark.parametrize(
    "section, message",
    [
        ("clean:\n  drop: [nonsense]\n", "line 3: clean.drop: unknown validator in 'nonsense'"),
        ("clean:\n  weights: heavy\n", "line 3: clean.weights must be one of"),
        ("clean:\n  flip_min_noise: 0.3\n", "line 3: clean.flip_min_noise must be in (0.5, 1]"),
        ("clean:\n  dedupe: maybe\n", "line 3: clean.dedupe must be true or false"),
        ("clean:\n  shuffle: true\n", "line 3: clean: unknown key 'shuffle'"),
    ],
)
def test_policy_errors_name_the_file_and_line(tmp_path, section, message):
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\n" + section)
    with pytest.raises(RuleFileError, match=message.replace("(", r"\(").replace("]", r"\]")):
        load_policy(path)


def test_the_default_rules_carry_a_policy():
    policy = load_policy("rules/default.yaml")
    assert {"content/identical", "content/bad_chosen"} <= set(policy.drop)
    assert "content" not in policy.drop and policy.flip_min_noise == 0.95
    assert policy.dedupe and policy.reorient_by_raters and policy.weights == "confidence"


def test_the_default_policy_does_not_make_real_gpt4_labels_worse(alpaca_dev_file):
    """3,000 GPT-4-judged AlpacaEval pairs, GPT-4's label taken as the truth, no raters and no
    reference model: the default policy flipped 26 labels (each a shorter chosen answer for
    the longer rejected one, none an improvement) and dropped 22 pairs, most for a bad
    *rejected* response or for code and URLs read as cut off. Now: no flip without evidence
    besides the preference model, and a pair is dropped for its content only when its chosen
    response is bad or both are identical."""
    import prefaudit
    from prefaudit.io import load

    pairs = load(str(alpaca_dev_file)).pairs.sample(3000, random_state=0)
    audit = prefaudit.audit(pairs, validators=["content", "label_noise"], embedding_model="off")
    cleaned = prefaudit.clean(pairs, REPO / "rules" / "default.yaml", audit=audit)
    assert cleaned.flips == []
    assert cleaned.counts["cleaned"] + cleaned.counts["quarantined"] == 3000
    dropped = cleaned.quarantine[cleaned.quarantine["action"] == "drop"]
    content = audit.flags.loc[dropped["pair_id"]]
    assert (content["content/bad_chosen"] | content["content/identical"]).all()
    assert cleaned.counts["quarantined"] <= 20
