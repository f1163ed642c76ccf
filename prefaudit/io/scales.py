"""Label scales: what the values of a label column mean, read from the whole column.

A label says which of two responses a rater preferred and, on a graded scale, how strongly.
The same number means different things on different scales: 2 is "B better" on AlpacaEval's
1..2, "A slightly better" on a 1..7 Likert scale and "B better" on HelpSteer3's -3..3. So a
column's scale is decided once from all of its values (or declared), never value by value:
read row by row, a -3..3 column loaded its 1s and 2s as "A" and "B" and rejected the rest.

The rule (:func:`read_column`), for the labels of a side-by-side column (A = the response
shown first):

- words: ``a``/``b``/``tie`` and their kin (``first``, ``model_a``, Chatbot Arena's ``tie
  (bothbad)``...), graded ones (``A>>B``, ``A>B``, ``A=B``, ``A much better``, ``A slightly
  better``): the grades the column uses, in order, are its scale;
- numbers: ``1..2`` (AlpacaEval: 1 = A, 2 = B, 1.5 a tie, values between = 1 + P(B better));
  ``0..1`` when some values lie strictly between 0 and 1 (0 = A: P(B better)); ``-k..k``
  when there are negative whole numbers (HelpSteer3: -3 = A much better, 0 a tie);
  ``1..n`` Likert for whole numbers up to n >= 3 (1 = A; a middle tie when n is odd). k and
  n are the largest seen, unless that value holds under 1 row in 100 and the one below it is
  unused (a typo: its rows are rejected);
- the scale that reads the most rows is used, on a tie the first of: words, 1..2, 0..1,
  -k..k, 1..n. So a column of only 1s and 2s is AlpacaEval's choice, never part of a longer
  Likert scale: declare that one (``label_scale="1..7"``); and a column of 0s and 1s is read
  on 1..2 with its 0s rejected (AlpacaEval's unparsed judgements), never silently as a
  winner's index: declare ``0..1`` for that. Rows the scale cannot read are rejected.

A separate annotations file names the pair's own responses: ``chosen``/``rejected``/``tie``,
numbers ``1..0`` (the probability that chosen is better), ``-k..k`` and ``1..n`` (the low end
favouring chosen).

A declared scale is written from the end that favours A (or chosen) to the other: ``-3..3``,
``1..7``, ``7..1`` (7 favours A), ``1..2``, ``0..1``, ``1..0``; or ``labels`` for words. Ends
one apart make a continuous scale (any value between is read); farther apart, whole points.

>>> reading = read_column([-3.0, 0.0, 2.0, 3.0, 1.0])
>>> reading.scale.spec, reading.scale.kind, reading.scale.level, reading.p_first.tolist()
('-3..3', 'graded', 'ordinal', [1.0, 0.5, 0.16666666666666666, 0.0, 0.3333333333333333])
>>> read_column([label_key(v) for v in ("A>>B", "A>B", "B>>A", "a=b")]).p_first.tolist()
[1.0, 0.75, 0.0, 0.5]
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from prefaudit.errors import SettingError

RESPONSES, PAIR = "responses", "pair"  # what a label's ends name: responses A/B, or chosen/rejected
KINDS = ("choice", "choice_tie", "graded", "likert", "labels", "probability")
LABELS_SPEC = "labels"
_BINNED = 20  # a continuous column with more distinct values has its counts binned
_OUTLIER = 100  # a scale's top value held by under 1 row in this many, past a gap, is a typo


class LabelError(ValueError):
    """A label that no scale can read (missing, null, a list...); ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LabelScale:
    """What a label column's values mean.

    ``values``: the scale's points from the end that favours A (or chosen) to the other; a
    continuous scale gives its two ends. ``tie``: the value that prefers neither (None: the
    scale has none, as an even Likert scale). ``level``: the level of measurement the scale
    supports (nominal for a choice, ordinal for graded and Likert scales, interval for
    probabilities). ``spec``: how ``label_scale`` declares it.
    """

    kind: str  # one of KINDS
    values: tuple[Any, ...]
    direction: str  # which end favours which response, in words
    tie: Any = None
    level: str = "nominal"
    spec: str = ""

    @property
    def graded(self) -> bool:
        """More than a choice: the labels say how strongly (graded, Likert, labelled grades)."""
        return self.kind in ("graded", "likert", "labels")

    @property
    def span(self) -> float:
        """The distance between the two ends, in the scale's own units (grades for words)."""
        if isinstance(self.values[0], str):  # k grades a side: from A's top to B's, 2k
            return float(len(self.values) - (self.tie is not None))
        return float(abs(self.values[-1] - self.values[0]))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["values"] = list(self.values)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelScale:
        return cls(**{**data, "values": tuple(data["values"])})


