import json
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest

from prefaudit.auditing import run_audit
from prefaudit.cli import main
from prefaudit.io import load
from prefaudit.rules import RuleFileError, evaluate, junit_xml, load_rules
from tests.helpers import pair, write_lines

ROOT = Path(__file__).resolve().parents[1]


def _rules(tmp_path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def _data(tmp_path, rows=None):
    rows = rows or [
        pair(f"Q{i}", f"A good answer {i}.", "Meh.", id=f"p{i}", source="web") for i in range(6)
    ]
    return write_lines(tmp_path / "pairs.jsonl", rows)


def _evaluate(tmp_path, rules_text, rows=None, baseline=None):
    data = load(str(_data(tmp_path, rows)))
    return {
        r.rule.name: r
        for r in evaluate(
            load_rules(_rules(tmp_path, rules_text)), run_audit(data), data.pairs, baseline
        )
    }


# --- each rule type passes on clean data and fails on a planted defect -----------------------


def test_metric_rule(tmp_path):
    text = "version: 1\nmetrics:\n  content/identical_pairs: {max: 0}\n  content/chosen_longer_rate: {min: 0.9, severity: warn}\n"
    clean = _evaluate(tmp_path, text)
    assert clean["content/identical_pairs <= 0"].status == "passed"
    assert clean["content/chosen_longer_rate >= 0.9"].status == "passed"
    # One degenerate pair, and one where chosen is the shorter response.
    planted = _evaluate(
        tmp_path, text, [pair("Q", "Same.", "same."), pair("Q2", "No.", "A longer one.")]
    )
    assert planted["content/identical_pairs <= 0"].status == "failed"
    assert planted["content/identical_pairs <= 0"].value == 1
    assert planted["content/chosen_longer_rate >= 0.9"].status == "failed"


@pytest.mark.parametrize(
    "check,planted_rows,bad",
    [
        (
            "{check: unique_pair_ids}",
            [pair(id="x"), pair("Q2")],
            0,
        ),  # ids are made unique by the loader
        ("{check: not_empty, columns: [chosen]}", [pair(), pair("Q2", chosen="  ")], 1),
        (
            "{check: length, column: rejected, max_chars: 5}",
            [pair(rejected="Short"), pair("Q2", rejected="Too long here")],
            1,
        ),
        (
            "{check: allowed_values, column: source, values: [web]}",
            [pair(source="web"), pair("Q2", source="forum")],
            1,
        ),
    ],
)
def test_pairs_rules(tmp_path, check, planted_rows, bad):
    text = f"version: 1\npairs:\n  - {check}\n"
    clean = list(_evaluate(tmp_path, text).values())[0]
    assert clean.status == "passed" and clean.value == 0
    planted = list(_evaluate(tmp_path, text, planted_rows).values())[0]
    assert planted.value == bad
    assert planted.status == ("failed" if bad else "passed")


def test_duplicate_pair_ids_are_caught_on_the_table(tmp_path):
    from prefaudit.rules.evaluate import _run_expectations

    data = load(str(_data(tmp_path)))
    pairs = data.pairs.copy()
    pairs["pair_id"] = ["p0", "p0", "p1", "p2", "p3", "p4"]
    rule = load_rules(_rules(tmp_path, "version: 1\npairs:\n  - {check: unique_pair_ids}\n")).rules[
        0
    ]
    (result,) = _run_expectations([(0, rule)], {}, pairs).values()
    assert (result.status, result.value) == ("failed", 2)
    assert "e.g. pair p0" in result.detail


def test_rules_on_missing_metrics_or_columns_are_skipped(tmp_path):
    text = "version: 1\nmetrics:\n  agreement/krippendorff_alpha: {min: 0.5}\npairs:\n  - {check: allowed_values, column: split, values: [train]}\n"
    results = list(_evaluate(tmp_path, text).values())
    assert [r.status for r in results] == ["skipped", "skipped"]
    assert results[0].detail == "the validator did not run"


# --- rule file errors name the line ------------------------------------------------------------


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "version: 1\nmetrics:\n  content/nope: {max: 1}\n",
            "line 3: unknown metric 'content/nope'",
        ),
        (
            "version: 1\nmetrics:\n  content/identical_pairs: {maximum: 1}\n",
            "line 3: metric content/identical_pairs: unknown key 'maximum'",
        ),
        (
            "version: 1\nmetrics:\n  content/identical_pairs: {max: lots}\n",
            "line 3: max must be a finite number, got 'lots'",
        ),
        (
            "version: 1\nmetrics:\n  content/identical_pairs: {max: 1, severity: fatal}\n",
            "line 3: severity must be error or warn",
        ),
        ("version: 1\npairs:\n  - {check: unique}\n", "line 3: unknown pairs check 'unique'"),
        (
            "version: 1\npairs:\n  - {check: length, column: chosen}\n",
            "line 3: pairs check length needs min_chars",
        ),
        ("version: 1\nextra: true\n", "line 2: unknown section 'extra'"),
        ("version: 2\n", "line 1: unsupported version 2"),
        ("version: 1\nmetrics: [\n", "not valid YAML"),
        ("", "the rule file is empty"),
    ],
)
def test_malformed_rule_files(tmp_path, text, message):
    with pytest.raises(RuleFileError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_rules(_rules(tmp_path, text))


def test_shipped_rule_files_load():
    for name in ("default", "strict"):
        ruleset = load_rules(name)
        assert ruleset.rules and ruleset.drift_tolerance is not None


# --- the drift gate -----------------------------------------------------------------------------


def test_baseline_gate_trips_on_a_regression_not_on_noise(tmp_path):
    text = (
        "version: 1\nmetrics:\n  content/chosen_longer_rate: {max: 0.9}\ndrift: {tolerance: 0.05}\n"
    )
    # Current data: chosen longer in every pair (rate 1.0)... against two baselines.
    within = _evaluate(tmp_path, text, baseline={"content/chosen_longer_rate": 0.97})
    drift = [r for name, r in within.items() if name.startswith("drift")]
    assert [r.status for r in drift] == ["passed"]
    regressed = _evaluate(tmp_path, text, baseline={"content/chosen_longer_rate": 0.5})
    drift = [r for name, r in regressed.items() if name.startswith("drift")]
    assert [r.status for r in drift] == ["failed"]
    assert drift[0].bound == "<= 0.55"


def test_baseline_without_a_drift_section_is_an_error(tmp_path):
    with pytest.raises(RuleFileError, match="needs a drift section"):
        _evaluate(
            tmp_path, "version: 1\nmetrics:\n  content/identical_pairs: {max: 0}\n", baseline={}
        )


# --- the CLI: exit codes, check.json, JUnit, annotations -----------------------------------------


def test_check_exit_codes_files_and_junit(tmp_path, capsys, monkeypatch):
    data = _data(tmp_path, [pair("Q", "Same.", "same."), pair("Q2", "A longer one.", "No.")])
    rules = _rules(
        tmp_path,
        "version: 1\nmetrics:\n  content/identical_pairs: {max: 0}\n  content/empty_responses: {max: 0, severity: warn}\n",
    )
    out, junit = tmp_path / "out", tmp_path / "junit.xml"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert (
        main(["check", str(data), "--rules", str(rules), "--out", str(out), "--junit", str(junit)])
        == 1
    )
    printed = capsys.readouterr().out
    assert "FAILED   error    content/identical_pairs <= 0" in printed
    assert (
        f"::error file={rules},line=3,title=prefaudit rule::content/identical_pairs <= 0" in printed
    )
    check = orjson.loads((out / "check.json").read_bytes())
    assert check["passed"] is False and [r["status"] for r in check["results"]] == [
        "failed",
        "passed",
    ]
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    assert [c.get("name") for c in suite.iter("testcase")] == [
        "content/identical_pairs <= 0",
        "content/empty_responses <= 0",
    ]
    # Clean data: exit 0, and the saved audit of the same input is reused the second time.
    clean = _data(tmp_path)
    assert main(["check", str(clean), "--rules", str(rules), "--out", str(out)]) == 0
    assert main(["check", str(clean), "--rules", str(rules), "--out", str(out)]) == 0
    assert "load + audit (reused)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rules", "MISSING"], "cannot read the rule file"),
        (["--rules", "BAD"], "line 3: unknown metric"),
        (["--rules", "GOOD", "--baseline", "MISSING"], "not a readable audit.json"),
    ],
)
def test_check_usage_errors_exit_2(tmp_path, capsys, args, message):
    good = _rules(tmp_path, "version: 1\nmetrics:\n  content/identical_pairs: {max: 0}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nmetrics:\n  nope/x: {max: 0}\n")
    names = {"GOOD": str(good), "BAD": str(bad), "MISSING": str(tmp_path / "missing")}
    argv = [
        "check",
        str(_data(tmp_path)),
        "--out",
        str(tmp_path / "o"),
        *[names.get(a, a) for a in args],
    ]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_check_with_a_baseline_audit(tmp_path):
    rules = _rules(
        tmp_path,
        "version: 1\nmetrics:\n  content/identical_rate: {max: 0.9}\ndrift: {tolerance: 0.1}\n",
    )
    clean = _data(tmp_path)
    assert main(["audit", str(clean), "--out", str(tmp_path / "old")]) == 0
    worse = write_lines(
        tmp_path / "worse.jsonl", [pair("Q", "Same.", "same."), pair("Q2", "Fine.", "Other.")]
    )
    argv = [
        "check",
        str(worse),
        "--rules",
        str(rules),
        "--out",
        str(tmp_path / "new"),
        "--baseline",
        str(tmp_path / "old" / "audit.json"),
    ]
    assert main(argv) == 1  # identical_rate went from 0 to 0.5: more than 0.1 worse
    results = json.loads((tmp_path / "new" / "check.json").read_text())["results"]
    assert [(r["rule"].split()[0], r["status"]) for r in results] == [
        ("content/identical_rate", "passed"),
        ("drift", "failed"),
    ]


