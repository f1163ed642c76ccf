import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from prefaudit.auditing import AuditContext, run_audit
from prefaudit.validators.label_noise import LabelNoiseValidator
from tests.helpers import WordEmbedder, pairs_frame

GOOD = [
    "clear",
    "correct",
    "helpful",
    "polite",
    "detailed",
    "accurate",
    "careful",
    "kind",
    "thorough",
    "precise",
]
# Each bad word as long as its good counterpart: the flips must be found by what the answers
# say, not by their length (which the preference model is made blind to).
BAD = [
    "wrong",
    "useless",
    "hostile",
    "sloppy",
    "careless",
    "mistaken",
    "harmful",
    "rude",
    "slipshod",
    "unclear",
]
TOPICS = [
    "bread",
    "cars",
    "taxes",
    "python",
    "gardens",
    "music",
    "travel",
    "health",
    "cooking",
    "chess",
]


def _planted(n: int = 300, flipped: float = 0.1, seed: int = 0):
    """Pairs whose better response is learnable from its words, a known share flipped."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        good = " ".join(rng.choice(GOOD, 4)) + f" answer about {topic}"
        bad = " ".join(rng.choice(BAD, 4)) + f" answer about {topic}"
        rows.append((f"question {i} about {topic}", good, bad))
    flips = np.zeros(n, dtype=bool)
    flips[rng.choice(n, int(flipped * n), replace=False)] = True
    rows = [(p, r, c) if f else (p, c, r) for (p, c, r), f in zip(rows, flips, strict=True)]
    return pairs_frame(rows), flips


@pytest.mark.parametrize("embedder", [None, WordEmbedder()], ids=["hashed-words", "embeddings"])
def test_planted_flips_rank_first_and_the_rate_is_near_the_truth(embedder):
    from sklearn.metrics import roc_auc_score

    pairs, flips = _planted()
    result = LabelNoiseValidator().run(AuditContext(pairs, embedder=embedder))
    flags, metrics = result.flags, result.metrics
    assert roc_auc_score(flips, flags["noise_score"]) > 0.95
    caught = flags["issue"].to_numpy()
    assert (caught & flips).sum() >= 0.8 * flips.sum()  # most flips flagged...
    assert (caught & ~flips).sum() <= 0.05 * (~flips).sum()  # ...and few clean pairs
    low, high = (
        metrics["label_noise/estimated_rate_ci_low"],
        metrics["label_noise/estimated_rate_ci_high"],
    )
    assert low <= metrics["label_noise/estimated_rate"] <= high
    assert 0.05 <= metrics["label_noise/estimated_rate"] <= 0.16  # 10% planted
    assert result.info["signals_used"] == ["model"]
    assert "likely flipped" in flags.loc[caught, "reason"].iat[0]
    representation = "embeddings" if embedder else "hashed words"
    assert result.info["representation"] == representation


def test_the_estimated_rate_grows_with_the_planted_share():
    rates = [
        LabelNoiseValidator()
        .run(AuditContext(_planted(flipped=share, seed=1)[0], embedder=None))
        .metrics["label_noise/estimated_rate"]
        for share in (0.0, 0.1, 0.2, 0.3)
    ]
    assert rates == sorted(rates) and rates[-1] - rates[0] > 0.15


def test_rater_disagreement_and_scores_join_the_model_and_are_counted_apart():
    pairs, flips = _planted(n=120, flipped=0.0)
    pairs["score_chosen"], pairs["score_rejected"] = 8.0, 3.0
    pairs.loc["p0", ["score_chosen", "score_rejected"]] = [2.0, 9.0]  # scores contradict
    notes = pd.DataFrame(
        [
            (pid, rater, "rejected" if pid == "p1" else "chosen")
            for pid in pairs.index
            for rater in ("a", "b", "c")
        ],
        columns=["pair_id", "annotator", "label"],
    )
    notes["value"] = (notes["label"] == "chosen").astype(float)  # P(chosen better)
    result = run_audit(
        pairs, annotations=notes, validators=["agreement", "label_noise"], embedder=None
    )
    noise = result.validators["label_noise"]
    assert noise.info["signals_used"] == ["scores", "raters", "model"]
    assert noise.metrics["label_noise/signals"] == 3
    assert noise.metrics["label_noise/score_suspects"] == 1
    assert noise.metrics["label_noise/rater_suspects"] == 1
    assert noise.flags["scores"]["p0"] == 0.95 and noise.flags["raters"]["p1"] > 0.9
    assert set(noise.info["overlap"]) >= {"scores", "raters"}
    assert "raters prefer rejected" in noise.flags["reason"]["p1"]


def _with_reference(logps: dict[str, tuple[float, float]], **params):
    """label_noise on one pair per prompt of ``logps``, after the reference pass on a stub."""
    from prefaudit.validators.reference import ReferenceValidator
    from tests.validators.test_reference import StubScorer

    pairs = pairs_frame([(p, "c", "r") for p in logps])
    context = AuditContext(pairs, embedder=None, reference_scorer=StubScorer(logps))
    context.results["reference"] = ReferenceValidator().run(context)
    return LabelNoiseValidator(**params).run(context)


def test_the_reference_margin_is_a_signal_calibrated_on_the_labels():
    """95 pairs the reference prefers as labelled (0 to +5 nats a token) and 5 planted flips
    it strongly disprefers (-3 to -5): calibrated on the file, the reference has shown it
    predicts these labels, so the flips get a signal past `backing` (0.9: 0.92-0.96 here) and
    a flip_score."""
    rng = np.random.default_rng(0)
    margins = np.concatenate([rng.uniform(0, 5, 95), -rng.uniform(3, 5, 5)])
    logps = {f"q{i}": (-30.0 + 5 * m, -30.0 - 5 * m) for i, m in enumerate(margins)}
    result = _with_reference(logps)
    assert "reference" in result.info["signals_used"]
    signal = result.flags["reference"].to_numpy()
    assert (signal[95:] > 0.9).all() and (signal[:95] < 0.5).all()
    assert result.flags["flip_score"].notna().sum() == 5
    assert result.flags["issue"].to_numpy()[95:].all()
    # Sure either way of more than a tenth of the pairs: its estimated rate is a measure.
    assert result.info["signals_supporting"] == ["reference"]


def test_a_reference_that_does_not_predict_the_labels_backs_no_flip():
    """A reference that agrees with 60% of the labels, as far either way (a weak one, like
    SmolLM2-135M on GPT-4's AlpacaEval labels, 65% per token): a fixed mapping made -5 nats a
    token look 99.99% flipped; calibrated, no pair gets near `backing`."""
    rng = np.random.default_rng(0)
    margins = rng.uniform(1, 5, 100) * np.where(rng.random(100) < 0.6, 1, -1)
    logps = {f"q{i}": (-30.0 + 5 * m, -30.0 - 5 * m) for i, m in enumerate(margins)}
    result = _with_reference(logps)
    assert result.flags["reference"].max() < 0.75
    assert result.flags["flip_score"].isna().all()
    # ... nor the estimated rate: the report shows it as a hint, saying why.
    assert result.info["signals_supporting"] == []
    weak = result.info["signals_weak"]["reference"]
    assert re.search(r"is at most [5-7]\d% sure about any pair", weak)
    assert "of 10% of the pairs it scored (here 0.0%)" in weak


def test_too_few_scored_pairs_give_no_reference_signal():
    from tests.validators.test_reference import LOGPS

    result = _with_reference(LOGPS)
    assert result.info["signals_used"] == []
    missing = result.info["signals_missing"]["reference"]
    assert "4 pairs scored by the reference model: fewer than 50 (min_pairs" in missing
    assert not result.flags["issue"].any() and (result.flags["reason"] == "").all()
    # No reference signal: no reference suspects (not the validator's raw margin: no evidence).
    assert result.metrics["label_noise/reference_suspects"] is None


def test_a_reference_that_disagrees_with_the_labels_is_no_evidence_either_way():
    """A reference that prefers the rejected response of 95% of the pairs: an unconstrained
    calibration learned a negative weight and read "the reference prefers chosen" as evidence
    of a flip (it backed the estimated rate as a headline). A margin may only count for the
    reference: here none does, and the signal is 0.5 everywhere."""
    rng = np.random.default_rng(0)
    margins = rng.uniform(1, 5, 200) * np.where(rng.random(200) < 0.05, 1, -1)
    result = _with_reference(
        {f"q{i}": (-30.0 + 5 * m, -30.0 - 5 * m) for i, m in enumerate(margins)}
    )
    assert np.allclose(result.flags["reference"], 0.5)
    assert result.info["signals_supporting"] == []
    assert result.flags["flip_score"].isna().all()


def test_the_reference_signal_does_not_credit_length():
    """The token-length ratio predicts every label (chosen always the longer) and the reference
    is as good per token on both sides (noise around -1 nat a token): the ratio is in the
    calibration while it learns and out of its scores, and the total margin, which then only
    says "the rejected response is shorter", may not count against the label. The signal
    stays near 0.5 and supports nothing."""
    from prefaudit.validators.reference import ReferenceValidator
    from tests.validators.test_reference import StubScorer

    rng = np.random.default_rng(1)
    tokens = {f"q{i}": (int(rng.integers(20, 40)), int(rng.integers(5, 15))) for i in range(200)}
    logps = {p: (-c * rng.normal(1, 0.2), -r * rng.normal(1, 0.2)) for p, (c, r) in tokens.items()}

    class Longer(StubScorer):
        def score(self, prompts, *args, **kwargs):
            table = super().score(prompts, *args, **kwargs)
            table["chosen_tokens"] = [tokens[p][0] for p in prompts]
            table["rejected_tokens"] = [tokens[p][1] for p in prompts]
            return table

    pairs = pairs_frame([(p, "c", "r") for p in logps])
    context = AuditContext(pairs, embedder=None, reference_scorer=Longer(logps))
    context.results["reference"] = ReferenceValidator().run(context)
    result = LabelNoiseValidator().run(context)
    assert result.flags["reference"].between(0.3, 0.7).all()
    assert result.info["signals_supporting"] == []


def test_without_any_signal_nothing_is_claimed():
    pairs = pairs_frame([("q", "a", "b"), ("r", "c", "d")])
    result = LabelNoiseValidator().run(AuditContext(pairs, embedder=None))
    assert result.metrics["label_noise/signals"] == 0
    assert result.metrics["label_noise/estimated_rate"] is None
    assert not result.flags["issue"].any()
    assert set(result.info["signals_missing"]) == {"scores", "raters", "model", "reference"}


def test_a_set_threshold_replaces_the_confident_learning_rule():
    pairs, _ = _planted(n=200, flipped=0.2, seed=2)
    strict = LabelNoiseValidator(threshold=0.99).run(AuditContext(pairs, embedder=None))
    loose = LabelNoiseValidator(threshold=0.6).run(AuditContext(pairs, embedder=None))
    assert strict.metrics["label_noise/threshold"] == 0.99
    assert strict.metrics["label_noise/flagged"] < loose.metrics["label_noise/flagged"]
    assert "threshold parameter" in strict.info["threshold_rule"]


def test_a_model_that_learns_little_says_its_estimate_is_suspect():
    rng = np.random.default_rng(5)
    words = GOOD + BAD + TOPICS
    rows = [
        (f"q{i}", " ".join(rng.choice(words, 6)), " ".join(rng.choice(words, 6)))
        for i in range(200)
    ]
    context = AuditContext(pairs_frame(rows), embedder=None)
    result = LabelNoiseValidator().run(context)
    assert result.metrics["label_noise/model_agreement"] < 0.7
    assert "not label noise alone" in result.info["caveat"]
    assert result.info["caveat"] in context.notes
    assert result.info["model_regularization"] in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def _shorter_chosen(pairs: pd.DataFrame) -> pd.Series:
    return pairs["chosen"].str.len() < pairs["rejected"].str.len()


def test_a_judge_that_favours_length_does_not_make_the_shorter_chosen_answers_suspects():
    """Right labels from a judge that picks the longer answer 5 times in 6: the model learns
    length, and (before) every shorter chosen answer looked flipped."""
    rng = np.random.default_rng(1)
    words = [*GOOD, *BAD, "answer", "about", "the", "it", "and", "this"]
    rows = []
    for i in range(600):
        short, long = (" ".join(rng.choice(words, k)) for k in (rng.integers(4, 9), 14))
        rows.append((f"question {i}", *((long, short) if rng.random() < 5 / 6 else (short, long))))
    pairs = pairs_frame(rows)
    flags = LabelNoiseValidator().run(AuditContext(pairs, embedder=None)).flags
    suspects = flags["noise_score"] >= flags["noise_score"].quantile(0.9)
    shorter = _shorter_chosen(pairs).reindex(flags.index)
    assert shorter.mean() == pytest.approx(1 / 6, abs=0.04)
    assert shorter[suspects].mean() <= shorter.mean() + 0.1  # was 1.0


def test_on_real_gpt4_judged_pairs_suspects_are_no_more_length_skewed_than_the_file(
    alpaca_dev_file,
):
    """3,000 AlpacaEval pairs judged by GPT-4 (favouring longer answers): before, 92% of the
    suspects had the shorter chosen answer against 16% of the file."""
    from prefaudit.io import load

    pairs = load(str(alpaca_dev_file)).pairs.sample(3000, random_state=0)
    flags = LabelNoiseValidator().run(AuditContext(pairs, embedder=None)).flags
    shorter = _shorter_chosen(pairs).reindex(flags.index)
    suspects = flags["issue"].astype(bool)
    assert suspects.sum() >= 30
    assert shorter[suspects].mean() <= shorter.mean() + 0.05, (
        shorter[suspects].mean(),
        shorter.mean(),
    )


def test_one_rater_per_pair_is_no_rater_signal(tmp_path):
    """A single-judge file: each pair's one rating is its label. Counted as raters, it made
    3,000 GPT-4-judged pairs look 0.0% flipped, headlined "from raters, model"."""
    import json

    import prefaudit

    pairs, _ = _planted(100)
    notes = tmp_path / "notes.jsonl"
    rows = [{"pair_id": p, "annotator": "judge", "label": "chosen"} for p in pairs.index]
    notes.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = tmp_path / "pairs.jsonl"
    pairs[["pair_id", "prompt", "chosen", "rejected"]].to_json(data, orient="records", lines=True)
    result = prefaudit.audit(
        str(data),
        annotations=str(notes),
        validators=["agreement", "label_noise"],
        embedding_model="off",
    )
    noise = result.validators["label_noise"]
    assert noise.info["signals_used"] == ["model"]
    assert "one rater's vote is the label" in noise.info["signals_missing"]["raters"]


def test_a_flip_needs_firm_evidence_besides_the_preference_model():
    """flip_score is set only where scores, raters or the reference, pooled, are `backing`
    (0.9) sure the rejected response is better: SmolLM2-135M's slight leans had backed flips
    that overrode GPT-4's label 20 times in 38 (benchmarks/bench_proof.py)."""
    from prefaudit.validators.label_noise import SIGNALS

    rows = {  # the reference's signal is calibrated: how sure it has shown it can be
        "slight reference lean": {"reference": 0.6},
        "strong reference dispreference": {"reference": 0.95},
        "two raters of two": {"raters": 0.98},
        "two raters of three": {"raters": 0.67},
        "model alone": {"model": 0.99},
    }
    signals = pd.DataFrame(
        [{s: values.get(s, np.nan) for s in SIGNALS} for values in rows.values()], index=rows
    )
    backed = dict(zip(rows, LabelNoiseValidator()._backed(signals), strict=True))
    assert backed == {
        "slight reference lean": False,
        "strong reference dispreference": True,
        "two raters of two": True,
        "two raters of three": False,
        "model alone": False,
    }
    # backing 0.5 is the old rule: any lean of the independent signals backs a flip.
    assert LabelNoiseValidator(backing=0.5)._backed(signals).tolist() == [True] * 4 + [False]


def test_the_reference_backs_a_flip_only_where_length_cannot_explain_its_lean():
    """A short right answer ("43") against a long one: per token the reference prefers the
    long one, in total the short one. Such a lean backs no flip; a lean both ways does."""
    from types import SimpleNamespace

    from prefaudit.validators.label_noise import _length_robust

    index = pd.Index(["short chosen", "both ways"])
    reference = pd.Series([0.99999, 0.999], index=index)  # the signal: rejected far better
    flags = pd.DataFrame({"margin": [71.6, -12.0]}, index=index)  # total: chosen, rejected
    context = SimpleNamespace(results={"reference": SimpleNamespace(flags=flags)})
    robust = _length_robust(reference, context)
    assert np.isnan(robust[0]) and robust[1] == 0.999


def test_fold_matrices_of_sparse_features_equal_max_abs_scaler_bit_for_bit():
    """The cross-fitted model's sparse fold matrices (per-fold column maxima; rows gathered,
    oriented and scaled in one pass) are exactly MaxAbsScaler fitted on the oriented train
    rows applied to them and to the test rows: the fits see the same numbers."""
    from scipy import sparse
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import MaxAbsScaler

    from prefaudit.validators.label_noise import _fold_matrices, _oriented, _signs

    positive = sparse.random(600, 90, density=0.08, random_state=1, format="csr")
    features = (positive - sparse.random(600, 90, density=0.08, random_state=2)).tocsr()
    features = features.multiply((np.arange(90) != 7)[None, :]).tocsr()  # an all-zero column
    features.eliminate_zeros()
    oriented, _ = _oriented(features, 3)
    splits = list(KFold(5, shuffle=True, random_state=0).split(np.arange(600)))
    folds = _fold_matrices(features, splits, _signs(600, 3))
    for (train, test), found in zip(splits, folds, strict=True):
        reference = MaxAbsScaler().fit(oriented[train])
        assert np.array_equal(found[2], 1.0 / reference.scale_)
        for rows, matrix in zip((oriented[train], features[test]), found[:2], strict=True):
            expected = reference.transform(rows)
            assert np.array_equal(matrix.indptr, expected.indptr)
            assert np.array_equal(matrix.indices, expected.indices)
            assert np.array_equal(matrix.data, expected.data)


def test_folds_and_strengths_fitted_on_threads_give_what_one_thread_gives(monkeypatch):
    """The cross-fitted folds and the choice of C run their fits side by side on threads;
    every fit is its own, so the scores and the C chosen are those of one thread."""
    from scipy import sparse

    from prefaudit.validators.label_noise import _choose_strength, _cross_fitted

    features = sparse.random(900, 60, density=0.1, random_state=5, format="csr")
    features = (features - sparse.random(900, 60, density=0.1, random_state=6)).tocsr()
    lean = np.asarray(features[:, :5].sum(axis=1)).ravel()  # a signal to learn
    features = sparse.hstack([features, sparse.csr_matrix(lean[:, None])]).tocsr()
    found = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("PREFAUDIT_THREADS", threads)
        strength = _choose_strength(features, seed=1, most=400)
        flipped, _ = _cross_fitted(features, 5, strength, seed=2, nuisance=np.array([0]))
        found[threads] = (strength, flipped)
    assert found["1"][0] == found["3"][0]
    assert not np.isnan(found["3"][1]).any()
    assert np.array_equal(found["1"][1], found["3"][1])


def test_hashed_difference_equals_scipy_hstack_of_row_differences():
    """The pair features built row by row are exactly scipy's
    ``hstack([vectors[chosen] - vectors[rejected], csr_matrix(text)])``: the same sparsity
    (zeros dropped, a response paired with itself gives an empty difference) and values."""
    from scipy import sparse

    from prefaudit.validators.label_noise import _hashed_difference
    from prefaudit.words import hashed_words

    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "the", "cat", "sat", "on", "a", "mat", "and", "ran"]
    distinct = [" ".join(rng.choice(words, rng.integers(0, 12))) for _ in range(80)]
    chosen, rejected = rng.integers(0, 80, 300), rng.integers(0, 80, 300)
    rejected[:10] = chosen[:10]
    text = rng.normal(size=(300, 7)) * (rng.random((300, 7)) < 0.7)
    vectors = hashed_words(distinct, n_features=2**14)
    found = _hashed_difference(vectors, chosen, rejected, text)
    expected = sparse.hstack([vectors[chosen] - vectors[rejected], sparse.csr_matrix(text)]).tocsr()
    assert found.shape == expected.shape
    assert np.array_equal(found.indptr, expected.indptr)
    assert np.array_equal(found.indices, expected.indices)
    assert np.array_equal(found.data, expected.data)


