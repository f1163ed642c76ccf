"""``agreement``: how far the labels can be trusted, from several raters per pair."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from prefaudit import stats
from prefaudit.errors import InputError, SettingError
from prefaudit.io.scales import LabelScale
from prefaudit.io.schema import ANNOTATION_LABELS
from prefaudit.validators.base import CleaningAction, Validator, ValidatorResult

LABELS = ANNOTATION_LABELS  # ("chosen", "rejected", "tie"): label codes 0, 1, 2 below
CHOSEN, REJECTED, TIE = range(3)
_SPLIT = -1  # no single majority label
_EVEN = 1e-9  # mean strengths this close to a tie are a tie (floating-point sums)
_FRAME_NAMES = {
    "position": ("first", "second", "tie"),
    "response": ("response_a", "response_b", "tie"),
}


@dataclass
class _Ratings:
    """Coded ratings after reconciling repeats: one per (pair, rater).

    Each label says which of two responses fixed before any label is read the rater preferred
    (0 = side 0, 1 = side 1, 2 = tie), so that two raters who prefer the same response agree
    whatever order they saw it in. The frame says which response is side 0:

    - ``position``: the first-shown one, when every rater of a pair saw the same order;
    - ``response``: the pair's response A (its ``chosen_position`` says where the chosen one
      is), when raters of a pair saw different orders and the input records each pair's A/B;
    - ``pair``: the dataset's chosen response, otherwise.

    The chosen response only as the last resort: a long table's chosen response is the one its
    raters' mean prefers, so coding against it makes "chosen" win by construction and skews
    the label shares alpha's expected disagreement comes from (in the tests, 20 pairs of 3
    raters seen in mixed orders: alpha -0.09 against chosen, 0.33 against response A).
    """

    unit: np.ndarray  # pair position in the PairSet
    rater: np.ndarray  # rater code
    label: np.ndarray  # 0, 1, 2 in the frame
    value: np.ndarray  # probability that side 0 is better, in [0, 1]
    first_preferred: np.ndarray  # 1 prefers the first-shown response, 0 the second, -1 unknown/tie
    raters: list[str]
    repeats: int
    frame: str  # "position", "response" or "pair"
    swap: np.ndarray  # per pair: side 0 of the frame is the dataset's rejected response
    raw_values: np.ndarray  # distinct values as given, before repeats were averaged
    zero_first: np.ndarray  # per rating: 1 the rater saw side 0 first, 0 side 1, -1 unknown
    scale: LabelScale | None = None  # a graded scale the labels were read on (else None)

    @property
    def names(self) -> tuple[str, str, str]:
        return _FRAME_NAMES.get(self.frame, LABELS)

    def to_pair_frame(self, per_pair: np.ndarray) -> np.ndarray:
        """Per-pair (n, 3) counts or probabilities with side 0 = chosen, side 1 = rejected."""
        out = per_pair.copy()
        out[self.swap, 0], out[self.swap, 1] = per_pair[self.swap, 1], per_pair[self.swap, 0]
        return out


class AgreementValidator(Validator):
    """Inter-rater agreement, per-pair consensus and per-rater reliability.

    >>> import pandas as pd
    >>> from prefaudit.auditing import AuditContext
    >>> pairs = pd.DataFrame({"prompt": ["a", "b"], "chosen": ["x", "y"], "rejected": ["z", "w"]}, index=["p1", "p2"])
    >>> notes = pd.DataFrame({"pair_id": ["p1", "p1", "p2", "p2"], "annotator": ["r1", "r2"] * 2,
    ...                       "label": ["chosen", "chosen", "chosen", "rejected"], "value": [1.0, 1.0, 1.0, 0.0]})
    >>> result = AgreementValidator(bootstrap_resamples=0).run(AuditContext(pairs, notes))
    >>> result.flags["issue"].tolist(), result.metrics["agreement/percent_agreement"]
    ([False, True], 0.5)
    """

    name = "agreement"
    description = (
        "Agreement between the raters of each pair: Krippendorff's alpha (with a bootstrap 95% "
        "interval), percent agreement, Cohen's kappa between raters and Fleiss' kappa; per pair, "
        "the consensus label, how many raters share it and whether it contradicts the dataset's "
        "label; per rater, agreement with the others, position bias and a Dawid-Skene estimate "
        "of accuracy. Labels the raters do not agree on teach the model noise."
    )
    requires = ("annotations",)
    metric_names = (
        "agreement/annotations",
        "agreement/annotators",
        "agreement/pairs_annotated",
        "agreement/multi_rated_pairs",
        "agreement/mean_raters_per_pair",
        "agreement/repeated_judgements",
        "agreement/unparsed_labels",
        "agreement/level_of_measurement",
        "agreement/alpha_method",
        "agreement/krippendorff_alpha",
        "agreement/krippendorff_alpha_ci_low",
        "agreement/krippendorff_alpha_ci_high",
        "agreement/percent_agreement",
        "agreement/fleiss_kappa",
        "agreement/fleiss_kappa_raters",
        "agreement/fleiss_kappa_pairs",
        "agreement/low_agreement_rate",
        "agreement/tie_rate",
        "agreement/contradicted_rate",
        "agreement/unreliable_annotators",
        "agreement/label_scale",
        "agreement/weighted_kappa",
    )
    text_metric_names = (
        "agreement/level_of_measurement",
        "agreement/alpha_method",
        "agreement/label_scale",
    )
    headline_metrics = (
        "agreement/krippendorff_alpha",
        "agreement/krippendorff_alpha_ci_low",
        "agreement/krippendorff_alpha_ci_high",
        "agreement/percent_agreement",
        "agreement/low_agreement_rate",
        "agreement/unreliable_annotators",
    )
    cleaning = (
        CleaningAction(
            "reorient",
            "contradicted",
            by="raters",
            reason="raters' consensus prefers the rejected response",
        ),
        CleaningAction("soft_label", "soft_label"),
        CleaningAction(
            "strength",
            "strength",
            reason="the raters' consensus is a near-tie (strength {score:.2f}, under {threshold})",
        ),
    )

    param_ranges = MappingProxyType(
        {
            "min_agreement": (0, 1),
            "min_annotator_accuracy": (0, 1),
            "min_annotator_agreement": (0, 1),
            "bootstrap_resamples": (0, None),
            "seed": (0, None),
            "min_consensus": (0, 1),
        }
    )

    def __init__(
        self,
        *,
        level: str = "auto",
        min_agreement: float = 0.6,
        aggregate: str = "dawid_skene",
        min_annotator_accuracy: float = 0.7,
        min_annotator_agreement: float = 0.65,
        bootstrap_resamples: int = 1000,
        seed: int = 0,
        min_consensus: float = 0.7,
    ):
        # "auto": nominal when labels are categories, ordinal for a few graded levels (<= 11),
        # interval for continuous values; or name one of nominal / ordinal / interval.
        self.level = level
        # A pair is low-agreement when fewer than this share of its raters give the top label.
        self.min_agreement = min_agreement
        # How a pair's consensus is formed: "majority" or "dawid_skene" (weights raters by skill).
        self.aggregate = aggregate
        # Raters below this Dawid-Skene accuracy are unreliable (as are those below
        # min_annotator_agreement).
        self.min_annotator_accuracy = min_annotator_accuracy
        # Raters agreeing with the other raters' majority less often than this are unreliable.
        # (Not kappa: when most labels are right, every rater's kappa collapses towards 0.)
        self.min_annotator_agreement = min_annotator_agreement
        # Resamples of pairs for alpha's 95% interval (0 skips it).
        self.bootstrap_resamples = bootstrap_resamples
        self.seed = seed  # for the bootstrap
        # A Dawid-Skene consensus counts only at this posterior; below it the pair is split
        # (else a 1-1 split would be decided by the class prior alone).
        self.min_consensus = min_consensus

    def run(self, context) -> ValidatorResult:
        if self.aggregate not in ("majority", "dawid_skene"):
            raise SettingError(
                f"agreement: aggregate must be 'majority' or 'dawid_skene', got {self.aggregate!r}"
            )
        pairs = context.pairs
        ratings = _code(context.annotations, pairs, _graded_scale(context.load_report))
        n = len(pairs)
        counts = np.zeros((n, 3))  # votes per pair in the raters' frame
        np.add.at(counts, (ratings.unit, ratings.label), 1.0)
        raters_per_pair = counts.sum(axis=1)
        level = self._level(ratings.raw_values, ratings.scale)

        fit = None
        if len(ratings.unit) and ratings.raters:
            fit = stats.dawid_skene(
                ratings.unit, ratings.rater, ratings.label, n, len(ratings.raters), 3
            )
        table, unreliable = self._rater_table(ratings, counts, fit)
        depends = _depends_on(ratings, counts, unreliable)
        votes = ratings.to_pair_frame(counts)  # side 0 = chosen from here on
        majority, share = _majority(votes)
        soft, consensus = self._consensus(ratings, votes, majority, fit)
        flags = self._flags(
            pairs.index, raters_per_pair, majority, share, votes, soft, consensus, depends
        )
        flags["strength"] = _strength(ratings, n)
        metrics = self._metrics(ratings, counts, level, flags, unreliable)
        metrics["agreement/unparsed_labels"] = _unparsed_labels(context.load_report)
        info = _info(ratings, fit, level, self.aggregate, raters_per_pair, table)
        if ratings.scale is not None:
            info["weighted_kappa"] = _weighted_kappa_matrix(ratings)
            metrics["agreement/weighted_kappa"] = _mean_kappa(info["weighted_kappa"])
        return self.result(flags, metrics, info)

    def _level(self, values: np.ndarray, scale: LabelScale | None = None) -> str:
        if self.level != "auto":
            if self.level not in stats.LEVELS:
                raise SettingError(
                    f"agreement: level must be 'auto' or one of {stats.LEVELS}, got {self.level!r}"
                )
            return self.level
        if scale is not None:  # ordinal: what a graded or Likert scale supports, but for a
            # slider of more points than ordinal alpha can be computed on in reasonable time
            return scale.level if len(np.unique(values)) <= _PACKAGE_MAX_VALUES else "interval"
        distinct = np.unique(values)
        if np.isin(distinct, (0.0, 0.5, 1.0)).all():
            return "nominal"
        return "ordinal" if len(distinct) <= 11 else "interval"

    def _consensus(self, ratings, votes, majority, fit):
        """Soft label P(chosen better) and the consensus label (chosen frame) of every pair."""
        rated = votes.sum(axis=1) > 0
        if ratings.scale is not None:
            # A graded scale: the soft label is the raters' mean strength as P(chosen better),
            # and its side is the consensus (a category model would drop how strongly).
            soft = (1.0 + _strength(ratings, len(votes))) / 2.0
            side = np.where(soft > 0.5 + _EVEN, CHOSEN, np.where(soft < 0.5 - _EVEN, REJECTED, TIE))
            return np.where(rated, soft, np.nan), np.where(rated, side, _SPLIT)
        if self.aggregate == "dawid_skene" and fit is not None:
            posteriors = ratings.to_pair_frame(fit.posteriors)
            soft = posteriors[:, CHOSEN] + 0.5 * posteriors[:, TIE]
            confident = posteriors.max(axis=1) >= self.min_consensus
            consensus = np.where(rated & confident, posteriors.argmax(axis=1), _SPLIT)
        else:
            total = np.bincount(ratings.unit, weights=ratings.value, minlength=len(votes))
            mean = np.divide(total, votes.sum(axis=1), out=np.full(len(votes), np.nan), where=rated)
            soft = np.where(ratings.swap, 1.0 - mean, mean)
            consensus = majority
        return np.where(rated, soft, np.nan), consensus

    def _rater_table(self, ratings, counts, fit) -> tuple[list[dict[str, Any]], list[str]]:
        """Per rater: labels, agreement with the others, kappa, position bias, estimated accuracy."""
        from sklearn.metrics import cohen_kappa_score

        others = counts[ratings.unit].copy()
        others[np.arange(len(ratings.label)), ratings.label] -= 1.0
        loo, _ = _majority(others)  # the other raters' majority for each rating
        accuracy = fit.accuracy() if fit is not None else np.full(len(ratings.raters), np.nan)
        lean = _graded_lean(ratings) if ratings.scale is not None else None
        rows = []
        for code, rater in enumerate(ratings.raters):
            mine = ratings.rater == code
            defined = mine & (loo != _SPLIT)
            own, theirs = ratings.label[defined], loo[defined]
            kappa = _safe_kappa(cohen_kappa_score, own, theirs)
            first, total, extra = _position(ratings, loo, defined, mine, lean)
            rows.append(
                {
                    "annotator": rater,
                    "labels": int(mine.sum()),
                    "loo_agreement": float((own == theirs).mean()) if len(own) else None,
                    "kappa_vs_others": kappa,
                    "first_shown_rate": _share(
                        ratings.first_preferred[mine & (ratings.first_preferred >= 0)]
                    ),
                    "position_bias": first / total if total else None,
                    "position_bias_p_value": stats.binomial_p_value(first, total),
                    "estimated_accuracy": None
                    if math.isnan(accuracy[code])
                    else float(accuracy[code]),
                    **extra,
                }
            )
        for row in rows:
            low_accuracy = (
                row["estimated_accuracy"] is not None
                and row["estimated_accuracy"] < self.min_annotator_accuracy
            )
            low_agreement = (
                row["loo_agreement"] is not None
                and row["loo_agreement"] < self.min_annotator_agreement
            )
            row["unreliable"] = bool(low_accuracy or low_agreement)
        rows.sort(
            key=lambda r: (
                -(r["estimated_accuracy"] if r["estimated_accuracy"] is not None else -1.0)
            )
        )
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank
        return rows, [r["annotator"] for r in rows if r["unreliable"]]

    def _flags(
        self, index, raters_per_pair, majority, share, counts, soft, consensus, depends
    ) -> pd.DataFrame:
        rated = raters_per_pair > 0
        several = raters_per_pair >= 2
        low = several & (share < self.min_agreement)
        tie = rated & (consensus == TIE)
        contradicted = rated & (consensus == REJECTED)
        issue = low | tie | contradicted | depends
        score = np.where(rated, np.clip(1.0 - np.nan_to_num(soft, nan=1.0), 0.0, 1.0), 0.0)
        reasons = [""] * len(index)
        for i in np.flatnonzero(issue):
            parts = []
            votes = ", ".join(
                f"{int(c)} {label}" for c, label in zip(counts[i], LABELS, strict=True) if c
            )
            if contradicted[i]:
                parts.append(f"the raters prefer the rejected response ({votes})")
            if tie[i]:
                parts.append(f"the raters' consensus is a tie ({votes})")
            if low[i]:
                parts.append(
                    f"low agreement: {share[i]:.0%} of {int(raters_per_pair[i])} raters give the top label ({votes})"
                )
            if depends[i]:
                parts.append("the majority changes without the unreliable raters")
            reasons[i] = "; ".join(parts)
        return pd.DataFrame(
            {
                "score": score,
                "issue": issue,
                "reason": reasons,
                "raters": raters_per_pair.astype(np.int64),
                "majority_label": [
                    LABELS[m] if m >= 0 else ("split" if r else "")
                    for m, r in zip(majority, rated, strict=True)
                ],
                "agreement": np.where(rated, share, np.nan),
                "entropy": _entropy(counts),
                "soft_label": soft,
                "consensus_label": [LABELS[c] if c >= 0 else "" for c in consensus],
                "low_agreement": low,
                "tie": tie,
                "contradicted": contradicted,
                "depends_on_unreliable": depends,
            },
            index=index,
        )

    def _metrics(self, ratings, counts, level, flags, unreliable) -> dict[str, Any]:
        m = counts.sum(axis=1)
        several = m >= 2
        alpha, low, high, method = self._alpha(ratings, level)
        fleiss, fleiss_raters, fleiss_pairs = _fleiss(counts[several])
        pair_agreement = (counts * (counts - 1)).sum(axis=1)[several] / (m * (m - 1))[several]
        return {
            "agreement/annotations": int(len(ratings.unit)),
            "agreement/annotators": len(ratings.raters),
            "agreement/pairs_annotated": int((m > 0).sum()),  # distinct pairs, not ratings
            # The pairs agreement is measured on: a pair with one rater has nobody to agree with.
            "agreement/multi_rated_pairs": int(several.sum()),
            "agreement/mean_raters_per_pair": float(m[m > 0].mean()) if (m > 0).any() else None,
            "agreement/repeated_judgements": ratings.repeats,
            "agreement/level_of_measurement": level,
            "agreement/alpha_method": method,
            "agreement/krippendorff_alpha": alpha,
            "agreement/krippendorff_alpha_ci_low": low,
            "agreement/krippendorff_alpha_ci_high": high,
            "agreement/percent_agreement": float(pair_agreement.mean())
            if len(pair_agreement)
            else None,
            "agreement/fleiss_kappa": fleiss,
            "agreement/fleiss_kappa_raters": fleiss_raters,
            "agreement/fleiss_kappa_pairs": fleiss_pairs,
            "agreement/low_agreement_rate": stats.rate(flags["low_agreement"].sum(), several.sum()),
            "agreement/tie_rate": stats.rate(flags["tie"].sum(), (m > 0).sum()),
            "agreement/contradicted_rate": stats.rate(flags["contradicted"].sum(), (m > 0).sum()),
            "agreement/unreliable_annotators": len(unreliable),
            "agreement/label_scale": None if ratings.scale is None else ratings.scale.spec,
            "agreement/weighted_kappa": None,  # graded scales: set in run
        }

    def _alpha(self, ratings, level) -> tuple[float | None, float | None, float | None, str]:
        """Alpha and its bootstrap 95% interval over pairs; says what computed the estimate."""
        if len(ratings.unit) < 2:
            return None, None, None, "none"
        # Nominal alpha on a choice reads the side each rating prefers; on a graded scale
        # every point is a category of its own.
        nominal_sides = level == "nominal" and ratings.scale is None
        values = ratings.label.astype(float) if nominal_sides else ratings.value
        if level == "ordinal" and len(np.unique(values)) > _PACKAGE_MAX_VALUES:
            raise SettingError(
                f"agreement: level 'ordinal' needs a few distinct label values, these have "
                f"{len(np.unique(values))}; use level interval (or auto) for continuous labels"
            )
        sufficient = stats.alpha_statistics(ratings.unit, values, level)
        if len(np.unique(values)) <= _PACKAGE_MAX_VALUES:
            alpha, method = _package_alpha(ratings, values, level), "krippendorff package"
        else:
            # The package builds a units x V x V array: with continuous labels (V in the
            # thousands) that is tens of seconds. The moment formula is exact (equal to the
            # package to rounding; see tests/test_stats.py).
            alpha, method = stats.alpha(sufficient), "prefaudit.stats (exact, continuous values)"
        if alpha is None or math.isnan(alpha):
            return None, None, None, method
        if not self.bootstrap_resamples:
            return alpha, None, None, method
        resampled = stats.bootstrap_alpha(sufficient, self.bootstrap_resamples, self.seed)
        resampled = resampled[~np.isnan(resampled)]
        if not len(resampled):
            return alpha, None, None, method
        low, high = np.percentile(resampled, [2.5, 97.5])
        return alpha, float(low), float(high), method


_PACKAGE_MAX_VALUES = 50  # distinct label values up to which the krippendorff package is used


def _package_alpha(ratings, values: np.ndarray, level: str) -> float | None:
    import krippendorff

    units, unit_index = np.unique(ratings.unit, return_inverse=True)
    matrix = np.full((len(ratings.raters), len(units)), np.nan)
    matrix[ratings.rater, unit_index] = values
    try:
        return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))
    except ValueError:  # a single value throughout: expected disagreement is zero
        return None


def _info(
    ratings: _Ratings, fit, level: str, aggregate: str, raters_per_pair, table
) -> dict[str, Any]:
    """Tables for the report: frame, rater ranking, kappa matrix, Dawid-Skene parameters."""
    sizes, frequency = np.unique(raters_per_pair, return_counts=True)
    return {
        "level_of_measurement": level,
        "label_scale": None if ratings.scale is None else ratings.scale.to_dict(),
        "label_frame": ratings.frame,
        "labels": list(ratings.names),
        "aggregate": aggregate,
        "raters_per_pair": {str(int(k)): int(v) for k, v in zip(sizes, frequency, strict=True)},
        "repeated_judgements": {
            "count": ratings.repeats,
            "reconciled_by": "mean of the rater's values for the pair; the label follows the mean (a tie when they cancel)",
        },
        "annotators": table,
        "cohen_kappa": _kappa_matrix(ratings),
        "dawid_skene": None
        if fit is None
        else {
            "iterations": fit.iterations,
            "priors": dict(zip(ratings.names, fit.priors.round(4).tolist(), strict=True)),
            "confusion": {
                r: fit.confusion[i].round(4).tolist() for i, r in enumerate(ratings.raters)
            },
        },
    }


def _unparsed_labels(report) -> int | None:
    """Judgements the loader rejected for a missing or unreadable label (never guessed)."""
    if report is None:
        return None
    return sum(1 for issue in report.rejected if issue.field == "label")


def _code(annotations: pd.DataFrame, pairs: pd.DataFrame, scale: LabelScale | None = None):
    """Integer codes for pairs, raters and labels; repeated (pair, rater) judgements averaged.
    ``scale``: the graded scale the labels were read on, if any."""
    table = annotations[annotations["pair_id"].astype(str).isin(pairs.index)]
    unknown = len(annotations) - len(table)
    if unknown:
        raise InputError(f"agreement: {unknown} annotation(s) name pairs that are not loaded")
    unit = pairs.index.get_indexer(table["pair_id"].astype(str))
    rater_codes, raters = pd.factorize(table["annotator"].astype(str), sort=True)
    if "chosen_position" in table:
        position = (
            table["chosen_position"]
            .astype(object)
            .where(table["chosen_position"].notna(), None)
            .to_numpy()
        )
    else:
        position = np.full(len(table), None, dtype=object)
    frame = pd.DataFrame(
        {
            "unit": unit,
            "rater": rater_codes,
            "value": table["value"].to_numpy(dtype=float),
            "position": position,
        }
    )
    reconciled = (
        frame.groupby(["unit", "rater"], sort=True)
        .agg(value=("value", "mean"), position=("position", "first"))
        .reset_index()
    )
    unit, shown = reconciled["unit"].to_numpy(), reconciled["position"].to_numpy()
    known = np.array([p in ("a", "b") for p in shown], dtype=bool)
    chosen_second = known & (shown == "b")  # where this rater saw the chosen response
    frame_name, swap = _side_zero(unit, shown, known, pairs)
    value = reconciled["value"].to_numpy()  # P(chosen better)
    value = np.where(swap[unit], 1.0 - value, value)  # now P(side 0 better)
    if scale is not None:  # 1 - (1 - x) is not always x: one point must stay one category
        value = np.round(value, 12)
    label = np.where(value > 0.5, 0, np.where(value < 0.5, 1, TIE))
    # Position bias reads each rating's own order, whatever the frame.
    prefers_chosen = np.where(swap[unit], label == 1, label == 0)
    prefers_first = np.where(chosen_second, ~prefers_chosen, prefers_chosen).astype(int)
    first = np.where(known & (label != TIE), prefers_first, -1)
    zero_first = np.where(known, (swap[unit] == chosen_second).astype(int), -1)
    return _Ratings(
        unit,
        reconciled["rater"].to_numpy(),
        label,
        value,
        first,
        [str(r) for r in raters],
        repeats=int(len(frame) - len(reconciled)),
        frame=frame_name,
        swap=swap,
        raw_values=np.unique(frame["value"].to_numpy()),
        zero_first=zero_first,
        scale=scale,
    )


def _graded_scale(report) -> LabelScale | None:
    """The graded scale (graded, Likert, labelled grades) every label column that made the
    annotations was read on; None for choices, probabilities, mixed scales or no report."""
    if report is None:
        return None
    specs = {
        entry["scale"]["spec"]: entry["scale"]
        for entry in getattr(report, "label_scales", [])
        if entry.get("annotations")
    }
    if len(specs) != 1:
        return None
    scale = LabelScale.from_dict(next(iter(specs.values())))
    return scale if scale.graded else None


def _strength(ratings: _Ratings, n: int) -> np.ndarray:
    """Per pair: the raters' mean strength for the chosen response, in [-1, 1] (1: all say
    chosen is better by the whole scale; 0: a tie on average; NaN: no rater)."""
    total = np.bincount(ratings.unit, weights=ratings.value, minlength=n)
    count = np.bincount(ratings.unit, minlength=n)
    mean = np.divide(total, count, out=np.full(n, np.nan), where=count > 0)  # P(side 0 better)
    mean = np.where(ratings.swap, 1.0 - mean, mean)
    return np.clip(2.0 * mean - 1.0, -1.0, 1.0)


def _position(ratings: _Ratings, loo, defined, mine, lean) -> tuple[int, int, dict[str, Any]]:
    """A rater's position bias, free of content: among their ratings that differ from the
    others', how many favour the first-shown response, out of how many (half: none); on a
    graded scale, from the others' mean strength (``lean``), with the mean lean in the scale's
    units (``position_shift``)."""
    if lean is None:
        disagree = defined & (ratings.label != loo) & (ratings.first_preferred >= 0)
        return int(ratings.first_preferred[disagree].sum()), int(disagree.sum()), {}
    leans = lean[mine & ~np.isnan(lean)]
    apart = leans[np.abs(leans) > _EVEN]
    shift = float(leans.mean() * ratings.scale.span) if len(leans) else None
    return int((apart > 0).sum()), len(apart), {"position_shift": shift}


def _graded_lean(ratings: _Ratings) -> np.ndarray:
    """Per rating on a graded scale: how much more it favours the response its rater saw first
    than the pair's other raters favour that same response, in P units (NaN where the order is
    unknown or nobody else rated the pair). Content cancels out: both judge the same response."""
    n = int(ratings.unit.max()) + 1 if len(ratings.unit) else 0
    total = np.bincount(ratings.unit, weights=ratings.value, minlength=n)
    count = np.bincount(ratings.unit, minlength=n)[ratings.unit]
    others = np.divide(
        total[ratings.unit] - ratings.value,
        count - 1,
        out=np.full(len(ratings.value), np.nan),
        where=count > 1,
    )
    lean = np.where(ratings.zero_first == 1, 1.0, -1.0) * (ratings.value - others)
    return np.where(ratings.zero_first >= 0, lean, np.nan)


def _side_zero(unit, shown, known, pairs: pd.DataFrame) -> tuple[str, np.ndarray]:
    """The label frame (see ``_Ratings``) and, per pair, whether its side 0 is the rejected one."""
    swap = np.zeros(len(pairs), dtype=bool)
    orders = pd.Series(shown[known]).groupby(unit[known]).nunique()
    if len(unit) and known.all() and bool((orders == 1).all()):
        swap[unit[shown == "b"]] = True  # side 0 = the first-shown response
        return "position", swap
    rated = np.unique(unit)
    if len(rated) and "chosen_position" in pairs:
        recorded = pairs["chosen_position"].to_numpy()[rated]
        if all(p in ("a", "b") for p in recorded):
            swap[rated] = recorded == "b"  # side 0 = the pair's response A
            return "response", swap
    return "pair", swap


def _majority(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top label of each row (_SPLIT when tied or empty) and the share of votes it has."""
    top = counts.max(axis=1)
    total = counts.sum(axis=1)
    winners = (counts == top[:, None]).sum(axis=1)
    label = np.where((total > 0) & (winners == 1), counts.argmax(axis=1), _SPLIT)
    share = np.divide(top, total, out=np.zeros(len(counts)), where=total > 0)
    return label, share


