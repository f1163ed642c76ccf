"""Coverage: the topics of the prompts, how evenly pairs spread, and the gaps."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import HAS, Problem, Stated, section

CLUSTERS_SHOWN = 40
LARGEST_SHARE = 0.3  # one topic holding more than this is worth a look
GAP_RATE = 0.1  # more evaluation prompts than this without a close training prompt


@section("coverage", "Prompt coverage")
def build(result, inputs):
    info, m = result.info, result.metrics
    clusters = info.get("clusters", [])
    reference = info.get("reference") or {}
    context = {
        "clusters": clusters[:CLUSTERS_SHOWN],
        "clusters_total": len(clusters),
        "rate_columns": sorted({k for c in clusters for k in c if k.endswith("_issue_rate")}),
        "smallest": info.get("smallest_clusters", []),
        "reference": reference,
        "languages": (info.get("languages") or {}).get("shares"),
        "sources": info.get("sources"),
        "representation": info.get("representation"),
    }
    points = info.get("map") or {}
    if points.get("x"):
        names = {c["cluster"]: c["name"] for c in clusters}
        smallest = [c["cluster"] for c in info.get("smallest_clusters", [])]
        context["map"] = charts.scatter_clusters(
            points["x"],
            points["y"],
            points["cluster"],
            names,
            highlight=smallest,
            alt="2-D map of the prompts coloured by topic",
        )
        context["map_points"] = len(points["x"])
    return context, _problems(m, reference)


def _problems(m, reference) -> list[Problem]:
    said, problems = Stated(m), []
    uncovered = reference.get("uncovered_clusters") or []
    if uncovered and m.get("coverage/uncovered_reference_clusters"):
        names = said.text("; ".join(uncovered[:3]) + (" …" if len(uncovered) > 3 else ""))
        problems.append(
            said.problem(
                "high",
                f"{said.count('coverage/uncovered_reference_clusters', 'topic')} of the reference "
                f"prompts {HAS[len(uncovered) != 1]} no close training prompt ({names}): the "
                "model is not trained for "
                f"{'it' if len(uncovered) == 1 else 'them'}.",
            )
        )
    if (m.get("coverage/gap_rate") or 0) >= GAP_RATE:
        problems.append(
            said.problem(
                "medium",
                f"{said.pct('coverage/gap_rate')} of the reference prompts have no training "
                "prompt close to them.",
            )
        )
    if (m.get("coverage/largest_cluster_share") or 0) >= LARGEST_SHARE:
        problems.append(
            said.problem(
                "medium",
                f"One topic holds {said.pct('coverage/largest_cluster_share')} of the pairs: the "
                "model will lean towards it.",
            )
        )
    effective, clusters = m.get("coverage/effective_clusters"), m.get("coverage/clusters")
    if effective is not None and clusters and effective < clusters / 3:
        problems.append(
            said.problem(
                "low",
                f"The pairs spread like {said.num('coverage/effective_clusters')} equal topics "
                f"over {said.num('coverage/clusters')} found: a few topics dominate.",
            )
        )
    return problems
