"""One report section per validator, found by name in a registry.

A module registers a builder with :func:`section`; the builder turns the validator's result
into what its template (``templates/sections/<name>.html``) draws, and into the problems the
scorecard lists first. The built-in sections are the modules named in ``BUILT_IN``; a
validator of your own can register its section from its own module. A validator without one
gets the generic section (its description, flagged count and figures).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefaudit.report.inputs import ReportInputs
    from prefaudit.validators.base import ValidatorResult

SEVERITIES = ("high", "medium", "low")


@dataclass(frozen=True)
class Problem:
    """One sentence for the scorecard: what is wrong, how much, and why it matters."""

    severity: str  # "high": fix before training; "medium": look before training; "low": note
    text: str
    section: str = ""  # the anchor of the section that explains it
    # The cleaning step that removes it, as prefaudit.report.verdict reads it: "drop:<kind>"
    # (a kind in the policy's drop), "dedupe", "reorient_by_raters" or "flip"; "" = none does.
    fix: str = ""


@dataclass
class Section:
    """A validator's part of the report."""

    name: str
    title: str
    template: str
    description: str
    flagged: int
    pairs: int
    metrics: dict[str, Any]
    params: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class SectionSpec:
    title: str
    build: Callable[[ValidatorResult, ReportInputs], tuple[dict[str, Any], list[Problem]]]


SECTIONS: dict[str, SectionSpec] = {}
# The modules of this package that register the built-in validators' sections.
BUILT_IN = ("agreement", "content", "coverage", "duplication", "label_noise", "reference")


def section(name: str, title: str):
    """Decorator: register ``build(result, inputs) -> (template context, problems)`` for the
    validator ``name``; its template is ``sections/<name>.html``."""

    def register(build):
        SECTIONS[name] = SectionSpec(title, build)
        return build

    return register


def build_section(name: str, result: ValidatorResult, inputs: ReportInputs) -> Section:
    """The section of validator ``name``: its own when registered, else the generic one."""
    from prefaudit.validators import VALIDATORS

    _discover()
    spec = SECTIONS.get(name)
    description = getattr(VALIDATORS.get(name), "description", "")
    common = dict(
        name=name,
        description=description,
        flagged=int(result.flags["issue"].sum()),
        pairs=len(result.flags),
        metrics=dict(result.metrics),
        params=dict(result.params),
    )
    if spec is None:
        return Section(title=name.replace("_", " ").capitalize(), template="", **common)
    context, problems = spec.build(result, inputs)
    problems = [Problem(p.severity, p.text, name, p.fix) for p in problems]
    return Section(
        title=spec.title,
        template=f"sections/{name}.html",
        context=context,
        problems=problems,
        **common,
    )


@functools.cache
def _discover() -> None:
    """Import the built-in section modules (each registers its section)."""
    for module in BUILT_IN:
        importlib.import_module(f"{__name__}.{module}")


def pct(value: float | None, digits: int = 1) -> str:
    """A share as a percentage ('–' when unknown)."""
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def num(value: Any, digits: int = 3) -> str:
    """A figure for prose: integers with thousands separators, floats to ``digits`` figures."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"
