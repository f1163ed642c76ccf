import numpy as np
import orjson
import pandas as pd
import pytest

from prefaudit.auditing import AuditContext
from prefaudit.cli import main
from prefaudit.validators import AgreementValidator
from tests.helpers import KRIPPENDORFF_2011, long_table, pair, pairs_frame, write_lines


def _pairs(n):
    return pairs_frame([(f"Q{i}", f"good {i}", f"bad {i}") for i in range(n)])


def _annotations(rows):
    """rows: (pair index, annotator, label) or (..., chosen_position)."""
    frame = pd.DataFrame([r[:3] for r in rows], columns=["pair", "annotator", "label"])
    frame["pair_id"] = "p" + frame["pair"].astype(str)
    frame["value"] = frame["label"].map({"chosen": 1.0, "rejected": 0.0, "tie": 0.5})
    if any(len(r) > 3 for r in rows):
        frame["chosen_position"] = [r[3] if len(r) > 3 else None for r in rows]
    return frame.drop(columns="pair")


def _run(n, rows, **params):
    params.setdefault("bootstrap_resamples", 0)
    return AgreementValidator(**params).run(AuditContext(_pairs(n), _annotations(rows)))


def _simulated(n=2000, accuracies=(0.9, 0.9, 0.9), seed=0, first_bias=None):
    """Raters of given accuracy; the chosen response is truly better in 70% of the pairs."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        truth, other = ("chosen", "rejected") if rng.random() < 0.7 else ("rejected", "chosen")
        for r, accuracy in enumerate(accuracies):
            position = "a" if rng.random() < 0.5 else "b"
            if first_bias and r == first_bias[0] and rng.random() < first_bias[1]:
                label = "chosen" if position == "a" else "rejected"
            else:
                label = truth if rng.random() < accuracy else other
            rows.append((i, f"r{r}", label, position))
    return n, rows


def test_perfect_agreement():
    result = _run(
        4, [(i, r, "chosen") for i in range(4) for r in ("r1", "r2", "r3")] + [(3, "r4", "chosen")]
    )
    metrics = result.metrics
    assert metrics["agreement/percent_agreement"] == 1.0
    assert not result.flags["issue"].any()
    assert (result.flags["agreement"] == 1.0).all()
    # One value throughout: alpha is undefined (no expected disagreement), reported as None.
    assert metrics["agreement/krippendorff_alpha"] is None


def test_perfect_agreement_with_both_labels_gives_alpha_one():
    rows = [(i, r, "chosen" if i % 2 else "rejected") for i in range(6) for r in ("r1", "r2")]
    assert _run(6, rows).metrics["agreement/krippendorff_alpha"] == pytest.approx(1.0)


def test_random_raters_give_alpha_near_zero():
    rng = np.random.default_rng(1)
    rows = [(i, f"r{r}", rng.choice(["chosen", "rejected"])) for i in range(3000) for r in range(3)]
    result = _run(3000, rows, bootstrap_resamples=200)
    metrics = result.metrics
    assert abs(metrics["agreement/krippendorff_alpha"]) < 0.03
    assert (
        metrics["agreement/krippendorff_alpha_ci_low"]
        < 0
        < metrics["agreement/krippendorff_alpha_ci_high"]
    )
    assert metrics["agreement/percent_agreement"] == pytest.approx(0.5, abs=0.02)


def test_position_biased_rater_is_found():
    n, rows = _simulated(first_bias=(2, 0.8))
    table = {row["annotator"]: row for row in _run(n, rows).info["annotators"]}
    assert table["r2"]["position_bias"] > 0.9 and table["r2"]["position_bias_p_value"] < 1e-6
    for fair in ("r0", "r1"):
        assert abs(table[fair]["position_bias"] - 0.5) < 0.1
        assert abs(table[fair]["first_shown_rate"] - 0.5) < 0.05


def test_unreliable_rater_is_ranked_last_and_flagged():
    n, rows = _simulated(n=1500, accuracies=(0.95, 0.9, 0.85, 0.5))
    result = _run(n, rows)
    table = result.info["annotators"]
    assert [row["annotator"] for row in table] == ["r0", "r1", "r2", "r3"]
    assert [row["unreliable"] for row in table] == [False, False, False, True]
    assert result.metrics["agreement/unreliable_annotators"] == 1
    assert table[-1]["estimated_accuracy"] == pytest.approx(0.5, abs=0.05)
    # Pairs split 2-2 with the random rater on one side change majority without it.
    assert result.flags["depends_on_unreliable"].any()


def test_contradicted_tie_and_low_agreement_pairs():
    rows = [
        *[(0, r, "chosen") for r in ("r1", "r2", "r3")],  # clean
        *[(1, r, "rejected") for r in ("r1", "r2", "r3")],  # raters prefer rejected
        (2, "r1", "tie"),
        (2, "r2", "tie"),
        (2, "r3", "chosen"),  # consensus: tie
        (3, "r1", "chosen"),
        (3, "r2", "rejected"),
        (3, "r3", "tie"),  # no agreement
    ]
    flags = _run(4, rows, aggregate="majority").flags
    assert flags["contradicted"].tolist() == [False, True, False, False]
    assert flags["tie"].tolist() == [False, False, True, False]
    assert flags["low_agreement"].tolist() == [False, False, False, True]
    assert flags["issue"].tolist() == [False, True, True, True]
    assert flags["reason"].iloc[1] == "the raters prefer the rejected response (3 rejected)"
    assert flags["majority_label"].tolist() == ["chosen", "rejected", "tie", "split"]
    assert flags["soft_label"].tolist() == pytest.approx([1.0, 0.0, 2 / 3, 0.5])
    assert flags["score"].tolist() == pytest.approx([0.0, 1.0, 1 / 3, 0.5])
    assert flags["entropy"].tolist() == pytest.approx([0.0, 0.0, 0.9183, np.log2(3)], abs=1e-4)


def test_repeated_judgements_are_reconciled_and_counted():
    rows = [
        (0, "r1", "chosen"),
        (0, "r1", "rejected"),
        (0, "r2", "chosen"),
        (1, "r1", "chosen"),
        (1, "r2", "chosen"),
    ]
    result = _run(2, rows, aggregate="majority")
    assert result.metrics["agreement/repeated_judgements"] == 1
    assert result.metrics["agreement/annotations"] == 4  # one per (pair, rater)
    assert (
        result.flags["majority_label"].iloc[0] == "split"
    )  # r1's chosen+rejected averaged to a tie
    assert "mean" in result.info["repeated_judgements"]["reconciled_by"]


def test_level_of_measurement_is_chosen_explicitly():
    categorical = [
        (i, r, "chosen" if (i + j) % 3 else "rejected")
        for i in range(6)
        for j, r in enumerate(("r1", "r2"))
    ]
    assert _run(6, categorical).metrics["agreement/level_of_measurement"] == "nominal"
    graded = _annotations(categorical)
    graded["value"] = np.tile([0.0, 0.25, 0.75, 1.0], 3)
    result = AgreementValidator(bootstrap_resamples=0).run(AuditContext(_pairs(6), graded))
    assert result.metrics["agreement/level_of_measurement"] == "ordinal"
    assert result.metrics["agreement/alpha_method"] == "krippendorff package"
    forced = AgreementValidator(level="interval", bootstrap_resamples=0).run(
        AuditContext(_pairs(6), graded)
    )
    assert forced.metrics["agreement/level_of_measurement"] == "interval"
    with pytest.raises(ValueError, match="level must be"):
        AgreementValidator(level="ratio").run(AuditContext(_pairs(6), graded))


def test_statistics_use_the_order_raters_saw_when_it_is_shared():
    # Every rater of a pair saw the same order: labels are analysed as first/second shown.
    rows = [(i, r, "chosen", "a" if i % 2 else "b") for i in range(4) for r in ("r1", "r2")]
    assert _run(4, rows).info["label_frame"] == "position"
    # Orders differ between raters of a pair, and the pairs do not record their A/B (flat
    # input, chosen given by the dataset): the chosen/rejected frame is kept.
    rows = [
        (0, "r1", "chosen", "a"),
        (0, "r2", "chosen", "b"),
        (1, "r1", "chosen", "a"),
        (1, "r2", "chosen", "a"),
    ]
    assert _run(2, rows).info["label_frame"] == "pair"
    # They do (side-by-side and long tables, where chosen may be what these raters prefer):
    # labels are read against each pair's response A, here the rejected one.
    pairs = _pairs(2).assign(chosen_position=["b", "b"])
    result = AgreementValidator(bootstrap_resamples=0).run(AuditContext(pairs, _annotations(rows)))
    assert result.info["label_frame"] == "response"
    assert result.info["dawid_skene"]["priors"]["response_b"] == pytest.approx(1.0)
    assert result.flags["majority_label"].tolist() == ["chosen", "chosen"]


def test_cli_runs_agreement_with_an_annotations_file(tmp_path, capsys):
    data = write_lines(tmp_path / "pairs.jsonl", [pair(f"Q{i}", id=f"p{i}") for i in range(3)])
    notes = write_lines(
        tmp_path / "notes.jsonl",
        [
            {"pair_id": f"p{i}", "annotator": r, "label": "rejected" if i == 2 else "chosen"}
            for i in range(3)
            for r in ("a", "b")
        ],
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "audit",
                str(data),
                "--annotations",
                str(notes),
                "--out",
                str(out),
                "--param",
                "agreement.bootstrap_resamples=50",
            ]
        )
        == 0
    )
    audit = orjson.loads((out / "audit.json").read_bytes())
    metrics = audit["validators"]["agreement"]["metrics"]
    assert metrics["agreement/contradicted_rate"] == pytest.approx(1 / 3)
    assert metrics["agreement/unparsed_labels"] == 0
    assert "agreement  1 of 3 pairs flagged" in capsys.readouterr().out


@pytest.mark.slow
def test_alpacaeval_judges(alpaca_file):
    from prefaudit.auditing import run_audit
    from prefaudit.io import load

    result = run_audit(load(str(alpaca_file)), validators=["agreement"])
    metrics = result.validators["agreement"].metrics
    info = result.validators["agreement"].info
    assert (
        info["label_frame"] == "position"
        and metrics["agreement/level_of_measurement"] == "interval"
    )
    assert (
        metrics["agreement/krippendorff_alpha_ci_low"]
        < metrics["agreement/krippendorff_alpha"]
        < metrics["agreement/krippendorff_alpha_ci_high"]
    )
    assert 0.5 < metrics["agreement/krippendorff_alpha"] < 0.7
    assert metrics["agreement/unparsed_labels"] == 1  # the judgement with a null preference
    # Fleiss' kappa needs equal rater counts: it is computed on the 1,605 pairs with two judges.
    assert (metrics["agreement/fleiss_kappa_raters"], metrics["agreement/fleiss_kappa_pairs"]) == (
        2,
        1605,
    )
    assert [r["annotator"] for r in info["annotators"]] == [
        "alpaca_eval_cot_gpt4_turbo_fn",
        "alpaca_eval_gpt4_turbo_fn",
        "weighted_alpaca_eval_gpt4_turbo",
    ]


def test_a_refused_parameter_value_is_a_usage_error(tmp_path, capsys):
    data = write_lines(tmp_path / "pairs.jsonl", [pair(id="p0")])
    notes = write_lines(
        tmp_path / "notes.jsonl", [{"pair_id": "p0", "annotator": "a", "label": "chosen"}]
    )
    argv = ["audit", str(data), "--annotations", str(notes), "--out", str(tmp_path / "o")]
    assert main([*argv, "--param", "agreement.level=ratio"]) == 2
    assert "level must be 'auto' or one of" in capsys.readouterr().err


def test_one_repeated_judgement_does_not_change_the_level_of_measurement():
    rows = [
        (i, r, ("chosen", "rejected", "tie")[(i + j) % 3])
        for i in range(30)
        for j, r in enumerate(("r1", "r2", "r3"))
    ]
    assert _run(30, rows).metrics["agreement/level_of_measurement"] == "nominal"
    repeated = [*rows, (0, "r1", "rejected" if rows[0][2] == "chosen" else "chosen")]
    result = _run(30, repeated)
    assert result.metrics["agreement/level_of_measurement"] == "nominal"
    assert result.metrics["agreement/repeated_judgements"] == 1


def test_an_even_split_is_not_called_contradicted_by_the_prior():
    # Most pairs: both raters prefer the first-shown response; pair 9 splits 1-1.
    rows = [(i, r, "chosen", "a") for i in range(9) for r in ("r1", "r2")]
    rows += [(9, "r1", "chosen", "b"), (9, "r2", "rejected", "b")]
    flags = _run(10, rows).flags
    assert not flags["contradicted"].iloc[9]
    assert flags["low_agreement"].iloc[9] and flags["consensus_label"].iloc[9] == ""


def test_ordinal_level_on_continuous_values_is_refused():
    notes = _annotations([(i, r, "chosen") for i in range(60) for r in ("r1", "r2")])
    notes["value"] = np.linspace(0.0, 1.0, len(notes))
    with pytest.raises(ValueError, match="level 'ordinal' needs a few distinct label values"):
        AgreementValidator(level="ordinal", bootstrap_resamples=0).run(
            AuditContext(_pairs(60), notes)
        )


def test_pairs_are_counted_once_however_many_ratings_they_have():
    """Issue 27: the report read "2 raters, 1,610 pairs" where 805 pairs had two raters each.
    Pairs count distinct pairs with a rating; multi-rated pairs those with two raters or more."""
    rows = [(0, "r1", "chosen"), (0, "r2", "chosen"), (0, "r1", "chosen")]  # r1 twice on p0
    rows += [(1, "r1", "chosen"), (1, "r2", "rejected"), (2, "r2", "chosen")]
    metrics = _run(4, rows).metrics  # p3 has no rating
    assert metrics["agreement/annotations"] == 5  # r1's repeat on p0 reconciled into one
    assert metrics["agreement/repeated_judgements"] == 1
    assert metrics["agreement/annotators"] == 2
    assert metrics["agreement/pairs_annotated"] == 3
    assert metrics["agreement/multi_rated_pairs"] == 2
    assert metrics["agreement/mean_raters_per_pair"] == pytest.approx(5 / 3)


# --- long tables whose raters saw a pair's responses in different orders ---------------------


def _long_table(preferences, orders):
    """Rows of a long table: preferences[i][r] is "X", "Y" or "tie" for pair i (responses X{i}
    and Y{i}) and rater r{r}; orders[i][r] is True when that rater was shown Y{i} first."""
    rows = []
    for i, (prefs, swaps) in enumerate(zip(preferences, orders, strict=True)):
        for r, (pref, swapped) in enumerate(zip(prefs, swaps, strict=True)):
            shown = (f"Y{i}", f"X{i}") if swapped else (f"X{i}", f"Y{i}")
            label = "tie" if pref == "tie" else "a" if shown[0] == f"{pref}{i}" else "b"
            rows.append(
                {
                    "prompt": f"Q{i}",
                    "response_a": shown[0],
                    "response_b": shown[1],
                    "annotator": f"r{r}",
                    "label": label,
                }
            )
    return rows


def _audit_long(tmp_path, name, rows):
    from prefaudit.io import load

    data = load(str(write_lines(tmp_path / name, rows)))
    context = AuditContext(data.pairs, data.annotations, load_report=data.report)
    return data, AgreementValidator(bootstrap_resamples=0).run(context)


def test_raters_shown_a_pair_in_different_orders_agree_on_the_same_response(tmp_path):
    """Raters shown a pair's responses in a random order: the loader makes one pair of them and
    alpha codes every rater's label against one response fixed per pair, never against the
    chosen one (which is what these very raters prefer, and would win by construction)."""
    import krippendorff

    rng = np.random.default_rng(7)
    n, raters = 20, 3
    truth = rng.choice(["X", "Y"], size=n)
    preferences = [
        [t if u < 0.75 else "tie" if u < 0.85 else {"X": "Y", "Y": "X"}[t] for u in rng.random(3)]
        for t in truth
    ]
    orders = rng.random((n, raters)) < 0.5  # some pairs' first rows show Y first, too
    assert 0 < orders[:, 0].mean() < 1 and (orders != orders[:, :1]).any(axis=1).mean() > 0.5
    data, mixed = _audit_long(tmp_path, "mixed.jsonl", _long_table(preferences, orders))
    report = data.report
    assert (report.pairs, len(data.annotations)) == (20, 60)
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (60, 60, 0)
    pairs, table = data.pairs, data.annotations
    for row in table.itertuples():
        i, r = int(pairs.at[row.pair_id, "prompt"][1:]), int(row.annotator[1:])
        pref, chosen = preferences[i][r], pairs.at[row.pair_id, "chosen"]
        assert row.label == (
            "tie" if pref == "tie" else "chosen" if chosen[0] == pref else "rejected"
        )
        saw_first = f"Y{i}" if orders[i][r] else f"X{i}"
        assert row.chosen_position == ("a" if chosen == saw_first else "b")

    # The same judgements, every rater shown each pair in the order its first row showed it.
    same = np.repeat(orders[:, :1], raters, axis=1)
    _, shared = _audit_long(tmp_path, "same.jsonl", _long_table(preferences, same))
    assert (mixed.info["label_frame"], shared.info["label_frame"]) == ("response", "position")
    alpha = mixed.metrics["agreement/krippendorff_alpha"]
    assert alpha == pytest.approx(shared.metrics["agreement/krippendorff_alpha"], abs=1e-12)

    # Directly: 0 = prefers the response the pair's first row showed first, 1 = the other.
    def coded(x_is_side_1):
        matrix = np.array([[{"X": 0, "Y": 1, "tie": 2}[p] for p in prefs] for prefs in preferences])
        return np.where((matrix < 2) & x_is_side_1[:, None], 1 - matrix, matrix).T.astype(float)

    direct = krippendorff.alpha(
        reliability_data=coded(orders[:, 0]), level_of_measurement="nominal"
    )
    assert alpha == pytest.approx(direct, abs=1e-12)
    # Against each pair's chosen response (what these raters' mean prefers) it would not be.
    chosen = dict(zip(pairs["prompt"], pairs["chosen"], strict=True))
    chosen_y = np.array([chosen[f"Q{i}"] == f"Y{i}" for i in range(n)])
    skewed = krippendorff.alpha(reliability_data=coded(chosen_y), level_of_measurement="nominal")
    assert abs(alpha - skewed) > 0.05


def test_a_rater_who_picks_the_first_shown_response_is_found_under_mixed_orders(tmp_path):
    rng = np.random.default_rng(3)
    n = 300
    truth = rng.choice(["X", "Y"], size=n)
    orders = rng.random((n, 3)) < 0.5
    preferences = [
        [
            *(t if rng.random() < 0.85 else {"X": "Y", "Y": "X"}[t] for _ in range(2)),
            "Y" if swaps[2] else "X",  # r2 always picks what it was shown first
        ]
        for t, swaps in zip(truth, orders, strict=True)
    ]
    _, result = _audit_long(tmp_path, "biased.jsonl", _long_table(preferences, orders))
    table = {row["annotator"]: row for row in result.info["annotators"]}
    assert table["r2"]["first_shown_rate"] == 1.0 and table["r2"]["position_bias"] == 1.0
    assert table["r2"]["position_bias_p_value"] < 1e-6
    for fair in ("r0", "r1"):
        assert abs(table[fair]["first_shown_rate"] - 0.5) < 0.1
        assert table[fair]["position_bias_p_value"] > 1e-3


# --- graded scales (issue 20 part 2) ------------------------------------------------------------


def _graded(rows, **params):
    """Agreement on a long table loaded as a user's file would be (its scale read whole)."""
    from prefaudit.io import load

    data = load(pd.DataFrame(rows), label_scale=params.pop("label_scale", None))
    params.setdefault("bootstrap_resamples", 0)
    context = AuditContext(data.pairs, data.annotations, load_report=data.report)
    return AgreementValidator(**params).run(context), data