@pytest.mark.parametrize("rows", [None, [4, 0, 2, 2]])
def test_distinct_responses_are_pandas_factorize_of_chosen_then_rejected(rows):
    """Arrow's dictionary encoding of the responses gives pandas' factorize of chosen then
    rejected (missing responses as empty ones): the same codes, in order of first appearance,
    and the same distinct texts; on Arrow-backed and plain columns, in chunks or not."""
    from prefaudit.validators.label_noise import _distinct_responses

    chosen = ["a", "b", None, "a", "c"]
    rejected = ["b", "", "d", "c", "a"]
    for dtype in ("str", object):
        pairs = pd.DataFrame({"chosen": chosen, "rejected": rejected}, dtype=dtype)
        picked = pairs if rows is None else pairs.iloc[rows]
        both = pd.concat([picked["chosen"], picked["rejected"]]).fillna("").astype(str)
        codes, expected = pd.factorize(both)
        first, second, distinct = _distinct_responses(
            pairs, None if rows is None else np.array(rows)
        )
        assert np.array_equal(np.r_[first, second], codes)
        assert distinct.to_pylist() == list(expected)
    chunked = pd.DataFrame(
        {
            side: pd.array(pa.chunked_array([values[:2], values[2:]]), dtype="str")
            for side, values in (("chosen", chosen), ("rejected", rejected))
        }
    )
    assert chunked["chosen"].array._pa_array.num_chunks == 2
    first, second, distinct = _distinct_responses(chunked, np.array([4, 1]))
    assert [distinct[c].as_py() for c in np.r_[first, second]] == ["c", "b", "a", ""]


