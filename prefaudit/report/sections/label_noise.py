"""Label noise: the estimated rate of flipped labels and the suspects, with their evidence."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import Problem, Stated, section

SUSPECTS_SHOWN = 25


@section("label_noise", "Label noise: flipped preferences")
def build(result, inputs):
    info, m = result.info, result.metrics
    signals = list(info.get("weights") or info.get("signals_used") or [])
    context = {
        "signals": signals,
        "missing": info.get("signals_missing") or {},
        "weak": info.get("signals_weak") or {},
        "rule": info.get("threshold_rule"),
        "suspects": [
            {**row, "text": inputs.text(row["pair_id"])}
            for row in info.get("suspects", [])[:SUSPECTS_SHOWN]
        ],
        "suspects_total": len(info.get("suspects", [])),
    }
    overlap = info.get("overlap") or {}
    if overlap:
        context["overlap"] = charts.bars(
            list(overlap),
            list(overlap.values()),
            xlabel="flagged pairs",
            alt="Flagged pairs by which signals point at them",
        )
    return context, _problems(m, signals, supported(info))


def supported(info) -> bool:
    """Whether the noise rate rests on more than the preference model: scores, raters or a
    reference model that, calibrated on the labels, is sure of enough pairs. The model alone
    learns what the judge liked (length, style) as much as which labels are wrong, so its rate
    is shown as a hint, not a headline. (Audits saved before ``signals_supporting`` existed:
    any signal besides the model.)"""
    if "signals_supporting" in info:
        return bool(info["signals_supporting"])
    return any(s != "model" for s in info.get("signals_used") or [])


def _problems(m, signals, firm: bool) -> list[Problem]:
    rate = m.get("label_noise/estimated_rate")
    if rate is None or rate < 0.03:
        return []
    said = Stated(m)
    interval = (
        f" (95% CI {said.pct('label_noise/estimated_rate_ci_low')} to "
        f"{said.pct('label_noise/estimated_rate_ci_high')})"
        if m.get("label_noise/estimated_rate_ci_low") is not None
        else ""
    )
    suspects = (
        f"{said.count('label_noise/flagged', 'pair', verb=('is', 'are'))} flagged as suspects"
    )
    if not firm:
        basis = (
            "The preference model alone suspects"
            if list(signals) == ["model"]
            else f"The {' and '.join(signals)} signals, none of them firm on these labels, suspect"
        )
        return [
            said.problem(
                "low",
                f"{basis} about {said.pct('label_noise/estimated_rate')} of the labels{interval}; "
                f"{suspects}. Without raters, "
                "scores or a reference model sure of enough pairs, this is a hint, not a measured "
                "noise rate: review the suspects, or audit with --annotations or a stronger "
                "--ref-model to confirm.",
            )
        ]
    return [
        said.problem(
            "high" if rate >= 0.1 else "medium",
            f"About {said.pct('label_noise/estimated_rate')} of the labels look flipped"
            f"{interval}, from {', '.join(signals)}; {suspects}.",
            fix="flip",
            covers=("label_noise/issue",),
        )
    ]
