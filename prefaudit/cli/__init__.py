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

from prefaudit.cli.commands import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_RULES_FAILED,
    EXIT_USAGE,
    UsageError,
)
from prefaudit.cli.parser import build_parser

__all__ = ["EXIT_INTERNAL", "EXIT_OK", "EXIT_RULES_FAILED", "EXIT_USAGE", "build_parser", "main"]


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


def _message(err: BaseException, parser: argparse.ArgumentParser) -> str:
    """The error's text, with the flag of the setting it names (``max_chars`` -> --max-chars)."""
    text = str(err)
    setting = getattr(err, "setting", None)
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    if setting in flags and flags[setting] not in text:
        first, *rest = text.split("\n", 1)  # after the message, before any list of rows
        text = "\n".join([f"{first} (option {flags[setting]})", *rest])
    return text


if __name__ == "__main__":
    sys.exit(main())
