"""Annotator agreement: alpha with its interval, the raters, their pairwise kappa."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import Problem, Stated, section

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
    said, problems = Stated(m), []
    alpha = m.get("agreement/krippendorff_alpha")
    if alpha is not None and alpha < RELIABLE:
        interval = (
            f" (95% CI {said.num('agreement/krippendorff_alpha_ci_low')} to "
            f"{said.num('agreement/krippendorff_alpha_ci_high')})"
            if m.get("agreement/krippendorff_alpha_ci_low") is not None
            else ""
        )
        problems.append(
            said.problem(
                "high" if alpha < TENTATIVE else "medium",
                f"The raters agree {'little' if alpha < TENTATIVE else 'only moderately'}: "
                f"Krippendorff's alpha is {said.num('agreement/krippendorff_alpha')}{interval}, "
                f"where {said.guide(TENTATIVE)} is the least Krippendorff accepts even for "
                "tentative conclusions.",
            )
        )
    unreliable = [a["annotator"] for a in info.get("annotators", []) if a.get("unreliable")]
    if unreliable and m.get("agreement/unreliable_annotators"):
        names = said.text(", ".join(unreliable[:5]) + (" …" if len(unreliable) > 5 else ""))
        problems.append(
            said.problem(
                "medium",
                f"{said.num('agreement/unreliable_annotators')} of "
                f"{said.count('agreement/annotators', 'rater')} "
                f"{'looks' if len(unreliable) == 1 else 'look'} unreliable ({names}): their "
                "labels disagree with the consensus more than the others'.",
            )
        )
    biased = [
        a["annotator"]
        for a in info.get("annotators", [])
        if (a.get("position_bias_p_value") or 1) < POSITION_BIAS_P
    ]
    if biased:
        problems.append(
            said.problem(
                "medium",
                f"{said.text(', '.join(biased[:5]))} mostly pick{'s' if len(biased) == 1 else ''} "
                "whichever response was shown first (position bias).",
            )
        )
    if (m.get("agreement/contradicted_rate") or 0) >= 0.02:
        problems.append(
            said.problem(
                "medium",
                f"In {said.pct('agreement/contradicted_rate')} of pairs the raters' consensus "
                "prefers the rejected response: the dataset's label may be flipped.",
                fix="reorient_by_raters",
                covers=("agreement/contradicted",),
            )
        )
    return problems
