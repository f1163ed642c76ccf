"""The commands: each calls the function of the same name in :mod:`prefaudit.api`, prints what it
returns (:mod:`prefaudit.console`) and gives the exit code; and the parsing of KEY=VALUE options.
Nothing heavy is imported at start-up."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RULES_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# Parsed options that are not keywords of the API function.
_NOT_OPTIONS = ("command", "action", "handler", "parser")


class UsageError(Exception):
    """Bad options: printed without a traceback, exit code 2."""


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


def cmd_review_export(args: argparse.Namespace) -> int:
    from prefaudit import api, console

    given = options(args)
    done = api.review_export(given.pop("folder"), **given)
    console.print_review_export(done)
    return EXIT_OK


def cmd_review_import(args: argparse.Namespace) -> int:
    from prefaudit import api, console

    given = options(args)
    done = api.review_import(given.pop("file"), **given)
    console.print_review_import(done)
    return EXIT_OK


def cmd_validators(args: argparse.Namespace) -> int:
    from prefaudit import console

    console.print_validators()
    return EXIT_OK


def cmd_rules_show(args: argparse.Namespace) -> int:
    from prefaudit.rules.builtin import BUILT_IN, built_in_text

    if args.name is None:
        for name in BUILT_IN:  # the first line of each says what it is for
            about = built_in_text(name).split("\n", 1)[0].split(". ", 1)[1]
            print(f"{name:10} {about}")
        return EXIT_OK
    print(built_in_text(args.name), end="")
    return EXIT_OK


def cmd_rules_init(args: argparse.Namespace) -> int:
    from prefaudit.rules.builtin import init_copy

    out = init_copy(**options(args))
    print(f"wrote {out}: the built-in `{args.base}` rules, to edit; run with")
    print(f"  prefaudit check DATA --rules {out}")
    return EXIT_OK


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options as the API's keywords (KEY=VALUE lists become dicts)."""
    given = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS}
    if "mapping" in given:
        given["mapping"] = parse_pairs(given["mapping"] or [], "--map")
    if "params" in given:
        given["params"] = parse_params(given["params"] or [])
    return given


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
