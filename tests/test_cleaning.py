import re
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefaudit.cleaning import CleaningPolicy, clean
from prefaudit.cleaning.policy import Selection, load_policy, policy_from_mapping
from prefaudit.console import selection_line
from prefaudit.errors import InputError, SettingError
from prefaudit.outputs import write_cleaned
from prefaudit.rules import RuleFileError
from tests.helpers import pairs_frame

REPO = Path(__file__).resolve().parents[1]


def _pairs(n: int) -> pd.DataFrame:
    return pairs_frame([(f"q{i}", f"good {i}", f"bad {i}") for i in range(n)])


def _flags(index, **columns) -> pd.DataFrame:
    return pd.DataFrame(columns, index=index)


def _verdict(verdict: str, **record) -> dict:
    """A reviewer's verdict as review.jsonl holds it."""
    return {"verdict": verdict, "reviewer": "ana", "source": "csv", **record}


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 25),
    drop=st.lists(st.sampled_from(["content", "duplication/degenerate", "agreement"]), max_size=3),
    dedupe=st.booleans(),
    reorient=st.booleans(),
    flip=st.one_of(st.none(), st.floats(0.51, 1.0)),
    weights=st.sampled_from(["none", "confidence", "soft_label"]),
    select=st.one_of(
        st.none(),
        st.builds(
            Selection,
            keep=st.one_of(st.floats(0.01, 0.99), st.integers(1, 30)),
            by=st.sampled_from(["value", "margin", "trust"]),
            per_cluster_min=st.integers(0, 3),
        ),
    ),
)
def test_every_pair_lands_in_exactly_one_of_cleaned_and_quarantine(
    data, n, drop, dedupe, reorient, flip, weights, select
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
            "reference/margin_per_token": data.draw(
                st.lists(st.one_of(st.none(), st.floats(-5, 5)), min_size=n, max_size=n)
            ),
            "coverage/cluster": data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)),
        },
    )
    policy = CleaningPolicy(tuple(drop), dedupe, reorient, flip, weights, select)
    verdicts = data.draw(
        st.lists(st.sampled_from([None, "keep", "flip", "drop"]), min_size=n, max_size=n)
    )
    reviews = {i: _verdict(v) for i, v in zip(ids, verdicts, strict=True) if v}
    try:
        result = clean(pairs, flags, policy, reviews)
    except SettingError as err:  # select by margin where no pair left was scored
        assert select is not None and select.by == "margin" and "no pair left" in str(err)
        return
    cleaned = [r["pair_id"] for r in result.cleaned]
    quarantined = [r["pair_id"] for r in result.quarantine]
    assert sorted(cleaned + quarantined) == sorted(ids)  # nothing lost, nothing twice
    assert {f["pair_id"] for f in result.flips} <= set(cleaned)  # only kept pairs are flipped
    assert result.counts["cleaned"] + result.counts["quarantined"] == n
    for row in result.quarantine:
        assert row["action"] in ("drop", "dedupe", "review", "select") and row["issues"]
        if row["action"] == "review":  # held, not flipped: the model's score alone reached it
            assert flip is not None
            assert flags.at[row["pair_id"], "label_noise/noise_score"] >= flip
        assert (row["issues"] == ["review"]) == (reviews.get(row["pair_id"]) == _verdict("drop"))
    # A reviewer's verdict overrides every step: kept as labelled, flipped, or dropped.
    swapped = {
        r["pair_id"] for r in result.cleaned if r["chosen"] != pairs.at[r["pair_id"], "chosen"]
    }
    for pair_id, review in reviews.items():
        assert (pair_id in cleaned) == (review["verdict"] != "drop")
        assert (pair_id in swapped) == (review["verdict"] == "flip")
    if select is not None and result.selection["pool"]:
        selection = result.selection
        reviewed = sum(r["verdict"] != "drop" for r in reviews.values())
        assert selection["kept"] == result.counts["cleaned"] - reviewed
        assert selection["kept"] >= min(selection["target"], selection["pool"])
        if not select.per_cluster_min:  # the floor may overrun the target, nothing else
            assert selection["kept"] == selection["target"]


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
    assert "without firm evidence besides the" in dropped["p6"]["reasons"]["label_noise"]
    rows = {r["pair_id"]: r for r in result.cleaned}
    assert rows["p5"]["chosen"] == "bad 5" and rows["p5"]["rejected"] == "good 5"
    assert rows["p5"]["weight"] == pytest.approx(0.96)  # confidence in the flipped label
    assert rows["p1"]["weight"] == pytest.approx(0.8)
    assert result.counts["drop: content"] == 1 and result.counts["dedupe"] == 2
    assert result.counts["review"] == 1