def test_a_baseline_inside_out_is_refused_not_replaced(tmp_path, capsys):
    """Run into its own folder, the check would replace its baseline with this run's audit,
    and the next run's drift gate would compare with that, not with the fixed reference."""
    rules = _rules(
        tmp_path,
        "version: 1\nmetrics:\n  content/identical_rate: {max: 0.9}\ndrift: {tolerance: 0.1}\n",
    )
    out = tmp_path / "ci"
    assert main(["audit", str(_data(tmp_path)), "--out", str(out)]) == 0
    before = (out / "audit.json").read_bytes()
    worse = write_lines(
        tmp_path / "worse.jsonl", [pair("Q", "Same.", "same."), pair("R", "A", "B")]
    )
    argv = ["check", str(worse), "--rules", str(rules), "--out", str(out)]
    assert main([*argv, "--baseline", str(out / "audit.json")]) == 2
    assert "which is an input" in capsys.readouterr().err
    assert (out / "audit.json").read_bytes() == before


def test_junit_counts_match(tmp_path):
    results = list(
        _evaluate(
            tmp_path,
            "version: 1\nmetrics:\n  content/identical_pairs: {max: 0}\n  agreement/tie_rate: {max: 0}\n",
        ).values()
    )
    root = ET.fromstring(junit_xml(results))
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("2", "0", "1")


