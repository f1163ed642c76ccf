"""Per-response ratings -> pairs: the ``ratings`` layout.

Many sets rate each response on its own and are binarised later: UltraFeedback (four
completions per instruction, each rated per aspect by GPT-4), HelpSteer2 (per-response
attribute scores). Two forms are read:

- long: one row per (prompt, response[, annotator]) with a ``score`` column, or aspect columns
  named by ``rating_score`` (``helpfulness``, ``mean:helpfulness,correctness``);
- nested: one record per prompt with a ``completions`` list, each completion holding its
  ``response``, ``model`` and ``annotations`` (``{"helpfulness": {"Rating": "4"}, ...}``), or
  fields such as ``overall_score`` / ``fine-grained_score``.

A rating row is one row of the long form, or one completion of the nested form. Each is
accepted or rejected (file, line, field, reason). Accepted ratings are grouped by prompt, then
by response text (several raters of one response: their mean is its score), and pairs are made
by a :class:`Binarize` policy. Equal scores never make a pair; a prompt that gives no pair is
counted with its reason. Agreement between raters (interval alpha) is measured when responses
have several raters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xxhash

from prefaudit.io.schema import (
    BINARIZE_POLICIES,
    DEFAULT_BINARIZE,
    DEFAULT_RATING_SCORE,
    LoadError,
    LoadIssue,
    describe_type,
)
from prefaudit.io.shapes import PairBuilder, RowError

_NOT_AVAILABLE = ("n/a", "na", "")  # UltraFeedback's "N/A": no rating, not a zero
_ALPHA_RESAMPLES = 1000  # as the agreement check's bootstrap
_PACKAGE_MAX_VALUES = 50  # distinct scores up to which the krippendorff package is used


@dataclass(frozen=True)
class Binarize:
    """How a prompt's rated responses become pairs.

    ``best-worst``: the best against the worst (one pair); ``best-random``: the best against
    one of the lower-scored responses drawn at random, seeded by the prompt text (the same
    pair on every run); ``all-gap``: every two responses whose scores differ by at least
    ``gap`` (and by more than 0). A tie for best or worst takes the first in input order.
    """

    kind: str
    gap: float = 0.0

    @property
    def spec(self) -> str:
        return f"all-gap:{self.gap:g}" if self.kind == "all-gap" else self.kind


def parse_binarize(value: Any) -> Binarize:
    """``best-worst``, ``best-random`` or ``all-gap:M`` (M >= 0) as a :class:`Binarize`."""
    text = str(value).strip().lower() if value is not None else DEFAULT_BINARIZE
    if text in ("best-worst", "best-random"):
        return Binarize(text)
    if text.startswith("all-gap"):
        _, _, gap = text.partition(":")
        try:
            number = float(gap) if gap else 0.0
        except ValueError:
            number = -1.0
        if math.isfinite(number) and number >= 0:
            return Binarize("all-gap", number)
    raise LoadError(
        f"binarize must be one of {', '.join(BINARIZE_POLICIES)} (M a number >= 0), got {value!r}",
        setting="binarize",
    )


@dataclass(frozen=True)
class RatingScore:
    """Which number is a response's score: ``mean`` (the aspects' ratings averaged, N/A left
    out; in the long form the ``score`` column), ``NAME`` (one aspect, or a completion field
    such as ``overall_score``; in the long form a column) or ``mean:A,B`` (those aspects)."""

    names: tuple[str, ...]  # empty: every aspect (nested) / the score column (long)
    mean: bool

    @property
    def spec(self) -> str:
        if not self.mean:
            return self.names[0]
        return "mean" + (f":{','.join(self.names)}" if self.names else "")

    def describe(self, nested: bool, score_column: str | None) -> str:
        if self.names and not self.mean:
            where = "aspect or completion field" if nested else "column"
            return f"the {where} {self.names[0]!r}"
        if self.names:
            return f"the mean of {', '.join(map(repr, self.names))} (N/A left out)"
        if nested:
            return "the mean of each completion's aspect ratings (N/A left out)"
        return f"the column {score_column!r}"


def parse_rating_score(value: Any) -> RatingScore:
    text = DEFAULT_RATING_SCORE if value is None else str(value).strip()
    if text == "mean":
        return RatingScore((), True)
    if text.startswith("mean:"):
        names = tuple(n.strip() for n in text[5:].split(",") if n.strip())
        if names:
            return RatingScore(names, True)
    elif text and "," not in text:
        return RatingScore((text,), False)
    raise LoadError(
        f"rating_score must be mean, an aspect or column NAME, or mean:A,B; got {value!r}",
        setting="rating_score",
    )


@dataclass
class _Prompt:
    text: str
    responses: dict[str, int] = field(default_factory=dict)  # text -> index in _Ratings


class RatingReader:
    """Reads rating rows (long or nested), then makes the pairs (:meth:`finish`)."""

    def __init__(self, builder: PairBuilder, mapping: dict[str, str], columns: set, options: tuple):
        self.builder, self.mapping = builder, mapping
        self.binarize, self.score = parse_binarize(options[0]), parse_rating_score(options[1])
        self.nested = "completions" in mapping
        self.prompts: dict[str, _Prompt] = {}
        # Per response: prompt, text, model, first line, [(annotator, score)]
        self.responses: list[list[Any]] = []
        self.not_available = 0  # N/A aspect ratings left out of a mean
        if not self.nested:
            self._check_long_columns(columns)

    def _check_long_columns(self, columns: set) -> None:
        file = self.builder.file
        if "response" not in self.mapping and columns:
            raise LoadError(
                f"{file}: per-response ratings need a response column (or a completions list); "
                f"map response=COLUMN (found: {', '.join(sorted(columns))})",
                setting="mapping",
            )
        wanted = self.score.names or ((self.mapping["score"],) if "score" in self.mapping else ())
        missing = [n for n in wanted if n not in columns] if columns else []
        if columns and (not wanted or missing):
            raise LoadError(
                f"{file}: no score column {', '.join(missing) or ''}; map score=COLUMN, or "
                f"name aspect columns with rating_score (helpfulness, mean:A,B); found: "
                f"{', '.join(sorted(columns))}",
                setting="rating_score",
            )

    def read(self, items) -> None:
        """Every item as rating rows accepted or rejected, counted in the report."""
        report, unit = self.builder.report, self.builder.unit
        for line, item in items:
            if isinstance(item, LoadIssue):
                report.rows_read += 1
                report.reject(item)
                continue
            try:
                rows = self._nested(item) if self.nested else [self._long(item)]
            except RowError as err:  # the whole record: one rating row
                rows = [(err, item)]
            for row in rows:
                report.rows_read += 1
                if isinstance(row[0], RowError):
                    err, record = row
                    file = self.builder.file
                    report.reject(
                        LoadIssue(file, line, err.field, err.reason, unit=unit, record=record)
                    )
                    continue
                self._add(line, *row)
                report.rows_accepted += 1
        report.rows_rejected = len(report.rejected)

    def _long(self, record: dict) -> tuple:
        b, m = self.builder, self.mapping
        prompt = b.text(record, m.get("prompt"), "prompt")
        response = b.text(record, m.get("response"), "response")
        annotator = None
        if "annotator" in m:
            annotator = record.get(m["annotator"])
            if annotator in (None, "") or isinstance(annotator, (dict, list)):
                raise RowError(
                    "annotator", "missing" if annotator in (None, "") else "must be a string"
                )
            annotator = str(annotator)
        model = _optional_text(b, record, m.get("model"), "model")
        if not self.score.names:  # the score column
            score = _required_score(record.get(m["score"], _ABSENT), "score")
        elif self.score.mean:
            score = self._mean({n: record.get(n, _ABSENT) for n in self.score.names}, "")
        else:
            name = self.score.names[0]
            score = _required_score(record.get(name, _ABSENT), name)
        return prompt, response, annotator, score, model

    def _nested(self, record: dict) -> list:
        b, m = self.builder, self.mapping
        prompt = b.text(record, m.get("prompt"), "prompt")
        completions = record.get(m["completions"])
        field_name = m["completions"]
        if not isinstance(completions, (list, tuple, np.ndarray)):
            raise RowError(field_name, f"must be a list, got {describe_type(completions)}")
        if not len(completions):
            raise RowError(field_name, "is empty: no response to rate")
        rows: list = []
        for index, completion in enumerate(completions):
            where = f"{field_name}[{index}]"
            try:
                rows.append(self._completion(prompt, completion, where))
            except RowError as err:  # rejected.jsonl keeps the prompt and this completion
                if not str(err.field).startswith(field_name):
                    err.field = f"{where}.{err.field}"
                shown = {m["prompt"]: prompt, field_name: [completion], "completion": index}
                rows.append((err, shown))
        return rows

    def _completion(self, prompt: str, completion: Any, where: str) -> tuple:
        if not isinstance(completion, dict):
            raise RowError(where, f"must be an object, got {describe_type(completion)}")
        b = self.builder
        response = b.text(completion, self.mapping.get("response", "response"), "response")
        model = _optional_text(b, completion, self.mapping.get("model", "model"), "model")
        annotations = completion.get("annotations")
        aspects = annotations if isinstance(annotations, dict) else {}
        if self.score.mean:
            names = self.score.names or tuple(aspects)
            if not names:
                raise RowError(f"{where}.annotations", "no aspect ratings to average")
            ratings = {n: _aspect_rating(aspects.get(n, _ABSENT)) for n in names}
            score = self._mean(ratings, f"{where}.annotations.")
        else:
            name = self.score.names[0]
            if name in aspects:
                score = _required_score(
                    _aspect_rating(aspects[name]), f"{where}.annotations.{name}.Rating"
                )
            else:
                score = _required_score(completion.get(name, _ABSENT), f"{where}.{name}")
        return prompt, response, None, score, model

    def _mean(self, ratings: dict[str, Any], prefix: str) -> float:
        scores = []
        for name, value in ratings.items():
            score = _score(value, f"{prefix}{name}")
            if score is not None:
                scores.append(score)
        if not scores:
            raise RowError(f"{prefix}{','.join(ratings)}", "no rating: every one is N/A or missing")
        self.not_available += len(ratings) - len(scores)
        return sum(scores) / len(scores)  # not np.mean: 10x slower on a few numbers

    def _add(self, line: int, prompt, response, annotator, score, model) -> None:
        group = self.prompts.get(prompt)
        if group is None:
            group = self.prompts[prompt] = _Prompt(prompt)
        index = group.responses.get(response)
        if index is None:
            index = group.responses[response] = len(self.responses)
            self.responses.append([prompt, response, model, line, []])
        self.responses[index][4].append((annotator, score))

    def finish(self) -> None:
        """Make the pairs and write the account (``report.ratings``, its note, and the
        raters' agreement)."""
        report = self.builder.report
        made, without, used = 0, {"one response": 0, "all tied": 0}, set()
        if self.binarize.kind == "all-gap":
            without[f"no gap of at least {self.binarize.gap:g}"] = 0
        for group in self.prompts.values():
            indexes = list(group.responses.values())
            scores = [_mean_score(self.responses[i]) for i in indexes]
            pairs, reason = binarized(group.text, scores, self.binarize)
            if reason is not None:
                without[reason] += 1
            for high, low in pairs:
                self._pair(indexes[high], indexes[low], scores[high], scores[low])
                used.update((indexes[high], indexes[low]))
            made += len(pairs)
        report.ratings = {
            "form": "nested" if self.nested else "long",
            "score": self.score.describe(self.nested, self.mapping.get("score")),
            "rating_score": self.score.spec,
            "binarize": self.binarize.spec,
            "ratings_read": report.rows_read,
            "ratings_rejected": report.rows_rejected,
            "ratings_accepted": report.rows_accepted,
            "responses": len(self.responses),
            "prompts": len(self.prompts),
            "pairs": made,
            "ratings_in_pairs": sum(len(self.responses[i][4]) for i in used),
            "prompts_without_pair": without,
            "not_available_aspects": self.not_available,
        }
        report.rating_agreement = rater_agreement(self.responses)
        report.notes.append(ratings_note(report.ratings, report.rating_agreement))

    def _pair(self, high: int, low: int, score_high: float, score_low: float) -> None:
        chosen, rejected = self.responses[high], self.responses[low]
        values = {
            "prompt": chosen[0],
            "chosen": chosen[1],
            "rejected": rejected[1],
            "score_chosen": score_high,
            "score_rejected": score_low,
            "score_gap": score_high - score_low,
            "model_chosen": chosen[2],
            "model_rejected": rejected[2],
        }
        self.builder.add(chosen[3], values)


def binarized(
    prompt: str, scores: list[float], policy: Binarize
) -> tuple[list[tuple[int, int]], str | None]:
    """The (higher, lower) index pairs a prompt's response scores make under ``policy``, and
    why there are none (``one response``, ``all tied``, ``no gap of at least M``) or None.

    >>> binarized("p", [3.0, 5.0, 1.0, 5.0], Binarize("best-worst"))
    ([(1, 2)], None)
    >>> binarized("p", [2.0, 2.0], Binarize("best-worst"))
    ([], 'all tied')
    >>> binarized("p", [3.0, 5.0, 1.0], Binarize("all-gap", 2.0))
    ([(1, 0), (1, 2), (0, 2)], None)
    """
    if len(scores) < 2:
        return [], "one response"
    values = np.asarray(scores)
    best, worst = int(np.argmax(values)), int(np.argmin(values))
    if values[best] == values[worst]:
        return [], "all tied"
    if policy.kind == "best-worst":
        return [(best, worst)], None
    if policy.kind == "best-random":
        lower = np.flatnonzero(values < values[best])
        seed = xxhash.xxh64_intdigest(prompt.encode("utf-8", "surrogatepass"))
        return [(best, int(lower[np.random.default_rng(seed).integers(len(lower))]))], None
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    pairs = [
        (high, low)
        for n, high in enumerate(order)
        for low in order[n + 1 :]
        if values[high] > values[low] and values[high] - values[low] >= policy.gap
    ]
    return pairs, None if pairs else f"no gap of at least {policy.gap:g}"


def rater_agreement(responses: list[list[Any]]) -> dict[str, Any] | None:
    """Krippendorff's alpha (interval) between raters on the responses' scores, with a
    bootstrap 95% interval over responses; None when no response has two raters."""
    from prefaudit import stats

    per_rater: dict[tuple[int, str], list[float]] = {}
    for unit, response in enumerate(responses):
        for annotator, score in response[4]:
            if annotator is not None:
                per_rater.setdefault((unit, annotator), []).append(score)
    units = np.array([u for u, _ in per_rater], dtype=np.int64)
    if not len(units) or np.bincount(units).max() < 2:
        return None
    raters = sorted({a for _, a in per_rater})
    rater_index = {name: i for i, name in enumerate(raters)}
    # A rater who scored a response twice counts once, with the mean of the two.
    values = np.array([np.mean(v) for v in per_rater.values()])
    rows = np.array([rater_index[a] for _, a in per_rater])
    rated = np.bincount(units)
    sufficient = stats.alpha_statistics(units, values, "interval")
    if len(np.unique(values)) <= _PACKAGE_MAX_VALUES:
        alpha, method = _package_alpha(units, rows, values, len(raters)), "krippendorff package"
    else:
        alpha, method = stats.alpha(sufficient), "prefaudit.stats (exact, continuous values)"
    low = high = None
    if alpha is not None and not math.isnan(alpha):
        resampled = stats.bootstrap_alpha(sufficient, _ALPHA_RESAMPLES, 0)
        resampled = resampled[~np.isnan(resampled)]
        if len(resampled):
            low, high = (float(x) for x in np.percentile(resampled, [2.5, 97.5]))
    else:
        alpha = None
    return {
        "level": "interval",
        "alpha": alpha,
        "ci_low": low,
        "ci_high": high,
        "method": method,
        "raters": len(raters),
        "responses_with_two_or_more_raters": int((rated >= 2).sum()),
        "ratings": len(values),
    }


def _package_alpha(units: np.ndarray, rows: np.ndarray, values: np.ndarray, raters: int):
    import krippendorff

    unique, column = np.unique(units, return_inverse=True)
    matrix = np.full((raters, len(unique)), np.nan)
    matrix[rows, column] = values
    try:
        return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="interval"))
    except ValueError:  # one value throughout: expected disagreement is zero
        return None


