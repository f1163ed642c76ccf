"""``label_noise``: which preferences are most likely flipped, with the evidence, and how many.

Each signal gives every pair it can judge a probability that its label is flipped (the
rejected response is the better one); pairs a signal cannot judge get NaN from it:

- ``scores``: explicit scores that contradict the label (chosen scored below rejected: 0.95;
  a tie: 0.5; scores that agree: 0.4, weak evidence, as labels are often derived from them);
- ``raters``: the `agreement` validator's soft label, 1 - P(chosen better), for pairs with
  two raters or more (a single rating is, in a single-judge file, the label itself);
- ``model``: an out-of-fold preference model: a Bradley-Terry (logistic, no intercept) model
  on the difference between the two responses' features (embeddings of both responses, their
  interaction with the prompt's, simple text features), cross-fitted over K folds, so every
  pair is scored by a model that never saw it;
- ``reference``: the `reference` validator's margins (per token and in total), calibrated on
  this file's own labels: an out-of-fold logistic model of the label on them (the length ratio
  in the model while it learns, out of its scores), so the signal is only as sure as the
  reference model has shown itself to be on these pairs (at least ``min_pairs`` scored).

They are combined by adding their log-odds (weights in ``weights``: a naive-Bayes pooling
that treats the signals as independent evidence); with one signal the combined score is that
signal. A pair is flagged when its combined score passes the threshold (``threshold``; by
default the confident-learning rule: at least the average confidence in the given labels, and
more likely flipped than not). The noise rate is estimated the confident-learning way: among
the pairs confidently judged either way, the share confidently judged flipped; its interval is
a bootstrap over pairs.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from prefaudit import memory
from prefaudit.text import default_threads, shape_counts
from prefaudit.validators.base import CleaningAction, Validator, ValidatorResult

SIGNALS = ("scores", "raters", "model", "reference")
_LISTED = 50
_WEAK_MODEL = 0.7  # model agreement with the labels below which its noise estimate is suspect
_STRENGTHS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
_EPS = 1e-4
_DECISIVE = 0.1  # share of pairs a reference must be _SURE of to support the rate
_SURE = 0.9
_MARGINS, _RATIO = [0, 1], 2  # the reference's calibration features: margins, length ratio
_CLIP = 10.0  # calibrating the reference: features beyond 10 median sizes are clipped
# Pairs the preference model is fitted on at most (a random sample beyond: the hashed-word
# features of 200,000 pairs hold about 77M values, 0.9 GB); the others are scored by the
# fold models, _SCORED_BLOCK pairs' features at a time.
_FIT_PAIRS = 200_000
_SCORED_BLOCK = 50_000


class LabelNoiseValidator(Validator):
    """Per-pair probability that the preference is flipped, from every signal available.

    >>> import pandas as pd
    >>> from prefaudit.auditing import AuditContext
    >>> pairs = pd.DataFrame({"prompt": ["q", "q", "q"], "chosen": ["a", "b", "c"],
    ...     "rejected": ["x", "y", "z"], "score_chosen": [9, 2, 5], "score_rejected": [1, 8, 5]})
    >>> result = LabelNoiseValidator(min_pairs=10).run(AuditContext(pairs, embedder=None))
    >>> result.flags["scores"].tolist(), result.flags["issue"].tolist()
    ([0.4, 0.95, 0.5], [False, True, False])
    """

    name = "label_noise"
    uses = ("agreement", "reference")
    description = (
        "Ranks the pairs by how likely their preference is flipped, from every signal there "
        "is: explicit scores that contradict the label, the raters' soft label (agreement), an "
        "out-of-fold preference model on the responses' embeddings and text features (each pair "
        "scored by a model that never saw it), and the reference model's margin (reference). "
        "Each signal is reported on its own and combined; the flag threshold follows the "
        "confident-learning rule unless set, and the dataset's noise rate is estimated with a "
        "bootstrap interval. Published analyses find a fifth to a quarter of some public "
        "preference sets ambiguous or flipped, and flipped labels cost win rate after DPO."
    )
    metric_names = (
        "label_noise/estimated_rate",
        "label_noise/estimated_rate_ci_low",
        "label_noise/estimated_rate_ci_high",
        "label_noise/flagged",
        "label_noise/flagged_rate",
        "label_noise/threshold",
        "label_noise/signals",
        "label_noise/model_agreement",
        "label_noise/score_suspects",
        "label_noise/rater_suspects",
        "label_noise/model_suspects",
        "label_noise/reference_suspects",
    )
    headline_metrics = (
        "label_noise/estimated_rate",
        "label_noise/estimated_rate_ci_low",
        "label_noise/estimated_rate_ci_high",
        "label_noise/flagged",
        "label_noise/signals",
    )
    # A flip needs evidence besides the preference model (which learns what the judge liked,
    # not what is right): ``flip_score`` is the combined score only where scores, raters or
    # the reference model, pooled, are at least ``backing`` sure the rejected response is
    # better. A pair as suspect without that goes to the quarantine for review, never flipped.
    cleaning = (
        CleaningAction(
            "flip",
            "flip_score",
            reason="noise score {score:.3f} >= {threshold}, backed by scores, raters or the "
            "reference model",
        ),
        CleaningAction(
            "review",
            "noise_score",
            reason="noise score {score:.3f} >= {threshold} without firm evidence besides the "
            "preference model: not flipped; review it",
        ),
        CleaningAction("confidence", "noise_score"),
    )

    param_ranges = MappingProxyType(
        {
            "folds": (2, None),
            "threshold": (0, 1),
            "backing": (0.5, 1),
            "min_pairs": (1, None),
            "regularization": (0, None),
            "bootstrap": (0, None),
            "seed": (0, None),
        }
    )

    def __init__(
        self,
        *,
        folds: int = 5,
        threshold: float | None = None,
        weights: dict[str, float] | None = None,
        backing: float = 0.9,
        min_pairs: int = 50,
        regularization: float | None = None,
        bootstrap: int = 1000,
        seed: int = 0,
    ):
        # Folds of the cross-fitted preference model (each pair scored by a model trained on
        # the other folds).
        self.folds = folds
        # Combined score at which a pair is flagged; None = the confident-learning rule (at
        # least the mean confidence in the given labels, and above 0.5).
        self.threshold = threshold
        # Weight of each signal's log-odds in the combined score (missing: 1).
        self.weights = weights
        # How sure the signals besides the preference model (scores, raters, the reference),
        # pooled, must be that the rejected response is better for a pair to get a flip_score
        # (to be flipped by cleaning rather than held for review). With 0.5 a small reference
        # model's slightest lean backed flips: on 96-pair pools of GPT-4-judged AlpacaEval
        # pairs with SmolLM2-135M as the reference, 18 of 38 such flips restored GPT-4's label
        # (benchmarks/bench_proof.py). Two raters of two, or a score gap, reach 0.9; the
        # reference only where, calibrated on the file, its margin is that predictive.
        self.backing = backing
        # Fewer pairs than this: no preference model, and no calibrated reference signal
        # (too little to learn from).
        self.min_pairs = min_pairs
        # Inverse L2 strength (scikit-learn's C) of the preference model; None = chosen by
        # 3-fold cross-validated log-loss on up to 5,000 pairs from a grid of 0.001 to 1.
        self.regularization = regularization
        # Bootstrap resamples for the noise rate's interval.
        self.bootstrap = bootstrap
        self.seed = seed  # the folds, the choice of C, the bootstrap

    def run(self, context) -> ValidatorResult:
        self._strength = None  # the preference model's C, once chosen
        self._fitted = None  # how many pairs it was fitted on
        pairs = context.pairs
        notes: dict[str, str] = {}  # signal -> why it is missing
        signals, representation = self._signals(context, notes)
        used = [s for s in SIGNALS if signals[s].notna().any()]
        combined = self._combine(signals[used]) if used else np.full(len(pairs), np.nan)
        judged = ~np.isnan(combined)
        confidence = float(np.mean(1 - combined[judged])) if judged.any() else None
        threshold = self._threshold(confidence)
        issue = judged & (np.nan_to_num(combined) >= threshold) & (np.nan_to_num(combined) > 0.5)
        suspects = _suspects(signals)
        estimate = self._estimate(combined[judged], confidence)
        flags = _flags(signals, combined, issue, suspects, pairs)
        backing = signals.assign(reference=_length_robust(signals["reference"], context))
        flags.insert(4, "flip_score", np.where(self._backed(backing), combined, np.nan))
        metrics: dict[str, Any] = {
            "label_noise/estimated_rate": estimate[0],
            "label_noise/estimated_rate_ci_low": estimate[1],
            "label_noise/estimated_rate_ci_high": estimate[2],
            "label_noise/flagged": int(issue.sum()),
            "label_noise/flagged_rate": float(issue.mean()) if len(pairs) else None,
            "label_noise/threshold": threshold,
            **_signal_metrics(signals, used, suspects),
        }
        supporting, weak = self._supporting(signals, used)
        info = {
            "signals_used": used,
            "signals_supporting": supporting,
            "signals_weak": weak,
            "signals_missing": notes,
            "representation": representation,
            "model_regularization": self._strength,
            "model_fitted_pairs": self._fitted,
            "threshold_rule": self._threshold_rule(confidence),
            "weights": {s: self._weight(s) for s in used},
            "overlap": _overlap(suspects[used]) if used else {},
            "suspects": _listed(flags, pairs),
        }
        caveat = _weak_model_caveat(supporting, weak, metrics["label_noise/model_agreement"])
        if caveat:
            context.notes.append(caveat)
            info["caveat"] = caveat
        return self.result(flags, metrics, info)

    def _signals(self, context, notes: dict[str, str]) -> tuple[pd.DataFrame, str | None]:
        """Each signal's P(flipped) per pair (NaN where it has no say), and the representation
        the preference model used; why a signal is missing goes into ``notes``."""
        pairs = context.pairs
        signals = pd.DataFrame(np.nan, index=pairs.index, columns=list(SIGNALS))
        signals["scores"] = _score_signal(pairs, notes)
        signals["raters"] = _rater_signal(context, notes)
        signals["model"], representation = self._model_signal(context, notes)
        signals["reference"] = self._reference_signal(context, notes)
        return signals, representation

    def _threshold(self, confidence: float | None) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        return max(0.5, confidence) if confidence is not None else 0.5

    def _threshold_rule(self, confidence: float | None) -> str:
        if self.threshold is not None:
            return "set by the threshold parameter"
        return (
            "confident learning: at least the mean confidence in the given labels "
            f"({confidence if confidence is None else round(confidence, 4)}), and above 0.5"
        )

    # -- signals -------------------------------------------------------------------------------

    def _model_signal(self, context, notes: dict[str, str]) -> tuple[np.ndarray, str | None]:
        """Out-of-fold P(flipped) from a Bradley-Terry model on response-difference features."""
        n = len(context.pairs)
        if n < max(self.min_pairs, 2 * self.folds):
            notes["model"] = f"{n} pairs: fewer than min_pairs={self.min_pairs} to learn from"
            return np.full(n, np.nan), None
        # Past _FIT_PAIRS, the model is fitted on a sample (a fold model per pair scores the
        # rest): the features of every pair at once are too large (385M values at 1M pairs).
        fitted = _fitted_rows(n, self.seed)
        self._fitted = n if fitted is None else len(fitted)
        features, representation = _pair_features(context, fitted)
        memory.give_back()  # the texts and Arrow buffers freed making them
        length = _LENGTH_FEATURES + (features.shape[1] - len(_TEXT_FEATURES))
        with _fits_on_one_thread():
            strength = self.regularization
            if strength is None:
                strength = _choose_strength(features, self.seed)
            self._strength = strength
            flipped, weights = _cross_fitted(
                features, self.folds, strength, self.seed, nuisance=length
            )
        del features
        if fitted is not None:
            flipped = _scored_beyond(context, fitted, flipped, weights, self.seed)
        return _length_neutral(flipped, context), representation

    def _reference_signal(self, context, notes: dict[str, str]) -> np.ndarray:
        """Out-of-fold P(flipped) from the reference model's margins, calibrated on this file's
        labels: a logistic model (no intercept, each pair in a random orientation) of the
        label on the per-token margin and the signed log of the total margin, cross-fitted like
        the preference model, each margin counting only for the reference (:func:`_calibrated`).
        A fixed mapping of the margin (it was sigmoid(-2 x per-token margin)) trusts any
        reference as if it were a good judge of these pairs: SmolLM2-135M
        agrees with 65% of GPT-4's AlpacaEval labels per token and 32% in total, and the
        flips it backed overrode GPT-4's label 5 times in 5. Calibrated, a weak reference stays
        near 0.5 (0.35-0.65 on those pairs) and a strong one can reach ``backing``. The
        responses' log token ratio is in the model while it learns and out of its scores,
        as for the preference model: a judge's taste for length is not a reference's evidence."""
        result = context.results.get("reference")
        n = len(context.pairs)
        out = np.full(n, np.nan)
        if result is None:
            notes["reference"] = "the reference validator did not run (no reference_model)"
            return out
        flags = result.flags.reindex(context.pairs.index)
        per_token = flags["margin_per_token"].to_numpy(dtype=float)
        total = flags["margin"].to_numpy(dtype=float)
        scored = ~(np.isnan(per_token) | np.isnan(total))
        if scored.sum() < max(self.min_pairs, 2 * self.folds):
            notes["reference"] = (
                f"{int(scored.sum())} pairs scored by the reference model: fewer than "
                f"{max(self.min_pairs, 2 * self.folds)} (min_pairs, or two per fold) to "
                "calibrate its margins on the labels"
            )
            return out
        ratio = np.log1p(flags["chosen_tokens"].to_numpy(dtype=float)) - np.log1p(
            flags["rejected_tokens"].to_numpy(dtype=float)
        )
        features = np.column_stack([per_token, np.sign(total) * np.log1p(np.abs(total)), ratio])
        features = features[scored]
        # Each column in units of its median size, outliers clipped (scaling without centring
        # keeps the features antisymmetric).
        spread = np.median(np.abs(features), axis=0)
        features = np.clip(features / np.where(spread > 0, spread, 1.0), -_CLIP, _CLIP)
        with _fits_on_one_thread():
            out[scored] = _calibrated(features, self.folds, self.seed)
        return out

    def _supporting(
        self, signals: pd.DataFrame, used: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        """The signals besides the preference model that can support the noise rate as a
        measured figure: scores and raters, and the reference model where, calibrated on these
        labels, it is 90% sure either way of a tenth of the pairs it scored (SmolLM2-135M on
        GPT-4's AlpacaEval labels is that sure of none: the "estimated rate" of 0.27-0.38 at 0%
        injected flips in the proof benchmark was the preference model's); and why a signal
        used is left out."""
        out, weak = [s for s in used if s in ("scores", "raters")], {}
        if "reference" in used:
            judged = signals["reference"].dropna().to_numpy()
            decisive = float(np.mean((judged >= _SURE) | (judged <= 1 - _SURE)))
            if decisive >= _DECISIVE:
                out.append("reference")
            else:
                surest = float(np.max(np.maximum(judged, 1 - judged)))
                weak["reference"] = (
                    f"calibrated on these labels, the reference model is at most {surest:.0%} "
                    f"sure about any pair; to support the estimated rate it must be "
                    f"{_SURE:.0%} sure, either way, of {_DECISIVE:.0%} of the pairs it "
                    f"scored (here {decisive:.1%})"
                )
        return out, weak

    def _backed(self, signals: pd.DataFrame) -> np.ndarray:
        """Where the signals other than the preference model judged the pair and, pooled, are
        at least ``backing`` sure the rejected response is better."""
        independent = signals[[s for s in SIGNALS if s != "model"]]
        pooled = self._combine(independent)
        return ~np.isnan(pooled) & (np.nan_to_num(pooled) >= self.backing)

    def _weight(self, signal: str) -> float:
        given = (self.weights or {}).get(signal)
        return 1.0 if given is None else float(given)

    def _combine(self, signals: pd.DataFrame) -> np.ndarray:
        """Sum of the signals' weighted log-odds (NaN signals left out); NaN if none judged."""
        values = signals.to_numpy(dtype=float)
        logits = _log_odds(values)
        weights = np.array([self._weight(s) for s in signals.columns])
        total = np.nansum(logits * weights, axis=1)
        out = 1 / (1 + np.exp(-total))
        out[np.isnan(values).all(axis=1)] = np.nan
        return out

    def _estimate(self, combined: np.ndarray, confidence: float | None) -> tuple:
        """Confident-learning estimate of the noise rate, with a bootstrap interval."""
        if confidence is None or not len(combined):
            return None, None, None
        flipped = combined >= max(confidence, 0.5)
        kept = (1 - combined) >= max(confidence, 0.5)
        confident = flipped | kept
        if not confident.any():
            return None, None, None
        rate = float(flipped.sum() / confident.sum())
        # A bootstrap over pairs only moves how many resampled pairs fall in each of three
        # classes (confidently flipped, confidently kept, neither): draw those counts directly,
        # a multinomial over the three classes' shares, the same distribution as resampling
        # the n pairs, without an n x resamples matrix.
        n = len(combined)
        shares = np.array([flipped.sum(), (confident & ~flipped).sum(), (~confident).sum()]) / n
        draws = np.random.default_rng(self.seed).multinomial(n, shares, self.bootstrap)
        hits, totals = draws[:, 0], draws[:, 0] + draws[:, 1]
        rates = hits[totals > 0] / totals[totals > 0]
        low, high = np.quantile(rates, [0.025, 0.975]) if len(rates) else (rate, rate)
        return rate, float(low), float(high)


def _flags(signals: pd.DataFrame, combined, issue, suspects: pd.DataFrame, pairs) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "score": np.nan_to_num(combined, nan=0.0),
            "issue": issue,
            "reason": _reasons(signals, combined, issue, suspects.any(axis=1), pairs),
            "noise_score": combined,
            **{s: signals[s].to_numpy() for s in SIGNALS},
        },
        index=pairs.index,
    )


