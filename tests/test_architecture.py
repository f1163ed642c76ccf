"""The shape of the code: layers without cycles, small functions, one pipeline, and a new
validator added by one module (CONTRIBUTING's example, run here)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "prefaudit"
LONGEST = 60  # lines; a longer function needs a `# long: <reason>` comment above its def


def test_the_layers_in_pyproject_hold():
    """import-linter's contract (pyproject.toml): no module imports a layer above it, even
    inside a function (those imports run at run time too)."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_import_cycle_between_modules():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("prefaudit", exclude_type_checking_imports=True)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles = _strongly_connected(edges)
    assert cycles == [], cycles


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = stack[stack.index(node) :]
                    del stack[stack.index(node) :]
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in stack:
                low[node] = min(low[node], index[child])
    return groups


def test_a_cycle_is_found_when_there_is_one():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _strongly_connected(edges) == [["a", "b", "c"]]


def test_no_function_is_longer_than_60_lines_without_a_reason():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text("utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            size = node.end_lineno - node.lineno + 1
            if size > LONGEST and "# long:" not in lines[first - 2]:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({size} lines)")
    assert long == []


def test_the_cli_is_thin():
    modules = sorted((PACKAGE / "cli").glob("*.py"))
    assert [m.name for m in modules] == ["__init__.py", "commands.py", "parser.py"]
    for module in modules:
        cli = module.read_text("utf-8")
        assert len(cli.splitlines()) < 450, module.name
        # The CLI calls the pipeline; it never runs the steps itself.
        for step in ("run_audit", "save_audit", "write_cleaned", "train_cleaned", "evaluate("):
            assert step not in cli, (module.name, step)


def test_cleaning_names_no_validator_or_column():
    from prefaudit.cleaning import WEIGHTS
    from prefaudit.validators import VALIDATORS
    from prefaudit.validators.base import CLEANING_KINDS

    text = "\n".join(p.read_text("utf-8") for p in (PACKAGE / "cleaning").rglob("*.py"))
    code = re.sub(r'"""[\s\S]*?"""|#.*', "", text)  # docstrings and comments may explain
    for name, cls in VALIDATORS.items():
        assert f'"{name}/' not in code, name  # a flags column, validator/column
        for action in cls.cleaning:
            if action.column not in (*CLEANING_KINDS, *WEIGHTS):  # the policy's own words
                assert f'"{action.column}"' not in code, action.column


def _contributing_example() -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text("utf-8")
    section = text.split("## Adding a validator", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def example_validator():
    """CONTRIBUTING's example, registered for one test."""
    from prefaudit.validators import VALIDATORS

    code = _contributing_example()
    assert len(code.splitlines()) <= 35  # the promise: a validator in about 30 lines
    exec(compile(code, "CONTRIBUTING.md", "exec"), {})
    try:
        yield VALIDATORS["score_gap"]
    finally:
        VALIDATORS.pop("score_gap", None)


def test_contributings_example_validator_runs_through_audit_check_and_clean(
    tmp_path, example_validator
):
    import prefaudit

    pairs = pd.DataFrame(
        {
            "prompt": ["Add 2 and 2.", "Name a colour.", "Say hi."],
            "chosen": ["5", "Blue.", "Hi!"],
            "rejected": ["4", "Seven.", "Go away."],
            "score_chosen": [1.0, 8.0, 9.0],
            "score_rejected": [9.0, 2.0, 1.0],
        }
    )
    result = prefaudit.audit(pairs, validators=["content", "score_gap"])
    assert result.metrics["score_gap/contradicted"] == 1
    assert result.flags["score_gap/issue"].tolist() == [True, False, False]

    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nmetrics:\n  score_gap/contradicted: {max: 0}\n")
    (rule,) = prefaudit.check(result, rules).results
    assert rule.status == "failed" and rule.value == 1

    cleaned = prefaudit.clean(pairs, {"flip_min_noise": 0.9}, audit=result)
    assert cleaned.counts["flip"] == 1
    assert (
        cleaned.flips[0]["by"] == "score_gap" and "ratings prefer it" in cleaned.flips[0]["reason"]
    )
    first = cleaned.pairs.iloc[0]
    assert (first["chosen"], first["rejected"]) == ("4", "5")
