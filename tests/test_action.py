"""action.yml, the composite GitHub Action: its keys against the action metadata schema, and its
shell steps run here as a runner would run them (the `uses:` steps, setup-python and
upload-artifact, are GitHub's own: their inputs are checked, not run)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.helpers import pair, write_lines
from tests.test_wheel import ENV, bare_environment, copy_sources

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def test_action_yml_has_the_keys_the_action_schema_requires():
    # https://json.schemastore.org/github-action.json: name, description and runs are required;
    # each input has a description; a composite action's outputs each have a value; each step
    # either runs a shell script (and then names its shell) or uses an action.
    assert {"name", "description", "runs"} <= set(ACTION)
    assert set(ACTION) <= {"name", "author", "description", "inputs", "outputs", "runs", "branding"}
    for name, spec in ACTION["inputs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name) and spec.get("description"), name
        assert set(spec) <= {"description", "required", "default", "deprecationMessage"}, name
    assert ACTION["inputs"]["data"]["required"] is True
    for name, spec in ACTION["outputs"].items():
        assert spec.get("description") and spec.get("value"), name
    runs = ACTION["runs"]
    assert runs["using"] == "composite" and runs["steps"]
    for step in runs["steps"]:
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step["shell"] == "bash", step
            # Inputs reach the scripts through env:, never spliced into the script text.
            assert not EXPRESSION.search(step["run"]), step["run"]
        else:
            assert re.fullmatch(r"actions/[a-z-]+@v\d+", step["uses"]), step["uses"]
    uploads = [s for s in runs["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"  # the report also when rules failed
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "uses: YOUR-ORG/prefaudit@v1" in readme  # the README's Actions example uses it


def _value(expression: str, inputs: dict[str, str], outputs: dict[str, dict[str, str]]) -> str:
    """The few expressions action.yml uses; any other fails the test (extend it with care)."""
    if match := re.fullmatch(r"inputs\.([a-z0-9-]+)", expression):
        return inputs[match[1]]
    if match := re.fullmatch(r"steps\.([a-z0-9-]+)\.outputs\.([a-z0-9-]+)", expression):
        return outputs.get(match[1], {}).get(match[2], "")
    raise AssertionError(f"an expression this test cannot evaluate: {expression}")


def _condition(text: str | None, inputs, outputs) -> bool:
    if text in (None, "always()"):
        return True
    match = re.fullmatch(r"(steps\.[\w.-]+) != '(\w*)'", text)
    assert match, f"a condition this test cannot evaluate: {text}"
    return _value(match[1], inputs, outputs) != match[2]


@dataclass
class Run:
    code: int = 0  # the exit code of the failing step, 0 when every step passed
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # by step id
    logs: dict[str, str] = field(default_factory=dict)  # stdout + stderr, by step id
    uploaded: list[str] = field(default_factory=list)  # upload-artifact's paths


def run_action(given: dict[str, str], workspace: Path, action_path: Path, bin_folder: Path) -> Run:
    """Run the action's shell steps as a runner does: bash -eo pipefail, env from `env:`,
    GITHUB_OUTPUT read back, the first failing step ends the job."""
    inputs = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    inputs.update(given)
    run = Run()
    base = ENV | {
        "PATH": f"{bin_folder}{os.pathsep}{ENV['PATH']}",
        "GITHUB_ACTION_PATH": str(action_path),
        "GITHUB_ACTIONS": "true",
        # Here only: build from the action's folder with this environment's setuptools, and
        # take every dependency from it (no network). pip reads this switch inverted: "0" turns
        # build isolation off.
        "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_NO_INDEX": "1",
    }
    for number, step in enumerate(ACTION["runs"]["steps"]):
        if not _condition(step.get("if"), inputs, run.outputs):
            continue
        if "uses" in step:
            if step["uses"].startswith("actions/upload-artifact"):
                path = EXPRESSION.sub(lambda m: _value(m[1], inputs, {}), step["with"]["path"])
                run.uploaded += path.split()
            continue
        output_file = workspace / f".output-{number}"
        output_file.write_text("")
        env = {
            key: EXPRESSION.sub(lambda m: _value(m[1], inputs, run.outputs), str(value))
            for key, value in step.get("env", {}).items()
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=workspace,
            env={**base, **env, "GITHUB_OUTPUT": str(output_file)},
            capture_output=True,
            text=True,
        )
        name = step.get("id", str(number))
        lines = output_file.read_text().splitlines()
        run.outputs[name] = dict(line.split("=", 1) for line in lines)
        run.logs[name] = done.stdout + done.stderr
        if done.returncode:
            run.code = done.returncode
            return run
    return run


@pytest.mark.slow
def test_the_action_installs_prefaudit_checks_and_fails_the_job_on_failed_rules(tmp_path):
    action_path = copy_sources(tmp_path / "action")  # the action's checkout
    bin_folder = bare_environment(tmp_path / "env")  # the runner's Python, without prefaudit
    workspace = tmp_path / "workspace"
    (workspace / "data").mkdir(parents=True)
    rows = [
        pair(f"Question {i} about {w}?", f"Answer {i}.", f"No {i}.")
        for i, w in enumerate("abcdefgh")
    ]
    write_lines(workspace / "data" / "pairs.jsonl", rows)
    given = {"data": "data/pairs.jsonl", "args": "--embedding-model off --validators content"}

    run = run_action(given, workspace, action_path, bin_folder)
    assert run.code == 0, run.logs
    assert run.outputs["check"] == {
        "exit-code": "0",
        "passed": "true",
        "report": "reports/prefaudit/index.html",
    }
    where = subprocess.run(
        [bin_folder / "python", "-c", "import prefaudit; print(prefaudit.__file__)"],
        capture_output=True,
        text=True,
        cwd=workspace,
        env=ENV,
    ).stdout
    assert Path(where).is_relative_to(tmp_path / "env"), where  # installed by the action
    for path in run.uploaded[:2]:  # the report and the JUnit file
        assert (workspace / path).is_file(), path

    # A failing error rule: the report is still uploaded, then the job fails with exit 1.
    write_lines(workspace / "data" / "pairs.jsonl", [*rows, pair("Same?", "Yes.", "Yes.")])
    (workspace / "rules.yaml").write_text(
        "version: 1\nmetrics:\n  content/identical_pairs: {max: 0, severity: error}\n"
    )
    given |= {"rules": "rules.yaml", "out": "out/strict"}
    run = run_action(given, workspace, action_path, bin_folder)
    assert run.code == 1 and "exited 1 (1: an error rule failed" in run.logs[str(4)], run.logs
    assert run.outputs["check"]["passed"] == "false"
    assert "::error file=rules.yaml,line=3" in run.logs["check"]  # GitHub's annotation
    assert (
        workspace / "out/strict/junit.xml"
    ).is_file() and "out/strict/index.html" in run.uploaded
