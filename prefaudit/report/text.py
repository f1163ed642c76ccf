"""Text from the data as the report shows it: literally, never as markup or layout commands."""

from __future__ import annotations

import base64
import difflib
import gzip
import re
from typing import Any

import orjson
from markupsafe import Markup, escape

from prefaudit.text import word_cut

# Unicode bidirectional controls reorder how text around them is displayed (the "Trojan
# Source" trick): the report shows each as a visible marker instead of obeying it.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Zero-width characters make two texts that look the same differ (or hide a word break).
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_BIDI = re.compile(f"[{BIDI_CONTROLS}{ZERO_WIDTH}]")
# Characters of one text shown in place; the rest is one click away (a 1 MB response laid
# out in a table cell froze the page for seconds).
SHOWN_CHARS = 2_000
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def visible(text: str) -> str:
    """``text`` with bidi controls and zero-width characters replaced by markers such as
    ``⟦U+202E⟧``.

    >>> visible("abc\\u202edef\\u200b")
    'abc⟦U+202E⟧def⟦U+200B⟧'
    """
    return _BIDI.sub(lambda m: f"⟦U+{ord(m.group()):04X}⟧", text)


def shown(text: str, limit: int = SHOWN_CHARS) -> Markup:
    """``text`` as HTML, escaped and :func:`visible`, its first ``limit`` characters in place
    and the rest in a closed ``<details>`` (not laid out until opened).

    >>> str(shown("<b>" + "x" * 5, limit=4))
    '&lt;b&gt;x<details class="more"><summary>4 more characters</summary>xxxx</details>'
    """
    text = visible(str(text))
    if len(text) <= limit:
        return escape(text)
    head, rest = escape(text[:limit]), escape(text[limit:])
    summary = f"{len(text) - limit:,} more characters"
    return Markup('{}<details class="more"><summary>{}</summary>{}</details>').format(
        head, summary, rest
    )


class LongTexts:
    """The whole texts of the cells that show only their start: stored once each, sent
    compressed at the end of the page and unpacked by the page's script when a reader asks for
    one ("show more"), so a 1 MB response costs no layout until then. Past ``budget``
    characters in all, each further text keeps its first ``FLOOR`` and says where the rest is
    (the cleaning review alone may show 750 texts of up to a million characters each)."""

    FLOOR = 20_000

    def __init__(self, budget: int = 4_000_000) -> None:
        self.budget = budget
        self.codes: dict[str, int] = {}
        self.texts: list[str] = []
        self.size = 0

    def add(self, text: str) -> int:
        code = self.codes.get(text)
        if code is None:
            kept = text
            if self.size + len(text) > self.budget:
                keep = max(self.budget - self.size, self.FLOOR)
                if keep < len(text):
                    kept = (
                        f"{text[:keep]}\n[… {len(text) - keep:,} more characters not in this "
                        "report: the input file has the whole text]"
                    )
            code = self.codes[text] = len(self.texts)
            self.texts.append(kept)
            self.size += len(kept)
        return code

    def blob(self) -> str:
        return encode(self.texts)


def clamped(text: Any, store: LongTexts, limit: int = SHOWN_CHARS) -> Markup:
    """``text`` for a table cell: escaped and :func:`visible`, clamped to a few lines by the
    page's style, with a "show more" button (the page's script removes it where the text fits
    after all: only the laid-out page knows). Past ``limit`` characters only the start (cut at
    a word) is in the page and the whole text goes to ``store``.

    >>> store = LongTexts()
    >>> str(clamped("<b>", store))
    '<div class="clamp">&lt;b&gt;</div><button type="button" class="more">show more</button>'
    >>> str(clamped("word " * 10, store, limit=12))
    '<div class="clamp" data-rest="0">word word …</div><button type="button" class="more">show more (50 characters in all)</button>'
    """
    if text is None:
        return Markup("")
    text = visible(str(text))
    if len(text) > limit:
        code = store.add(text)
        return Markup(
            '<div class="clamp" data-rest="{}">{} …</div>'
            '<button type="button" class="more">show more ({:,} characters in all)</button>'
        ).format(code, word_cut(text, limit).rstrip(), len(text))
    return Markup(
        '<div class="clamp">{}</div><button type="button" class="more">show more</button>'
    ).format(text)


def encode(data: Any) -> str:
    """``data`` as base64 of gzip-compressed JSON (what the page's script decodes): base64
    has no ``<``, so nothing in the data can close the ``<script>`` block that carries it."""
    return base64.b64encode(gzip.compress(orjson.dumps(data), compresslevel=6, mtime=0)).decode()


def decode(blob: str) -> Any:
    """The inverse of :func:`encode` (for tests and tools that read a report back)."""
    return orjson.loads(gzip.decompress(base64.b64decode(blob)))


def word_diff(first: str, second: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Each text as (kind, piece) segments, kind "same" or "diff", word by word.

    >>> word_diff("a big cat", "a small cat")[1]
    [('same', 'a '), ('diff', 'small'), ('same', ' cat')]
    """
    # Only what is shown is compared: difflib on two 1 MB texts would take minutes.
    first, second = visible(first), visible(second)
    heads = word_cut(first, SHOWN_CHARS), word_cut(second, SHOWN_CHARS)  # no word cut in two
    a, b = _TOKENS.findall(heads[0]), _TOKENS.findall(heads[1])
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    left: list[tuple[str, str]] = []
    right: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        kind = "same" if op == "equal" else "diff"
        _append(left, kind, "".join(a[i1:i2]))
        _append(right, kind, "".join(b[j1:j2]))
    for segments, text, head in ((left, first, heads[0]), (right, second, heads[1])):
        if len(text) > len(head):
            segments.append(("same", f" … ({len(text) - len(head):,} more characters)"))
    return left, right


def _append(segments: list[tuple[str, str]], kind: str, piece: str) -> None:
    if not piece:
        return
    if segments and segments[-1][0] == kind:
        segments[-1] = (kind, segments[-1][1] + piece)
    else:
        segments.append((kind, piece))
