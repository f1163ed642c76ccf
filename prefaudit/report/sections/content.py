"""Content: empty, identical, truncated responses and length bias."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import Problem, num, pct, section


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
    problems = []
    if m.get("content/identical_pairs"):
        problems.append(
            Problem(
                "high",
                f"{num(m['content/identical_pairs'])} pairs have the same chosen and rejected "
                "response: DPO learns nothing from them (their loss stays at ln 2).",
                fix="drop:content/identical",
            )
        )
    if m.get("content/empty_responses"):
        problems.append(
            Problem(
                "medium",
                f"{num(m['content/empty_responses'])} responses are empty: a chosen empty "
                "response teaches the model to say nothing.",
                fix="drop:content/bad_chosen",
            )
        )
    if (m.get("content/truncated_rate") or 0) >= 0.01:
        problems.append(
            Problem(
                "medium",
                f"{pct(m['content/truncated_rate'])} of pairs have a response that looks cut off: "
                "training on them teaches the model to stop mid-sentence.",
                fix="drop:content/bad_chosen",
            )
        )
    longer, p = m.get("content/chosen_longer_rate"), m.get("content/length_bias_p_value")
    if longer is not None and p is not None and p < 0.001 and abs(longer - 0.5) >= 0.2:
        which = "longer" if longer > 0.5 else "shorter"
        share = longer if longer > 0.5 else 1 - longer
        problems.append(
            Problem(
                "medium",
                f"The chosen response is the {which} one in {pct(share)} of pairs: DPO will learn "
                f"that {which} is better, whatever the content.",
            )
        )
    return problems
