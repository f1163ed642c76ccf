"""The reference-model pass: implicit-reward margins, and the pairs at either extreme."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import Problem, pct, section

DISPREFERRED_HIGH = 0.15  # share of scored pairs the reference strongly disprefers
ALREADY_PREFERRED = 0.3  # share it already strongly prefers (little left to learn)


@section("reference", "Reference model: what it already prefers")
def build(result, inputs):
    info, m = result.info, result.metrics
    threshold = result.params.get("margin_threshold", 1.0)
    context = {
        "model": info.get("model"),
        "policy": info.get("policy"),
        "sampled": info.get("sampled"),
        "threshold": threshold,
        "dispreferred": _rows(info.get("most_dispreferred", []), inputs),
        "preferred": _rows(info.get("most_preferred", []), inputs),
        "truncated": info.get("truncated", []),
    }
    hist = info.get("margin_histogram") or {}
    if hist.get("edges"):
        context["margins"] = charts.histogram(
            hist["edges"],
            {"pairs": hist["counts"]},
            xlabel="log-prob margin per token, chosen minus rejected (clipped to ±5)",
            ylabel="pairs",
            marks={"strongly dispreferred": -threshold, "already preferred": threshold},
            alt="Histogram of the reference model's per-token margins",
        )
    return context, _problems(m)


def _rows(rows, inputs):
    return [{**row, "text": inputs.text(row["pair_id"])} for row in rows[:15]]


def _problems(m) -> list[Problem]:
    problems = []
    dispreferred = m.get("reference/dispreferred_rate") or 0
    if dispreferred >= 0.05:
        problems.append(
            Problem(
                "high" if dispreferred >= DISPREFERRED_HIGH else "medium",
                f"The reference model strongly prefers the rejected response in {pct(dispreferred)} "
                "of the pairs it scored: look for flipped labels there.",
            )
        )
    preferred = m.get("reference/already_preferred_rate") or 0
    if preferred >= ALREADY_PREFERRED:
        problems.append(
            Problem(
                "medium",
                f"The reference model already strongly prefers the chosen response in "
                f"{pct(preferred)} of the pairs it scored: they teach it little.",
            )
        )
    return problems
