"""Annotator agreement: alpha with its interval, the raters, their pairwise kappa."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import Problem, num, pct, section

# Krippendorff's guidance (Content Analysis, 2004): rely on data with alpha >= 0.800, draw
# only tentative conclusions from 0.667 <= alpha < 0.800, and none below.
RELIABLE, TENTATIVE = 0.800, 0.667
POSITION_BIAS_P = 1e-3  # a rater's first-shown preference counts as bias below this p-value


@section("agreement", "Annotator agreement")
def build(result, inputs):
    info, m = result.info, result.metrics
    kappa = info.get("cohen_kappa") or {}
    context = {
        "annotators": info.get("annotators", []),
        "aggregate": info.get("aggregate"),
        "level": info.get("level_of_measurement"),
        "priors": (info.get("dawid_skene") or {}).get("priors"),
        "verdict": _verdict(m.get("agreement/krippendorff_alpha")),
        "position_p": POSITION_BIAS_P,
    }
    if kappa.get("annotators") and len(kappa["annotators"]) > 1:
        context["kappa"] = charts.heatmap(
            kappa["kappa"],
            kappa["annotators"],
            title="Cohen's kappa between raters",
            alt="Heatmap of Cohen's kappa for each pair of raters",
        )
    return context, _problems(m, info)


def _verdict(alpha: float | None) -> str:
    if alpha is None:
        return "not computed"
    if alpha >= RELIABLE:
        return "reliable (alpha ≥ 0.800)"
    if alpha >= TENTATIVE:
        return "tentative (0.667 ≤ alpha < 0.800)"
    return "unreliable (alpha < 0.667)"


def _problems(m, info) -> list[Problem]:
    problems = []
    alpha = m.get("agreement/krippendorff_alpha")
    if alpha is not None and alpha < RELIABLE:
        low, high = (
            m.get("agreement/krippendorff_alpha_ci_low"),
            m.get("agreement/krippendorff_alpha_ci_high"),
        )
        interval = f" (95% CI {num(low)} to {num(high)})" if low is not None else ""
        problems.append(
            Problem(
                "high" if alpha < TENTATIVE else "medium",
                f"The raters agree {'little' if alpha < TENTATIVE else 'only moderately'}: "
                f"Krippendorff's alpha is {num(alpha)}{interval}, where 0.667 is the least "
                "Krippendorff accepts even for tentative conclusions.",
            )
        )
    unreliable = [a["annotator"] for a in info.get("annotators", []) if a.get("unreliable")]
    if unreliable:
        names = ", ".join(unreliable[:5]) + (" …" if len(unreliable) > 5 else "")
        problems.append(
            Problem(
                "medium",
                f"{len(unreliable)} of {len(info['annotators'])} raters look unreliable ({names}): "
                "their labels disagree with the consensus more than the others'.",
            )
        )
    biased = [
        a["annotator"]
        for a in info.get("annotators", [])
        if (a.get("position_bias_p_value") or 1) < POSITION_BIAS_P
    ]
    if biased:
        problems.append(
            Problem(
                "medium",
                f"{', '.join(biased[:5])} mostly pick{'s' if len(biased) == 1 else ''} whichever "
                "response was shown first (position bias).",
            )
        )
    if (m.get("agreement/contradicted_rate") or 0) >= 0.02:
        problems.append(
            Problem(
                "medium",
                f"In {pct(m['agreement/contradicted_rate'])} of pairs the raters' consensus prefers "
                "the rejected response: the dataset's label may be flipped.",
                fix="reorient_by_raters",
            )
        )
    return problems