def _depends_on(ratings: _Ratings, counts: np.ndarray, unreliable: list[str]) -> np.ndarray:
    """Pairs whose majority label changes when the unreliable raters are left out."""
    if not unreliable:
        return np.zeros(len(counts), dtype=bool)
    majority, _ = _majority(counts)
    drop = np.isin(np.asarray(ratings.raters)[ratings.rater], unreliable)
    kept = counts.copy()
    np.add.at(kept, (ratings.unit[drop], ratings.label[drop]), -1.0)
    without, _ = _majority(kept)
    return (majority != without) & (kept.sum(axis=1) > 0)


def _kappa_matrix(ratings: _Ratings) -> dict[str, Any]:
    """Cohen's kappa for every pair of raters, on the pairs both labelled."""
    from sklearn.metrics import cohen_kappa_score

    r = len(ratings.raters)
    labels = {}
    for code in range(r):
        mine = ratings.rater == code
        labels[code] = pd.Series(ratings.label[mine], index=ratings.unit[mine])
    matrix: list[list[float | None]] = [[None] * r for _ in range(r)]
    overlap = [[0] * r for _ in range(r)]
    for a in range(r):
        for b in range(a, r):
            both = labels[a].index.intersection(labels[b].index)
            overlap[a][b] = overlap[b][a] = int(len(both))
            if len(both) >= 2:
                kappa = _safe_kappa(
                    cohen_kappa_score,
                    labels[a].loc[both].to_numpy(),
                    labels[b].loc[both].to_numpy(),
                )
                matrix[a][b] = matrix[b][a] = kappa
    return {"annotators": ratings.raters, "kappa": matrix, "overlap": overlap}


