"""The cleaning policy: what to do with the audited pairs (the ``clean:`` section of a rule
file; see the built-in ``default`` rule set).

:func:`load_policy` reads it from a rule file, :func:`policy_from_mapping` from a plain dict of
the same keys; both check it the same way and raise :class:`~prefaudit.rules.RuleFileError`
(naming the file and line, or "the policy").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefaudit.rules.parse import NodeWalker, RuleFileError, RuleFileParser, compose_rule_file

WEIGHTS = ("none", "confidence", "soft_label", "strength")
CLEAN_KEYS = (
    "drop",
    "min_strength",
    "dedupe",
    "reorient_by_raters",
    "flip_min_noise",
    "weights",
    "select",
)
SELECT_BY = ("value", "margin", "trust")
SELECT_KEYS = ("keep", "by", "per_cluster_min")


@dataclass(frozen=True)
class Selection:
    """The ``select:`` step: keep the pairs most worth training on (see prefaudit.cleaning.select).

    ``keep``: a share of the pairs left after the other steps (0 < keep < 1) or a count (a whole
    number >= 1); ``by``: the score that ranks them (``value`` = trust x informativeness,
    ``margin``: informativeness alone, ``trust``: the label's trust alone);
    ``per_cluster_min``: every prompt cluster keeps at least this many pairs (or all it has).
    """

    keep: float | int = 0.5
    by: str = "value"
    per_cluster_min: int = 0


@dataclass(frozen=True)
class CleaningPolicy:
    """What to do with the audited pairs (the ``clean:`` section of a rules file)."""

    drop: tuple[str, ...] = ()
    dedupe: bool = True
    reorient_by_raters: bool = False
    flip_min_noise: float | None = None
    weights: str = "none"
    select: Selection | None = None
    # Quarantine pairs whose raters' mean strength (a `strength` column, in [-1, 1]) is nearer
    # a tie than this, either way (applied after `drop`); None: off. Pairs without raters stay.
    min_strength: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["drop"] = list(self.drop)
        return out


def load_policy(path: str | Path) -> CleaningPolicy:
    """The cleaning policy of a rule file (its ``clean:`` section).

    The whole file is checked, as :func:`prefaudit.rules.load_rules` does; every problem, and a
    file without a ``clean:`` section, is a RuleFileError naming the file (and the line).
    """
    parser = _PolicyFileParser(str(path))
    parser.ruleset(compose_rule_file(str(path)))
    if parser.policy is None:
        raise RuleFileError(f"{path}: no clean: section (the cleaning policy)")
    return parser.policy


def policy_from_mapping(mapping: Mapping[str, Any]) -> CleaningPolicy:
    """A cleaning policy from a dict of its fields, checked as a rule file's ``clean:`` is.

    >>> policy_from_mapping({"drop": ["content"], "weights": "confidence"}).drop
    ('content',)
    """
    if not isinstance(mapping, Mapping):
        raise RuleFileError(
            f"the policy must be a mapping (key: value), got {type(mapping).__name__}"
        )
    walker = _MappingWalker()
    spec = walker.fields(mapping, "the policy", CLEAN_KEYS)
    for key in ("flip_min_noise", "select", "min_strength"):
        if key in spec and spec[key][0] is None:
            # The field's own default (the step is off), as CleaningPolicy.to_dict writes it.
            del spec[key]
    return _policy(walker, spec, prefix="")


class _PolicyFileParser(RuleFileParser):
    """The rule-file parser that also reads the ``clean:`` section, in its place in the file."""

    def __init__(self, path: str):
        super().__init__(path)
        self.policy: CleaningPolicy | None = None

    def clean(self, node) -> None:
        self.policy = _policy(self, self.fields(node, "clean", CLEAN_KEYS), prefix="clean.")


class _MappingWalker(NodeWalker):
    """The node walker's checks on a plain dict: there are no lines, errors name "the policy"."""

    def __init__(self):
        super().__init__("the policy")

    def error(self, node, message: str) -> RuleFileError:
        return RuleFileError(f"the policy: {message}")

    def fields(self, node, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
        unknown = [key for key in node if key not in allowed]
        if unknown:
            raise self.error(None, f"unknown key {unknown[0]!r}; expected {', '.join(allowed)}")
        return {key: (value, None) for key, value in node.items()}


def _policy(walker: NodeWalker, spec: dict[str, tuple[Any, Any]], prefix: str) -> CleaningPolicy:
    """Check each setting (key -> (value, where)); ``prefix`` names them in messages."""
    from prefaudit.validators import VALIDATORS

    settings: dict[str, Any] = {}
    if "drop" in spec:
        value, where = spec["drop"]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise walker.error(
                where, f"{prefix}drop must be a list of checks (validator or validator/flag)"
            )
        for item in value:
            if item.split("/")[0] not in VALIDATORS:
                raise walker.error(
                    where,
                    f"{prefix}drop: unknown validator in {item!r}; known: {', '.join(VALIDATORS)}",
                )
        settings["drop"] = tuple(value)
    for key in ("dedupe", "reorient_by_raters"):
        if key in spec:
            value, where = spec[key]
            if not isinstance(value, bool):
                raise walker.error(where, f"{prefix}{key} must be true or false, got {value!r}")
            settings[key] = value
    if "min_strength" in spec:
        threshold = walker.number(spec, "min_strength")
        if not 0 < threshold <= 1:
            raise walker.error(
                spec["min_strength"][1], f"{prefix}min_strength must be in (0, 1], got {threshold}"
            )
        settings["min_strength"] = threshold
    if "flip_min_noise" in spec:
        threshold = walker.number(spec, "flip_min_noise")
        if not 0.5 < threshold <= 1:
            raise walker.error(
                spec["flip_min_noise"][1], f"{prefix}flip_min_noise must be in (0.5, 1]"
            )
        settings["flip_min_noise"] = threshold
    if "weights" in spec:
        value, where = spec["weights"]
        if value not in WEIGHTS:
            raise walker.error(
                where, f"{prefix}weights must be one of {', '.join(WEIGHTS)}, got {value!r}"
            )
        settings["weights"] = value
    if "select" in spec:
        settings["select"] = _selection(walker, *spec["select"], prefix=prefix)
    return CleaningPolicy(**settings)


def _selection(walker: NodeWalker, value: Any, where: Any, prefix: str) -> Selection:
    """The ``select:`` mapping, checked; errors name the offending key's line in a file."""
    what = f"{prefix}select"
    if where is None and not isinstance(value, Mapping):  # a dict policy (no node)
        raise walker.error(None, f"{what} must be a mapping (key: value)")
    spec = walker.fields(value if where is None else where, what, SELECT_KEYS)

    def check(key: str, ok, expected: str, default: Any) -> Any:
        given, node = spec.get(key, (default, where))
        if not ok(given):
            raise walker.error(
                walker.at(node) if node is not None else None,
                f"{what}.{key} must be {expected}, got {given!r}",
            )
        return given

    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    given = spec.get("keep", (None,))[0]
    hint = ""
    if isinstance(given, float) and given >= 1 and given.is_integer():
        hint = f" ({given} would be every pair: leave select: out; a count is written {int(given)})"
    keep = check(
        "keep",
        lambda v: (isinstance(v, float) and 0 < v < 1) or (whole(v) and v >= 1),
        "a share in (0, 1) or a whole count >= 1" + hint,
        Selection.keep,
    )
    by = check("by", lambda v: v in SELECT_BY, f"one of {', '.join(SELECT_BY)}", Selection.by)
    floor = check(
        "per_cluster_min",
        lambda v: whole(v) and v >= 0,
        "a whole number >= 0",
        Selection.per_cluster_min,
    )
    return Selection(keep=keep, by=by, per_cluster_min=floor)