def test_reviewers_verdicts_come_first_and_override_every_step():
    """A person read these pairs: what they decided holds, whatever the checks say."""
    pairs = _pairs(6)
    flags = _flags(
        pairs.index,
        **{
            "content/issue": [True, False, False, False, False, False],
            "content/reason": ["empty response", "", "", "", "", ""],
            # p3 copies p2, which a reviewer drops; p5 copies p4, which a reviewer keeps.
            "duplication/duplicate_of": [None, None, None, "p2", None, "p4"],
            "label_noise/noise_score": [0.1, 0.99, 0.99, 0.1, 0.1, 0.1],
            "label_noise/flip_score": [None, 0.99, None, None, None, None],
        },
    )
    reviews = {
        "p0": _verdict("keep", note="the empty answer is the right one here"),
        "p1": _verdict("keep"),  # label_noise would flip it
        "p2": _verdict("drop", reviewer="bo", source="label-studio"),
        "p4": _verdict("flip", preference="tie"),
    }
    policy = CleaningPolicy(("content",), True, False, 0.95, "soft_label")
    result = clean(pairs, flags, policy, reviews)
    cleaned = {r["pair_id"]: r for r in result.cleaned}
    assert list(cleaned) == ["p0", "p1", "p3", "p4"]
    assert cleaned["p1"]["chosen"] == "good 1" and cleaned["p4"]["chosen"] == "bad 4"
    # A reviewed label counts as certain (a tie: a half); the others keep their soft label.
    assert (cleaned["p0"]["soft_label"], cleaned["p4"]["soft_label"]) == (1.0, 0.5)
    dropped = {r["pair_id"]: r for r in result.quarantine}
    assert dropped["p2"]["reasons"] == {"review": "dropped by bo (label-studio)"}
    assert dropped["p5"]["reasons"] == {"duplication": "duplicate of p4 (one per group kept)"}
    assert result.flips == [{"pair_id": "p4", "by": "review", "reason": "ana (csv)"}]
    assert {k: v for k, v in result.counts.items() if k.startswith("review")} == {
        "review: keep": 2,
        "review: drop": 1,
        "review: flip": 1,
    }
    assert result.review["verdicts"] == {"keep": 2, "flip": 1, "drop": 1}
    assert result.review["decisions"][0] == {
        "pair_id": "p0",
        "verdict": "keep",
        "preference": None,
        "reviewer": "ana",
        "source": "csv",
        "decided": None,
        "note": "the empty answer is the right one here",
        "export": None,
    }
    with pytest.raises(InputError, match="a verdict for 'p9', which is not one of the pairs"):
        clean(pairs, flags, policy, {"p9": _verdict("keep")})


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