def _package_alpha(level):
    import krippendorff

    matrix = np.array([[np.nan if v is None else v for v in row] for row in KRIPPENDORFF_2011])
    return krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)


@pytest.mark.parametrize(
    "level,published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_krippendorffs_worked_example_at_each_level(level, published):
    """Krippendorff (2011), 4 coders x 12 units with missing values, as a 1..5 Likert table."""
    result, _ = _graded(long_table(KRIPPENDORFF_2011), level=level)
    alpha = result.metrics["agreement/krippendorff_alpha"]
    assert alpha == pytest.approx(_package_alpha(level), abs=1e-9)
    assert round(alpha, 3) == published
    assert result.metrics["agreement/label_scale"] == "1..5"


def test_a_graded_table_gets_ordinal_alpha_and_its_interval():
    """HelpSteer3's -3..3: read row by row, only the 1s and 2s loaded and alpha was 1.0."""
    result, _ = _graded(
        long_table(KRIPPENDORFF_2011, shift=-3), label_scale="-3..3", bootstrap_resamples=500
    )
    m = result.metrics
    assert m["agreement/level_of_measurement"] == "ordinal"
    assert m["agreement/krippendorff_alpha"] == pytest.approx(_package_alpha("ordinal"), abs=1e-9)
    low, high = m["agreement/krippendorff_alpha_ci_low"], m["agreement/krippendorff_alpha_ci_high"]
    assert low < m["agreement/krippendorff_alpha"] < high <= 1.0
    assert result.info["label_scale"]["spec"] == "-3..3"


def test_weighted_kappa_between_raters_is_scikit_learns_quadratic():
    from sklearn.metrics import cohen_kappa_score

    result, _ = _graded(long_table(KRIPPENDORFF_2011))
    table = result.info["weighted_kappa"]
    a, c = table["annotators"].index("coder_A"), table["annotators"].index("coder_C")
    both = [u for u in range(12) if KRIPPENDORFF_2011[0][u] and KRIPPENDORFF_2011[2][u]]
    expected = cohen_kappa_score(
        [KRIPPENDORFF_2011[0][u] for u in both],
        [KRIPPENDORFF_2011[2][u] for u in both],
        weights="quadratic",
        labels=[1, 2, 3, 4, 5],
    )
    assert table["kappa"][a][c] == pytest.approx(expected, abs=1e-12)
    pairs = [table["kappa"][i][j] for i in range(4) for j in range(i + 1, 4)]
    assert result.metrics["agreement/weighted_kappa"] == pytest.approx(np.mean(pairs))


def test_the_soft_label_is_the_mean_strength_and_flows_on_as_strength():
    result, data = _graded(long_table(KRIPPENDORFF_2011))
    flags = result.flags
    # Unit 2: 2, 2, 3, 2 on 1..5 (1 favours A): P(A better) 0.75, 0.75, 0.5, 0.75.
    assert flags.at["u2", "soft_label"] == pytest.approx(0.6875)
    assert flags.at["u2", "strength"] == pytest.approx(0.375)
    # Unit 3: every coder said 3, the middle: a tie, strength 0.
    assert (flags.at["u3", "strength"], flags.at["u3", "consensus_label"]) == (0.0, "tie")
    assert flags.at["u1", "strength"] == 1.0  # all said 1: A much better, and A is chosen
    assert data.pairs.at["u1", "chosen_position"] == "a"
    # Binary labels get a strength too: the raters' mean vote, chosen minus rejected.
    binary = _run(2, [(0, "r1", "chosen"), (0, "r2", "rejected"), (1, "r1", "chosen")])
    assert binary.flags["strength"].tolist() == [0.0, 1.0]
    assert binary.metrics["agreement/weighted_kappa"] is None


def test_position_bias_is_measured_on_the_graded_values():
    """Three raters on -3..3 see each pair in a random order; r0 moves every rating one point
    towards whichever response it saw first (content cancels: all judge the same pairs)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(60):
        truth = int(rng.integers(-2, 3))  # how much better response X is, -2..2
        for r in ("r0", "r1", "r2"):
            x_first = bool(rng.random() < 0.5)
            label = -truth if x_first else truth  # low favours the first shown
            if r == "r0":
                label -= 1
            first, second = ("X", "Y") if x_first else ("Y", "X")
            rows.append(
                {
                    "pair_id": f"p{i}",
                    "prompt": f"Q{i}",
                    "response_a": f"{first} {i}",
                    "response_b": f"{second} {i}",
                    "annotator": r,
                    "label": label,
                }
            )
    result, _ = _graded(rows, label_scale="-3..3")
    raters = {row["annotator"]: row for row in result.info["annotators"]}
    assert raters["r0"]["position_bias"] == 1.0 and raters["r0"]["position_bias_p_value"] < 1e-6
    assert raters["r0"]["position_shift"] == pytest.approx(1.0)
    # r0 leans towards whichever response r0 saw, which is r1's first one half of the time.
    assert (
        abs(raters["r1"]["position_shift"]) < 0.2 and raters["r1"]["position_bias_p_value"] > 0.05
    )
    assert result.info["label_frame"] == "response"