@dataclass(frozen=True)
class ColumnReading:
    """A label column read on one scale: per row P(A better), or NaN and why not."""

    scale: LabelScale
    p_first: np.ndarray  # per row: P(the response at the scale's A end is better); NaN: unread
    reasons: list[str | None]  # per row: why the scale cannot read it (None: read)
    how: str  # "declared", or the rule that identified the scale
    counts: dict[str, int]  # rows per value read (binned for a continuous column)
    outside: dict[str, int]  # rows per value the scale cannot read (the 10 commonest)

    def summary(self, file: str, column: str) -> dict[str, Any]:
        """The load report's entry for this column (``LoadReport.label_scales``)."""
        return {
            "file": file,
            "column": column,
            "scale": self.scale.to_dict(),
            "how": self.how,
            "counts": self.counts,
            "outside": self.outside,
            "rows_outside": int(np.isnan(self.p_first).sum()),
        }


def note(entry: dict[str, Any]) -> str:
    """One line of the load report for a ``summary`` entry."""
    scale = entry["scale"]
    counts = ", ".join(f"{value}: {n:,}" for value, n in entry["counts"].items())
    text = (
        f"label column {entry['column']!r} of {entry['file']}: scale {scale['spec']} "
        f"({scale['kind'].replace('_', ' with ')}, {scale['level']}), {entry['how']}; "
        f"{scale['direction']}; counts {counts or 'none'}"
    )
    if entry["rows_outside"]:
        text += f"; {entry['rows_outside']:,} row(s) not on the scale, rejected"
    return text


# -- one value ----------------------------------------------------------------------------------


def label_key(value: Any) -> float | str:
    """A label as the column reader takes it: a number (also when written as text), or a word
    in lower case. Raises :class:`LabelError` for what no scale reads."""
    if value is None:
        raise LabelError("is null (no preference recorded)")
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            raise LabelError("is empty (no preference recorded)")
        try:
            value = float(word)
        except ValueError:
            return word
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        from prefaudit.io.schema import describe_type

        raise LabelError(f"must be a label or a number, got {describe_type(value)}")
    if math.isnan(value):
        raise LabelError("is NaN (no preference recorded)")
    return float(value)


# Words: (side, grade). side: 1 favours A (chosen), -1 B (rejected), 0 a tie. grade: how
# strongly on one ladder (0.5 slightly, 1 better, 2 much better, n for n ">"); None: plain.
_SIDE_WORDS: dict[str, tuple[int, float | None]] = {
    **dict.fromkeys(("a", "first", "left", "response_a", "model_a", "output_1"), (1, None)),
    **dict.fromkeys(("b", "second", "right", "response_b", "model_b", "output_2"), (-1, None)),
    **dict.fromkeys(
        (
            "tie",
            "draw",
            "equal",
            "same",
            "tie (bothbad)",
            "both_bad",
            "both_good",
            "about the same",
        ),
        (0, None),
    ),
}
_SIDE_WORDS.update(
    {
        f"{letter}{verb} {phrase}": (side, grade)
        for side, letter in ((1, "a"), (-1, "b"))
        for grade, phrase in ((0.5, "slightly better"), (1, "better"), (2, "much better"))
        for verb in ("", " is")
    }
)
_PAIR_WORDS = {"chosen": (1, None), "rejected": (-1, None), "tie": (0, None)}
_SYMBOLS = re.compile(r"([ab])\s*(>+|<+|>=|<=|=)\s*([ab])")


