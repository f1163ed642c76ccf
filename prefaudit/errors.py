"""Errors that mean "bad input or settings": the CLI prints them without a traceback, exit 2.

Every other exception is a bug (exit 3, with its traceback). A library function that rejects
what the user gave raises an :class:`InputError`; the subclasses that also derive from
``KeyError`` or ``TypeError`` keep the exception type a Python caller would expect.
"""

from __future__ import annotations


class InputError(ValueError):
    """Input or settings that cannot be used; the message says what and where."""

    def __str__(self) -> str:  # a KeyError base would quote the message
        return str(self.args[0]) if self.args else ""


class SettingError(InputError):
    """A setting (an API keyword, a CLI option) whose value cannot be used.

    ``setting`` names it as the Python API does (``max_chars``, ``mapping``); the CLI adds the
    flag it is given with.
    """

    def __init__(self, message: str, *, setting: str | None = None):
        super().__init__(message)
        self.setting = setting


class UnknownNameError(SettingError, KeyError):
    """A name (a validator, a setting) that is not one of those known."""


class BadParameterError(SettingError, TypeError):
    """A keyword a function or validator does not take."""


# The import names of pyproject's `models` extra: without them `train`, `demo` and
# `--ref-model` cannot run, which is an install to make, not a bug to report.
MODELS_EXTRA = ("torch", "transformers", "sentence_transformers", "gguf", "accelerate", "peft")


def missing_extra(err: BaseException) -> str | None:
    """The package of the models extra whose absence raised ``err`` (None: another error)."""
    if isinstance(err, ModuleNotFoundError) and err.name:
        package = err.name.split(".")[0]
        return package if package in MODELS_EXTRA else None
    return None