@pytest.mark.parametrize(
    "text,message",
    [
        # Block style: the line of the key, not of its value.
        ("version: 1\nmetrics:\n  content/nope:\n    max: 1\n", "line 3: unknown metric"),
        (
            "version: 1\nmetric:\n  content/identical_pairs: {max: 0}\n",
            "line 2: unknown section 'metric'",
        ),
        (
            "version: 1\nmetrics:\n  content/identical_rate: {max: 0.001, max: 0.9}\n",
            "'max' is given twice",
        ),
        (
            "version: 1\nmetrics:\n  content/identical_rate: {min: 0.5, max: 0.1}\n",
            "min 0.5 is above max 0.1",
        ),
        (
            "version: 1\nmetrics:\n  content/identical_rate: {max: .nan}\n",
            "must be a finite number",
        ),
        ("version: 1\nmetrics:\n  agreement/alpha_method: {min: 0}\n", "is a label, not a number"),
        (
            "version: 1\npairs:\n  - {check: length, column: chosen, max_chars: -5}\n",
            "max_chars must be a whole number >= 0",
        ),
        (
            "version: 1\npairs:\n  - {check: length, column: chosen, min_chars: 1.7}\n",
            "min_chars must be a whole number",
        ),
        ("version: true\n", "unsupported version True"),
        ("version: 1\ndrift: {tolerance: .nan}\n", "must be a finite number"),
    ],
)
def test_rule_files_that_must_be_refused(tmp_path, text, message):
    with pytest.raises(RuleFileError, match=message.replace("(", r"\(")):
        load_rules(_rules(tmp_path, text))


