import numpy as np
import pytest

from prefaudit import stats


def _ratings(seed=1, units=300, raters=5, accuracy=0.7, missing=0.3, values=3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, values, units)
    matrix = np.where(
        rng.random((raters, units)) < accuracy, truth, rng.integers(0, values, (raters, units))
    ).astype(float)
    matrix[rng.random((raters, units)) < missing] = np.nan
    unit, rater = np.nonzero(~np.isnan(matrix.T))
    return matrix, unit, rater, matrix.T[unit, rater]


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_equals_the_krippendorff_package(level):
    krippendorff = pytest.importorskip("krippendorff")
    matrix, unit, _, values = _ratings()
    ours = stats.alpha(stats.alpha_statistics(unit, values, level))
    assert ours == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement=level), abs=1e-12
    )


def test_interval_alpha_on_continuous_values_equals_the_package():
    krippendorff = pytest.importorskip("krippendorff")
    matrix, unit, rater, values = _ratings(units=120)
    noisy = matrix + np.random.default_rng(2).normal(0, 0.3, matrix.shape)
    values = noisy.T[unit, rater]
    ours = stats.alpha(stats.alpha_statistics(unit, values, "interval"))
    assert ours == pytest.approx(
        krippendorff.alpha(reliability_data=noisy, level_of_measurement="interval"), abs=1e-12
    )


def test_bootstrap_is_deterministic_and_brackets_the_estimate():
    _, unit, _, values = _ratings(units=500)
    sufficient = stats.alpha_statistics(unit, values, "nominal")
    first = stats.bootstrap_alpha(sufficient, 200, seed=3)
    assert np.array_equal(first, stats.bootstrap_alpha(sufficient, 200, seed=3))
    low, high = np.percentile(first, [2.5, 97.5])
    assert low < stats.alpha(sufficient) < high
    assert 0.0 < high - low < 0.2


def test_fleiss_kappa_worked_example():
    # Fleiss (1971) as worked in the literature: 10 subjects, 14 raters, 5 categories: 0.210.
    table = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert stats.fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-4)
    with pytest.raises(ValueError, match="same number"):
        stats.fleiss_kappa(np.array([[1, 1], [2, 1]]))


@pytest.mark.parametrize("seed", range(5))
def test_quadratic_kappa_equals_scikit_learns_on_scale_points(seed):
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(seed)
    a = rng.integers(1, 8, 40)
    b = np.clip(a + rng.integers(-2, 3, 40), 1, 7)
    expected = cohen_kappa_score(a, b, weights="quadratic", labels=list(range(1, 8)))
    assert stats.quadratic_kappa(a, b) == pytest.approx(expected, abs=1e-12)
    # An affine re-coding (1..7 as P(A better) = (7 - x) / 6) changes nothing.
    assert stats.quadratic_kappa((7 - a) / 6, (7 - b) / 6) == pytest.approx(expected, abs=1e-12)
    assert (
        stats.quadratic_kappa(a[:1], b[:1]) is None and stats.quadratic_kappa(a * 0, b * 0) is None
    )


def test_dawid_skene_ranks_a_random_rater_last():
    rng = np.random.default_rng(0)
    units, accuracies = 1500, [0.95, 0.9, 0.8, 0.5]
    truth = rng.integers(0, 2, units)
    unit, rater, label = [], [], []
    for r, accuracy in enumerate(accuracies):
        answers = np.where(rng.random(units) < accuracy, truth, 1 - truth)
        unit.append(np.arange(units)), rater.append(np.full(units, r)), label.append(answers)
    fit = stats.dawid_skene(
        np.concatenate(unit), np.concatenate(rater), np.concatenate(label), units, 4, 2
    )
    estimated = fit.accuracy()
    assert np.argsort(-estimated).tolist() == [0, 1, 2, 3]
    assert estimated == pytest.approx(accuracies, abs=0.03)
    assert (fit.posteriors.argmax(axis=1) == truth).mean() > 0.97


@pytest.mark.slow
def test_dawid_skene_and_majority_agree_with_crowd_kit_on_alpacaeval(alpaca_file):
    crowdkit = pytest.importorskip("crowdkit.aggregation")
    from prefaudit.io import load

    data = load(str(alpaca_file))
    table = data.annotations.groupby(["pair_id", "annotator"], as_index=False)["value"].mean()
    table["label"] = np.where(table["value"] > 0.5, 0, np.where(table["value"] < 0.5, 1, 2))
    tasks, unit = np.unique(table["pair_id"], return_inverse=True)
    workers, rater = np.unique(table["annotator"], return_inverse=True)
    frame = table.rename(columns={"pair_id": "task", "annotator": "worker"})[
        ["task", "worker", "label"]
    ]
    labels = table["label"].to_numpy()
    # Same algorithm: identical posteriors after the same number of EM iterations...
    for iterations in (1, 10):
        fit = stats.dawid_skene(
            unit, rater, labels, len(tasks), len(workers), 3, max_iterations=iterations, tol=-1
        )
        reference = crowdkit.DawidSkene(n_iter=iterations, tol=-1e9).fit(frame)
        expected = reference.probas_.reindex(tasks)[[0, 1, 2]].to_numpy()
        assert np.abs(fit.posteriors - expected).max() < 1e-8
    # ...and the same labels at convergence. (crowd-kit's default tolerance stops it after 8
    # iterations here, while about 6% of the labels are still moving; ours converges at 67.)
    fit = stats.dawid_skene(unit, rater, labels, len(tasks), len(workers), 3)
    reference = crowdkit.DawidSkene(n_iter=100, tol=-1e9).fit(frame)
    assert (fit.posteriors.argmax(axis=1) == reference.labels_.reindex(tasks).to_numpy()).all()
    # The same ranking of the judges by estimated accuracy.
    errors = reference.errors_
    crowd_accuracy = {
        w: sum(
            errors.loc[(w, k), k] * reference.priors_[k]
            for k in reference.priors_.index
            if (w, k) in errors.index
        )
        for w in workers
    }
    assert (
        np.argsort(-fit.accuracy()).tolist()
        == np.argsort([-crowd_accuracy[w] for w in workers]).tolist()
    )
    majority = crowdkit.MajorityVote().fit(frame).labels_.reindex(tasks).to_numpy()
    counts = np.zeros((len(tasks), 3))
    np.add.at(counts, (unit, table["label"].to_numpy()), 1)
    clear = (counts == counts.max(axis=1, keepdims=True)).sum(
        axis=1
    ) == 1  # crowd-kit breaks ties at random
    assert (counts.argmax(axis=1)[clear] == majority[clear]).all()