def _signal_metrics(signals: pd.DataFrame, used: list[str], suspects) -> dict[str, Any]:
    """How many signals judged, how often the preference model agrees with the labels, and how
    many pairs each signal on its own calls flipped (None for a signal that is absent)."""
    model = signals["model"].to_numpy()
    counts = {s: int(suspects[s].sum()) for s in SIGNALS}
    return {
        "label_noise/signals": len(used),
        "label_noise/model_agreement": (
            float(np.mean(model[~np.isnan(model)] < 0.5)) if "model" in used else None
        ),
        "label_noise/score_suspects": counts["scores"] if "scores" in used else None,
        "label_noise/rater_suspects": counts["raters"] if "raters" in used else None,
        "label_noise/model_suspects": counts["model"] if "model" in used else None,
        "label_noise/reference_suspects": counts["reference"] if "reference" in used else None,
    }


def _weak_model_caveat(supporting: list[str], weak: dict, agreement: float | None) -> str | None:
    # A preference model that fits the labels poorly flags what it cannot learn from its
    # features as much as flipped labels: with nothing else to support it, the estimate must
    # say so (a reference model too unsure on these labels does not count).
    if supporting or agreement is None or agreement >= _WEAK_MODEL:
        return None
    besides = (
        "the reference model is too unsure on these labels to support it"
        if "reference" in weak
        else "no rater, score or reference signal is present"
    )
    return (
        f"label_noise: the preference model agrees with only {agreement:.1%} of the labels and "
        f"{besides}: the estimated rate mostly measures what the model cannot learn from these "
        "features, not label noise alone"
    )