def test_near_ties_by_the_raters_strength_are_quarantined_and_strength_becomes_a_weight():
    pairs = _pairs(5)
    flags = _flags(
        pairs.index,
        **{
            "agreement/strength": [0.9, 0.1, -0.05, -0.8, np.nan],  # p4: no raters
            "agreement/contradicted": [False, False, False, True, False],
        },
    )
    policy = CleaningPolicy(reorient_by_raters=True, weights="strength", min_strength=0.2)
    result = clean(pairs, flags, policy)
    assert [r["pair_id"] for r in result.cleaned] == ["p0", "p3", "p4"]
    dropped = {r["pair_id"]: r for r in result.quarantine}
    assert dropped["p1"]["action"] == "drop" and dropped["p1"]["issues"] == ["agreement/strength"]
    assert dropped["p2"]["reasons"] == {
        "agreement": "the raters' consensus is a near-tie (strength -0.05, under 0.2)"
    }
    assert result.counts["drop: agreement/strength"] == 2
    weights = {r["pair_id"]: r.get("weight") for r in result.cleaned}
    # p3 was flipped to the raters' side: its strength for the new chosen response is 0.8.
    assert weights == {"p0": pytest.approx(0.9), "p3": pytest.approx(0.8), "p4": None}


@pytest.mark.parametrize(
    "value, message",
    [("0", "must be in (0, 1], got 0.0"), ("1.5", "must be in (0, 1]"), ("near", "finite number")],
)
def test_min_strength_is_checked_like_the_other_settings(tmp_path, value, message):
    path = tmp_path / "rules.yaml"
    path.write_text(f"version: 1\nclean:\n  weights: strength\n  min_strength: {value}\n")
    with pytest.raises(RuleFileError, match="line 4: .*" + re.escape(message)):
        load_policy(path)
    path.write_text("version: 1\nclean:\n  weights: strength\n  min_strength: 0.25\n")
    assert load_policy(path) == policy_from_mapping({"weights": "strength", "min_strength": 0.25})
    assert policy_from_mapping(CleaningPolicy().to_dict()) == CleaningPolicy()


@pytest.mark.parametrize(
    "section, message",
    [
        ("clean:\n  drop: [nonsense]\n", "line 3: clean.drop: unknown validator in 'nonsense'"),
        ("clean:\n  weights: heavy\n", "line 3: clean.weights must be one of"),
        ("clean:\n  flip_min_noise: 0.3\n", "line 3: clean.flip_min_noise must be in (0.5, 1]"),
        ("clean:\n  dedupe: maybe\n", "line 3: clean.dedupe must be true or false"),
        ("clean:\n  shuffle: true\n", "line 3: clean: unknown key 'shuffle'"),
        ("clean:\n  select: {keep: 1.5}\n", "line 3: clean.select.keep must be a share in"),
        ("clean:\n  select: {keep: 0}\n", "line 3: clean.select.keep must be a share in"),
        (
            "clean:\n  select: {keep: 1.0}\n",
            "1.0 would be every pair: leave select: out; a count is written 1",
        ),
        ("clean:\n  select:\n    by: value\n    keep: 2.5\n", "line 5: clean.select.keep must be"),
        ("clean:\n  select: {by: length}\n", "line 3: clean.select.by must be one of"),
        ("clean:\n  select: {per_cluster_min: -1}\n", "line 3: clean.select.per_cluster_min"),
        ("clean:\n  select: {top: 3}\n", "line 3: clean.select: unknown key 'top'"),
        ("clean:\n  select: 0.5\n", "line 3: clean.select must be a mapping"),
    ],
)
def test_policy_errors_name_the_file_and_line(tmp_path, section, message):
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\n" + section)
    with pytest.raises(RuleFileError, match=message.replace("(", r"\(").replace("]", r"\]")):
        load_policy(path)


def test_the_default_rules_carry_a_policy():
    policy = load_policy("default")
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
    cleaned = prefaudit.clean(pairs, "default", audit=audit)
    assert cleaned.flips == []
    assert cleaned.counts["cleaned"] + cleaned.counts["quarantined"] == 3000
    dropped = cleaned.quarantine[cleaned.quarantine["action"] == "drop"]
    content = audit.flags.loc[dropped["pair_id"]]
    assert (content["content/bad_chosen"] | content["content/identical"]).all()
    assert cleaned.counts["quarantined"] <= 20