def _word(word: str, frame: str) -> tuple[int, float | None] | None:
    """(side, grade) of a label word, or None when it is not one."""
    if frame == PAIR:
        return _PAIR_WORDS.get(word)
    if word in _SIDE_WORDS:
        return _SIDE_WORDS[word]
    match = _SYMBOLS.fullmatch(word)
    if match is None:
        return None
    left, sign, right = match.groups()
    if sign == "=":
        return (0, None) if left != right else None
    if left == right:
        return None
    side = 1 if (left == "a") == sign.startswith(">") else -1
    return side, 0.5 if sign in (">=", "<=") else float(len(sign))


# -- scales as readers ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Numeric:
    """A numeric scale from ``a`` (favours A) to ``b``; continuous, or whole points."""

    a: float
    b: float
    continuous: bool

    @property
    def tie(self) -> float | None:
        middle = (self.a + self.b) / 2
        return middle if self.continuous or middle.is_integer() else None

    @property
    def spec(self) -> str:
        return f"{_show(self.a)}..{_show(self.b)}"

    def read(self, key: float | str, frame: str) -> float | str:
        """P(A better), or why the scale cannot read ``key``."""
        if isinstance(key, str):
            word = _word(key, frame)
            if word is None or word[1] is not None:
                return _unknown(key, frame, f"a number on the scale {self.spec}")
            if word[0] == 0 and self.tie is None:
                return f"{key!r} is a tie, but the scale {self.spec} has no middle"
            return (1 + word[0]) / 2
        low, high = min(self.a, self.b), max(self.a, self.b)
        if not low <= key <= high or not (self.continuous or key.is_integer()):
            return f"{_show(key)} is not on this column's label scale {self.spec}"
        return (self.b - key) / (self.b - self.a) + 0.0  # never -0.0


@dataclass(frozen=True)
class _Words:
    """Label words, graded by the grades the column uses (ranked)."""

    ranks: tuple[tuple[float, int], ...]  # grade -> rank, 1 = the weakest used
    steps: int  # grades per side

    @classmethod
    def of(cls, words: list[str], frame: str) -> _Words:
        known = [_word(key, frame) for key in words]
        grades = sorted({word[1] for word in known if word and word[1]})
        # "slightly" says there is a stronger grade: it is never the top one.
        steps = max(1, len(grades) + (1 if grades and grades[-1] < 1 else 0))
        return cls(tuple((g, r) for r, g in enumerate(grades, 1)), steps)

    spec = LABELS_SPEC

    def read(self, key: float | str, frame: str) -> float | str:
        if not isinstance(key, str):
            return f"{_show(key)} is a number; this column's labels are words"
        word = _word(key, frame)
        if word is None:
            return _unknown(key, frame, "a label word")
        side, grade = word
        rank = self.steps if grade is None else dict(self.ranks)[grade]
        return 0.5 + side * rank / (2 * self.steps)


def _unknown(key: str, frame: str, expected: str) -> str:
    words = "chosen, rejected or tie" if frame == PAIR else "a, b or tie, A>>B .. B>>A"
    return f"unknown label {key!r}; expected {words}, or {expected}"


# -- a whole column -----------------------------------------------------------------------------


def parse_scale(spec: Any) -> _Numeric | _Words:
    """A declared scale (``label_scale``): LOW..HIGH from the end favouring A, or "labels"."""
    if isinstance(spec, LabelScale):
        spec = spec.spec
    text = str(spec).strip().lower()
    if text in (LABELS_SPEC, "words"):
        return _Words((), 1)  # its grades come from the column
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*\.\.\s*(-?\d+(?:\.\d+)?)", text)
    a, b = (float(match.group(1)), float(match.group(2))) if match else (0.0, 0.0)
    whole = a.is_integer() and b.is_integer()
    if match is None or a == b or (abs(a - b) != 1 and not whole):
        raise SettingError(
            f"label_scale {spec!r}: expected LOW..HIGH written from the end that favours "
            "response A (-3..3, 1..7, 7..1, 1..2, 0..1; ends one apart: continuous, farther: "
            "whole points) or 'labels'",
            setting="label_scale",
        )
    return _Numeric(a, b, continuous=abs(a - b) == 1)


