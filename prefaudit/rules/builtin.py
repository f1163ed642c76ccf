"""The rule sets shipped in the package, usable by name wherever a rule file is read
(``--rules default``, ``--policy strict``), printed by ``prefaudit rules show NAME`` and copied to
edit by ``prefaudit rules init``. Their files: prefaudit/rules/files/NAME.yaml."""

from __future__ import annotations

from pathlib import Path

from prefaudit import __version__
from prefaudit.errors import InputError, SettingError

BUILT_IN = ("default", "strict")


class BuiltInError(InputError):
    """A rule-set name that is no built-in one and no file."""


def rule_file(spec: str | Path) -> Path:
    """The file a ``--rules`` or ``--policy`` value names: a built-in rule set by its name, else
    the path. A name wins over a file of the same name in the working folder (write
    ``./default`` for that); a bare word that is neither is an error listing the names.

    >>> rule_file("strict").name, rule_file("my/rules.yaml").as_posix()
    ('strict.yaml', 'my/rules.yaml')
    """
    if str(spec) in BUILT_IN:
        return Path(__file__).with_name("files") / f"{spec}.yaml"
    path = Path(spec)
    if not path.suffix and str(path) == path.name and not path.exists():
        raise BuiltInError(
            f"{spec}: no such rule file, and no built-in rule set of that name "
            f"(built-in: {', '.join(BUILT_IN)})"
        )
    return path


def built_in_text(name: str) -> str:
    """The text of a built-in rule set (``prefaudit rules show NAME``)."""
    if name not in BUILT_IN:
        raise BuiltInError(
            f"{name}: no built-in rule set of that name (built-in: {', '.join(BUILT_IN)})"
        )
    return rule_file(name).read_text(encoding="utf-8")


def init_copy(
    out: str | Path = "rules.yaml", *, base: str = "default", force: bool = False
) -> Path:
    """Write a copy of the built-in rule set ``base`` to ``out`` to edit (its comments explain
    every line); an existing ``out`` is kept unless ``force``. Returns ``out``."""
    out = Path(out)
    text = built_in_text(base)
    if out.exists() and not force:
        raise SettingError(f"out {out}: exists; choose another file or pass --force", setting="out")
    # The built-in file's first two lines say how to run it by name; the copy runs by its path.
    body = text.split("\n", 2)[2]
    header = (
        f"# Rules copied from prefaudit's built-in `{base}` set (prefaudit {__version__}); edit them.\n"
        f"# Run with: prefaudit check DATA --rules {out}   (clean: prefaudit clean DATA --policy {out})\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + body, encoding="utf-8")
    return out
