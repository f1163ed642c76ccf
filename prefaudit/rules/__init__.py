"""Rule files: audit figures and the pairs table -> pass/fail, checked with great-expectations.

:mod:`~prefaudit.rules.parse` reads and checks a rule file (errors name the file and line);
:mod:`~prefaudit.rules.evaluate` checks the rules against an audit (great-expectations is imported
only there, when rules are evaluated); :mod:`~prefaudit.rules.ci` writes the results for CI
(JUnit XML, GitHub annotations). A rule file's ``clean:`` section is the cleaning policy:
:func:`prefaudit.cleaning.policy.load_policy` reads it.
"""

from prefaudit.rules.ci import github_annotations, junit_xml
from prefaudit.rules.evaluate import (
    RuleResult,
    baseline_metrics,
    evaluate,
    import_great_expectations,
    metric_values,
)
from prefaudit.rules.parse import (
    LOAD_METRICS,
    PAIR_CHECKS,
    SEVERITIES,
    Rule,
    RuleFileError,
    RuleSet,
    load_rules,
)

__all__ = [
    "LOAD_METRICS",
    "PAIR_CHECKS",
    "SEVERITIES",
    "Rule",
    "RuleFileError",
    "RuleResult",
    "RuleSet",
    "baseline_metrics",
    "evaluate",
    "github_annotations",
    "import_great_expectations",
    "junit_xml",
    "load_rules",
    "metric_values",
]
