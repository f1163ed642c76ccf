"""Errors that mean "bad input or settings" (the CLI prints them without a traceback, exit 2)."""

from __future__ import annotations


class SettingError(ValueError):
    """A setting (an API keyword, a CLI option) whose value cannot be used.

    ``setting`` names it as the Python API does (``max_chars``, ``mapping``); the CLI adds the
    flag it is given with.
    """

    def __init__(self, message: str, *, setting: str | None = None):
        super().__init__(message)
        self.setting = setting