def _planted(n_each: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Informative pairs (the reference barely separates them, labels trusted: the bulk of the
    file), easy pairs (the reference already prefers chosen by far), suspect pairs (it strongly
    prefers rejected and the label-noise score doubts them), and one small prompt cluster of
    easy pairs only."""
    kinds = ["informative"] * 3 * n_each + ["easy"] * n_each + ["suspect"] * n_each + ["lone"] * 2
    pairs = _pairs(len(kinds))
    spread = np.linspace(-0.4, 0.4, 3 * n_each)
    margins = {"easy": 2.0, "suspect": -2.0, "lone": 1.5}
    noise = {"informative": 0.1, "easy": 0.1, "suspect": 0.8, "lone": 0.1}
    flags = _flags(
        pairs.index,
        **{
            "kind": kinds,
            "reference/margin_per_token": [
                spread[i] if k == "informative" else margins[k] + 0.01 * i
                for i, k in enumerate(kinds)
            ],
            "label_noise/noise_score": [noise[k] for k in kinds],
            "coverage/cluster": [1 if k == "lone" else 0 for k in kinds],
        },
    )
    return pairs, flags


def test_selection_keeps_the_informative_pairs_and_quarantines_the_rest_with_scores(tmp_path):
    pairs, flags = _planted()
    policy = policy_from_mapping({"select": {"keep": 6, "by": "value"}})
    result = clean(pairs, flags, policy)
    kept = {r["pair_id"] for r in result.cleaned}
    assert {flags.at[p, "kind"] for p in kept} == {"informative"} and len(kept) == 6
    # ... the 6 the reference separates least (|margin| <= 0.19 of the 12 in [-0.4, 0.4]).
    assert flags.loc[list(kept), "reference/margin_per_token"].abs().max() < 0.2
    assert result.counts == {"select": 16, "input": 22, "cleaned": 6, "quarantined": 16}
    for row in result.quarantine:
        assert row["action"] == "select" and row["issues"] == ["select"]
        assert row["reasons"]["select"].startswith(f"value score {row['select_score']:.3f}")
        assert "the best 6 of 22 kept" in row["reasons"]["select"]
    scores = pd.Series({r["pair_id"]: r["select_score"] for r in result.quarantine})
    by_kind = scores.groupby(flags.loc[scores.index, "kind"])
    assert by_kind.max()[["easy", "suspect", "lone"]].max() < 0.1 < by_kind.min()["informative"]
    selection = result.selection
    assert selection["signals"] == ["trust", "margin"] and selection["kept"] == 6
    assert (selection["clusters_before"], selection["clusters_after"]) == (2, 1)
    assert selection["smallest_cluster_after"] == 0
    assert selection_line(selection) == (
        f"selected 6 of 22 by value (trust x margin), cut {selection['cut']:.3f}; "
        "prompt clusters 2 -> 1, smallest 2 -> 0 pairs"
    )
    write_cleaned(tmp_path, result, policy, "abc")
    manifest = orjson.loads((tmp_path / "manifest.json").read_bytes())
    assert manifest["selection"]["kept"] == 6 and manifest["policy"]["select"]["keep"] == 6


def test_a_cluster_floor_keeps_every_prompt_cluster_represented():
    pairs, flags = _planted()
    result = clean(
        pairs, flags, policy_from_mapping({"select": {"keep": 0.3, "per_cluster_min": 1}})
    )
    kinds = sorted(flags.at[r["pair_id"], "kind"] for r in result.cleaned)
    # 30% of 22 = 7: the lone cluster's best pair first, then the 6 best of the rest.
    assert kinds == ["informative"] * 6 + ["lone"]
    assert (
        result.selection["clusters_after"] == 2 and result.selection["smallest_cluster_after"] == 1
    )
    # By the reference's margin alone the suspects' doubt does not count: the easy and the
    # suspect pairs sit as far from zero, so both rank below every informative pair.
    by_margin = clean(pairs, flags, policy_from_mapping({"select": {"keep": 6, "by": "margin"}}))
    assert {flags.at[r["pair_id"], "kind"] for r in by_margin.cleaned} == {"informative"}
    assert by_margin.selection["signals"] == ["margin"]


def test_value_ranks_by_the_signals_there_are():
    pairs, flags = _planted()
    # The reference scored none of these pairs (all too long, say): value is trust alone.
    flags["reference/margin_per_token"] = np.nan
    result = clean(pairs, flags, policy_from_mapping({"select": {"keep": 4}}))
    assert result.selection["signals"] == ["trust"]
    assert "suspect" not in {flags.at[r["pair_id"], "kind"] for r in result.cleaned}
    # A pair the reference did not score gets the median informativeness, not the best.
    pairs, flags = _planted()
    flags.loc["p12", "reference/margin_per_token"] = np.nan  # an easy pair, unscored
    result = clean(pairs, flags, policy_from_mapping({"select": {"keep": 6, "by": "margin"}}))
    assert "p12" not in {r["pair_id"] for r in result.cleaned}


def test_selection_reads_flipped_pairs_the_other_way_round():
    pairs, flags = _planted(2)
    # The suspects, flipped by the policy (the score backs the flip), become informative-looking
    # in trust (0.8 that the new label is right) but still sit far from zero on the margin.
    flags["label_noise/flip_score"] = [0.99 if k == "suspect" else None for k in flags["kind"]]
    flags["label_noise/noise_score"] = [0.99 if k == "suspect" else 0.1 for k in flags["kind"]]
    result = clean(
        pairs,
        flags,
        policy_from_mapping({"flip_min_noise": 0.95, "select": {"keep": 2, "by": "trust"}}),
    )
    kept = [flags.at[r["pair_id"], "kind"] for r in result.cleaned]
    assert kept == ["suspect", "suspect"]  # trust 0.99 after the flip, the best of all
    assert all(r["chosen"].startswith("bad") for r in result.cleaned)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"by": "margin"}, "select by margin needs the reference model's margins"),
        ({"by": "trust"}, "select by trust needs label trust"),
        ({}, "select needs a score"),
        ({"per_cluster_min": 2, "by": "value"}, r"needs prompt clusters \(coverage\)"),
    ],
)
def test_selection_without_its_signal_is_refused_saying_which(spec, message):
    pairs = _pairs(4)
    flags = _flags(pairs.index, **{"content/issue": [False] * 4})
    if "per_cluster_min" in spec:
        flags["label_noise/noise_score"] = 0.1
    with pytest.raises(SettingError, match=message):
        clean(pairs, flags, policy_from_mapping({"select": spec}))


def test_the_summary_says_how_many_pairs_had_each_signal_and_when_floors_overran_the_target():
    pairs, flags = _planted()
    flags.loc[flags.index[::2], "reference/margin_per_token"] = np.nan  # a sampled pass
    result = clean(pairs, flags, policy_from_mapping({"select": {"keep": 6, "by": "margin"}}))
    assert result.selection["known"] == {"margin": 11}
    assert "11 of 22 had a margin (the rest: its median)" in selection_line(result.selection)
    unscored = [r for r in result.quarantine if r["pair_id"] in flags.index[::2]]
    assert unscored and all(
        "(no reference margin: the median)" in r["reasons"]["select"] for r in unscored
    )
    # Two clusters, a floor of one each, a target of one: both floors stay, no place by rank.
    floored = clean(
        pairs, flags, policy_from_mapping({"select": {"keep": 1, "per_cluster_min": 1}})
    )
    assert floored.selection["kept"] == 2 and floored.selection["target"] == 1
    line = selection_line(floored.selection)
    assert "(target 1: each prompt cluster's floor overran it)" in line and "cut" not in line
    assert all(
        r["reasons"]["select"].endswith("(the clusters' floors took every place)")
        for r in floored.quarantine
    )