def read_column(
    keys: list[float | str], *, frame: str = RESPONSES, declared: Any = None
) -> ColumnReading:
    """Read a label column (each value as :func:`label_key` gives it) on one scale: the
    declared one, or the one identified from all its values (see the module's rule)."""
    distinct: dict[float | str, int] = {}
    for key in keys:
        distinct[key] = distinct.get(key, 0) + 1
    words = [k for k in distinct if isinstance(k, str)]
    if declared is not None:
        reader = parse_scale(declared)
        if isinstance(reader, _Words):
            reader = _Words.of(words, frame)
        how = "declared"
    else:
        reader, how = _identify(distinct, words, frame)
    read = {key: reader.read(key, frame) for key in distinct}
    p = np.array([v if isinstance(v := read[k], float) else np.nan for k in keys], dtype=float)
    reasons = [None if isinstance(v := read[k], float) else v for k in keys]
    scale = _describe(reader, frame, {k: v for k, v in read.items() if isinstance(v, float)})
    return ColumnReading(scale, p, reasons, how, *_counts(distinct, read, reader))


def _identify(distinct: dict, words: list[str], frame: str) -> tuple[_Numeric | _Words, str]:
    """The candidate scale that reads the most rows (on a tie, the first listed)."""
    numbers = [k for k in distinct if not isinstance(k, str)]
    whole = [k for k in numbers if k.is_integer()]
    candidates: list[_Numeric | _Words] = []
    if words:
        candidates.append(_Words.of(words, frame))
    if frame == PAIR:
        candidates.append(_Numeric(1.0, 0.0, continuous=True))
    else:
        candidates.append(_Numeric(1.0, 2.0, continuous=True))
        # 0..1 only for values between 0 and 1: read as 0..1, a column of AlpacaEval's 1s and
        # its unparsed 0s would turn every 1 from A into B without a word; a winner's index
        # (0 = A) has its 0s rejected on 1..2, loudly, until it is declared.
        if any(0 < k < 1 and k != 0.5 for k in numbers):
            candidates.append(_Numeric(0.0, 1.0, continuous=True))
    if any(k < 0 for k in whole):
        size = _end([(abs(k), n) for k, n in distinct.items() if k in whole], distinct)
        candidates.append(_Numeric(-size, size, continuous=False))
    positive = [(k, n) for k, n in distinct.items() if k in whole and k >= 1]
    if positive and _end(positive, distinct) >= 3:
        candidates.append(_Numeric(1.0, _end(positive, distinct), continuous=False))
    rows = [
        sum(n for key, n in distinct.items() if isinstance(c.read(key, frame), float))
        for c in candidates
    ]
    best = candidates[rows.index(max(rows))]
    rule = "identified from all of the column's values"
    if isinstance(best, _Numeric) and not best.continuous:
        rule += f" (its ends: the largest seen; declare label_scale if {best.spec} is short)"
    elif best.spec == "1..2" and set(numbers) <= {1.0, 2.0} and numbers:
        rule += " (only 1 and 2: AlpacaEval's choice; declare label_scale for a longer scale)"
    elif best.spec == "1..2" and 0.0 in distinct:
        rule += " (its 0s are not on it: declare label_scale 0..1 if 0 means A)"
    return best, rule


def _end(used: list[tuple[float, int]], distinct: dict) -> float:
    """A point scale's end: the largest value seen, unless it is rarer than 1 row in
    _OUTLIER and the point below it is unused (a typo: 9 on a -3..3 scale), then the next."""
    rows: dict[float, int] = {}
    for key, n in used:
        rows[key] = rows.get(key, 0) + n
    total, ends = sum(distinct.values()), sorted(rows, reverse=True)
    while len(ends) > 1 and _OUTLIER * rows[ends[0]] < total and ends[0] - 1 not in rows:
        ends.pop(0)
    return ends[0]


