"""pip users get everything: the wheel, installed into a fresh virtual environment outside the
repository, runs the tour's audit, check and clean from an empty folder, rule sets by name."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.test_readme import HH_FILE, tour_commands

ROOT = Path(__file__).resolve().parents[1]
# The commands run as a user's shell would: no PYTHONPATH leading back to the repository.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
# What the wheel is built from (copied, so that the build leaves no build/ or *.egg-info here).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "prefaudit")


def copy_sources(folder: Path) -> Path:
    """The files pyproject.toml packages, copied to ``folder`` (a build there leaves nothing in
    the working tree)."""
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder


def build_wheel(folder: Path) -> Path:
    source = copy_sources(folder / "source")
    pip = [sys.executable, "-m", "pip"]
    build = [
        *pip,
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(folder),
        str(source),
    ]
    subprocess.run(build, check=True, capture_output=True)
    (wheel,) = folder.glob("prefaudit-*.whl")
    return wheel


def bare_environment(folder: Path) -> Path:
    """A virtual environment without prefaudit, with this test environment's site-packages
    appended to its path for the dependencies (and pip). Appended by a .pth line, so the test
    environment's own .pth files (its editable prefaudit) are not run: what is installed into
    the new environment is the only prefaudit there. Returns its bin/ folder."""
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return folder / "bin"


def fresh_environment(folder: Path, wheel: Path) -> Path:
    """:func:`bare_environment` with the wheel installed (--no-deps); its bin/ folder."""
    bin_folder = bare_environment(folder)
    install = [sys.executable, "-m", "pip", "--python", str(bin_folder / "python"), "install"]
    subprocess.run([*install, "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    return bin_folder


def test_the_wheel_carries_the_rule_sets_and_report_templates(tmp_path):
    names = zipfile.ZipFile(build_wheel(tmp_path)).namelist()
    for name in ("default", "strict"):
        assert f"prefaudit/rules/files/{name}.yaml" in names
    assert "prefaudit/report/templates/report.js" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


@pytest.mark.slow
@pytest.mark.models
def test_the_tour_runs_from_the_installed_wheel_in_an_empty_folder(tmp_path):
    if not HH_FILE.exists():
        pytest.skip(f"real data not found at {HH_FILE}")
    pytest.importorskip("torch")
    bin_folder = fresh_environment(tmp_path / "env", build_wheel(tmp_path / "dist"))
    work = tmp_path / "work"  # the user's empty folder: no rules/, no repository
    work.mkdir()
    where = subprocess.run(
        [bin_folder / "python", "-c", "import prefaudit; print(prefaudit.__file__)"],
        cwd=work,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert Path(where).is_relative_to(tmp_path / "env"), where
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as source:
        short = [line for line in source if len(line) < 700]
    (work / "my_pairs.jsonl").write_text("".join(short[:60]), encoding="utf-8")

    commands = [c for c in tour_commands() if c.split()[1] in ("audit", "check", "clean")]
    assert len(commands) == 3
    for command in commands:
        argv = [str(bin_folder / "prefaudit"), *command.split()[1:]]
        done = subprocess.run(argv, cwd=work, env=ENV, capture_output=True, text=True)
        assert done.returncode in (0, 1), f"{command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
    out = work / "reports" / "my_pairs"
    for name in ("audit.json", "index.html", "junit.xml", "cleaned.jsonl", "manifest.json"):
        assert (out / name).is_file(), name
    rules = subprocess.run(
        [bin_folder / "prefaudit", "rules", "init"],
        cwd=work,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert rules.returncode == 0, rules.stderr
    assert "clean:" in (work / "rules.yaml").read_text()