def _weighted_kappa_matrix(ratings: _Ratings) -> dict[str, Any]:
    """Quadratic-weighted kappa for every pair of raters on a graded scale, on the pairs both
    rated (their values, so a near miss counts as nearly agreeing)."""
    r = len(ratings.raters)
    values = {
        code: pd.Series(ratings.value[ratings.rater == code], ratings.unit[ratings.rater == code])
        for code in range(r)
    }
    matrix: list[list[float | None]] = [[None] * r for _ in range(r)]
    for a in range(r):
        for b in range(a, r):
            both = values[a].index.intersection(values[b].index)
            if len(both) >= 2:
                kappa = stats.quadratic_kappa(
                    values[a].loc[both].to_numpy(), values[b].loc[both].to_numpy()
                )
                matrix[a][b] = matrix[b][a] = kappa
    return {"annotators": ratings.raters, "kappa": matrix, "weights": "quadratic"}


def _mean_kappa(table: dict[str, Any]) -> float | None:
    """The mean weighted kappa over pairs of different raters that have one."""
    matrix = table["kappa"]
    found = [
        matrix[a][b]
        for a in range(len(matrix))
        for b in range(a + 1, len(matrix))
        if matrix[a][b] is not None
    ]
    return float(np.mean(found)) if found else None


def _safe_kappa(score, a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2:
        return None
    if len(np.unique(np.concatenate([a, b]))) < 2:
        return 1.0 if (a == b).all() else None  # one label used throughout: kappa is undefined
    value = float(score(a, b, labels=[CHOSEN, REJECTED, TIE]))
    return None if math.isnan(value) else value


def _fleiss(counts: np.ndarray) -> tuple[float | None, int, int]:
    """Fleiss' kappa over the pairs with the most common number of raters (it needs equal
    numbers); returns kappa, that number of raters, and how many pairs have it."""
    if not len(counts):
        return None, 0, 0
    m = counts.sum(axis=1)
    sizes, frequency = np.unique(m, return_counts=True)
    size = sizes[frequency.argmax()]
    return stats.fleiss_kappa(counts[m == size]), int(size), int(frequency.max())


def _entropy(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(shares > 0, -shares * np.log2(shares), 0.0)
    return np.where(total[:, 0] > 0, terms.sum(axis=1), np.nan)


def _share(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None
