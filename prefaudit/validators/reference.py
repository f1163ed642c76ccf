"""``reference``: what the reference model already thinks of each pair, before any training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prefaudit import stats
from prefaudit.validators.base import CleaningAction, Validator, ValidatorResult

_LISTED = 50


@dataclass(frozen=True)
class _Judged:
    """Per pair, what the reference's log-probs say (NaN or False where a pair is not scored)."""

    margin: np.ndarray  # log-prob of chosen minus rejected (nats)
    per_token: np.ndarray  # the same, each side divided by its own response tokens
    scored: np.ndarray
    preferred: np.ndarray  # per-token margin above the threshold: little left to learn
    dispreferred: np.ndarray  # below minus the threshold: often a flipped label
    truncated: np.ndarray  # too long for max_length: reported, not scored


class ReferenceValidator(Validator):
    """Reference-model log-probabilities of chosen and rejected, their margin, and the pairs
    the reference already prefers strongly either way.

    DPO's implicit reward is beta * log(pi / pi_ref); before training the policy is the
    reference, so what the reference already prefers shows which pairs carry signal. A pair it
    strongly prefers the chosen side of teaches little; one it strongly prefers the rejected side
    of is often a flipped label, or a sign the reference is far from the data.
    """

    name = "reference"
    description = (
        "Scores every pair (or a stated random sample) under the reference model: the summed "
        "log-probability of the chosen and of the rejected response given the prompt, and their "
        "margin, per sequence and per token. Flags pairs the reference already prefers strongly "
        "(little left to learn) and pairs it strongly disprefers (often a flipped label, or a "
        "reference far from the data); pairs too long for max_length are reported, never cut. "
        "The log-probs are the reference values DPO training needs."
    )
    metric_names = (
        "reference/scored_pairs",
        "reference/mean_margin",
        "reference/median_margin",
        "reference/mean_margin_per_token",
        "reference/reference_accuracy",
        "reference/already_preferred_rate",
        "reference/dispreferred_rate",
        "reference/truncated_pairs",
        "reference/boundary_mismatches",
        "reference/tokens_per_second",
        # With a policy (--policy): TRL's DPO reward figures, beta * log(pi / pi_ref).
        "reference/rewards/chosen",
        "reference/rewards/rejected",
        "reference/rewards/margins",
        "reference/rewards/accuracies",
    )
    timing_metric_names = ("reference/tokens_per_second",)
    headline_metrics = (
        "reference/scored_pairs",
        "reference/mean_margin",
        "reference/already_preferred_rate",
        "reference/dispreferred_rate",
        "reference/truncated_pairs",
        "reference/tokens_per_second",
    )
    runs_by_default = False  # loads a language model: only when asked (--ref-model)
    cleaning = (CleaningAction("margin", "margin_per_token"),)

    def __init__(
        self,
        *,
        model: str | None = None,
        sample: int | None = None,
        max_length: int = 2048,
        margin_threshold: float = 1.0,
        seed: int = 0,
        policy: str | None = None,
        beta: float = 0.1,
    ):
        # A Hugging Face causal LM (hub name or folder); None = the embedded SmolLM2-135M.
        self.model = model
        # Score a seeded random sample of this many pairs (CPU); None = every pair.
        self.sample = sample
        # Pairs with more tokens (prompt + longer response) are reported, not scored.
        self.max_length = max_length
        # Per-token margin (nats) beyond which the reference "already prefers" (or strongly
        # disprefers) the chosen response: 1 nat/token is a ~2.7x likelihood ratio per token.
        self.margin_threshold = margin_threshold
        self.seed = seed  # the sample
        # A trained policy (hub name or folder): the pairs are scored under it too, and its DPO
        # implicit rewards beta * log(pi(y|x) / pi_ref(y|x)) are reported as TRL names them.
        self.policy = policy
        # DPO's beta, as in training (TRL's default 0.1).
        self.beta = beta

    def run(self, context) -> ValidatorResult:
        pairs = context.pairs
        n = len(pairs)
        rows = self._rows(n)
        scores, scorer = context.reference_logps(self.model, self.max_length, rows, progress=n > 50)
        table = pd.DataFrame(index=pairs.index, columns=scores.columns, dtype=float)
        table.iloc[rows] = scores.to_numpy(dtype=float)
        judged = _judge(table, self.margin_threshold)
        flags = _flags(table, judged)
        metrics = _metrics(table, judged, scorer)
        metrics.update(dict.fromkeys(_REWARDS))
        if self.policy is not None:
            policy, _ = context.reference_logps(self.policy, self.max_length, rows, progress=n > 50)
            rewards = self._rewards(policy, table, rows, n)
            flags = flags.join(rewards)
            metrics.update(_reward_metrics(rewards))
        return self.result(flags, metrics, self._info(pairs, table, judged, scorer))

    def _rows(self, n: int) -> np.ndarray:
        """Positions of the pairs to score: all, or a seeded random sample, in order."""
        if self.sample is not None and self.sample < n:
            rng = np.random.default_rng(self.seed)
            return np.sort(rng.choice(n, self.sample, replace=False))
        return np.arange(n)

    def _info(self, pairs, table: pd.DataFrame, judged: _Judged, scorer) -> dict[str, Any]:
        per_token, scored = judged.per_token, judged.scored
        return {
            "model": self.model or "embedded SmolLM2-135M-Instruct",
            "policy": self.policy,
            "beta": self.beta,
            "identity": scorer.identity,
            "model_identity": scorer.model_identity,
            "sampled": self.sample is not None and self.sample < len(pairs),
            "most_dispreferred": _listed(pairs, per_token, scored, ascending=True),
            "most_preferred": _listed(pairs, per_token, scored, ascending=False),
            "truncated": _truncated(pairs, table, judged.truncated),
            "margin_histogram": _histogram(per_token[scored]),
        }

    def _rewards(self, policy: pd.DataFrame, table: pd.DataFrame, rows, n: int) -> pd.DataFrame:
        """Per pair: the policy's log-probs and its implicit rewards against the reference."""
        logps = np.full((n, 2), np.nan)
        logps[rows] = policy[["chosen_logps", "rejected_logps"]].to_numpy(dtype=float)
        chosen = self.beta * (logps[:, 0] - table["chosen_logps"].to_numpy(dtype=float))
        rejected = self.beta * (logps[:, 1] - table["rejected_logps"].to_numpy(dtype=float))
        return pd.DataFrame(
            {
                "policy_chosen_logps": logps[:, 0],
                "policy_rejected_logps": logps[:, 1],
                "reward_chosen": chosen,
                "reward_rejected": rejected,
                "reward_margin": chosen - rejected,
            },
            index=table.index,
        )


