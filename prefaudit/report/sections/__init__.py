"""One report section per validator, found by name in a registry.

A module registers a builder with :func:`section`; the builder turns the validator's result
into what its template (``templates/sections/<name>.html``) draws, and into the problems the
scorecard lists first. The built-in sections are the modules named in ``BUILT_IN``; a
validator of your own can register its section from its own module. A validator without one
gets the generic section (its description, flagged count and figures).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefaudit.report.inputs import ReportInputs
    from prefaudit.validators.base import ValidatorResult

SEVERITIES = ("high", "medium", "low")
HAS = ("has", "have")  # a verb for Stated.count


@dataclass(frozen=True)
class Problem:
    """One sentence for the scorecard: what is wrong, how much, and why it matters."""

    severity: str  # "high": fix before training; "medium": look before training; "low": note
    text: str
    section: str = ""  # the anchor of the section that explains it
    # The cleaning step that removes it, as prefaudit.report.verdict reads it: "drop:<kind>"
    # (a kind in the policy's drop), "dedupe", "reorient_by_raters" or "flip"; "" = none does.
    fix: str = ""
    # The flag columns (``validator/flag``) of the pairs it is about: the scorecard lists one
    # problem per set of pairs (the content and duplication checks both find identical pairs).
    covers: tuple[str, ...] = ()
    # Every figure the sentence states, as (audit.json metric, format, as written): see Stated.
    figures: tuple[tuple[str, str, str], ...] = ()


class Stated:
    """Writes a problem's figures from the audit's metrics and records each one, so that the
    sentence says only what the audit holds and a test can check every number on the
    scorecard against ``audit.json``.

    >>> said = Stated({"content/identical_pairs": 1})
    >>> said.count("content/identical_pairs", "pair", verb=("has", "have"))
    '1 pair has'
    >>> said.problem("high", "...").figures
    (('content/identical_pairs', 'num', '1'),)
    """

    def __init__(self, metrics: dict[str, Any]) -> None:
        self.metrics = metrics
        self.figures: list[tuple[str, str, str]] = []

    def num(self, key: str) -> str:
        return self._say(key, "num", num(self.metrics.get(key)))

    def pct(self, key: str) -> str:
        return self._say(key, "pct", pct(self.metrics.get(key)))

    def count(
        self, key: str, noun: str, plural: str | None = None, verb: tuple[str, str] = ("", "")
    ) -> str:
        """The metric ``key`` (a count) with ``noun``, and ``verb`` (its singular and plural
        forms) when given, in the right number."""
        n = self.metrics.get(key)
        said = counted(n, noun, plural, self.num(key))
        return f"{said} {verb[0] if n == 1 else verb[1]}".rstrip()

    def pct_sum(self, *keys: str) -> str:
        """The sum of the shares ``keys`` (a missing one counts 0), as a percentage."""
        total = sum(self.metrics.get(key) or 0 for key in keys)
        return self._say("+".join(keys), "pct", pct(total))

    def guide(self, value: float) -> str:
        """A threshold of the report's reading guide (not a figure of the data)."""
        return self._say("guide", "num", num(value))

    def text(self, value: Any) -> str:
        """Words from the data (rater or topic names), which may hold digits; bidi controls
        shown as markers, as everywhere in the report."""
        from prefaudit.report.text import visible

        return self._say("text", "text", visible(str(value)))

    def problem(self, severity: str, text: str, **fields: Any) -> Problem:
        """The problem saying ``text``, with the figures stated since the last one."""
        return Problem(severity, text, figures=self.take(), **fields)

    def take(self) -> tuple[tuple[str, str, str], ...]:
        """The figures stated since the last call (and forget them)."""
        figures, self.figures = tuple(self.figures), []
        return figures

    def _say(self, key: str, kind: str, written: str) -> str:
        self.figures.append((key, kind, written))
        return written


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
    problems = [dataclasses.replace(p, section=name) for p in problems]
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


def counted(n: Any, noun: str, plural: str | None = None, written: str | None = None) -> str:
    """``n`` and ``noun`` in the right number: '1 pair', '2 pairs', '1 query', '3 queries'.

    >>> counted(1, "pair"), counted(1_200, "pair"), counted(2, "query", "queries")
    ('1 pair', '1,200 pairs', '2 queries')
    """
    word = noun if n == 1 else plural or f"{noun}s"
    return f"{num(n) if written is None else written} {word}"


def num(value: Any, digits: int = 3) -> str:
    """A figure for prose: integers with thousands separators, floats to ``digits`` figures."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"
