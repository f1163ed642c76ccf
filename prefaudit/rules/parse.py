"""Rule files: reading and checking them, every mistake named by file and line.

A rule file (YAML, read with the safe loader) has up to four sections::

    version: 1
    metrics:                       # bounds on figures from audit.json
      content/identical_pairs: {max: 0, severity: error}
      agreement/krippendorff_alpha: {min: 0.4, severity: warn}
    pairs:                         # checks on the pairs table itself
      - {check: unique_pair_ids, severity: error}
      - {check: not_empty, columns: [prompt, chosen, rejected], severity: error}
      - {check: length, column: chosen, max_chars: 20000, mostly: 0.999, severity: warn}
      - {check: allowed_values, column: source, values: [web, chat], severity: error}
    drift:                         # with --baseline: a metric may not get worse by more than this
      tolerance: 0.02
      severity: error
    clean:                         # the cleaning policy (prefaudit clean --policy)
      drop: [content]
    load:                          # how check and clean read the data (options override it)
      label_scale: "-3..3"

Every mistake in a rule file (unknown key, unknown metric, wrong type) is a :class:`RuleFileError`
naming the file and line. Wherever a rule file is read, the name of a rule set shipped in the
package (``default``, ``strict``) may stand for its path (:mod:`prefaudit.rules.builtin`). The ``clean:`` section is only noted here (:attr:`RuleSet.has_clean`):
:func:`prefaudit.cleaning.policy.load_policy` parses it, with the node walker of this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prefaudit.errors import InputError
from prefaudit.rules.builtin import rule_file

SEVERITIES = ("error", "warn")
LOAD_METRICS = (
    "load/rows_read",
    "load/rows_rejected",
    "load/rejected_rate",
    "load/pairs",
    "load/warnings",
    "load/annotations",
)
PAIR_CHECKS = {
    # check -> keys it accepts besides `check`, `severity`, `mostly`
    "unique_pair_ids": (),
    "not_null": ("columns",),
    "not_empty": ("columns",),
    "length": ("column", "min_chars", "max_chars"),
    "allowed_values": ("column", "values"),
}
_METRIC_KEYS = ("min", "max", "severity", "drift", "why")
_DRIFT_KEYS = ("tolerance", "severity")
_LOAD_KEYS = ("label_scale",)


class RuleFileError(InputError):
    """A rule file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Rule:
    name: str  # shown in tables and JUnit: "content/identical_pairs <= 0"
    kind: str  # metric | pairs | drift
    severity: str
    line: int
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleSet:
    path: str
    rules: tuple[Rule, ...]
    drift_tolerance: float | None = None
    drift_severity: str = "error"
    # Whether the file has a `clean:` section; prefaudit.cleaning.policy.load_policy reads it.
    has_clean: bool = False
    # The `load:` section: the label column's scale (prefaudit.io.scales), when declared.
    label_scale: str | None = None


def known_metrics() -> set[str]:
    from prefaudit.validators import VALIDATORS

    return {m for cls in VALIDATORS.values() for m in cls.metric_names} | set(LOAD_METRICS)


def text_metrics() -> set[str]:
    """Metrics whose values are labels (e.g. a level of measurement), not numbers."""
    from prefaudit.validators import VALIDATORS

    return {m for cls in VALIDATORS.values() for m in cls.text_metric_names}


def load_rules(path: str | Path) -> RuleSet:
    """Read and check a rule file; every problem names the file and the line.

    The ``clean:`` section is accepted unread (``has_clean``); see
    :func:`prefaudit.cleaning.policy.load_policy`.
    """
    path = str(path)
    root = compose_rule_file(path)
    return RuleFileParser(path).ruleset(root)


def compose_rule_file(path: str) -> yaml.Node | None:
    """The YAML node tree of a rule file, or of a built-in rule set named by ``path`` (nodes keep
    their line numbers); None when empty."""
    try:
        text = rule_file(path).read_text(encoding="utf-8")
    except OSError as err:
        raise RuleFileError(f"{path}: cannot read the rule file ({err.strerror})") from err
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f"{path}, line {line + 1}" if line is not None else path
        raise RuleFileError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from err


