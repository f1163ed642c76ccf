"""Agreement statistics on coded ratings: (unit, rater, value) arrays, vectorised with numpy.

Krippendorff's alpha is computed from per-unit sufficient statistics, so that a bootstrap over
units is a weighted sum (one matrix product per resample) instead of a full recomputation. The
point estimate is checked against the ``krippendorff`` package in the tests; the package itself
is what the agreement validator reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prefaudit.errors import SettingError

LEVELS = ("nominal", "ordinal", "interval")


@dataclass(frozen=True)
class AlphaStatistics:
    """Per-unit statistics from which alpha (and its bootstrap) follows.

    Discrete levels keep each unit's coincidence matrix (flattened, V*V values); the interval
    level keeps four moments per unit, so it also works for continuous values.
    """

    level: str
    per_unit: np.ndarray  # (pairable units, k)
    values: np.ndarray  # the value domain (discrete levels)


def alpha_statistics(units: np.ndarray, values: np.ndarray, level: str) -> AlphaStatistics:
    """Sufficient statistics of the ratings ``values`` of ``units`` (one entry per rating)."""
    if level not in LEVELS:
        raise SettingError(f"level of measurement must be one of {LEVELS}, got {level!r}")
    _, unit_index = np.unique(units, return_inverse=True)
    m = np.bincount(unit_index).astype(float)
    pairable = m >= 2
    if level == "interval":
        s1 = np.bincount(unit_index, weights=values)
        s2 = np.bincount(unit_index, weights=values * values)
        m_safe = np.where(pairable, m, 2.0)
        within = np.where(pairable, 2.0 * m * (s2 - s1 * s1 / m_safe) / (m_safe - 1.0), 0.0)
        per_unit = np.column_stack([m, s1, s2, within])[pairable]
        return AlphaStatistics(level, per_unit, np.array([]))
    domain, value_index = np.unique(values, return_inverse=True)
    v = len(domain)
    counts = np.bincount(unit_index * v + value_index, minlength=len(m) * v).reshape(len(m), v)
    counts, m = counts[pairable].astype(float), m[pairable]
    # o_u[c, k] = (n_uc * n_uk - [c == k] * n_uc) / (m_u - 1)
    coincidence = counts[:, :, None] * counts[:, None, :]
    coincidence[:, np.arange(v), np.arange(v)] -= counts
    coincidence /= (m - 1.0)[:, None, None]
    return AlphaStatistics(level, coincidence.reshape(len(m), v * v), domain)


def alpha_from_totals(stats: AlphaStatistics, totals: np.ndarray) -> np.ndarray:
    """Alpha for each row of ``totals`` (weighted sums of the per-unit statistics)."""
    totals = np.atleast_2d(totals)
    if stats.level == "interval":
        n, s1, s2, within = totals.T
        expected = 2.0 * n * s2 - 2.0 * s1 * s1
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(expected > 0, 1.0 - (n - 1.0) * within / expected, np.nan)
    v = len(stats.values)
    observed = totals.reshape(-1, v, v)
    marginals = observed.sum(axis=2)
    n = marginals.sum(axis=1)
    delta = _delta(stats.level, stats.values, marginals)
    disagreement_observed = (observed * delta).sum(axis=(1, 2))
    disagreement_expected = np.einsum("bc,bk,bck->b", marginals, marginals, delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            disagreement_expected > 0,
            1.0 - (n - 1.0) * disagreement_observed / disagreement_expected,
            np.nan,
        )


def _delta(level: str, domain: np.ndarray, marginals: np.ndarray) -> np.ndarray:
    """Squared distance between values, per resample (ordinal depends on the marginals)."""
    v = len(domain)
    if level == "nominal":
        return np.broadcast_to(1.0 - np.eye(v), (len(marginals), v, v))
    # ordinal: (sum of n_g for g from c to k, minus (n_c + n_k) / 2) squared
    cumulative = np.concatenate(
        [np.zeros((len(marginals), 1)), np.cumsum(marginals, axis=1)], axis=1
    )
    low = np.minimum.outer(np.arange(v), np.arange(v))
    high = np.maximum.outer(np.arange(v), np.arange(v))
    between = cumulative[:, high + 1] - cumulative[:, low]
    return (between - (marginals[:, :, None] + marginals[:, None, :]) / 2.0) ** 2


def alpha(stats: AlphaStatistics) -> float:
    """Krippendorff's alpha of all units."""
    return float(alpha_from_totals(stats, stats.per_unit.sum(axis=0))[0])


