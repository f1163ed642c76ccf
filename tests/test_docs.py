"""docs/options.md is generated from the parser and TrainConfig: it must be up to date, and
name every command and option."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("options_doc", ROOT / "tools" / "options_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_options_md_is_up_to_date():
    text = (ROOT / "docs" / "options.md").read_text("utf-8")
    assert text == _generator().render(), "run: python tools/options_doc.py"


def test_options_md_names_every_command_option_and_training_setting():
    from dataclasses import fields

    from prefaudit.cli import build_parser
    from prefaudit.training.config import TrainConfig

    text = (ROOT / "docs" / "options.md").read_text("utf-8")
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    steps = [
        (f"{name} {step}", parser)
        for name, sub in commands.choices.items()
        for action in sub._actions
        if isinstance(action, argparse._SubParsersAction)
        for step, parser in action.choices.items()
    ]
    for name, sub in [*commands.choices.items(), *steps]:
        assert f"`prefaudit {name}`" in text, name
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert re.search(rf"(?<![\w-]){option}(?![\w-])", text), (name, option)
    for item in fields(TrainConfig):
        assert f"| `{item.name}` |" in text, item.name