def ratings_note(account: dict[str, Any], agreement: dict[str, Any] | None) -> str:
    """The load report's line on the ratings: every rating row accounted for."""
    without = {k: v for k, v in account["prompts_without_pair"].items() if v}
    reasons = ", ".join(f"{k}: {v}" for k, v in without.items())
    text = (
        f"ratings ({account['form']} form): {account['ratings_read']:,} read, "
        f"{account['ratings_rejected']:,} rejected, {account['ratings_accepted']:,} accepted "
        f"for {account['responses']:,} responses of {account['prompts']:,} prompts; score = "
        f"{account['score']}; {account['binarize']} made {account['pairs']:,} pairs from "
        f"{account['ratings_in_pairs']:,} ratings; "
        f"{sum(without.values()):,} prompts gave no pair" + (f" ({reasons})" if reasons else "")
    )
    if account["not_available_aspects"]:
        text += f"; {account['not_available_aspects']:,} N/A aspect ratings left out of means"
    if agreement is not None and agreement["alpha"] is not None:
        interval = (
            f" (95% CI {agreement['ci_low']:.3f}-{agreement['ci_high']:.3f})"
            if agreement["ci_low"] is not None
            else ""
        )
        text += (
            f"; raters' interval alpha {agreement['alpha']:.3f}{interval} over "
            f"{agreement['responses_with_two_or_more_raters']:,} responses"
        )
    return text