def _judge(table: pd.DataFrame, threshold: float) -> _Judged:
    chosen, rejected = table["chosen_logps"], table["rejected_logps"]
    margin = (chosen - rejected).to_numpy(dtype=float)
    per_token = (chosen / table["chosen_tokens"] - rejected / table["rejected_tokens"]).to_numpy(
        dtype=float
    )
    scored = ~np.isnan(margin)
    return _Judged(
        margin=margin,
        per_token=per_token,
        scored=scored,
        preferred=scored & (per_token > threshold),
        dispreferred=scored & (per_token < -threshold),
        truncated=table["truncated"].fillna(0).to_numpy(dtype=bool),
    )


def _flags(table: pd.DataFrame, judged: _Judged) -> pd.DataFrame:
    per_token, scored = judged.per_token, judged.scored
    return pd.DataFrame(
        {
            # Higher = more likely a problem: how strongly the reference disprefers chosen.
            "score": np.where(scored, 1 / (1 + np.exp(np.nan_to_num(per_token) * 2)), 0.0),
            "issue": judged.dispreferred,
            "reason": _reasons(
                per_token, judged.preferred, judged.dispreferred, judged.truncated, table
            ),
            "chosen_logps": table["chosen_logps"].to_numpy(dtype=float),
            "rejected_logps": table["rejected_logps"].to_numpy(dtype=float),
            "prompt_tokens": table["prompt_tokens"].to_numpy(dtype=float),
            "chosen_tokens": table["chosen_tokens"].to_numpy(dtype=float),
            "rejected_tokens": table["rejected_tokens"].to_numpy(dtype=float),
            "margin": judged.margin,
            "margin_per_token": per_token,
            "already_preferred": judged.preferred,
            "dispreferred": judged.dispreferred,
            "truncated": judged.truncated,
            "scored": scored,
            # TRL would tokenise these pairs into other ids (see prefaudit.models.reference).
            "boundary_mismatch": _flag(table, "boundary_mismatch"),
            "layout_mismatch": _flag(table, "layout_mismatch"),
        },
        index=table.index,
    )