def _score_signal(pairs: pd.DataFrame, notes: dict[str, str]) -> np.ndarray:
    if not {"score_chosen", "score_rejected"} <= set(pairs.columns):
        notes["scores"] = "no score_chosen / score_rejected columns"
        return np.full(len(pairs), np.nan)
    chosen = pd.to_numeric(pairs["score_chosen"], errors="coerce").to_numpy(dtype=float)
    rejected = pd.to_numeric(pairs["score_rejected"], errors="coerce").to_numpy(dtype=float)
    # Scores that agree with the label are weak evidence (labels are often derived from them);
    # scores that contradict it are strong evidence of a flip somewhere along the way.
    out = np.where(chosen < rejected, 0.95, np.where(chosen > rejected, 0.4, 0.5))
    out[np.isnan(chosen) | np.isnan(rejected)] = np.nan
    return out


def _rater_signal(context, notes: dict[str, str]) -> np.ndarray:
    result = context.results.get("agreement")
    n = len(context.pairs)
    if result is None or "soft_label" not in result.flags:
        notes["raters"] = "the agreement validator did not run (no annotations)"
        return np.full(n, np.nan)
    soft = result.flags["soft_label"].reindex(context.pairs.index).to_numpy(dtype=float)
    # One rater is no evidence about the label: in a single-judge file that rating is the
    # label itself (it made 3,000 GPT-4-judged pairs look 0.0% flipped, "from raters").
    raters = result.flags["raters"].reindex(context.pairs.index).fillna(0).to_numpy()
    out = np.clip(1 - soft, 0.02, 0.98)
    out[raters < 2] = np.nan
    if np.isnan(out).all():
        notes["raters"] = "no pair has two raters or more (one rater's vote is the label)"
    return out