def bootstrap_alpha(
    stats: AlphaStatistics, resamples: int = 1000, seed: int = 0, batch: int = 50
) -> np.ndarray:
    """Alpha over ``resamples`` bootstrap resamples of the units (drawn with replacement)."""
    rng = np.random.default_rng(seed)
    u = len(stats.per_unit)
    out = np.empty(resamples)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        # Multinomial unit counts for `size` resamples, as one bincount over stacked draws.
        draws = rng.integers(0, u, size=(size, u)) + (np.arange(size) * u)[:, None]
        weights = np.bincount(draws.ravel(), minlength=size * u).reshape(size, u).astype(float)
        out[start : start + size] = alpha_from_totals(stats, weights @ stats.per_unit)
    return out


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of a units x categories count table where every unit has the same raters."""
    if len(counts) == 0:
        return None
    m = counts.sum(axis=1)
    if m.min() != m.max() or m[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every unit")
    raters = float(m[0])
    p_unit = ((counts * counts).sum(axis=1) - raters) / (raters * (raters - 1.0))
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares * shares).sum())
    return None if expected >= 1.0 else float((p_unit.mean() - expected) / (1.0 - expected))


def quadratic_kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa with quadratic weights of two raters' values on the same units (None when
    undefined: fewer than 2 units, or no variation). Equal to scikit-learn's
    ``cohen_kappa_score(weights="quadratic")`` when the values are equally spaced points.

    >>> round(quadratic_kappa(np.array([1, 2, 3, 4]), np.array([1, 2, 4, 4])), 4)
    0.9167
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2:
        return None
    observed = float(np.mean((a - b) ** 2))
    # The mean squared difference over all (i, j): what independent raters would show.
    expected = float(a.var() + b.var() + (a.mean() - b.mean()) ** 2)
    return None if expected <= 0 else 1.0 - observed / expected


def wilson(successes: int, total: int, z: float = 1.959964) -> tuple[float | None, float | None]:
    """The Wilson score 95% interval of a proportion ((None, None) for no trials).

    >>> [round(x, 3) for x in wilson(8, 10)]
    [0.49, 0.943]
    """
    if not total:
        return None, None
    p = successes / total
    denominator = 1 + z * z / total
    center = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def rate(count: float, total: float) -> float | None:
    """count / total, or None when there is nothing to divide by."""
    return float(count) / float(total) if total else None


def binomial_p_value(successes: int, total: int, p: float = 0.5) -> float | None:
    """Two-sided exact binomial test of ``successes`` out of ``total`` against rate ``p``."""
    if not total:
        return None
    from scipy.stats import binomtest

    return float(binomtest(successes, total, p).pvalue)


@dataclass(frozen=True)
class DawidSkeneFit:
    posteriors: np.ndarray  # (units, classes): P(true class | ratings)
    priors: np.ndarray  # (classes,)
    confusion: np.ndarray  # (raters, true class, observed label)
    iterations: int

    def accuracy(self) -> np.ndarray:
        """Each rater's estimated accuracy: sum over classes of prior x P(correct | class)."""
        diagonal = np.diagonal(self.confusion, axis1=1, axis2=2)
        return diagonal @ self.priors


def dawid_skene(
    units: np.ndarray,
    raters: np.ndarray,
    labels: np.ndarray,
    n_units: int,
    n_raters: int,
    n_classes: int,
    max_iterations: int = 100,
    tol: float = 1e-5,
) -> DawidSkeneFit:
    """Dawid & Skene (1979) EM: per-rater confusion matrices and per-unit class posteriors.

    Initialised with the majority vote (soft); confusion entries are clipped at 1e-12 before
    normalising, as in crowd-kit. Stops when the log-likelihood per rating improves by less
    than ``tol`` (a scale-free rule; crowd-kit uses its evidence lower bound per rating).
    """
    eps = 1e-12
    posteriors = np.zeros((n_units, n_classes))
    np.add.at(posteriors, (units, labels), 1.0)
    rated = posteriors.sum(axis=1) > 0
    posteriors[rated] /= posteriors[rated].sum(axis=1, keepdims=True)
    previous = -np.inf
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        # M-step: expected counts of (rater, true class, observed label).
        confusion = np.empty((n_raters, n_classes, n_classes))
        for k in range(n_classes):
            counts = np.bincount(
                raters * n_classes + labels,
                weights=posteriors[units, k],
                minlength=n_raters * n_classes,
            )
            confusion[:, k, :] = counts.reshape(n_raters, n_classes)
        confusion = np.clip(confusion, eps, None)
        confusion /= confusion.sum(axis=2, keepdims=True)
        priors = np.clip(posteriors[rated].mean(axis=0), eps, None)
        # E-step: log P(class) + sum over the unit's ratings of log P(label | class, rater).
        log_likelihood = np.tile(np.log(priors), (n_units, 1))
        log_confusion = np.log(confusion)
        for k in range(n_classes):
            log_likelihood[:, k] += np.bincount(
                units, weights=log_confusion[raters, k, labels], minlength=n_units
            )
        top = log_likelihood.max(axis=1, keepdims=True)
        joint = np.exp(log_likelihood - top)
        total = joint.sum(axis=1, keepdims=True)
        posteriors = np.where(rated[:, None], joint / total, 0.0)
        current = float((np.log(total[:, 0]) + top[:, 0])[rated].sum()) / max(len(units), 1)
        if current - previous < tol:
            break
        previous = current
    return DawidSkeneFit(posteriors, priors, confusion, iterations)
