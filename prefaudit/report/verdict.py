"""The report's verdict: one line that says whether to train, and the reasons that decide it.

The rule, in order:

1. **Do not train yet** when the rule file fails (an ``error`` rule: CI would stop here), or when
   a ``high`` problem is one that no step of the cleaning policy removes (raters who agree
   little, uncovered topics, a reference model that strongly prefers the rejected responses).
2. **Train after cleaning** when a ``high`` or ``medium`` problem is one the cleaning policy
   removes (identical or contradicting pairs, repeats, leaked prompts, bad chosen responses,
   labels the raters or the flip evidence reverse): train on ``cleaned.jsonl``.
3. **Ready to train** otherwise; ``medium`` problems no cleaning step removes are given as what
   to look at first.

"The cleaning policy" is the one the folder's cleaning used (its manifest) when there is one,
else any: a problem counts as removable when prefaudit's cleaning has a step for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefaudit.report.sections import Problem

READY, CLEAN, STOP = "Ready to train", "Train after cleaning", "Do not train yet"
TONES = {READY: "ready", CLEAN: "clean", STOP: "stop"}
REASONS = 3  # the reasons shown: the ones that decide it, most severe first


@dataclass(frozen=True)
class Verdict:
    label: str
    reasons: list[str] = field(default_factory=list)

    @property
    def tone(self) -> str:
        """The colour class the verdict, the rules tile and the problem list share."""
        return TONES[self.label]


def decide(
    problems: list[Problem], check: dict[str, Any] | None, manifest: dict[str, Any] | None
) -> Verdict:
    """The verdict for the report's ``problems`` (most severe first), the rule results of
    ``check.json`` (None: not checked) and the cleaning manifest (None: not cleaned)."""
    policy = (manifest or {}).get("policy")
    errors = [
        r["rule"]
        for r in (check or {}).get("results", [])
        if r["status"] == "failed" and r.get("severity") == "error"
    ]
    serious = [p for p in problems if p.severity in ("high", "medium")]
    removable = [p for p in serious if removes(policy, p.fix)]
    blocking = [p for p in serious if p.severity == "high" and p not in removable]
    if errors or blocking:
        # The report lists a failing rule file as a high problem of its own.
        reasons = [p.text for p in blocking] or [f"The rule file fails: {', '.join(errors)}."]
        return Verdict(STOP, reasons[:REASONS])
    if removable:
        return Verdict(CLEAN, [p.text for p in removable][:REASONS])
    rest = [p.text for p in serious]
    return Verdict(READY, rest[:REASONS] or ["No check found a problem that needs fixing."])


def removes(policy: dict[str, Any] | None, fix: str) -> bool:
    """Whether ``policy`` (a manifest's, as CleaningPolicy.to_dict writes it; None: any
    policy) has the cleaning step ``fix`` names (see Problem.fix)."""
    if not fix:
        return False
    if policy is None:
        return True
    if fix.startswith("drop:"):
        kind = fix.removeprefix("drop:")
        dropped = policy.get("drop") or []
        return kind in dropped or kind.split("/")[0] in dropped
    if fix == "flip":
        return policy.get("flip_min_noise") is not None
    return bool(policy.get(fix))