def _length_robust(reference: pd.Series, context) -> np.ndarray:
    """The reference signal where its preference for the rejected response holds both per
    token and in total, NaN elsewhere. A per-token margin favours long responses (their later
    tokens are predictable) and a total favours short ones: on GPT-4-judged AlpacaEval pairs
    the flips SmolLM2-135M backed per token were short right answers ("43", "head -n 10 f",
    "recoil") against long ones, e.g. -5.8 and -7.7 nats a token but +72 and +59 in total.
    Only where both agree can a length difference not explain the lean."""
    result = context.results.get("reference")
    values = reference.to_numpy(dtype=float).copy()
    if result is None:
        return values
    total = result.flags["margin"].reindex(reference.index).to_numpy(dtype=float)
    values[~(total < 0)] = np.nan  # the total prefers the chosen response too (or unscored)
    return values


def _suspects(signals: pd.DataFrame) -> pd.DataFrame:
    """Which pairs each signal on its own calls flipped."""
    out = pd.DataFrame(False, index=signals.index, columns=list(SIGNALS))
    out["scores"] = signals["scores"].to_numpy() > 0.9
    out["raters"] = signals["raters"].to_numpy() > 0.5
    for name in ("model", "reference"):  # each by its own confident-learning threshold
        values = signals[name].to_numpy()
        if not np.isnan(values).all():
            confidence = np.nanmean(1 - values)
            out[name] = np.nan_to_num(values) >= max(confidence, 0.5)
    return out


