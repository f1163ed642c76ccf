"""Content: empty, identical, truncated responses and length bias."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import HAS, Problem, Stated, section


@section("content", "Content: empty, identical, truncated and length-biased pairs")
def build(result, inputs):
    m, info = result.metrics, result.info
    context = {"caps": info.get("length_caps", [])}
    hist = info.get("length_histograms") or {}
    if hist.get("edges"):
        context["lengths"] = charts.histogram(
            [
                max(e, 0.5) for e in hist["edges"]
            ],  # a log axis has no 0: the first bin starts at 0.5
            {side: hist[side] for side in ("prompt", "chosen", "rejected")},
            xlabel="characters (log scale)",
            ylabel="texts",
            alt="Histogram of prompt, chosen and rejected lengths in characters",
            log_x=True,
        )
    return context, _problems(m)


def _problems(m) -> list[Problem]:
    said, problems = Stated(m), []
    if m.get("content/identical_pairs"):
        problems.append(
            said.problem(
                "high",
                f"{said.count('content/identical_pairs', 'pair', verb=HAS)} the same chosen and "
                "rejected response: DPO learns nothing from such pairs (their loss stays at ln 2).",
                fix="drop:content/identical",
                covers=("content/identical",),
            )
        )
    problems += _empty(said, m)
    if (m.get("content/truncated_rate") or 0) >= 0.01:
        problems.append(
            said.problem(
                "medium",
                f"{said.pct('content/truncated_rate')} of pairs have a response that looks cut "
                "off: training on them teaches the model to stop mid-sentence.",
                fix="drop:content/bad_chosen",
                covers=("content/truncated",),
            )
        )
    longer, p = m.get("content/chosen_longer_rate"), m.get("content/length_bias_p_value")
    if longer is not None and p is not None and p < 0.001 and abs(longer - 0.5) >= 0.2:
        which = "longer" if longer > 0.5 else "shorter"
        problems.append(
            said.problem(
                "medium",
                f"The chosen response is the longer one in {'' if longer > 0.5 else 'only '}"
                f"{said.pct('content/chosen_longer_rate')} "
                f"of the pairs whose lengths differ: DPO will learn that {which} is better, "
                "whatever the content.",
            )
        )
    return problems


def _empty(said: Stated, m) -> list[Problem]:
    """Empty responses: on the chosen side what training teaches; on the rejected side only an
    easy pair. (Audits saved before ``content/empty_chosen`` cannot tell the sides apart.)"""
    if m.get("content/empty_chosen"):
        return [
            said.problem(
                "medium",
                f"{said.count('content/empty_chosen', 'pair', verb=HAS)} an empty chosen "
                "response: training on it teaches the model to say nothing.",
                fix="drop:content/bad_chosen",
                covers=("content/empty_response",),
            )
        ]
    if m.get("content/empty_responses") and "content/empty_chosen" not in m:  # older audits
        return [
            said.problem(
                "medium",
                f"{said.count('content/empty_responses', 'pair', verb=HAS)} an empty response: "
                "an empty chosen response teaches the model to say nothing.",
                fix="drop:content/bad_chosen",
                covers=("content/empty_response",),
            )
        ]
    if m.get("content/empty_responses"):  # only rejected responses are empty
        return [
            said.problem(
                "low",
                f"{said.count('content/empty_responses', 'pair', verb=HAS)} an empty rejected "
                "response: such easy pairs teach little.",
                covers=("content/empty_response",),
            )
        ]
    return []
