"""Rule files: audit figures and the pairs table -> pass/fail, checked with great-expectations.

A rule file (YAML, read with the safe loader) has up to three sections::

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

Every mistake in a rule file (unknown key, unknown metric, wrong type) is a :class:`RuleFileError`
naming the file and line. great-expectations is imported only when rules are evaluated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
_CLEAN_KEYS = ("drop", "dedupe", "reorient_by_raters", "flip_min_noise", "weights")
_DRIFT_KEYS = ("tolerance", "severity")


class RuleFileError(ValueError):
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
    clean: Any = None  # the CleaningPolicy of the file's `clean:` section, if it has one


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    status: str  # passed | failed | skipped
    value: Any = None
    bound: str = ""
    detail: str = ""

    @property
    def fails_check(self) -> bool:
        return self.status == "failed" and self.rule.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "kind": self.rule.kind,
            "severity": self.rule.severity,
            "line": self.rule.line,
            "status": self.status,
            "value": self.value,
            "bound": self.bound,
            "detail": self.detail,
        }


def known_metrics() -> set[str]:
    from prefaudit.validators import VALIDATORS

    return {m for cls in VALIDATORS.values() for m in cls.metric_names} | set(LOAD_METRICS)


def text_metrics() -> set[str]:
    """Metrics whose values are labels (e.g. a level of measurement), not numbers."""
    from prefaudit.validators import VALIDATORS

    return {m for cls in VALIDATORS.values() for m in cls.text_metric_names}


def load_rules(path: str | Path) -> RuleSet:
    """Read and check a rule file; every problem names the file and the line."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise RuleFileError(f"{path}: cannot read the rule file ({err.strerror})") from err
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f"{path}, line {line + 1}" if line is not None else path
        raise RuleFileError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from err
    parser = _Parser(path)
    return parser.ruleset(root)


