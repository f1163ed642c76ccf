"""The demo: a synthetic preference dataset with planted defects, audited end to end.

The data is generated here (real data cannot ship with the project). ``planted.json`` records
which pairs carry which defect, so the demo can say how many each validator found.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefaudit.demo_data import (
    CLOSERS,
    GAP_TOPIC_PROMPTS,
    OPENERS,
    RED_TEAM_COMPLY,
    RED_TEAM_PROMPTS,
    RED_TEAM_REFUSAL,
    TOPICS,
    WEAK_ANSWERS,
)
from prefaudit.errors import SettingError
from prefaudit.fileio import write_bytes, write_json, write_jsonl

# Simulated raters: probability of picking the truly better response, and of picking whichever
# response was shown first regardless of content (position bias).
ANNOTATORS = {
    "rater_a": (0.95, 0.0),
    "rater_b": (0.90, 0.0),
    "rater_c": (0.85, 0.0),
    "rater_d": (0.85, 0.8),  # reliable on content, but mostly picks the first-shown response
    "rater_e": (0.50, 0.0),  # labels at random
}
RATERS_PER_PAIR = 3
# How often each rater is drawn: the weak ones do less of the work, as in a curated crowd.
RATER_WORKLOAD = {"rater_a": 1.0, "rater_b": 1.0, "rater_c": 1.0, "rater_d": 0.4, "rater_e": 0.4}
LENGTH_CAP = 820  # characters: planted truncated responses stop exactly here


@dataclass
class DemoData:
    """The generated files and the ground truth of what was planted where."""

    folder: Path
    pairs: Path
    annotations: Path
    eval_prompts: Path
    planted: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


class _Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.records: list[dict[str, Any]] = []
        self.truth: dict[str, str] = {}  # pair id -> "chosen" / "rejected" / "either"
        self.planted: dict[str, dict[str, dict[str, Any]]] = {}

    def pair_id(self) -> str:
        return f"demo-{len(self.records) + 1:04d}"

    def helpful(self, topic: str, sentences: int) -> str:
        bank = TOPICS[topic]["sentences"]
        body = " ".join(self.rng.sample(bank, min(sentences, len(bank))))
        return (self.rng.choice(OPENERS) + body + " " + self.rng.choice(CLOSERS)).strip()

    def prompt(self, topic: str) -> str:
        spec = TOPICS[topic]
        return self.rng.choice(spec["prompts"]).format(x=self.rng.choice(spec["subjects"]))

    def add(
        self,
        prompt: str,
        chosen: str,
        rejected: str,
        topic: str,
        truth: str = "chosen",
        scores: tuple | None = None,
    ) -> str:
        pid = self.pair_id()
        good, bad = round(self.rng.uniform(7.0, 9.5), 1), round(self.rng.uniform(2.0, 6.0), 1)
        score_chosen, score_rejected = scores or ((good, bad) if truth == "chosen" else (bad, good))
        self.records.append(
            {
                "id": pid,
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "score_chosen": score_chosen,
                "score_rejected": score_rejected,
                "source": topic,
            }
        )
        self.truth[pid] = truth
        return pid

    def ordinary(self, topic: str | None = None, prompt: str | None = None) -> str:
        topic = topic or self.rng.choice(list(TOPICS))
        chosen = self.helpful(topic, self.rng.randint(3, 5))
        kind = self.rng.random()
        if kind < 0.6:
            rejected = self.rng.choice(WEAK_ANSWERS)
        elif kind < 0.8:
            rejected = self.helpful(self.rng.choice([t for t in TOPICS if t != topic]), 2)
        else:
            rejected = self.helpful(topic, 1)
        return self.add(prompt or self.prompt(topic), chosen, rejected, topic)

    def plant(
        self, validator: str, defect: str, ids: list[str], column: str = "issue", note: str = ""
    ) -> None:
        self.planted.setdefault(validator, {})[defect] = {
            "pair_ids": ids,
            "column": column,
            "note": note,
        }

    def record(self, pid: str) -> dict[str, Any]:
        return self.records[int(pid.split("-")[1]) - 1]


MIN_PAIRS = 150  # fewer cannot hold one of each planted defect


def check_pairs(pairs: int) -> None:
    if pairs < MIN_PAIRS:
        raise SettingError(
            f"the demo needs at least {MIN_PAIRS} pairs to plant every defect, got {pairs}",
            setting="pairs",
        )


def generate_demo(folder: Path, *, pairs: int = 400, seed: int = 0) -> DemoData:
    """Write the demo dataset into ``folder`` and return where everything is."""
    check_pairs(pairs)
    gen = _Generator(seed)
    for _ in range(pairs - 120):
        gen.ordinary()
    _plant_content(gen)
    _plant_duplication(gen)
    _plant_label_noise(gen)
    _plant_agreement_and_red_team(gen)
    eval_prompts = _plant_leakage_and_coverage(gen)
    while len(gen.records) < pairs:
        gen.ordinary()

    folder.mkdir(parents=True, exist_ok=True)
    data = DemoData(
        folder, folder / "pairs.jsonl", folder / "annotations.jsonl", folder / "eval_prompts.txt"
    )
    lines = [_json_line(r) for r in gen.records]
    bad_rows = _bad_rows(gen, len(lines))
    for position, text in bad_rows:
        lines.insert(position - 1, text)
    write_bytes(data.pairs, "".join(lines).encode())
    write_jsonl(data.annotations, _annotations(gen))
    write_bytes(data.eval_prompts, ("\n".join(eval_prompts) + "\n").encode())
    gen.planted["load"] = {
        "bad_rows": {"lines": [p for p, _ in bad_rows], "column": "rejected", "note": ""}
    }
    data.planted = gen.planted
    write_json(folder / "planted.json", gen.planted)
    return data


def _plant_content(gen: _Generator) -> None:
    topics = list(TOPICS)
    identical = []
    for i in range(5):
        topic = topics[i]
        answer = gen.helpful(topic, 3)
        twin = answer if i % 2 else "  " + answer.upper().replace(". ", "...   ") + " "
        identical.append(gen.add(gen.prompt(topic), answer, twin, topic, truth="either"))
    gen.plant(
        "content", "identical", identical, "identical", "chosen equals rejected after normalisation"
    )

    empty = []
    for i, blank in enumerate(["", "   ", "", "\n"]):
        topic = topics[5 + i]
        good = gen.helpful(topic, 3)
        chosen, rejected = (good, blank) if i % 2 == 0 else (blank, good)
        empty.append(
            gen.add(
                gen.prompt(topic),
                chosen,
                rejected,
                topic,
                truth="chosen" if i % 2 == 0 else "rejected",
            )
        )
    gen.plant("content", "empty_response", empty, "empty_response")
    _plant_cut_and_extreme(gen, topics)


def _plant_cut_and_extreme(gen: _Generator, topics: list[str]) -> None:
    capped = []
    for i in range(6):
        topic = topics[i + 3]
        long_answer = " ".join(TOPICS[topic]["sentences"]) + " " + gen.helpful(topic, 4)
        capped.append(
            gen.add(
                gen.prompt(topic), long_answer[:LENGTH_CAP], gen.rng.choice(WEAK_ANSWERS), topic
            )
        )
    gen.plant(
        "content",
        "truncated_at_cap",
        capped,
        "truncated",
        f"responses cut at exactly {LENGTH_CAP} characters",
    )

    dangling = []
    for i, ending in enumerate([" and", " the", ",", " because", " with"]):
        topic = topics[(i + 7) % len(topics)]
        words = gen.helpful(topic, 3).split()
        cut = " ".join(words[: max(8, len(words) // 2)]).rstrip(".,!?") + ending
        dangling.append(gen.add(gen.prompt(topic), cut, gen.rng.choice(WEAK_ANSWERS), topic))
    gen.plant("content", "ends_mid_sentence", dangling, "truncated")

    extreme = []
    for i, text in enumerate(
        ["k", ".", "I agree. " * 3000, TOPICS["history"]["sentences"][0] * 250]
    ):
        topic = topics[(i + 10) % len(topics)]
        extreme.append(gen.add(gen.prompt(topic), gen.helpful(topic, 3), text, topic))
    gen.plant(
        "content",
        "extreme_length",
        extreme,
        "extreme_length",
        "one-character and 25,000+ character responses",
    )


def _plant_duplication(gen: _Generator) -> None:
    originals = [gen.record(gen.ordinary()) for _ in range(10)]
    exact = [gen.add(o["prompt"], o["chosen"], o["rejected"], o["source"]) for o in originals[:5]]
    gen.plant("duplication", "exact_duplicate", exact, "exact_duplicate", "copies of earlier pairs")
    near = []
    for o in originals[5:]:
        prompt = o["prompt"].replace("?", " please?").replace("How", "how", 1)
        near.append(
            gen.add(
                prompt,
                o["chosen"].replace(". ", ".  ", 1) + " Hope this helps.",
                o["rejected"],
                o["source"],
            )
        )
    gen.plant("duplication", "near_duplicate", near, "near_duplicate", "copies with small edits")
    contradictions = []
    for _ in range(3):
        o = gen.record(gen.ordinary())
        contradictions.append(
            gen.add(o["prompt"], o["rejected"], o["chosen"], o["source"], truth="rejected")
        )
    gen.plant(
        "duplication",
        "contradiction",
        contradictions,
        "contradiction",
        "an earlier pair with chosen and rejected swapped",
    )
    prompt = "What is a good habit to start this year?"
    crowded = [gen.ordinary("fitness", prompt) for _ in range(12)]
    gen.plant(
        "duplication",
        "over_represented_prompt",
        crowded,
        "over_represented",
        "one prompt with 12 pairs",
    )


def _plant_label_noise(gen: _Generator) -> None:
    flipped = []
    for i in range(16):
        topic = gen.rng.choice(list(TOPICS))
        good, weak = gen.helpful(topic, 4), gen.rng.choice(WEAK_ANSWERS)
        # Half keep scores that expose the flip; half had their scores flipped too.
        scores = (round(gen.rng.uniform(2, 5), 1), round(gen.rng.uniform(7, 9.5), 1))
        scores = scores if i % 2 == 0 else scores[::-1]
        flipped.append(
            gen.add(gen.prompt(topic), weak, good, topic, truth="rejected", scores=scores)
        )
    gen.plant(
        "label_noise",
        "flipped_label",
        flipped,
        note="chosen is the weak answer; half of them have scores that say so",
    )


def _plant_agreement_and_red_team(gen: _Generator) -> None:
    ambiguous = []
    for _ in range(10):
        topic = gen.rng.choice(list(TOPICS))
        ambiguous.append(
            gen.add(
                gen.prompt(topic),
                gen.helpful(topic, 3),
                gen.helpful(topic, 3),
                topic,
                truth="either",
            )
        )
    gen.plant(
        "agreement", "ambiguous_pair", ambiguous, note="two equally good answers; raters split"
    )
    gen.planted["agreement"]["unreliable_annotator"] = {
        "annotators": ["rater_e"],
        "note": "rater_e labels at random",
    }
    gen.planted["agreement"]["position_biased_annotator"] = {
        "annotators": ["rater_d"],
        "note": "rater_d picks the first-shown response 80% of the time",
    }
    red = [gen.add(p, RED_TEAM_REFUSAL, RED_TEAM_COMPLY, "red team") for p in RED_TEAM_PROMPTS]
    gen.plant(
        "report",
        "hostile_text",
        red,
        note="HTML and script in prompts and responses; must be shown escaped",
    )


def _plant_leakage_and_coverage(gen: _Generator) -> list[str]:
    eval_prompts = [gen.prompt(t) + " Answer briefly." for t in TOPICS for _ in range(2)]
    leaked = []
    for prompt in eval_prompts[:4]:
        topic = next(
            t
            for t in TOPICS
            if any(prompt.startswith(p.split("{")[0]) for p in TOPICS[t]["prompts"])
        )
        leaked.append(gen.ordinary(topic, prompt))
    gen.plant(
        "duplication",
        "eval_leakage",
        leaked,
        "leaked",
        "training prompts copied from eval_prompts.txt",
    )
    first = len(eval_prompts)
    gen.planted.setdefault("coverage", {})["uncovered_topic"] = {
        "reference_prompts": list(range(first, first + len(GAP_TOPIC_PROMPTS))),
        "note": "eval_prompts.txt asks legal questions no training pair covers",
    }
    return eval_prompts + GAP_TOPIC_PROMPTS


def _annotations(gen: _Generator) -> list[dict[str, Any]]:
    rows = []
    names = list(ANNOTATORS)
    for record in gen.records:
        pid, truth = record["id"], gen.truth[record["id"]]
        for name in _draw_raters(gen.rng, names):
            accuracy, position_bias = ANNOTATORS[name]
            chosen_first = gen.rng.random() < 0.5
            if gen.rng.random() < position_bias:
                label = "chosen" if chosen_first else "rejected"
            elif truth == "either":
                label = gen.rng.choice(["chosen", "rejected", "tie"])
            else:
                other = "rejected" if truth == "chosen" else "chosen"
                label = truth if gen.rng.random() < accuracy else other
            rows.append(
                {
                    "pair_id": pid,
                    "annotator": name,
                    "label": label,
                    "chosen_position": "a" if chosen_first else "b",
                }
            )
    return rows


def _draw_raters(rng: random.Random, names: list[str]) -> list[str]:
    """RATERS_PER_PAIR distinct raters, drawn in proportion to their workload."""
    chosen: list[str] = []
    while len(chosen) < RATERS_PER_PAIR:
        pool = [n for n in names if n not in chosen]
        chosen.append(rng.choices(pool, weights=[RATER_WORKLOAD[n] for n in pool])[0])
    return chosen


def _bad_rows(gen: _Generator, count: int) -> list[tuple[int, str]]:
    """Three broken lines at fixed places: malformed JSON, a missing field, a wrong type."""
    return [
        (
            25,
            '{"id": "demo-bad-1", "prompt": "How do I boil an egg?", "chosen": "Simmer it for 7 minutes.", \n',
        ),
        (
            120,
            _json_line(
                {"id": "demo-bad-2", "prompt": "Is tea healthy?", "chosen": "In moderation, yes."}
            ),
        ),
        (
            min(300, count),
            _json_line(
                {"id": "demo-bad-3", "prompt": "Name a prime.", "chosen": 7, "rejected": "Eight."}
            ),
        ),
    ]


def _json_line(record: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(record).decode() + "\n"


# The loader's account of every row it read or rejected (file, line, field, reason): no
# validator, but the check that finds the planted broken lines.
LOAD_REPORT = "load report"


def planted_found(result, planted: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """For each planted defect a check can find: the ``check`` (a validator, or the
    :data:`LOAD_REPORT` for the broken lines), how many were ``planted`` and how many it
    ``found`` (None if it did not run). What no check counts is :func:`planted_unchecked`."""
    return [
        _planted_row(result, group, defect, spec)
        for group, defects in planted.items()
        if _is_checked(group)
        for defect, spec in defects.items()
    ]


def planted_unchecked(planted: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The planted defects no check counts, planted for another part (the report's hostile
    texts, which it must show as text): ``part``, ``defect``, ``planted`` (pairs), ``note``."""
    return [
        {
            "part": group,
            "defect": defect,
            "planted": len(spec.get("pair_ids") or ()),
            "note": spec.get("note", ""),
        }
        for group, defects in planted.items()
        if not _is_checked(group)
        for defect, spec in defects.items()
    ]