@pytest.mark.parametrize("dense", [False, True])
def test_each_fold_model_as_weights_scores_its_test_rows_as_it_did(dense):
    """The cross-fitted folds' models come back as weights of the unscaled features (the
    scale and the zeroed length columns folded in): they give the fold's test rows the
    scores the fold gave them, which is how pairs beyond the fitted sample are scored."""
    from scipy import sparse
    from scipy.special import expit
    from sklearn.model_selection import KFold

    from prefaudit.validators.label_noise import _cross_fitted

    features = sparse.random(500, 40, density=0.2, random_state=3, format="csr")
    features = (features - sparse.random(500, 40, density=0.2, random_state=4)).tocsr() * 7.0
    lean = np.asarray(features[:, :4].sum(axis=1)).ravel()
    features = sparse.hstack([features, sparse.csr_matrix(lean[:, None])]).tocsr()
    if dense:
        features = features.toarray().astype(np.float32)
    flipped, weights = _cross_fitted(features, 5, 0.3, seed=2, nuisance=np.array([0, 1]))
    assert weights.shape == (41, 5) and (weights[[0, 1]] == 0).all()
    splits = KFold(5, shuffle=True, random_state=2).split(np.arange(500))
    for fold, (_, test) in enumerate(splits):
        again = 1 - expit(np.asarray(features[test] @ weights[:, fold]).ravel())
        assert np.allclose(again, flipped[test], rtol=0, atol=1e-6)


@pytest.mark.parametrize("embedder", [None, WordEmbedder()], ids=["hashed-words", "embeddings"])
def test_past_the_fitting_budget_a_sample_is_fitted_and_every_pair_scored(monkeypatch, embedder):
    from sklearn.metrics import roc_auc_score

    from prefaudit.validators import label_noise

    pairs, flips = _planted(n=900, flipped=0.1, seed=2)
    whole = LabelNoiseValidator().run(AuditContext(pairs, embedder=embedder))
    monkeypatch.setattr(label_noise, "_FIT_PAIRS", 450)
    monkeypatch.setattr(label_noise, "_SCORED_BLOCK", 100)
    sampled = LabelNoiseValidator().run(AuditContext(pairs, embedder=embedder))
    assert whole.info["model_fitted_pairs"] == 900
    assert sampled.info["model_fitted_pairs"] == 450
    scores = sampled.flags["noise_score"].to_numpy()
    assert not np.isnan(scores).any()
    assert roc_auc_score(flips, scores) > 0.95
    caught = sampled.flags["issue"].to_numpy()
    assert (caught & flips).sum() >= 0.8 * flips.sum()
    assert (caught & ~flips).sum() <= 0.05 * (~flips).sum()
