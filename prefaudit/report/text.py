"""Text from the data as the report shows it: literally, never as markup or layout commands."""

from __future__ import annotations

import difflib
import re

# Unicode bidirectional controls reorder how text around them is displayed (the "Trojan
# Source" trick): the report shows each as a visible marker instead of obeying it.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def visible(text: str) -> str:
    """``text`` with bidi controls replaced by markers such as ``⟦U+202E⟧``.

    >>> visible("abc\\u202edef")
    'abc⟦U+202E⟧def'
    """
    return _BIDI.sub(lambda m: f"⟦U+{ord(m.group()):04X}⟧", text)


def word_diff(first: str, second: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Each text as (kind, piece) segments, kind "same" or "diff", word by word.

    >>> word_diff("a big cat", "a small cat")[1]
    [('same', 'a '), ('diff', 'small'), ('same', ' cat')]
    """
    a, b = _TOKENS.findall(visible(first)), _TOKENS.findall(visible(second))
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    left: list[tuple[str, str]] = []
    right: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        kind = "same" if op == "equal" else "diff"
        _append(left, kind, "".join(a[i1:i2]))
        _append(right, kind, "".join(b[j1:j2]))
    return left, right


def _append(segments: list[tuple[str, str]], kind: str, piece: str) -> None:
    if not piece:
        return
    if segments and segments[-1][0] == kind:
        segments[-1] = (kind, segments[-1][1] + piece)
    else:
        segments.append((kind, piece))
