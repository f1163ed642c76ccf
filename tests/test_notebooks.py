"""The notebooks run from top to bottom, hold no logic of their own, and are committed clean.

Each is executed with nbclient in a fresh kernel, from notebooks/ (where a user opens it), with
its "parameters" cell followed by a cell of overrides, as papermill would: the output goes to a
temporary folder and, for training, a tiny model built in code stands in for SmolLM2 (the
real model's steps take minutes on a 2-core CPU; the doctest of ``prefaudit.train`` runs it).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_audit_walkthrough.ipynb", "02_clean_then_train.ipynb"]
# What a notebook may import: the package, and what displays its tables.
ALLOWED_IMPORTS = {"prefaudit", "pandas", "pathlib"}


def _code(name: str) -> list[str]:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def run_notebook(name: str, overrides: str) -> dict:
    """Execute a copy of the notebook with ``overrides`` after its parameters cell; returns the
    notebook with outputs."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    (index,) = [
        i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])
    ]
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(overrides))
    client = nbclient.NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return notebook


def _text(notebook) -> str:
    """Everything the notebook printed or displayed as text."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_committed_with_outputs_cleared(name):
    raw = json.loads((NOTEBOOKS / name).read_text("utf-8"))
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell["source"]


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_hold_no_logic_of_their_own(name):
    """No functions or classes, and imports only of the package and what shows its tables:
    whatever a notebook computes is a call of prefaudit's public functions."""
    for source in _code(name):
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda)), source
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module]
            else:
                continue
            assert all(m.split(".")[0] in ALLOWED_IMPORTS for m in modules), source


@pytest.mark.slow
def test_the_audit_walkthrough_runs_on_the_demo_data(tmp_path):
    out = tmp_path / "audit"
    notebook = run_notebook(
        NAMES[0], f'OUT = {str(out)!r}\nEMBEDDING_MODEL = "off"  # MiniLM is tested elsewhere'
    )
    text = _text(notebook)
    assert "403 rows read, 400 accepted, 3 rejected" in text
    assert "krippendorff_alpha" in text and "rater_a" in text
    for name in ("index.html", "audit.json", "cleaned.jsonl", "quarantine.jsonl", "manifest.json"):
        assert (out / name).exists(), name


@pytest.mark.slow
def test_clean_then_train_runs_with_a_tiny_model(tmp_path):
    pytest.importorskip("torch")
    from tests.helpers import task_model

    model = task_model(tmp_path / "tiny")
    out = tmp_path / "run"
    notebook = run_notebook(
        NAMES[1],
        f'OUT = {str(out)!r}\nMODEL = {str(model)!r}\nEMBEDDING_MODEL = "off"\n'
        'TRAIN = {"max_steps": 3, "batch_size": 4, "eval_fraction": 0.1, "eval_every": 1}',
    )
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["steps"] == 3 and comparison["raw"]["train_pairs"] > 0
    assert (out / "train" / "model" / "config.json").exists()
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 1  # the held-out loss chart
    assert "rewards/accuracies" in _text(notebook)