class NodeWalker:
    """Reads YAML nodes into values, and makes errors that name the file and line of a node."""

    def __init__(self, path: str):
        self.path = path
        self.key_nodes: dict[int, Any] = {}

    def error(self, node, message: str) -> RuleFileError:
        return RuleFileError(f"{self.path}, line {node.start_mark.line + 1}: {message}")

    def value(self, node) -> Any:
        return yaml.SafeLoader("").construct_object(node, deep=True)

    def mapping(self, node, what: str) -> list[tuple[str, Any]]:
        """(key, value node) pairs; the key nodes are remembered for line numbers."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping (key: value)")
        out, seen = [], set()
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if key in seen:
                raise self.error(key_node, f"{what}: {key!r} is given twice")
            seen.add(key)
            self.key_nodes[id(value_node)] = key_node
            out.append((key, value_node))
        return out

    def at(self, value_node):
        """The node to report a line for: the key of a value, where there is one."""
        return self.key_nodes.get(id(value_node), value_node)

    def fields(self, node, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
        """key -> (value, its node), refusing keys outside ``allowed``."""
        out = {}
        for key, value_node in self.mapping(node, what):
            if key not in allowed:
                raise self.error(
                    value_node, f"{what}: unknown key {key!r}; expected {', '.join(allowed)}"
                )
            out[key] = (self.value(value_node), value_node)
        return out

    def number(self, spec, key: str) -> float:
        value, node = spec[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise self.error(node, f"{key} must be a finite number, got {value!r}")
        return float(value)


class RuleFileParser(NodeWalker):
    """Walks a rule file's node tree into rules."""

    def __init__(self, path: str):
        super().__init__(path)
        self.metrics = known_metrics()
        self.text_metrics = text_metrics()

    def ruleset(self, root) -> RuleSet:
        if root is None:
            raise RuleFileError(f"{self.path}: the rule file is empty")
        rules: list[Rule] = []
        tolerance, drift_severity, has_clean, label_scale = None, "error", False, None
        for key, node in self.mapping(root, "the rule file"):
            if key == "version":
                version = self.value(node)
                if isinstance(version, bool) or version != 1:
                    raise self.error(
                        node, f"unsupported version {version!r}; this prefaudit reads version 1"
                    )
            elif key == "metrics":
                rules.extend(
                    self.metric_rule(name, spec) for name, spec in self.mapping(node, "metrics")
                )
            elif key == "pairs":
                if not isinstance(node, yaml.SequenceNode):
                    raise self.error(node, "pairs must be a list of checks")
                rules.extend(self.pairs_rule(item) for item in node.value)
            elif key == "drift":
                tolerance, drift_severity = self.drift(node)
            elif key == "clean":
                self.clean(node)
                has_clean = True
            elif key == "load":
                label_scale = self.load(node)
            else:
                raise self.error(
                    self.at(node),
                    f"unknown section {key!r}; expected version, metrics, pairs, drift, clean, "
                    "load",
                )
        return RuleSet(self.path, tuple(rules), tolerance, drift_severity, has_clean, label_scale)

    def load(self, node) -> str | None:
        """The ``load:`` section: ``label_scale``, checked as the option is."""
        from prefaudit.errors import SettingError
        from prefaudit.io.scales import parse_scale

        spec = self.fields(node, "load", _LOAD_KEYS)
        if "label_scale" not in spec:
            return None
        value, where = spec["label_scale"]
        try:
            return parse_scale(value).spec
        except SettingError as err:
            raise self.error(self.at(where), str(err)) from None

    def clean(self, node) -> None:
        """The ``clean:`` section, in its place in the file. Rules do not read it; the cleaning
        policy's parser (a subclass) does, so its errors come in file order."""

    def metric_rule(self, name: str, node) -> Rule:
        if name not in self.metrics:
            near = sorted(m for m in self.metrics if m.split("/")[0] == str(name).split("/")[0])
            hint = f" (known {str(name).split('/')[0]} metrics: {', '.join(near)})" if near else ""
            raise self.error(self.at(node), f"unknown metric {name!r}{hint}")
        if name in self.text_metrics:
            raise self.error(
                self.at(node), f"metric {name} is a label, not a number: it cannot have bounds"
            )
        spec = self.fields(node, f"metric {name}", _METRIC_KEYS)
        bounds = {k: self.number(spec, k) for k in ("min", "max") if k in spec}
        if not bounds:
            raise self.error(self.at(node), f"metric {name}: give a min, a max or both")
        if bounds.get("min", -math.inf) > bounds.get("max", math.inf):
            raise self.error(
                self.at(node),
                f"metric {name}: min {bounds['min']:g} is above max {bounds['max']:g}",
            )
        severity = self.severity(spec, node)
        text = " and ".join(f"{'>=' if k == 'min' else '<='} {v:g}" for k, v in bounds.items())
        drift = spec.get("drift", (True, node))[0]
        if not isinstance(drift, bool):
            raise self.error(spec["drift"][1], "drift must be true or false")
        params = {"metric": name, **bounds, "drift": drift, "why": spec.get("why", ("", node))[0]}
        return Rule(f"{name} {text}", "metric", severity, self.at(node).start_mark.line + 1, params)

    def pairs_rule(self, node) -> Rule:
        check_node = dict(self.mapping(node, "a pairs check")).get("check")
        check = None if check_node is None else self.value(check_node)
        if check not in PAIR_CHECKS:
            raise self.error(
                node, f"unknown pairs check {check!r}; expected one of {', '.join(PAIR_CHECKS)}"
            )
        allowed = ("check", "severity", "mostly", *PAIR_CHECKS[check])
        spec = self.fields(node, f"pairs check {check}", allowed)
        params: dict[str, Any] = {
            "check": check,
            "mostly": self.number(spec, "mostly") if "mostly" in spec else 1.0,
        }
        if not 0 < params["mostly"] <= 1:
            raise self.error(spec["mostly"][1], "mostly must be in (0, 1]")
        if "columns" in PAIR_CHECKS[check]:
            params["columns"] = self.strings(
                spec, "columns", node, default=["prompt", "chosen", "rejected"]
            )
        if "column" in PAIR_CHECKS[check]:
            if "column" not in spec or not isinstance(spec["column"][0], str):
                raise self.error(node, f"pairs check {check} needs a column name")
            params["column"] = spec["column"][0]
        for key in ("min_chars", "max_chars"):
            if key in spec:
                value, where = spec[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise self.error(where, f"{key} must be a whole number >= 0, got {value!r}")
                params[key] = value
        if check == "length" and not ({"min_chars", "max_chars"} & set(params)):
            raise self.error(node, "pairs check length needs min_chars, max_chars or both")
        if check == "allowed_values":
            params["values"] = self.strings(spec, "values", node)
        target = params.get("column") or ",".join(params.get("columns", ["pair_id"]))
        return Rule(
            f"pairs {check} ({target})",
            "pairs",
            self.severity(spec, node),
            node.start_mark.line + 1,
            params,
        )

    def drift(self, node) -> tuple[float, str]:
        spec = self.fields(node, "drift", _DRIFT_KEYS)
        if "tolerance" not in spec:
            raise self.error(node, "drift needs a tolerance (how much worse a metric may get)")
        tolerance = self.number(spec, "tolerance")
        if tolerance < 0:
            raise self.error(spec["tolerance"][1], "tolerance must be >= 0")
        return tolerance, self.severity(spec, node)

    def severity(self, spec, node) -> str:
        value, where = spec.get("severity", ("error", node))
        if value not in SEVERITIES:
            raise self.error(where, f"severity must be error or warn, got {value!r}")
        return value

    def strings(self, spec, key: str, node, default: list[str] | None = None) -> list[str]:
        if key not in spec:
            if default is None:
                raise self.error(node, f"{key} is required")
            return default
        value, where = spec[key]
        if (
            not isinstance(value, list)
            or not all(isinstance(v, (str, int, float)) for v in value)
            or not value
        ):
            raise self.error(where, f"{key} must be a non-empty list of values")
        return [str(v) for v in value]
