"""The README is followed literally: its tour runs as written, its input-format examples load
as it says, and its command reference names every option the CLI has."""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prefaudit.cli import build_parser
from prefaudit.io import load
from tests.helpers import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")
HH_FILE = SHARED_DATA / "hh-rlhf-harmless-test.jsonl.gz"


def section(title: str) -> str:
    """The README's text from the `## title` heading to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def tour_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", section("Five-minute tour"), flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_tour_has_the_five_steps():
    commands = [c.split()[1] for c in tour_commands()]
    assert commands == ["audit", "check", "clean", "train"]  # + reading the report, in a browser


@pytest.mark.slow
@pytest.mark.models
def test_the_tour_runs_as_written_in_a_fresh_folder(tmp_path):
    """A new user's folder: the clone's rules/ and .venv (this interpreter's environment), and
    their own JSONL file: here 60 short real HH-RLHF pairs as they come."""
    if not HH_FILE.exists():
        pytest.skip(f"real data not found at {HH_FILE}")
    pytest.importorskip("torch")
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as source:
        short = [line for line in source if len(line) < 700]
    (tmp_path / "my_pairs.jsonl").write_text("".join(short[:60]), encoding="utf-8")

    for command in tour_commands():
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=900
        )
        allowed = (0, 1) if " check " in command else (0,)  # check: 1 = an error rule failed
        assert done.returncode in allowed, f"{command}\n{done.stdout}\n{done.stderr}"

    out = tmp_path / "reports" / "my_pairs"
    loaded = json.loads((out / "audit.json").read_text())["load"]
    assert (loaded["rows_read"], loaded["rows_accepted"], loaded["pairs"]) == (60, 60, 60)
    for name in ("index.html", "junit.xml", "check.json", "cleaned.jsonl", "quarantine.jsonl"):
        assert (out / name).exists(), name
    summary = json.loads((out / "train" / "summary.json").read_text())
    assert summary["steps"] == 4 and (out / "train" / "model" / "config.json").exists()
    cleaned = (out / "cleaned.jsonl").read_text().count("\n")
    quarantined = (out / "quarantine.jsonl").read_text().count("\n")
    assert cleaned + quarantined == 60


def format_examples() -> list[tuple[str, dict, str]]:
    """(format, record, what it becomes) from the Input formats table."""
    rows = re.findall(
        r"^\| `(\w+)` \| `(\{.*?\})`(.*?)\| (.*?) \|$", section("Input formats"), re.M
    )
    return [(fmt, json.loads(record), becomes) for fmt, record, _, becomes in rows]


def test_every_input_format_example_loads_as_the_table_says(tmp_path):
    examples = format_examples()
    assert [fmt for fmt, _, _ in examples] == [
        "flat",
        "conversational",
        "hh",
        "side_by_side",
        "annotations",
    ]
    for fmt, record, becomes in examples:
        path = tmp_path / f"{fmt}.jsonl"
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        for forced in (fmt, None):  # forced, and detected from the record
            data = load(str(path), format=forced)
            assert data.report.rows_rejected == 0 and data.report.shape == fmt, (fmt, forced)
            (pair,) = data.pairs.to_dict("records")
            assert pair["chosen"] in ("Paris.", "Hello!"), (fmt, pair)
            assert pair["rejected"] in ("Lyon.", "Go away."), (fmt, pair)
        if "prompt_messages" in becomes:
            assert pair["prompt_messages"][-1]["content"] == "Hi"


def cli_options() -> dict[str, set[str]]:
    """Every option string (long form) of every command."""
    options = {}
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, parser in action.choices.items():
                options[name] = {
                    flag
                    for a in parser._actions
                    for flag in a.option_strings
                    if flag.startswith("--") and flag != "--help"
                }
    return options


def test_the_command_reference_names_every_command_and_option():
    reference = section("Commands")
    for command, options in cli_options().items():
        assert f"`prefaudit {command}" in reference, command
        for option in options:
            assert re.search(rf"(?<![\w-]){option}(?![\w-])", reference), (command, option)