def _flag(table: pd.DataFrame, column: str) -> np.ndarray:
    """A boolean column of the scores (False for pairs not tokenised: outside the sample)."""
    if column not in table:
        return np.zeros(len(table), dtype=bool)
    return table[column].fillna(0).to_numpy(dtype=bool)


def _metrics(table: pd.DataFrame, judged: _Judged, scorer) -> dict[str, Any]:
    margin, per_token, scored = judged.margin, judged.per_token, judged.scored
    count = int(scored.sum())
    return {
        "reference/scored_pairs": count,
        "reference/mean_margin": float(np.nanmean(margin)) if count else None,
        "reference/median_margin": float(np.nanmedian(margin)) if count else None,
        "reference/mean_margin_per_token": float(np.nanmean(per_token)) if count else None,
        "reference/reference_accuracy": stats.rate((margin[scored] > 0).sum(), count),
        "reference/already_preferred_rate": stats.rate(judged.preferred.sum(), count),
        "reference/dispreferred_rate": stats.rate(judged.dispreferred.sum(), count),
        "reference/truncated_pairs": int(judged.truncated.sum()),
        "reference/boundary_mismatches": int(table["boundary_mismatch"].fillna(0).sum()),
        "reference/tokens_per_second": scorer.tokens_per_second,
    }


def _truncated(pairs, table: pd.DataFrame, truncated: np.ndarray) -> list[dict[str, Any]]:
    return [
        {
            "pair_id": str(pairs.index[i]),
            "prompt_tokens": int(table["prompt_tokens"].iat[i]),
            "chosen_tokens": int(table["chosen_tokens"].iat[i]),
            "rejected_tokens": int(table["rejected_tokens"].iat[i]),
        }
        for i in np.flatnonzero(truncated)[:_LISTED]
    ]


_REWARDS = (
    "reference/rewards/chosen",
    "reference/rewards/rejected",
    "reference/rewards/margins",
    "reference/rewards/accuracies",
)


def _reward_metrics(rewards: pd.DataFrame) -> dict[str, float | None]:
    """TRL's reward figures over the pairs both models scored (means, as TRL logs them)."""
    known = rewards.dropna(subset=["reward_margin"])
    if known.empty:
        return dict.fromkeys(_REWARDS)
    return {
        "reference/rewards/chosen": float(known["reward_chosen"].mean()),
        "reference/rewards/rejected": float(known["reward_rejected"].mean()),
        "reference/rewards/margins": float(known["reward_margin"].mean()),
        "reference/rewards/accuracies": float((known["reward_margin"] > 0).mean()),
    }


def _reasons(per_token, preferred, dispreferred, truncated, table) -> list[str]:
    reasons = [""] * len(per_token)
    for i in np.flatnonzero(preferred | dispreferred | truncated):
        if truncated[i]:
            length = int(table["prompt_tokens"].iat[i]) + int(
                max(table["chosen_tokens"].iat[i], table["rejected_tokens"].iat[i])
            )
            reasons[i] = f"not scored: {length} tokens, over max_length"
        elif dispreferred[i]:
            reasons[i] = (
                f"the reference model strongly prefers the rejected response "
                f"({per_token[i]:+.2f} nats/token): a flipped label, or a reference far from the data"
            )
        else:
            reasons[i] = (
                f"the reference model already prefers the chosen response "
                f"({per_token[i]:+.2f} nats/token): little left to learn"
            )
    return reasons


def _listed(pairs, per_token, scored, ascending: bool) -> list[dict[str, Any]]:
    order = np.flatnonzero(scored)[np.argsort(per_token[scored], kind="stable")]
    if not ascending:
        order = order[::-1]
    return [
        {
            "pair_id": str(pairs.index[i]),
            "margin_per_token": float(per_token[i]),
            "prompt": pairs["prompt"].iat[i][:200],
        }
        for i in order[:_LISTED]
    ]


def _histogram(values: np.ndarray) -> dict[str, list]:
    if not len(values):
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(np.clip(values, -5, 5), bins=20, range=(-5, 5))
    return {"edges": edges.round(3).tolist(), "counts": counts.tolist()}