def _describe(reader: _Numeric | _Words, frame: str, read: dict) -> LabelScale:
    """The LabelScale of ``reader`` on this column (``read``: value -> P(A better))."""
    ends = ("chosen", "rejected") if frame == PAIR else ("A (the first response)", "B")
    tied = any(p == 0.5 for p in read.values())
    if isinstance(reader, _Words):
        k = reader.steps
        if frame == PAIR or k == 1:
            a, b = ("chosen", "rejected") if frame == PAIR else ("A", "B")
            values = (a, "tie", b) if tied else (a, b)
            kind = "choice_tie" if tied else "choice"
        else:
            values = (
                *(f"A{'>' * g}B" for g in range(k, 0, -1)),
                *(("A=B",) if tied else ()),
                *(f"B{'>' * g}A" for g in range(1, k + 1)),
            )
            kind = "labels"
        tie = values[len(values) // 2] if tied else None
        direction = f"labels naming {ends[0]} favour it, those naming {ends[1]} the other"
        level = "ordinal" if kind == "labels" else "nominal"
        return LabelScale(kind, values, direction, tie, level, LABELS_SPEC)
    a, b, tie = _show(reader.a), _show(reader.b), reader.tie
    direction = f"{a} favours {ends[0]}, {b} favours {ends[1]}"
    direction += ", no tie" if tie is None else f", {_show(tie)} is a tie"
    if reader.continuous:
        values = (a, b)
        inner = {k for k in read if not isinstance(k, str)} - {reader.a, reader.b}
        kind = "probability" if inner - {tie} else ("choice_tie" if inner or tied else "choice")
        level = "interval" if kind == "probability" else "nominal"
        high = ends[0] if reader.a > reader.b else ends[1]
        direction += f"; a value between says how likely {high} is better"
    else:
        values = tuple(int(p) for p in _points(reader))
        kind = "graded" if reader.a == -reader.b else "likert"
        level = "ordinal"
    tie = None if tie is None else _show(tie)
    return LabelScale(kind, values, direction, tie, level, reader.spec)


def _counts(distinct: dict, read: dict, reader) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per value read (in the scale's order) and per value not read (commonest first)."""
    inside = {k: n for k, n in distinct.items() if isinstance(read[k], float)}
    order = sorted(inside, key=lambda k: (-read[k], str(k)))
    if isinstance(reader, _Numeric) and reader.continuous and len(inside) > _BINNED:
        counts: dict[str, int] = {}
        points = {reader.a, reader.tie, reader.b}
        for key in order:
            name = _name(key) if key in points else _between(key, reader)
            counts[name] = counts.get(name, 0) + inside[key]
    else:  # a point scale lists its unused points too: an end nobody used is worth seeing
        points = () if isinstance(reader, _Words) or reader.continuous else _points(reader)
        counts = dict.fromkeys(map(_name, points), 0) if len(points) <= _BINNED else {}
        for key in order:
            name = _name(key)
            counts[name] = counts.get(name, 0) + inside[key]
    outside = sorted(((n, _name(k)) for k, n in distinct.items() if k not in inside), reverse=True)
    return counts, {name: n for n, name in outside[:10]}


def _points(reader: _Numeric) -> tuple[float, ...]:
    """A point scale's points, from the end that favours A."""
    step = 1 if reader.b > reader.a else -1
    return tuple(float(p) for p in range(int(reader.a), int(reader.b) + step, step))


def _between(key: float, reader: _Numeric) -> str:
    """The half of a continuous scale a value lies in, named by its ends."""
    end = reader.a if (key - reader.tie) * (reader.a - reader.tie) > 0 else reader.b
    low, high = sorted((end, reader.tie))
    return f"between {_show(low)} and {_show(high)}"


def _name(key: float | str) -> str:
    return key if isinstance(key, str) else str(_show(key))


def _show(value: float) -> Any:
    """A number as the report writes it: whole numbers without a decimal point."""
    return int(value) if float(value).is_integer() else float(f"{value:.6g}")
