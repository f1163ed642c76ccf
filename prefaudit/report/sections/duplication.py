"""Duplication: repeated, contradictory and leaked pairs, shown side by side."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import HAS, Problem, Stated, section
from prefaudit.report.text import visible, word_diff

GROUPS_SHOWN = 12  # duplicate groups compared side by side
ROWS_SHOWN = 20  # rows of the other tables


@section("duplication", "Duplication, contradictions and leakage")
def build(result, inputs):
    info, m = result.info, result.metrics
    flags = result.flags
    top_prompts = info.get("top_prompts", [])[:ROWS_SHOWN]
    context = {
        "groups": [_group(g, inputs) for g in info.get("duplicate_groups", [])[:GROUPS_SHOWN]],
        "groups_total": len(info.get("duplicate_groups", [])),
        "contradictions": _contradictions(flags, inputs),
        "leaks": [_leak(leak, inputs) for leak in info.get("leaks", [])[:ROWS_SHOWN]],
        "leaks_total": len(info.get("leaks", [])),
        "against": info.get("against"),
        "near_prompts": [
            {**row, "diff": word_diff(row["first"], row["second"])}
            for row in info.get("near_duplicate_prompts", [])[:ROWS_SHOWN]
        ],
        # How many look-alike prompt pairs were left out of that table, and why (audits
        # saved before it was counted have none).
        "near_links": info.get("near_duplicate_prompt_links") or {},
        "top_prompts": top_prompts,
        # The column is drawn only when it has a "yes": a prompt over the limit is rare, and an
        # always-empty column reads as a figure that failed to compute.
        "top_over": any(row.get("over_represented") for row in top_prompts),
        "top_responses": info.get("top_responses", [])[:ROWS_SHOWN],
        "limit": info.get("over_representation_limit"),
    }
    per_prompt = info.get("pairs_per_prompt") or {}
    if per_prompt:
        sizes = sorted(per_prompt, key=int)
        context["per_prompt"] = charts.bars(
            [f"{size} pair{'s' if int(size) > 1 else ''}" for size in sizes],
            [per_prompt[size] for size in sizes],
            xlabel="prompts",
            alt="How many prompts have 1, 2, 3... pairs",
        )
    return context, _problems(m, info)


def _group(group, inputs):
    """A duplicate group: its first two members compared word by word (whole texts: the diff
    compares what it shows and counts the rest)."""
    members = group["members"]
    texts = [inputs.text(pid) for pid in members[:2]]
    fields = []
    if all(texts) and len(texts) == 2:
        for name in ("prompt", "chosen", "rejected"):
            fields.append((name, *word_diff(str(texts[0][name]), str(texts[1][name]))))
    return {**group, "fields": fields}


def _contradictions(flags, inputs):
    if "contradiction_group" not in flags.columns:
        return []
    rows = flags[flags["contradiction"].astype(bool)] if "contradiction" in flags else flags[:0]
    out = []
    for group, members in rows.groupby("contradiction_group", sort=True):
        shown = [(pid, inputs.text(pid)) for pid in members.index[:2]]
        out.append({"group": group, "members": list(members.index), "shown": shown})
        if len(out) >= ROWS_SHOWN:
            break
    return out


def _leak(leak, inputs):
    text = inputs.text(leak["pair_id"])
    return {**leak, "prompt": visible(str(text["prompt"])) if text else None}


def _problems(m, info) -> list[Problem]:
    said, problems = Stated(m), []
    if m.get("duplication/leakage_pairs"):
        where = said.text((info.get("against") or {}).get("path", "the evaluation set"))
        problems.append(
            said.problem(
                "high",
                f"{said.count('duplication/leakage_pairs', 'pair')} "
                f"({said.pct('duplication/leakage_rate')}) {HAS[m['duplication/leakage_pairs'] != 1]} "
                f"a prompt from {where}: scores on that set will overstate the model.",
                fix="drop:duplication/leaked",
                covers=("duplication/leaked",),
            )
        )
    if m.get("duplication/contradictions"):
        problems.append(
            said.problem(
                "high",
                f"{said.count('duplication/contradictions', 'pair', verb=('contradicts', 'contradict'))} "
                "another pair (the same responses, to the same or an edited prompt, preferred "
                "the other way): such pairs pull the model both ways.",
                fix="drop:duplication/contradiction",
                covers=("duplication/contradiction",),
            )
        )
    exact, near = (
        m.get("duplication/exact_rate") or 0,
        m.get("duplication/near_duplicate_rate") or 0,
    )
    if exact + near >= 0.01:
        problems.append(
            said.problem(
                "medium",
                f"{said.pct('duplication/exact_rate')} of pairs repeat another pair exactly and "
                f"{said.pct('duplication/near_duplicate_rate')} nearly: repeats weigh their "
                "prompts more than the rest.",
                fix="dedupe",
                covers=("duplication/exact_duplicate", "duplication/near_duplicate"),
            )
        )
    if m.get("duplication/degenerate_pairs"):
        problems.append(
            said.problem(
                "medium",
                f"{said.count('duplication/degenerate_pairs', 'pair', verb=HAS)} "
                f"the same "
                "response on both sides (after normalisation).",
                fix="drop:duplication/degenerate",
                covers=("duplication/degenerate",),
            )
        )
    problems += _over_represented(said, m)
    return problems


def _over_represented(said: Stated, m) -> list[Problem]:
    if not m.get("duplication/over_represented_prompts"):
        return []
    return [
        said.problem(
            "low",
            f"{said.count('duplication/over_represented_prompts', 'prompt', verb=HAS)} far more "
            f"pairs than the rest (the most: {said.num('duplication/max_pairs_per_prompt')}).",
            covers=("duplication/over_represented",),
        )
    ]