def test_block_style_rule_lines_point_at_the_metric(tmp_path):
    ruleset = load_rules(
        _rules(tmp_path, "version: 1\nmetrics:\n  content/identical_pairs:\n    max: 0\n")
    )
    assert ruleset.rules[0].line == 3


def test_rules_that_build_identical_expectations_both_get_results(tmp_path):
    text = "version: 1\nmetrics:\n  content/identical_pairs: {max: 0}\npairs:\n  - {check: unique_pair_ids}\n  - {check: unique_pair_ids}\ndrift: {tolerance: 0}\n"
    data = load(str(_data(tmp_path)))
    ruleset = load_rules(_rules(tmp_path, text))
    results = evaluate(ruleset, run_audit(data), data.pairs, {"content/identical_pairs": 0})
    # The drift bound equals the rule's own, and the pairs check is listed twice.
    assert [r.status for r in results] == ["passed"] * 4


def test_a_nan_metric_is_skipped_not_passed(tmp_path):
    data = load(str(_data(tmp_path)))
    audit = run_audit(data)
    object.__setattr__(
        audit.validators["content"],
        "metrics",
        {**audit.validators["content"].metrics, "content/length_score_spearman": float("nan")},
    )
    ruleset = load_rules(
        _rules(tmp_path, "version: 1\nmetrics:\n  content/length_score_spearman: {min: 0.5}\n")
    )
    (result,) = evaluate(ruleset, audit, data.pairs)
    assert result.status == "skipped"


def test_check_does_not_reuse_an_audit_made_with_other_settings(tmp_path, capsys):
    data = _data(tmp_path)
    rules = _rules(tmp_path, "version: 1\nmetrics:\n  content/extreme_length_pairs: {max: 0}\n")
    out = tmp_path / "out"
    # An earlier audit with a looser parameter would pass; the check's own settings must not.
    assert (
        main(["audit", str(data), "--out", str(out), "--param", "content.max_response_chars=5"])
        == 0
    )
    assert main(["check", str(data), "--rules", str(rules), "--out", str(out)]) == 0
    assert "(reused)" not in capsys.readouterr().out
    assert (
        main(
            ["audit", str(data), "--out", str(out), "--validators", "content", "--max-chars", "50"]
        )
        == 0
    )
    assert main(["check", str(data), "--rules", str(rules), "--out", str(out)]) == 0
    assert (
        "(reused)" not in capsys.readouterr().out
    )  # another --max-chars reads the input differently


# --- the clean: section: noted by load_rules, read by the cleaning policy ------------------------


def test_load_rules_notes_a_clean_section_without_reading_it(tmp_path):
    from prefaudit.cleaning.policy import load_policy

    assert load_rules(_rules(tmp_path, "version: 1\n")).has_clean is False
    path = _rules(tmp_path, "version: 1\nclean:\n  shuffle: true\n")
    assert load_rules(path).has_clean is True
    with pytest.raises(RuleFileError, match="line 3: clean: unknown key 'shuffle'"):
        load_policy(path)


