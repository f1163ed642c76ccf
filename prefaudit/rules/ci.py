"""Rule results for CI: a JUnit XML file and GitHub Actions annotations."""

from __future__ import annotations

from prefaudit.rules.evaluate import RuleResult


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
