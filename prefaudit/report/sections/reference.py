"""The reference-model pass: implicit-reward margins, and the pairs at either extreme."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import Problem, Stated, section

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
    noise = inputs.result.validators.get("label_noise")
    unsure = noise is not None and "reference" in (noise.info.get("signals_weak") or {})
    return context, _problems(m, unsure)


def _rows(rows, inputs):
    return [{**row, "text": inputs.text(row["pair_id"])} for row in rows[:15]]


def _problems(m, unsure: bool) -> list[Problem]:
    """``unsure``: label_noise found that, calibrated on these labels, the reference does not
    predict them (its lean is then no evidence of flips: a per-token margin favours long
    responses, and on GPT-4's AlpacaEval labels SmolLM2-135M's lean pointed at short right
    answers)."""
    said, problems = Stated(m), []
    dispreferred = m.get("reference/dispreferred_rate") or 0
    if dispreferred >= 0.05 and unsure:
        problems.append(
            said.problem(
                "low",
                "The reference model strongly prefers the rejected response in "
                f"{said.pct('reference/dispreferred_rate')} of the pairs it scored, but it does "
                "not predict these labels well (label noise): on its own that lean is not "
                "evidence of flipped labels.",
            )
        )
    elif dispreferred >= 0.05:
        problems.append(
            said.problem(
                "high" if dispreferred >= DISPREFERRED_HIGH else "medium",
                "The reference model strongly prefers the rejected response in "
                f"{said.pct('reference/dispreferred_rate')} of the pairs it scored: look for "
                "flipped labels there.",
            )
        )
    preferred = m.get("reference/already_preferred_rate") or 0
    if preferred >= ALREADY_PREFERRED:
        problems.append(
            said.problem(
                "medium",
                "The reference model already strongly prefers the chosen response in "
                f"{said.pct('reference/already_preferred_rate')} of the pairs it scored: they "
                "teach it little.",
            )
        )
    return problems