def _overlap(suspects: pd.DataFrame) -> dict[str, int]:
    """How many pairs each combination of signals flags (only combinations that occur)."""
    names = suspects.columns.tolist()
    keys = suspects.to_numpy().astype(bool)
    counts: dict[str, int] = {}
    for row in keys[keys.any(axis=1)]:
        key = "+".join(n for n, hit in zip(names, row, strict=True) if hit)
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _reasons(signals: pd.DataFrame, combined, issue, suspected, pairs) -> list[str]:
    """The evidence, for flagged pairs and for pairs any one signal suspects."""
    out = [""] * len(pairs)
    values = signals.to_numpy(dtype=float)
    columns = signals.columns.tolist()
    for i in np.flatnonzero(issue | np.asarray(suspected)):
        parts = []
        for k, name in enumerate(columns):
            v = values[i, k]
            if np.isnan(v):
                continue
            if name == "scores":
                parts.append(
                    f"scores {pairs['score_chosen'].iat[i]} (chosen) vs {pairs['score_rejected'].iat[i]}"
                )
            elif name == "raters":
                parts.append(f"raters prefer rejected with {v:.2f}")
            elif name == "model":
                parts.append(f"the preference model (out of fold) prefers rejected with {v:.2f}")
            else:
                parts.append(
                    f"the reference model's margins, calibrated on the labels, give {v:.2f}"
                )
        verdict = "likely flipped" if issue[i] else "doubtful, not flagged"
        out[i] = f"{verdict} ({combined[i]:.2f}): " + "; ".join(parts)
    return out


def _listed(flags: pd.DataFrame, pairs: pd.DataFrame) -> list[dict[str, Any]]:
    ranked = flags["noise_score"].fillna(-1).sort_values(ascending=False, kind="stable")
    out = []
    for pair_id in ranked.index[:_LISTED]:
        row = flags.loc[pair_id]
        if np.isnan(row["noise_score"]):
            break
        out.append(
            {
                "pair_id": str(pair_id),
                "noise_score": float(row["noise_score"]),
                **{s: (None if np.isnan(row[s]) else float(row[s])) for s in SIGNALS},
                "prompt": str(pairs.at[pair_id, "prompt"])[:200],
            }
        )
    return out


# -- the preference model ----------------------------------------------------------------------


