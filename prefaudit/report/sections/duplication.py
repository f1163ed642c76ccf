"""Duplication: repeated, contradictory and leaked pairs, shown side by side."""

from __future__ import annotations

from prefaudit.report import charts
from prefaudit.report.sections import Problem, num, pct, section
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
    problems = []
    if m.get("duplication/leakage_pairs"):
        where = (info.get("against") or {}).get("path", "the evaluation set")
        problems.append(
            Problem(
                "high",
                f"{num(m['duplication/leakage_pairs'])} pairs ({pct(m['duplication/leakage_rate'])}) "
                f"have a prompt from {where}: scores on that set will overstate the model.",
                fix="drop:duplication/leaked",
            )
        )
    if m.get("duplication/contradictions"):
        problems.append(
            Problem(
                "high",
                f"{num(m['duplication/contradictions'])} pairs contradict another pair (the same "
                "prompt and responses, preferred the other way): they pull the model both ways.",
                fix="drop:duplication/contradiction",
            )
        )
    repeated = (m.get("duplication/exact_rate") or 0) + (
        m.get("duplication/near_duplicate_rate") or 0
    )
    if repeated >= 0.01:
        problems.append(
            Problem(
                "medium",
                f"{pct(repeated)} of pairs repeat another pair exactly or nearly: repeats weigh "
                "their prompts more than the rest.",
                fix="dedupe",
            )
        )
    if m.get("duplication/degenerate_pairs"):
        problems.append(
            Problem(
                "medium",
                f"{num(m['duplication/degenerate_pairs'])} pairs have the same response on both "
                "sides (after normalisation).",
                fix="drop:duplication/degenerate",
            )
        )
    if m.get("duplication/over_represented_prompts"):
        problems.append(
            Problem(
                "low",
                f"{num(m['duplication/over_represented_prompts'])} prompts have far more pairs than "
                f"the rest (the most: {num(m.get('duplication/max_pairs_per_prompt'))}).",
            )
        )
    return problems