class _Parser:
    """Walks the YAML node tree (which keeps line numbers) into rules."""

    def __init__(self, path: str):
        self.path = path
        self.metrics = known_metrics()
        self.text_metrics = text_metrics()
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

    def ruleset(self, root) -> RuleSet:
        if root is None:
            raise RuleFileError(f"{self.path}: the rule file is empty")
        rules: list[Rule] = []
        tolerance, drift_severity, policy = None, "error", None
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
                policy = self.clean(node)
            else:
                raise self.error(
                    self.at(node),
                    f"unknown section {key!r}; expected version, metrics, pairs, drift, clean",
                )
        return RuleSet(self.path, tuple(rules), tolerance, drift_severity, policy)

    def clean(self, node):
        """The cleaning policy (see prefaudit.cleaning for what each key does)."""
        from prefaudit.cleaning import WEIGHTS, CleaningPolicy
        from prefaudit.validators import VALIDATORS

        spec = self.fields(node, "clean", _CLEAN_KEYS)
        settings: dict[str, Any] = {}
        if "drop" in spec:
            value, where = spec["drop"]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(
                    where, "clean.drop must be a list of checks (validator or validator/flag)"
                )
            for item in value:
                if item.split("/")[0] not in VALIDATORS:
                    raise self.error(
                        where,
                        f"clean.drop: unknown validator in {item!r}; known: {', '.join(VALIDATORS)}",
                    )
            settings["drop"] = tuple(value)
        for key in ("dedupe", "reorient_by_raters"):
            if key in spec:
                value, where = spec[key]
                if not isinstance(value, bool):
                    raise self.error(where, f"clean.{key} must be true or false, got {value!r}")
                settings[key] = value
        if "flip_min_noise" in spec:
            threshold = self.number(spec, "flip_min_noise")
            if not 0.5 < threshold <= 1:
                raise self.error(
                    spec["flip_min_noise"][1], "clean.flip_min_noise must be in (0.5, 1]"
                )
            settings["flip_min_noise"] = threshold
        if "weights" in spec:
            value, where = spec["weights"]
            if value not in WEIGHTS:
                raise self.error(
                    where, f"clean.weights must be one of {', '.join(WEIGHTS)}, got {value!r}"
                )
            settings["weights"] = value
        return CleaningPolicy(**settings)

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

    def fields(self, node, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
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


def load_policy(path: str | Path):
    """The cleaning policy of a rule file (its ``clean:`` section); a file without one is a
    RuleFileError naming it."""
    policy = load_rules(path).clean
    if policy is None:
        raise RuleFileError(f"{path}: no clean: section (the cleaning policy)")
    return policy


def metric_values(report, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Every metric of an audit (its load report and validator metrics), ``load/...`` included."""
    values = {
        "load/rows_read": report.rows_read,
        "load/rows_rejected": report.rows_rejected,
        "load/rejected_rate": report.rows_rejected / report.rows_read if report.rows_read else 0.0,
        "load/pairs": report.pairs,
        "load/warnings": len(report.warnings),
        "load/annotations": report.annotations,
    }
    values.update(metrics)
    return values


def evaluate(
    ruleset: RuleSet, audit, pairs, baseline: Mapping[str, Any] | None = None
) -> list[RuleResult]:
    """Check the rules against an audit and its pairs; ``baseline`` holds an earlier audit's metrics."""
    values = metric_values(audit.load, audit.metrics)
    rules = list(ruleset.rules)
    if baseline is not None and ruleset.drift_tolerance is not None:
        rules.extend(_drift_rules(ruleset, values, baseline))
    elif baseline is not None:
        raise RuleFileError(
            f"{ruleset.path}: --baseline needs a drift section (drift: {{tolerance: ...}})"
        )
    results: dict[int, RuleResult] = {}
    checkable = []
    for index, rule in enumerate(rules):
        if rule.kind in ("metric", "drift"):
            value = values.get(rule.params["metric"])
            if value is None or (isinstance(value, float) and value != value):  # None or NaN
                reason = (
                    "the validator did not run"
                    if rule.params["metric"] not in values
                    else "no value"
                )
                results[index] = RuleResult(rule, "skipped", None, _bound(rule), reason)
                continue
        elif rule.kind == "pairs" and not _columns_present(rule, pairs):
            missing = ", ".join(_rule_columns(rule))
            results[index] = RuleResult(
                rule, "skipped", None, "", f"the pairs have no column {missing}"
            )
            continue
        checkable.append((index, rule))
    results.update(_run_expectations(checkable, values, pairs))
    return [results[i] for i in range(len(rules))]


def _drift_rules(ruleset: RuleSet, values, baseline) -> list[Rule]:
    """A metric rule with a bound may not move past the baseline's value by more than tolerance."""
    rules = []
    for rule in ruleset.rules:
        if rule.kind != "metric" or not rule.params["drift"]:
            continue
        name, old = rule.params["metric"], baseline.get(rule.params["metric"])
        if not isinstance(old, (int, float)) or isinstance(old, bool):
            continue
        params = {"metric": name, "baseline": float(old)}
        if "max" in rule.params:
            params["max"] = float(old) + ruleset.drift_tolerance
        if "min" in rule.params:
            params["min"] = float(old) - ruleset.drift_tolerance
        text = f"within {ruleset.drift_tolerance:g} of baseline {old:.4g}"
        rules.append(
            Rule(f"drift {name} {text}", "drift", ruleset.drift_severity, rule.line, params)
        )
    return rules


def _rule_columns(rule: Rule) -> list[str]:
    """The pairs columns a pairs check reads (pair_id aside)."""
    return (
        [rule.params["column"]] if "column" in rule.params else list(rule.params.get("columns", []))
    )


def _columns_present(rule: Rule, pairs) -> bool:
    return all(c in pairs.columns for c in _rule_columns(rule))


def _bound(rule: Rule) -> str:
    parts = []
    if "min" in rule.params:
        parts.append(f">= {rule.params['min']:g}")
    if "max" in rule.params:
        parts.append(f"<= {rule.params['max']:g}")
    return " and ".join(parts)


def _run_expectations(
    checkable: list[tuple[int, Rule]], values: Mapping[str, Any], pairs
) -> dict[int, RuleResult]:
    """Build one suite for the metrics table and one for the pairs table, run both with GX."""
    if not checkable:
        return {}
    import pandas as pd

    gx = import_great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # CI logs stay readable
    metric_rules = [(i, r) for i, r in checkable if r.kind in ("metric", "drift")]
    pair_rules = [(i, r) for i, r in checkable if r.kind == "pairs"]
    results: dict[int, RuleResult] = {}
    if metric_rules:
        table = pd.DataFrame(
            {r.params["metric"]: [values[r.params["metric"]]] for _, r in metric_rules}
        )
        expectations = [(i, r, _metric_expectation(gx, r)) for i, r in metric_rules]
        outcome = _validate(gx, context, "metrics", table, [e for _, _, e in expectations])
        for (index, rule, _), result in zip(expectations, outcome, strict=True):
            value = values[rule.params["metric"]]
            results[index] = RuleResult(
                rule,
                "passed" if result.success else "failed",
                value,
                _bound(rule),
                rule.params.get("why", ""),
            )
    if pair_rules:
        table = _pairs_table(pairs, [r for _, r in pair_rules])
        groups = [(i, r, _pairs_expectations(gx, r)) for i, r in pair_rules]
        outcome = _validate(
            gx, context, "pairs", table, [e for _, _, group in groups for e in group]
        )
        start = 0
        for index, rule, group in groups:
            results[index] = _pairs_result(rule, outcome[start : start + len(group)], len(table))
            start += len(group)
    return results


def import_great_expectations():
    # No usage statistics (this runs offline and in CI) and no progress bars on CI logs.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def _validate(gx, context, name: str, table, expectations) -> list:
    """Run the expectations on ``table``; one result per expectation, in order.

    GX keeps one copy of identical expectations (two rules can build the same one, e.g. a
    drift bound equal to the rule's own bound), so each distinct one runs once and its result
    is shared.
    """
    source = context.data_sources.add_pandas(f"{name}_source")
    batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{name}_rules"))
    distinct: dict[str, Any] = {}
    for expectation in expectations:
        distinct.setdefault(_identity(expectation), expectation)
    for expectation in distinct.values():
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_check", data=batch, suite=suite)
    )
    result_format = {"result_format": "SUMMARY"}
    if "pair_id" in table.columns and name == "pairs":
        result_format["unexpected_index_column_names"] = [
            "pair_id"
        ]  # failing rows named by pair id
    outcome = definition.run(batch_parameters={"dataframe": table}, result_format=result_format)
    by_id = {r.expectation_config.id: r for r in outcome.results}
    return [by_id[distinct[_identity(e)].id] for e in expectations]


def _identity(expectation) -> str:
    config = expectation.configuration
    return f"{config.type}|{sorted((k, repr(v)) for k, v in config.kwargs.items())}"


def _metric_expectation(gx, rule: Rule):
    return gx.expectations.ExpectColumnValuesToBeBetween(
        column=rule.params["metric"],
        min_value=rule.params.get("min"),
        max_value=rule.params.get("max"),
    )


def _pairs_table(pairs, rules: list[Rule]):
    """The pairs plus the numeric columns some checks need (GX checks built-in expectations)."""
    import pandas as pd

    table = pd.DataFrame(index=pd.RangeIndex(len(pairs)))
    table["pair_id"] = pairs["pair_id"].to_numpy() if "pair_id" in pairs else pairs.index.to_numpy()
    for rule in rules:
        for column in _rule_columns(rule):
            series = pairs[column].reset_index(drop=True)
            table[column] = series.astype(object).where(series.notna(), None)
            if rule.params["check"] == "not_empty":
                stripped = series.astype("str").str.strip().str.len()
                table[f"{column}__stripped_chars"] = stripped.where(series.notna(), 0).astype(
                    "int64"
                )
            if rule.params["check"] == "length":
                table[f"{column}__chars"] = series.astype("str").str.len().fillna(0).astype("int64")
    return table


def _pairs_expectations(gx, rule: Rule) -> list:
    """The GX expectations of one pairs check (several when it covers several columns)."""
    p, mostly = rule.params, rule.params["mostly"]
    check = p["check"]
    if check == "unique_pair_ids":
        return [gx.expectations.ExpectColumnValuesToBeUnique(column="pair_id", mostly=mostly)]
    if check == "allowed_values":
        return [
            gx.expectations.ExpectColumnValuesToBeInSet(
                column=p["column"], value_set=p["values"], mostly=mostly
            )
        ]
    if check == "length":
        chars = f"{p['column']}__chars"
        return [
            gx.expectations.ExpectColumnValuesToBeBetween(
                column=chars,
                min_value=p.get("min_chars"),
                max_value=p.get("max_chars"),
                mostly=mostly,
            )
        ]
    return [
        gx.expectations.ExpectColumnValuesToNotBeNull(column=c, mostly=mostly)
        if check == "not_null"
        else gx.expectations.ExpectColumnValuesToBeBetween(
            column=f"{c}__stripped_chars", min_value=1, mostly=mostly
        )
        for c in p["columns"]
    ]


def _example(row: Any) -> str:
    return str(row.get("pair_id", row) if isinstance(row, dict) else row)[:40]


def _pairs_result(rule: Rule, parts: list, rows: int) -> RuleResult:
    bad = sum(int(r.result.get("unexpected_count") or 0) for r in parts)
    examples = [
        _example(v) for r in parts for v in (r.result.get("partial_unexpected_index_list") or [])
    ][:3]
    success = all(r.success for r in parts)
    detail = f"{bad} of {rows} rows fail" + (
        f", e.g. pair {', '.join(examples)}" if bad and examples else ""
    )
    bound = f"mostly {rule.params['mostly']:g}" if rule.params["mostly"] < 1 else "all rows"
    return RuleResult(rule, "passed" if success else "failed", bad, bound, detail)


def baseline_metrics(path: str | Path) -> dict[str, Any]:
    """The metrics of an earlier ``audit.json`` (the load figures included), for the drift gate."""
    import orjson

    from prefaudit.io import LoadReport

    try:
        data = orjson.loads(Path(path).read_bytes())
        load = LoadReport.from_dict(data["load"])
        metrics = {
            k: v for entry in data["validators"].values() for k, v in entry["metrics"].items()
        }
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as err:
        raise RuleFileError(f"{path}: not a readable audit.json ({err})") from err
    return metric_values(load, metrics)


def junit_xml(results: list[RuleResult], name: str = "prefaudit.check") -> bytes:
    """One test case per rule: error-level failures are failures, warn-level ones are reported
    in system-out, skipped rules are skipped."""
    import xml.etree.ElementTree as ET

    failures = sum(r.fails_check for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    for result in results:
        case = ET.SubElement(
            suite, "testcase", classname=f"{name}.{result.rule.kind}", name=result.rule.name
        )
        message = f"value {result.value!r}, expected {result.bound} {result.detail}".strip()
        if result.fails_check:
            ET.SubElement(case, "failure", message=message, type="rule").text = message
        elif result.status == "failed":
            ET.SubElement(case, "system-out").text = f"warning: {message}"
        elif result.status == "skipped":
            ET.SubElement(case, "skipped", message=result.detail)
    root = ET.Element(
        "testsuites", tests=str(len(results)), failures=str(failures), skipped=str(skipped)
    )
    root.append(suite)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def github_annotations(results: list[RuleResult], rules_path: str) -> list[str]:
    """``::error`` / ``::warning`` workflow commands for the failed rules."""
    lines = []
    for result in results:
        if result.status != "failed":
            continue
        level = "error" if result.rule.severity == "error" else "warning"
        text = f"{result.rule.name}: value {result.value!r}, expected {result.bound} {result.detail}".strip()
        lines.append(
            f"::{level} file={rules_path},line={result.rule.line},title=prefaudit rule::{text}"
        )
    return lines