def _fits_on_one_thread():
    """The model fits' BLAS and OpenMP calls are on vectors of a few thousand numbers: a second
    thread only waits and spins (on 2 cores, _choose_strength took 5x the CPU time with two).
    Only the fits: the embeddings and the reference model the features come from keep every
    thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def _pair_features(context, rows: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Antisymmetric features of each pair (of ``rows``, all when None; swapping chosen and
    rejected negates them): the difference of the responses' embeddings, that difference times
    the prompt's embedding, the difference of their cosine to the prompt, and differences of
    simple text features. Without embeddings, hashed word and bigram TF vectors of the
    responses stand in."""
    from prefaudit.models.embeddings import EmbeddingsUnavailable

    chosen_code, rejected_code, distinct = _distinct_responses(context.pairs, rows)
    shape = _text_features(distinct)
    text = shape[chosen_code] - shape[rejected_code]
    try:
        prompt, chosen, rejected = (
            context.embeddings(side) if rows is None else context.embeddings(side)[rows]
            for side in ("prompt", "chosen", "rejected")
        )
    except EmbeddingsUnavailable as err:
        note = f"label_noise: no embeddings ({err}); the preference model uses hashed word features"
        if note not in context.notes:
            context.notes.append(note)
        vectors = _hashed_words(distinct)
        del distinct  # not needed past here (400,000 responses when fitting a million pairs)
        return _hashed_difference(vectors, chosen_code, rejected_code, text), "hashed words"
    difference = chosen - rejected
    relevance = np.sum(prompt * chosen, axis=1) - np.sum(prompt * rejected, axis=1)
    dense = np.hstack([difference, difference * prompt, relevance[:, None], text])
    return dense.astype(np.float32), "embeddings"


_TEXT_FEATURES = ("chars", "words", "lines", "list items", "digits", "questions", "upper")
# Which of them measure length: the model learns from them, then scores without them.
_LENGTH_FEATURES = np.array([0, 1, 2])


def _text_features(texts) -> np.ndarray:
    """Length and shape of each text (log characters, log words, lines, list items, digits,
    question marks, upper-case share): the last columns of every pair's features."""
    counts = shape_counts(texts)
    chars = counts["chars"]
    features = [
        np.log1p(chars),
        np.log1p(counts["words"]),
        np.log1p(counts["lines"]),
        np.log1p(counts["list items"]),
        counts["digits"] / np.maximum(chars, 1),
        np.log1p(counts["questions"]),
        counts["upper"] / np.maximum(chars, 1),
    ]
    return np.column_stack(features)


def _distinct_responses(pairs: pd.DataFrame, rows: np.ndarray | None):
    """Each pair's chosen and rejected response (of ``rows``, all when None) as codes into
    the distinct responses, an Arrow array (missing ones empty): a response often recurs (a
    model's answer to one prompt paired with many others), and its features are the same each
    time. Arrow's dictionary encoding makes no Python string per response, as pandas'
    factorize did."""
    import pyarrow.compute as pc

    rows = np.arange(len(pairs)) if rows is None else np.asarray(rows, dtype=np.int64)
    responses = _responses_at(pairs, rows)
    if responses.null_count:
        responses = pc.fill_null(responses, "")
    encoded = responses.dictionary_encode()
    codes = encoded.indices.to_numpy()
    return codes[: len(rows)], codes[len(rows) :], encoded.dictionary


def _responses_at(pairs: pd.DataFrame, rows: np.ndarray):
    """The chosen then the rejected responses of ``rows``, as one Arrow array: taken chunk by
    chunk from Arrow-backed columns (nothing else copied), else those rows of the Series
    converted (not the whole columns, for each block of pairs scored)."""
    import pyarrow as pa

    from prefaudit.kernels import column_strings, take_rows

    columns = [pairs["chosen"], pairs["rejected"]]
    if all(_arrow_backed(column) for column in columns):
        return take_rows(column_strings(*columns), np.r_[rows, rows + len(pairs)])
    taken = pd.concat([column.iloc[rows] for column in columns], ignore_index=True)
    return pa.array(taken, type=pa.large_string())


def _arrow_backed(column: pd.Series) -> bool:
    """Whether ``column`` holds its values in Arrow (pandas' "str" and Arrow dtypes)."""
    return getattr(column.dtype, "storage", None) == "pyarrow" or hasattr(
        column.dtype, "pyarrow_dtype"
    )


def _hashed_words(texts):
    """Hashed word and bigram TF vectors (l2-normalised) of ``texts``."""
    from prefaudit.words import hashed_words  # numba: imported where the features are made

    # HashingVectorizer(n_features=2**14, ngram_range=(1, 2), alternate_sign=False,
    # norm="l2").transform(texts), the same matrix, from a compiled kernel.
    return hashed_words(texts, n_features=2**14, threads=default_threads())


def _hashed_difference(vectors, chosen_code, rejected_code, text: np.ndarray):
    """The ``vectors`` (:func:`_hashed_words`) of chosen minus rejected (codes into their
    rows), then the text features."""
    from scipy import sparse

    from prefaudit.kernels import pair_difference

    # sparse.hstack([vectors[chosen] - vectors[rejected], csr_matrix(text)]), row by row.
    width = vectors.shape[1]
    indptr = np.zeros(len(chosen_code) + 1, dtype=np.int64)
    first = np.asarray(chosen_code, dtype=np.int64)
    second = np.asarray(rejected_code, dtype=np.int64)
    tail = np.ascontiguousarray(text, dtype=np.float64)
    matrix = (vectors.indptr, vectors.indices, vectors.data, width)
    indices, data = pair_difference(*matrix, first, second, tail, indptr)
    if indptr[-1] <= np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    shape = (len(chosen_code), width + text.shape[1])
    return sparse.csr_matrix((data, indices, indptr), shape=shape)


