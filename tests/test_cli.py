import json
import subprocess
import sys

import orjson
import pandas as pd
import pytest

from prefaudit.cli import main
from prefaudit.rules.builtin import rule_file
from tests.helpers import pair, write_lines


@pytest.fixture
def data_file(tmp_path):
    return write_lines(
        tmp_path / "pairs.jsonl",
        [pair(), pair("Q2", "Same.", "same."), "{broken", {"prompt": "Q4", "chosen": "A"}],
    )


def test_audit_writes_results_and_prints_a_summary(tmp_path, data_file, capsys):
    out = tmp_path / "out"
    assert main(["audit", str(data_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 rows read, 2 accepted, 2 rejected -> 2 pairs" in printed
    assert "content    1 of 2 pairs flagged" in printed
    audit = orjson.loads((out / "audit.json").read_bytes())
    assert (
        audit["load"]["rows_read"] == 4
        and audit["load"]["rejected_rows"] == 2
        and audit["load"]["pairs"] == 2
    )
    assert audit["validators"]["content"]["metrics"]["content/identical_pairs"] == 1
    flags = pd.read_parquet(out / "flags.parquet")
    assert flags["content/identical"].tolist() == [False, True]
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [(3, None), (4, "rejected")]
    assert rejected[0]["record"] == "{broken"  # the raw line is kept: nothing is lost
    assert rejected[1]["record"] == {"prompt": "Q4", "chosen": "A"}


def test_default_output_folder_is_named_after_the_data(tmp_path, data_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["audit", str(data_file)]) == 0
    assert (tmp_path / "reports" / "pairs" / "audit.json").exists()


def test_on_bad_row_fail_exits_2_listing_the_rows(tmp_path, data_file, capsys):
    assert (
        main(["audit", str(data_file), "--on-bad-row", "fail", "--out", str(tmp_path / "o")]) == 2
    )
    error = capsys.readouterr().err
    assert "2 row(s) could not be loaded" in error and "line 3: malformed JSON" in error
    assert not (tmp_path / "o" / "audit.json").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--map", "prompt"], "expected KEY=VALUE"),
        (["--map", "prompt=nope"], "has no column 'nope'"),
        (["--validators", "nope"], "unknown validator 'nope'"),
        (["--param", "content.nope=1"], "its parameters are"),
        (["--param", "nodot=1"], "expected VALIDATOR.KEY=VALUE"),
        (["--param", "other.x=1"], "unknown validator 'other'"),
        (
            ["--validators", "content", "--param", "duplication.near_threshold=0.5"],
            "validators that do not run: duplication",
        ),
        (["--validators", "agreement"], "needs annotations"),
        (["--validators", "content", "--against", "README.md"], "needs the duplication validator"),
        (["--against", "missing-eval.txt"], "missing-eval.txt"),
    ],
)
def test_usage_errors_exit_2_with_a_message(tmp_path, data_file, capsys, args, message):
    assert main(["audit", str(data_file), "--out", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_argparse_usage_errors_exit_2():
    with pytest.raises(SystemExit) as caught:
        main(["audit", "x.jsonl", "--on-bad-row", "maybe"])
    assert caught.value.code == 2


def test_param_values_are_parsed(tmp_path, data_file):
    out = tmp_path / "o"
    assert (
        main(
            ["audit", str(data_file), "--out", str(out), "--param", "content.max_response_chars=3"]
        )
        == 0
    )
    audit = orjson.loads((out / "audit.json").read_bytes())
    assert audit["validators"]["content"]["params"]["max_response_chars"] == 3


def test_validators_lists_descriptions(capsys):
    assert main(["validators"]) == 0
    assert "\ncontent\n  Looks at the response texts" in capsys.readouterr().out


def test_validators_lists_every_parameter_with_its_default_and_help(capsys, monkeypatch):
    """Every keyword of every registered validator's __init__ (what --param and rule files
    set) is listed in its validator's block as `name = default`, the default written so that
    --param reads it back unchanged; the help is the comment that stores it."""
    import inspect

    import yaml

    from prefaudit.validators import VALIDATORS

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["validators"]) == 0
    printed = capsys.readouterr().out
    assert max(len(line) for line in printed.splitlines()) <= 80
    blocks = dict(block.split("\n", 1) for block in printed.split("\n\n")[1:])
    assert list(blocks) == list(VALIDATORS)
    for name, cls in VALIDATORS.items():
        shown = {}
        for line in blocks[name].splitlines():
            if line.startswith("    ") and not line.startswith("     ") and " = " in line:
                key, _, rest = line.strip().partition(" = ")
                shown[key] = yaml.safe_load(rest.split("  ", 1)[0])
        expected = {
            p.name: p.default
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind is p.KEYWORD_ONLY
        }
        assert shown == expected, name
    assert (
        "    max_response_chars = 20000  Far beyond any chat answer; usually pasted\n"
        "        documents or generation loops.\n"
    ) in blocks["content"]
    assert "    clusters = null  k for k-means; None = the k with the best" in blocks["coverage"]


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from prefaudit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'pandas', 'numpy', 'numba', 'great_expectations') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_a_file_whose_rows_are_all_rejected_exits_2_with_the_commonest_reason(tmp_path, capsys):
    rows = ["{bad", pair("q", "a" * 50, "b"), pair("q2", "b", "c" * 60), {"prompt": "z"}]
    data = write_lines(tmp_path / "bad.jsonl", rows)
    assert main(["audit", str(data), "--out", str(tmp_path / "o"), "--max-chars", "20"]) == 2
    error = capsys.readouterr().err
    assert "no pair loaded (4 rows read, 4 rejected); commonest reason (2 rows)" in error
    assert "line 2, field 'chosen': has 50 characters" in error  # its first row
    # Each other kind of rejection, with its count and first row.
    assert f"\n  also (1 row), e.g. {data}, line 1: malformed JSON" in error
    assert f"\n  also (1 row), e.g. {data}, line 4, field 'chosen': missing" in error
    assert not (tmp_path / "o").exists()  # nothing half-written


@pytest.mark.parametrize(
    "command", [["audit"], ["check", "--rules", "default"], ["clean", "--policy", "default"]]
)
def test_an_empty_file_or_one_whose_rows_all_fail_is_exit_2_for_every_command(
    tmp_path, capsys, command
):
    """An audit of no pairs would pass every rule: exit 2, never '0 of 0 pairs' and exit 0."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    drawn = [{"role": "assistant", "content": [{"type": "image"}]}]  # responses with no text
    chat = write_lines(
        tmp_path / "chat.jsonl", [{"prompt": "Draw", "chosen": drawn, "rejected": drawn}]
    )
    for data, said in (
        (empty, "no pair loaded (0 rows read, 0 rejected)"),
        (chat, "line 1, field 'chosen': has no text, only content parts that are not text"),
    ):
        out = tmp_path / f"o-{data.stem}"
        assert main([*command, str(data), "--out", str(out)]) == 2
        assert said in capsys.readouterr().err
        assert not out.exists()


@pytest.mark.parametrize(
    "error,code",
    [
        (ValueError("a bug that happens to be a ValueError"), 3),
        (OSError("a library's OSError without an errno: ours to translate"), 3),
        (OSError(28, "No space left on device", "/full/disk"), 2),
    ],
)
def test_every_input_error_exits_2_and_a_bug_of_any_type_exits_3(
    tmp_path, capsys, monkeypatch, error, code
):
    import prefaudit.api

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(prefaudit.api, "run_audit", broken)
    data = write_lines(tmp_path / "pairs.jsonl", [pair()])
    assert main(["audit", str(data), "--out", str(tmp_path / "o")]) == code
    err = capsys.readouterr().err
    assert ("internal error" in err) == (code == 3)
    assert code == 3 or "No space left on device: '/full/disk'" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--param", "content.max_response_chars=["], "not a YAML value"),
        (["--param", "content.max_response_chars=abc"], "max_response_chars must be a number"),
        (["--max-chars", "0"], "max_chars must be a whole number >= 1"),
        (["--max-chars", "-3"], "(option --max-chars)"),
        (["--ref-sample", "-5"], "reference_sample must be >= 0"),
        (["--policy", str(rule_file("default"))], "is a file; a model is"),
        (["--ref-model", "./no/such/model"], "no model folder"),
        (["--embedding-model", "./no/such/model"], "no model folder"),
    ],
)
def test_bad_settings_exit_2_before_the_data_is_read(tmp_path, capsys, args, message):
    missing = tmp_path / "not-read-yet.jsonl"  # a settings error comes first
    assert main(["audit", str(missing), "--out", str(tmp_path / "o"), *args]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_an_internal_error_exits_3_not_1(tmp_path, capsys, monkeypatch):
    import prefaudit.api

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(prefaudit.api, "run_audit", broken)
    data = write_lines(tmp_path / "pairs.jsonl", [pair()])
    assert main(["audit", str(data), "--out", str(tmp_path / "o")]) == 3
    assert "internal error" in capsys.readouterr().err


def test_against_reports_leaked_prompts(tmp_path, data_file, capsys):
    reference = tmp_path / "eval.txt"
    reference.write_text("what is 2+2?\nSomething else entirely.\n")
    out = tmp_path / "o"
    args = ["audit", str(data_file), "--out", str(out), "--against", str(reference)]
    assert main([*args, "--embedding-model", "off"]) == 0
    audit = orjson.loads((out / "audit.json").read_bytes())
    metrics = audit["validators"]["duplication"]["metrics"]
    assert metrics["duplication/leakage_pairs"] == 1
    assert audit["validators"]["duplication"]["params"]["against"] == str(reference)
    printed = capsys.readouterr().out
    assert "duplication/leakage_rate" in printed
    assert "semantic duplicates skipped (embeddings are turned off)" in printed
    flags = pd.read_parquet(out / "flags.parquet")
    assert flags["duplication/leaked"].tolist() == [True, False]


def test_coverage_reference(tmp_path, data_file, capsys):
    reference = tmp_path / "use_cases.txt"
    reference.write_text("What is 2+2?\nHow do I renew a passport?\n")
    out = tmp_path / "o"
    args = ["audit", str(data_file), "--out", str(out), "--coverage-reference", str(reference)]
    assert main([*args, "--validators", "coverage"]) == 0
    audit = orjson.loads((out / "audit.json").read_bytes())
    coverage = audit["validators"]["coverage"]
    assert coverage["metrics"]["coverage/reference_prompts"] == 2
    assert coverage["metrics"]["coverage/representation"] == "tfidf"  # embeddings are off in tests
    assert main([*args, "--validators", "content"]) == 2
    assert "needs the coverage validator" in capsys.readouterr().err


def _tiny_model_and_pairs(tmp_path):
    """Two pairs in a JSONL file and a tiny Llama saved as a local model folder; the audit
    arguments for them (content only, out in tmp_path / "o")."""
    pytest.importorskip("torch")
    from tests.helpers import save_tiny_model

    rows = [pair("what is two plus two", "it is four", "it is five"), pair("say hi", "hi", "bye")]
    data = write_lines(tmp_path / "pairs.jsonl", rows)
    words = " ".join(" ".join(r.values()) for r in rows).split()
    model = save_tiny_model(tmp_path / "tiny-model", words)
    out = tmp_path / "o"
    return model, out, ["audit", str(data), "--out", str(out), "--validators", "content"]


def test_ref_model_from_a_local_folder_writes_reference_logps(tmp_path, capsys):
    model, out, args = _tiny_model_and_pairs(tmp_path)
    assert main([*args, "--ref-model", str(model), "--max-length", "8"]) == 0
    audit = orjson.loads((out / "audit.json").read_bytes())
    metrics = audit["validators"]["reference"]["metrics"]
    assert metrics["reference/scored_pairs"] == 1  # the first pair is 9 tokens: reported, not cut
    assert metrics["reference/truncated_pairs"] == 1
    logps = pd.read_parquet(out / "reference_logps.parquet")
    from prefaudit.models.loading import model_identity
    from prefaudit.models.logps_file import REFERENCE_COLUMNS

    assert tuple(logps.columns) == REFERENCE_COLUMNS  # what the trainer reads
    assert len(logps) == 1 and logps["ref_chosen_logps"].iat[0] < 0
    # What the trainer compares: the folder, a signature of its files, the dtype.
    assert logps.attrs["reference_model"] == model_identity(str(model), "float32")
    assert logps.attrs["reference_model"].startswith(f"{model}@")
    assert "reference/truncated_pairs" in capsys.readouterr().out


def test_policy_rewards_against_the_reference(tmp_path):
    reference, out, args = _tiny_model_and_pairs(tmp_path)
    # The reference as its own policy: every implicit reward is exactly zero.
    assert main([*args, "--ref-model", str(reference), "--policy", str(reference)]) == 0
    metrics = orjson.loads((out / "audit.json").read_bytes())["validators"]["reference"]["metrics"]
    assert metrics["reference/rewards/margins"] == 0.0
    assert metrics["reference/rewards/accuracies"] == 0.0  # a zero margin is not a win
    flags = pd.read_parquet(out / "flags.parquet")
    assert (flags["reference/reward_margin"].dropna() == 0).all()
    assert flags["reference/reward_margin"].notna().sum() == 2


def test_clean_writes_cleaned_quarantine_and_manifest(tmp_path, data_file, capsys):
    out = tmp_path / "o"
    args = ["clean", str(data_file), "--policy", "default", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 pairs: 1 cleaned (0 flipped), 1 quarantined" in printed
    cleaned = [orjson.loads(line) for line in (out / "cleaned.jsonl").read_bytes().splitlines()]
    held = [orjson.loads(line) for line in (out / "quarantine.jsonl").read_bytes().splitlines()]
    assert [r["prompt"] for r in cleaned] == ["What is 2+2?"]
    assert held[0]["chosen"] == "Same." and held[0]["issues"] == ["content/identical"]
    assert "content" in held[0]["reasons"]
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    counts = {"drop: content/identical": 1, "input": 2, "cleaned": 1, "quarantined": 1}
    assert manifest["counts"] == counts
    assert manifest["policy"]["flip_min_noise"] == 0.95


def test_clean_reuses_a_given_audit_only_of_the_same_data(tmp_path, data_file, capsys):
    audit = tmp_path / "audit"
    assert main(["audit", str(data_file), "--out", str(audit)]) == 0
    args = ["clean", str(data_file), "--policy", "default", "--audit", str(audit)]
    assert main([*args, "--out", str(tmp_path / "o")]) == 0
    # The other folder holds the audit its cleaned files come from, and their report.
    assert (tmp_path / "o" / "audit.json").read_bytes() == (audit / "audit.json").read_bytes()
    assert (tmp_path / "o" / "index.html").exists()
    other = write_lines(tmp_path / "other.jsonl", [pair("Q9", "yes", "no")])
    assert main(["clean", str(other), *args[2:], "--out", str(tmp_path / "p")]) == 2
    assert "that audit is of other data" in capsys.readouterr().err
    bare = tmp_path / "bare.yaml"
    bare.write_text("version: 1\n")
    assert main(["clean", str(data_file), "--policy", str(bare), "--out", str(tmp_path / "q")]) == 2
    assert "no clean: section" in capsys.readouterr().err


def test_every_option_is_an_api_keyword_with_the_same_name_and_default():
    """The CLI is a thin layer: each option of each command is a keyword of the API function
    of the same name (or of audit() / TrainConfig, which check, clean and clean_then_train
    take as **options), with the same default."""
    import argparse
    import inspect
    from dataclasses import fields

    from prefaudit import api
    from prefaudit.cli import build_parser
    from prefaudit.rules import builtin
    from prefaudit.training import TrainConfig
    from prefaudit.validators import available_validators

    functions = {
        "audit": api.audit,
        "check": api.check,
        "clean": api.clean,
        "train": api.train,
        "clean-then-train": api.clean_then_train,
        "report": api.write_report,
        "demo": api.demo,
        "validators": available_validators,
        "rules show": builtin.built_in_text,
        "rules init": builtin.init_copy,
        "review export": api.review_export,
        "review import": api.review_import,
    }
    takes_audit_options = ("check", "clean", "clean-then-train")
    takes_train_settings = ("train", "clean-then-train")
    train_defaults = {f.name: f.default for f in fields(TrainConfig)}

    def commands(parser, prefix=""):  # "rules show" for a command's own actions
        (group,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for name, sub in group.choices.items():
            if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                yield from commands(sub, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", sub

    leaves = dict(commands(build_parser()))
    assert set(leaves) == set(functions)
    checked = 0
    for name, parser in leaves.items():
        params = inspect.signature(functions[name]).parameters
        for action in parser._actions:
            if action.dest == "help":
                continue
            if action.dest in params:
                default = params[action.dest].default
            elif name in takes_audit_options and action.dest in api.AUDIT_OPTIONS:
                default = api.AUDIT_OPTIONS[action.dest]
            elif name in takes_train_settings and action.dest in train_defaults:
                default = train_defaults[action.dest]
            else:
                raise AssertionError(f"prefaudit {name} {action.option_strings}: no API keyword")
            checked += 1
            if action.required or not action.option_strings or action.default is argparse.SUPPRESS:
                continue  # given every time, or passed on only when given
            assert action.default == default, (name, action.dest, action.default, default)
    assert checked > 90


@pytest.mark.parametrize("command", ["audit", "train"])
def test_a_model_name_that_is_no_folder_fails_at_once_when_the_hub_is_offline(
    tmp_path, capsys, monkeypatch, command
):
    """It used to spend about 50 s in download retries, then name no folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    flag = "--ref-model" if command == "audit" else "--model"
    data = write_lines(tmp_path / "pairs.jsonl", [pair()])
    assert main([command, str(data), flag, "no_such_model", "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "no model folder no_such_model here, and the Hugging Face hub is offline" in error
    assert f"(option {flag})" in error and not (tmp_path / "o").exists()


# Runs prefaudit's command line with the models extra made impossible to import.
WITHOUT_MODELS = """
import sys
from prefaudit.cli import main
from prefaudit.errors import MODELS_EXTRA

class Uninstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in MODELS_EXTRA:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Uninstalled())
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "command",
    [
        ["train", "{pairs}", "--out", "{out}", "--max-steps", "1"],
        ["demo", "--out", "{out}"],
        ["audit", "{pairs}", "--out", "{out}", "--ref-model", "smollm2"],
    ],
)
def test_without_the_models_extra_commands_that_need_it_say_what_to_install(tmp_path, command):
    """They printed a traceback and "internal error (a bug)", exit 3."""
    pairs = write_lines(
        tmp_path / "p.jsonl", [pair(f"Q{i}?", f"A{i}.", f"B{i}.") for i in range(8)]
    )
    argv = [a.format(pairs=pairs, out=tmp_path / "out") for a in command]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_MODELS, *argv], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().endswith("from the models extra: pip install 'prefaudit[models]'"), (
        done.stderr[-2000:]
    )
    assert "Traceback" not in done.stderr


def test_the_parsers_review_tools_are_the_review_packages():
    """The parser names them itself (it imports nothing heavy at start-up)."""
    from prefaudit.cli.parser import TOOLS
    from prefaudit.review import TOOLS as REVIEW_TOOLS

    assert TOOLS == REVIEW_TOOLS