def test_load_policy_checks_the_whole_file_in_order(tmp_path):
    from prefaudit.cleaning.policy import load_policy

    path = _rules(tmp_path, "version: 1\nmetrics:\n  content/nope: {max: 1}\nclean: {}\n")
    with pytest.raises(RuleFileError, match="line 3: unknown metric 'content/nope'"):
        load_policy(path)
    path = _rules(tmp_path, "version: 1\nmetrics:\n  content/identical_pairs: {max: 0}\n")
    with pytest.raises(RuleFileError, match="no clean: section \\(the cleaning policy\\)"):
        load_policy(path)


@pytest.mark.parametrize(
    "mapping,message",
    [
        ({"drop": ["nonsense"]}, "the policy: drop: unknown validator in 'nonsense'"),
        ({"drop": "content"}, "the policy: drop must be a list of checks"),
        ({"weights": "heavy"}, "the policy: weights must be one of"),
        ({"flip_min_noise": 0.3}, "the policy: flip_min_noise must be in (0.5, 1]"),
        ({"flip_min_noise": "high"}, "the policy: flip_min_noise must be a finite number"),
        ({"dedupe": "maybe"}, "the policy: dedupe must be true or false"),
        ({"shuffle": True}, "the policy: unknown key 'shuffle'"),
        (["drop"], "the policy must be a mapping"),
    ],
)
def test_policy_from_mapping_refuses_what_a_rule_file_would(mapping, message):
    from prefaudit.cleaning.policy import policy_from_mapping

    with pytest.raises(RuleFileError, match=message.replace("(", r"\(").replace("]", r"\]")):
        policy_from_mapping(mapping)


def test_policy_from_mapping_round_trips_a_policy():
    from prefaudit.cleaning.policy import CleaningPolicy, load_policy, policy_from_mapping

    default = load_policy("default")
    assert policy_from_mapping(default.to_dict()) == default
    assert policy_from_mapping(CleaningPolicy().to_dict()) == CleaningPolicy()
    assert policy_from_mapping({"drop": ("content",)}).drop == ("content",)


def test_importing_the_rules_loads_neither_great_expectations_nor_cleaning():
    import subprocess
    import sys

    code = (
        "import prefaudit.rules, sys; "
        "assert 'great_expectations' not in sys.modules; "
        "assert not [m for m in sys.modules if m.startswith('prefaudit.cleaning')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_built_in_rule_sets_by_name_show_and_init(tmp_path, capsys, monkeypatch):
    from prefaudit.cleaning.policy import load_policy

    monkeypatch.chdir(tmp_path)  # an empty folder: the names resolve inside the package
    assert load_rules("strict").path == "strict" and load_policy("default").dedupe
    assert main(["rules", "show"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "default    Sensible for most teams.",
        "strict     For release-grade preference data.",
    ]
    assert main(["rules", "show", "strict"]) == 0
    assert capsys.readouterr().out.startswith("# prefaudit rules: strict.")
    for argv in (["rules", "show", "strictt"], ["check", "x.jsonl", "--rules", "defualt"]):
        (tmp_path / "x.jsonl").write_text("")
        assert main(argv) == 2
        assert "no built-in rule set of that name (built-in: default, strict)" in (
            capsys.readouterr().err
        )

    assert main(["rules", "init", "--from", "strict"]) == 0
    copy = (tmp_path / "rules.yaml").read_text()
    assert copy.startswith("# Rules copied from prefaudit's built-in `strict` set")
    assert "--rules rules.yaml" in copy and "--rules strict" not in copy
    assert load_rules("rules.yaml").rules == load_rules("strict").rules
    assert main(["rules", "init"]) == 2  # kept: not written over
    assert "exists; choose another file or pass --force" in capsys.readouterr().err
    assert main(["rules", "init", "--force"]) == 0
    assert load_policy("rules.yaml") == load_policy("default")
    (tmp_path / "default").write_text("version: 1\n")  # a file named like a set: ./default
    assert load_rules("./default").rules == () and load_rules("default").rules