def _oriented(features, seed: int):
    """Each pair in a random orientation: features negated and label 0 for half of them (the
    same likelihood as "chosen wins" for every pair, in a form scikit-learn fits)."""
    sign = _signs(features.shape[0], seed)
    return _orient(features, sign), (sign > 0).astype(int)


def _orient(features, sign: np.ndarray):
    """Row i of ``features`` times ``sign[i]`` (sparse or dense)."""
    if hasattr(features, "multiply"):
        return features.multiply(sign[:, None]).tocsr()
    return features * sign[:, None].astype(features.dtype)


def _signs(n: int, seed: int) -> np.ndarray:
    """+1 (as labelled) or -1 (swapped) for each pair, at random."""
    return np.where(np.random.default_rng(seed).random(n) < 0.5, -1.0, 1.0)


def _choose_strength(features, seed: int, most: int = 5000) -> float:
    """The grid's C with the best 3-fold cross-validated log-loss on up to ``most`` pairs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler

    n = features.shape[0]
    rows = np.random.default_rng(seed).permutation(n)[:most]
    oriented, labels = _oriented(features[rows], seed + 1)

    def loss(strength: float) -> float:
        model = make_pipeline(
            MaxAbsScaler(), LogisticRegression(C=strength, fit_intercept=False, max_iter=1000)
        )
        return -cross_val_score(model, oriented, labels, cv=3, scoring="neg_log_loss").mean()

    with ThreadPoolExecutor(default_threads()) as pool:  # the fits release the GIL
        losses = list(pool.map(loss, _STRENGTHS))
    return _STRENGTHS[int(np.argmin(losses))]


def _calibrated(features: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold P(flipped) from the reference's features (the margins, then the length
    ratio): as :func:`_cross_fitted`, but a margin may only count *for* the reference. A fit
    that gave a margin a negative weight (the labels disagree with the reference, as GPT-4's
    AlpacaEval labels do with SmolLM2-135M's total margin) would read "the reference prefers
    chosen" as evidence of a flip; such a margin is left out and the fold refitted, down to no
    margin at all (then 0.5: no evidence)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    n = features.shape[0]
    oriented, labels = _oriented(features, seed)
    out = np.full(n, 0.5)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(np.arange(n)):
        margins = list(_MARGINS)
        while margins:
            columns = [*margins, _RATIO]
            model = LogisticRegression(C=1.0, fit_intercept=False, max_iter=1000)
            model.fit(oriented[np.ix_(train, columns)], labels[train])
            weights = model.coef_[0][: len(margins)]
            if (weights >= 0).all():
                chosen_wins = 1 / (1 + np.exp(-features[np.ix_(test, margins)] @ weights))
                out[test] = 1 - chosen_wins
                break
            margins = [m for m, w in zip(margins, weights, strict=True) if w >= 0]
    return out


def _log_odds(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), p kept within [_EPS, 1 - _EPS] (NaN stays NaN)."""
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log(1 - p)


