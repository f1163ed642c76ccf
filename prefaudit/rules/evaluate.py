"""Rules against an audit and its pairs -> pass/fail, checked with great-expectations.

Metric rules (and the drift rules derived from them against a baseline audit) become one GX
suite over a one-row metrics table; pairs checks one suite over the pairs table. great-expectations
is imported only when there is something to check.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefaudit.rules.parse import Rule, RuleFileError, RuleSet


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
            f"{ruleset.path}: a baseline needs a drift section (drift: {{tolerance: ...}})"
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
    except KeyError as err:
        raise RuleFileError(f"{path}: not an audit.json (it has no {err} entry)") from err
    except (OSError, orjson.JSONDecodeError, TypeError, AttributeError) as err:
        raise RuleFileError(f"{path}: not a readable audit.json ({err})") from err
    return metric_values(load, metrics)


def import_great_expectations():
    # No usage statistics (this runs offline and in CI) and no progress bars on CI logs.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


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