_ABSENT = object()


def _aspect_rating(value: Any) -> Any:
    """An aspect's rating: ``{"Rating": "4", "Rationale": ...}`` (UltraFeedback) or a number."""
    if isinstance(value, dict):
        return value.get("Rating", _ABSENT)
    return value


def _score(value: Any, field: str) -> float | None:
    """A score as a number; None for N/A. Ratings often come as strings ("4")."""
    if value is _ABSENT:
        raise RowError(field, "missing")
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in _NOT_AVAILABLE:
            return None
        try:
            number = float(value)
        except ValueError:
            raise RowError(field, f"must be a number, got {value!r}"[:200]) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise RowError(field, f"must be a number, got {describe_type(value)}")
    if not math.isfinite(number):
        raise RowError(field, f"must be a finite number, got {value!r}")
    return number


def _required_score(value: Any, field: str) -> float:
    score = _score(value, field)
    if score is None:
        raise RowError(field, "is N/A: no score")
    return score


def _optional_text(builder: PairBuilder, record: dict, column: str | None, name: str):
    value = record.get(column) if column else None
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        raise RowError(name, f"must be a string, got {describe_type(value)}")
    return builder.checked(str(value), name)


def _mean_score(response: list[Any]) -> float:
    scores = [score for _, score in response[4]]
    return sum(scores) / len(scores)


def read_ratings(items, builder: PairBuilder, mapping, columns, options) -> None:
    """Read every rating row of ``items`` into ``builder``'s pairs (see the module docstring)."""
    reader = RatingReader(builder, mapping, columns, options)
    reader.read(items)
    reader.finish()