def _is_checked(group: str) -> bool:
    from prefaudit.validators import VALIDATORS

    return group == "load" or group in VALIDATORS


def _planted_row(result, group: str, defect: str, spec: dict[str, Any]) -> dict[str, Any]:
    row = {"check": LOAD_REPORT if group == "load" else group, "defect": defect}
    row["note"] = spec.get("note", "")
    if group == "load":
        found_lines = {i.line for i in result.load.rejected}
        row.update(planted=len(spec["lines"]), found=len(found_lines & set(spec["lines"])))
        return row
    ran = group in result.validators
    row["ran"] = ran
    if "reference_prompts" in spec:
        info = result.validators[group].info if ran else {}
        gaps = set(info.get("reference", {}).get("gaps", []))
        row.update(planted=len(spec["reference_prompts"]))
        row["found"] = len(gaps & set(spec["reference_prompts"])) if ran else None
    elif "annotators" in spec:
        found = _annotators_found(result.validators[group].info, defect) if ran else set()
        row.update(planted=len(spec["annotators"]))
        row["found"] = len(found & set(spec["annotators"])) if ran else None
    else:
        ids = spec["pair_ids"]
        row["planted"] = len(ids) if ids else None
        flags = result.validators[group].flags if ran else None
        row["found"] = _found(flags, ids, spec["column"]) if ran and ids else None
    return row


def _annotators_found(info: dict[str, Any], defect: str) -> set[str]:
    """Raters the agreement check marks unreliable, or finds position-biased (p < 0.001)."""
    rows = info.get("annotators", [])
    if defect == "position_biased_annotator":
        return {
            r["annotator"]
            for r in rows
            if r["position_bias"] is not None
            and r["position_bias"] > 0.5
            and (r["position_bias_p_value"] or 1) < 1e-3
        }
    return {r["annotator"] for r in rows if r["unreliable"]}


def _found(flags, ids: list[str], column: str) -> int:
    column = column if column in flags.columns else "issue"
    return int(flags.loc[flags.index.intersection(ids), column].sum())