def _length_neutral(flipped: np.ndarray, context, bins: int = 20) -> np.ndarray:
    """``flipped`` with what the length ratio still predicts taken out (through features that
    carry length, like word counts): the pairs binned by the length ratio of their responses
    (up to 20 quantiles of log chars of chosen minus rejected, 50 pairs a bin at least), each
    bin's mean log-odds moved to the overall mean."""
    ratio = np.log1p(context.lengths("chosen")) - np.log1p(context.lengths("rejected"))
    count = min(bins, len(flipped) // 50)
    if count < 2:
        return flipped
    edges = np.unique(np.quantile(ratio, np.linspace(0, 1, count + 1)[1:-1]))
    group = np.searchsorted(edges, ratio, side="right")
    odds = _log_odds(flipped)
    means = np.bincount(group, weights=odds) / np.maximum(np.bincount(group), 1)
    return 1 / (1 + np.exp(-(odds - means[group] + odds.mean())))


def _fitted_rows(n: int, seed: int) -> np.ndarray | None:
    """The pairs the preference model is fitted on: all (None) up to ``_FIT_PAIRS``, else that
    many at random, in order."""
    if n <= _FIT_PAIRS:
        return None
    return np.sort(np.random.default_rng(seed + 3).choice(n, _FIT_PAIRS, replace=False))


def _scored_beyond(
    context, fitted: np.ndarray, flipped: np.ndarray, weights: np.ndarray, seed: int
) -> np.ndarray:
    """P(flipped) of every pair: ``flipped`` for the ``fitted`` ones (out of fold), and for the
    others the model of a fold drawn at random (none was trained on them), their features
    made ``_SCORED_BLOCK`` pairs at a time."""
    from scipy.special import expit

    n = len(context.pairs)
    out = np.full(n, np.nan)
    out[fitted] = flipped
    rest = np.setdiff1d(np.arange(n), fitted)
    fold = np.random.default_rng(seed + 4).integers(0, weights.shape[1], len(rest))
    for lo in range(0, len(rest), _SCORED_BLOCK):
        rows = rest[lo : lo + _SCORED_BLOCK]
        features, _ = _pair_features(context, rows)
        decisions = np.asarray(features @ weights)
        out[rows] = 1 - expit(decisions[np.arange(len(rows)), fold[lo : lo + len(rows)]])
    return out


def _cross_fitted(
    features, folds: int, regularization: float, seed: int, nuisance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold P(flipped) of each pair: a logistic model without intercept on the pair's
    antisymmetric features (each pair in a random orientation), trained on the other folds;
    and each fold's model as weights of the unscaled features (one column per fold).

    The ``nuisance`` columns (the length features) are in the model, so that what length
    explains is not credited to the other features, and out of its scores: a judge that
    favours long answers makes a model learn length, and every shorter chosen answer then
    looks flipped (on 3,000 AlpacaEval pairs, 92% of the suspects had the shorter chosen,
    against 16% of the file). A pair is suspect for what it says, not for its length."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    n = features.shape[0]
    sign = _signs(n, seed)  # each pair in a random orientation, as _oriented gives them
    labels = (sign > 0).astype(int)
    out = np.full(n, np.nan)
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(np.arange(n)))

    def scores(fitted, scored, train, inverse) -> tuple[np.ndarray, np.ndarray]:
        model = LogisticRegression(C=regularization, fit_intercept=False, max_iter=1000)
        model.fit(fitted, labels[train])
        model.coef_[:, nuisance] = 0.0
        return 1 - model.predict_proba(scored)[:, 1], model.coef_[0] * inverse

    # Folds are fitted side by side (scipy's sparse products release the GIL), two at most:
    # each holds its own copy of most of the matrix (on 2 cores: 15.9 -> 11.4 s at 100k).
    threads = min(2, default_threads())
    running: deque = deque()
    weights = []
    with ThreadPoolExecutor(threads) as pool:
        for (train, test), (fitted, scored, inverse) in zip(
            splits, _fold_matrices(features, splits, sign), strict=True
        ):
            running.append((test, pool.submit(scores, fitted, scored, train, inverse)))
            del fitted, scored
            if len(running) == threads:
                test, done = running.popleft()
                out[test], weight = done.result()
                weights.append(weight)
        for test, done in running:
            out[test], weight = done.result()
            weights.append(weight)
    return out, np.column_stack(weights)


def _fold_matrices(features, splits, sign: np.ndarray):
    """For each (train, test) split, one at a time: the train rows oriented by ``sign`` and the
    test rows as they are, both scaled as ``MaxAbsScaler`` fitted on the oriented train rows
    scales them (without centring: the features stay antisymmetric), and the scale's inverse.

    On sparse features, the same numbers without scikit-learn's passes or an oriented copy of
    the whole matrix: each fold's column maxima once (one pass over the matrix in all; the
    train rows' maxima are the other folds'; orienting only flips signs), then each fold's rows
    gathered, oriented and multiplied by ``1 / scale`` (what ``MaxAbsScaler.transform`` does)
    in one compiled pass. Its CSR-to-CSC copies, clipped ``take`` and row copies were 30 s of
    a 100,000-pair audit."""
    from scipy import sparse
    from sklearn.preprocessing import MaxAbsScaler

    if not sparse.issparse(features) or features.dtype != np.float64:
        # (the compiled path computes in float64, as MaxAbsScaler does only for float64)
        oriented = _orient(features, sign)
        for train, test in splits:
            scaler = MaxAbsScaler().fit(oriented[train])
            inverse = 1.0 / scaler.scale_
            yield scaler.transform(oriented[train]), scaler.transform(features[test]), inverse
        return
    from prefaudit.kernels import row_column_max_abs

    matrix = features.tocsr()
    width = matrix.shape[1]
    tested = [
        row_column_max_abs(matrix.indptr, matrix.indices, matrix.data, test, width)
        for _, test in splits
    ]
    for fold, (train, test) in enumerate(splits):
        others = [tested[k] for k in range(len(splits)) if k != fold]
        maximum = np.maximum.reduce(others) if others else np.zeros(width)
        # sklearn's _handle_zeros_in_scale: a (near-)constant column keeps its values.
        inverse = 1.0 / np.where(maximum < 10 * np.finfo(maximum.dtype).eps, 1.0, maximum)
        yield (
            _gathered(matrix, train, sign[train], inverse),
            _gathered(matrix, test, None, inverse),
            inverse,
        )


def _gathered(matrix, rows: np.ndarray, sign: np.ndarray | None, inverse: np.ndarray):
    """The CSR ``rows`` of ``matrix``, row i times ``sign[i]`` (when given), column j times
    ``inverse[j]``: ``(matrix[rows] * sign) * inverse``, value for value."""
    from scipy import sparse

    from prefaudit.kernels import gather_rows

    rows = np.asarray(rows, dtype=np.int64)
    signs = np.ones(len(rows)) if sign is None else sign
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indices, data = gather_rows(
        matrix.indptr, matrix.indices, matrix.data, rows, signs, inverse, indptr
    )
    if indptr[-1] <= np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return sparse.csr_matrix((data, indices, indptr), shape=(len(rows), matrix.shape[1]))
