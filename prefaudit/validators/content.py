"""``content``: what can be seen in the texts themselves, before any model is involved."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from prefaudit import stats
from prefaudit.validators.base import Validator, ValidatorResult

# A response that ends on one of these was most likely cut off mid-sentence.
_DANGLING_END = (
    r"(?i)(?:[,;:\-–—(\[/&+]|\b(?:and|or|but|because|so|the|a|an|of|to|with|for|from|that|which|"
    r"in|on|at|by|as|if|is|are|was|were|my|your|their|this|these)\b)$"
)
# What ends on a dangling character but is complete: a statement of code ending in ";" (its
# last line has code's punctuation or keywords) or a URL or path ending in "/".
_COMPLETE_END = (
    r"(?:(?:[(){}\[\]=<>\"'`]|\+\+|--|\breturn\b|\bbreak\b|\bcontinue\b)[^\n]*;"
    r"|(?:https?://|www\.|\S[./])\S*/)$"
)
_OPEN_END = r"[\p{L}\p{N}]$"  # ends on a letter or digit: no closing punctuation
_CLOSED_END = r"[.!?…\"'”’)\]}>*`]$"  # ends like a finished sentence, quote, bracket or code block

# Severity of each finding, the per-pair score when it is the worst one present.
_SEVERITY = {
    "empty": 1.0,
    "identical": 1.0,
    "capped": 0.9,
    "dangling": 0.7,
    "extreme": 0.6,
    "open_end": 0.2,
}


class ContentValidator(Validator):
    """Empty, identical, truncated and extreme-length responses, and length bias.

    A pair whose chosen and rejected responses are identical trains at a constant DPO loss of
    ln 2 and teaches nothing; empty and truncated responses teach the model to stop early;
    a dataset whose chosen responses are mostly the longer ones teaches verbosity.

    >>> import pandas as pd
    >>> from prefaudit.auditing import AuditContext
    >>> pairs = pd.DataFrame({"prompt": ["Q1", "Q2"], "chosen": ["Yes.", "Sure, here it is."],
    ...                       "rejected": ["  yes. ", "No."]}, index=["p1", "p2"])
    >>> ContentValidator().run(AuditContext(pairs)).flags["issue"].tolist()
    [True, False]
    """

    name = "content"
    description = (
        "Looks at the response texts: empty responses, chosen identical to rejected (after Unicode, "
        "case, whitespace and punctuation normalisation), responses that look truncated (ending on "
        "a connector such as ',' or 'and', or many ending at one shared length cap), extreme "
        "lengths, and length bias: how often the chosen response is the longer one. Identical "
        "pairs train at a constant loss of ln 2; truncated and empty ones teach early stopping; "
        "strong length bias teaches verbosity."
    )

    metric_names = (
        "content/pairs",
        "content/empty_responses",
        "content/empty_chosen",
        "content/identical_pairs",
        "content/identical_rate",
        "content/truncated_pairs",
        "content/truncated_rate",
        "content/length_cap_chars",
        "content/open_end_rate",
        "content/extreme_length_pairs",
        "content/issue_rate",
        "content/chosen_longer_rate",
        "content/chosen_longer_rate_ci_low",
        "content/chosen_longer_rate_ci_high",
        "content/equal_length_rate",
        "content/length_bias_p_value",
        "content/length_label_correlation",
        "content/length_score_spearman",
        "content/mean_chars_prompt",
        "content/mean_chars_chosen",
        "content/mean_chars_rejected",
    )
    headline_metrics = (
        "content/identical_pairs",
        "content/empty_responses",
        "content/truncated_pairs",
        "content/extreme_length_pairs",
        "content/chosen_longer_rate",
        "content/length_bias_p_value",
    )

    param_ranges = MappingProxyType(
        {
            "min_response_chars": (0, None),
            "max_response_chars": (1, None),
            "length_outlier_z": (0, None),
            "cap_min_count": (1, None),
            "cap_min_share": (0, 1),
            "truncation_min_words": (1, None),
        }
    )

    def __init__(
        self,
        *,
        min_response_chars: int = 2,
        max_response_chars: int = 20_000,
        length_outlier_z: float = 6.0,
        cap_min_count: int = 5,
        cap_min_share: float = 0.005,
        truncation_min_words: int = 5,
    ):
        # Non-empty responses shorter than this (after stripping) are flagged: "." or "k".
        self.min_response_chars = min_response_chars
        # Far beyond any chat answer; usually pasted documents or generation loops.
        self.max_response_chars = max_response_chars
        # Robust z-score (median/MAD) of log length; 6 keeps ordinary long answers unflagged.
        self.length_outlier_z = length_outlier_z
        # A length cap needs this many responses at one exact length among the longest 10%
        # (and cap_min_share of all responses).
        self.cap_min_count = cap_min_count
        # A length cap also needs this share of all responses, so large datasets need
        # proportionally more.
        self.cap_min_share = cap_min_share
        # Short answers ("Yes, and") are not called cut off.
        self.truncation_min_words = truncation_min_words

    def run(self, context) -> ValidatorResult:
        pairs = context.pairs
        n = len(pairs)
        sides = {side: self._side_findings(context, side) for side in ("chosen", "rejected")}
        identical = context.normalized_hashes("chosen") == context.normalized_hashes("rejected")
        caps = self._length_caps(context, sides)
        for side in sides:
            sides[side]["capped"] = self._at_cap(context, side, caps) & ~sides[side]["closed"]

        per_side = ("empty", "capped", "dangling", "extreme", "open_end")
        findings = {kind: sides["chosen"][kind] | sides["rejected"][kind] for kind in per_side}
        findings["identical"] = identical
        score = np.zeros(n)
        for kind, mask in findings.items():
            score = np.where(mask, np.maximum(score, _SEVERITY[kind]), score)
        truncated = findings["capped"] | findings["dangling"]
        issue = findings["empty"] | identical | truncated | findings["extreme"]
        flags = pd.DataFrame(
            {
                "score": score,
                "issue": issue,
                "reason": self._reasons(context, sides, identical, caps, issue),
                "empty_response": findings["empty"],
                "identical": identical,
                "truncated": truncated,
                "extreme_length": findings["extreme"],
                # The chosen side is what DPO teaches: an empty, cut-off or extreme chosen
                # response spoils the pair; a bad rejected one makes it an easy, valid pair.
                "bad_chosen": (
                    sides["chosen"]["empty"]
                    | sides["chosen"]["capped"]
                    | sides["chosen"]["dangling"]
                    | sides["chosen"]["extreme"]
                ),
            },
            index=pairs.index,
        )
        metrics = self._metrics(context, findings, truncated, issue, caps)
        metrics["content/empty_chosen"] = int(sides["chosen"]["empty"].sum())
        info = {"length_caps": caps, "length_histograms": self._histograms(context)}
        return self.result(flags, metrics, info)

    def _side_findings(self, context, side: str) -> dict[str, np.ndarray]:
        features = context.text_features(side)
        empty = features.stripped_chars == 0
        long_enough = features.words >= self.truncation_min_words
        z = self._length_z(context, side)
        extreme = ~empty & (
            (features.stripped_chars < self.min_response_chars)
            | (features.chars > self.max_response_chars)
            | (np.abs(z) > self.length_outlier_z)
        )
        return {
            "empty": empty,
            "dangling": (
                _matches(features.tail, _DANGLING_END)
                & ~_matches(features.tail, _COMPLETE_END)
                & long_enough
                & ~empty
            ),
            "open_end": _matches(features.tail, _OPEN_END) & long_enough,
            "extreme": extreme,
            "closed": _matches(features.tail, _CLOSED_END),
        }

    def _length_z(self, context, side: str) -> np.ndarray:
        """Robust z-score of log length against all responses (both sides pooled).

        Pooling matters: one side alone is often bimodal (short refusals, long answers), which
        shrinks its MAD until ordinary answers look extreme. The spread has a floor of 0.25
        (log units) for datasets whose responses are nearly all the same length.
        """
        pooled = np.log1p(np.concatenate([context.lengths("chosen"), context.lengths("rejected")]))
        if not len(pooled):
            return np.zeros(0)
        center = np.median(pooled)
        spread = max(1.4826 * float(np.median(np.abs(pooled - center))), 0.25)
        return (np.log1p(context.lengths(side)) - center) / spread

    def _length_caps(self, context, sides) -> list[dict[str, Any]]:
        """Character lengths at which many responses are cut off: a truncation limit.

        Among the longest 10% of responses, the most common exact length of those that do not
        end like a finished sentence is a cap when at least ``cap_min_count`` responses, and
        ``cap_min_share`` of all responses, share it. Requiring the open ending keeps
        templated answers of equal length from looking like a cap. (Word counts collide by
        chance too often to be used the same way.)
        """
        values = np.concatenate([context.lengths("chosen"), context.lengths("rejected")])
        if not len(values):
            return []
        cut = ~np.concatenate([sides["chosen"]["closed"], sides["rejected"]["closed"]])
        top = values[(values >= np.quantile(values, 0.9)) & cut & (values > 0)]
        if not len(top):
            return []
        lengths, counts = np.unique(top, return_counts=True)
        best = int(np.argmax(counts))
        if counts[best] < max(self.cap_min_count, self.cap_min_share * len(values)):
            return []
        count = int(counts[best])
        return [
            {
                "unit": "chars",
                "length": int(lengths[best]),
                "responses": count,
                "share": count / len(values),
            }
        ]

    def _at_cap(self, context, side: str, caps: list[dict[str, Any]]) -> np.ndarray:
        mask = np.zeros(len(context.pairs), dtype=bool)
        for cap in caps:
            mask |= context.lengths(side) == cap["length"]
        return mask

    def _reasons(self, context, sides, identical, caps, issue) -> list[str]:
        reasons = [""] * len(issue)
        cap_text = ", ".join(f"{c['length']} {c['unit']}" for c in caps)
        for i in np.flatnonzero(issue):
            parts = (
                ["chosen and rejected are identical after normalisation"] if identical[i] else []
            )
            for side, found in sides.items():
                if found["empty"][i]:
                    parts.append(f"{side} is empty")
                if found["capped"][i]:
                    parts.append(
                        f"{side} stops at the length cap shared by many responses ({cap_text})"
                    )
                if found["dangling"][i]:
                    ending = context.pairs[side].iat[i].rstrip()[-20:]
                    parts.append(f"{side} ends mid-sentence ('...{ending}')")
                if found["extreme"][i]:
                    chars = int(context.lengths(side)[i])
                    unit = "character" if chars == 1 else "characters"
                    parts.append(f"{side} has an extreme length ({chars:,} {unit})")
            reasons[i] = "; ".join(parts)
        return reasons

    def _metrics(self, context, findings, truncated, issue, caps) -> dict[str, Any]:
        n = len(context.pairs)
        chosen, rejected = context.lengths("chosen"), context.lengths("rejected")
        diff = chosen - rejected
        differ = int((diff != 0).sum())
        longer = int((diff > 0).sum())
        metrics: dict[str, Any] = {
            "content/pairs": n,
            "content/empty_responses": int(findings["empty"].sum()),
            "content/identical_pairs": int(findings["identical"].sum()),
            "content/identical_rate": stats.rate(findings["identical"].sum(), n),
            "content/truncated_pairs": int(truncated.sum()),
            "content/truncated_rate": stats.rate(truncated.sum(), n),
            "content/length_cap_chars": caps[0]["length"] if caps else None,
            "content/open_end_rate": stats.rate(findings["open_end"].sum(), n),
            "content/extreme_length_pairs": int(findings["extreme"].sum()),
            "content/issue_rate": stats.rate(issue.sum(), n),
            "content/chosen_longer_rate": stats.rate(longer, differ),
            "content/equal_length_rate": stats.rate(n - differ, n),
            "content/mean_chars_prompt": float(context.lengths("prompt").mean()) if n else None,
            "content/mean_chars_chosen": float(chosen.mean()) if n else None,
            "content/mean_chars_rejected": float(rejected.mean()) if n else None,
        }
        low, high = stats.wilson(longer, differ)
        metrics["content/chosen_longer_rate_ci_low"] = low
        metrics["content/chosen_longer_rate_ci_high"] = high
        metrics["content/length_bias_p_value"] = stats.binomial_p_value(longer, differ)
        # Point-biserial correlation between the log length ratio and the label, with each pair
        # shown in both orders: mean(x) / rms(x). 0 = no length signal, 1 = chosen always longer.
        ratio = np.log1p(chosen) - np.log1p(rejected)
        rms = math.sqrt(float(np.mean(ratio**2))) if n else 0.0
        metrics["content/length_label_correlation"] = float(ratio.mean() / rms) if rms > 0 else None
        metrics["content/length_score_spearman"] = _score_correlation(context.pairs, diff)
        return metrics

    def _histograms(self, context) -> dict[str, Any]:
        if not len(context.pairs):
            return {}
        top = max(int(context.lengths(c).max()) for c in ("prompt", "chosen", "rejected"))
        edges = np.unique(np.round(np.geomspace(1, max(top, 2) + 1, 30)).astype(int))
        edges = np.concatenate([[0], edges])
        out = {"edges": edges.tolist()}
        for column in ("prompt", "chosen", "rejected"):
            out[column] = np.histogram(context.lengths(column), bins=edges)[0].tolist()
        return out


def _matches(texts: pd.Series, pattern: str) -> np.ndarray:
    """RE2 search over Arrow strings (pandas would fall back to Python's re for some patterns)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.match_substring_regex(pa.array(texts), pattern=pattern)
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False).astype(bool)


def _score_correlation(pairs: pd.DataFrame, diff: np.ndarray) -> float | None:
    """Spearman correlation of the length difference with the score margin, when scores exist."""
    if not {"score_chosen", "score_rejected"} <= set(pairs.columns):
        return None
    margin = (pairs["score_chosen"] - pairs["score_rejected"]).to_numpy(dtype=float)
    keep = ~np.isnan(margin)
    if keep.sum() < 3 or np.ptp(margin[keep]) == 0 or np.ptp(diff[keep]) == 0:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(diff[keep], margin[keep]).statistic)
