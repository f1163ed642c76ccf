"""``load``: any supported input -> PairSet (+ Annotations) and a report that accounts for every row."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from prefaudit.io.ratings import parse_binarize, parse_rating_score, read_ratings
from prefaudit.io.readers import line_limit, open_records, open_table
from prefaudit.io.scales import PAIR, RESPONSES, note, parse_scale, read_column
from prefaudit.io.schema import (
    DEFAULT_BINARIZE,
    DEFAULT_MAX_CHARS,
    DEFAULT_RATING_SCORE,
    ON_BAD_ROW,
    SHAPES,
    LoadError,
    LoadIssue,
    LoadReport,
)
from prefaudit.io.shapes import (
    PairBuilder,
    RowError,
    ShapeMapper,
    check_required,
    detect_shape,
    label_field,
    orient,
    resolve_mapping,
)

_SAMPLE_ROWS = 200  # records read ahead to detect the shape and the columns


@dataclass
class LoadedData:
    """What :func:`load` returns: the PairSet, the Annotations table (or None), the report."""

    pairs: Any  # pandas.DataFrame indexed by pair_id
    annotations: Any | None
    report: LoadReport


def load(
    path: str | Path | Any,
    *,
    format: str | None = None,
    mapping: dict[str, str] | None = None,
    annotations: str | Path | None = None,
    on_bad_row: str = "skip",
    max_chars: int = DEFAULT_MAX_CHARS,
    file_type: str | None = None,
    label_scale: Any = None,
    binarize: str = DEFAULT_BINARIZE,
    rating_score: str = DEFAULT_RATING_SCORE,
) -> LoadedData:
    """Load preference pairs from a file, a ``save_to_disk`` folder (``FOLDER:SPLIT`` for one
    split of a ``DatasetDict``) or ``hf:org/name[:split]``, or from an in-memory pandas
    ``DataFrame`` or Hugging Face ``Dataset`` (rows checked the same way).

    ``format`` forces the shape (flat, conversational, hh, side_by_side, annotations, ratings);
    ``mapping`` maps canonical fields to the input's columns, e.g. ``{"prompt": "instruction"}``.
    Bad rows are rejected with their line, field and reason; with ``on_bad_row="fail"`` any bad
    row raises :class:`LoadError` listing them. A label column's scale is read from all of its
    values, or declared with ``label_scale`` (``"-3..3"``, ``"1..7"``, ``"labels"``...: see
    :mod:`prefaudit.io.scales`); the report's ``label_scales`` says which it used. Ratings
    become pairs by ``binarize`` on the score ``rating_score`` names (:mod:`.ratings`).

    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
    >>> _ = path.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}) + "\\n{oops\\n")
    >>> data = load(str(path))
    >>> data.report.rows_read, data.report.pairs, data.report.rejected[0].reason[:14]
    (2, 1, 'malformed JSON')
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"question": ["Hi"], "chosen": ["Hello!"], "rejected": [None]})
    >>> data = load(frame, mapping={"prompt": "question"})
    >>> data.report.summary(), data.report.rejected[0].field
    ('1 rows read, 0 accepted, 1 rejected -> 0 pairs', 'rejected')
    """
    ratings = _check_settings(format, on_bad_row, max_chars, label_scale, binarize, rating_score)
    if isinstance(path, (str, Path)):
        source = open_records(str(path), file_type, max_line_bytes=line_limit(max_chars))
    else:
        source = open_table(path)
        path = source.name
    report = LoadReport(files=[source.name], file_type=source.file_type)
    builder, table = _read_pairs(
        source, path, report, format, mapping, max_chars, (label_scale, ratings)
    )
    pairs = builder.frame(set(report.mapping))
    report.pairs = len(pairs)
    data_hash = source.fingerprint.hexdigest()
    if annotations is not None:
        table, annotations_hash = _add_annotations(
            str(annotations), pairs, report, table, label_scale
        )
        data_hash += annotations_hash
    report.annotations = 0 if table is None else len(table)
    report.fingerprint = _fingerprint(data_hash, report, max_chars, label_scale, ratings)
    _refuse_bad_rows(path, report, on_bad_row)
    return LoadedData(pairs, table, report)


def _refuse_bad_rows(path, report: LoadReport, on_bad_row: str) -> None:
    if on_bad_row == "fail" and report.rejected:
        raise LoadError(
            f"{path}: {len(report.rejected)} row(s) could not be loaded (on_bad_row='fail')",
            report.rejected,
            setting="on_bad_row",
        )


def _check_settings(
    format: str | None, on_bad_row: str, max_chars: int, label_scale: Any, *ratings: Any
) -> tuple[str, str]:
    """Checks the settings before the input is opened, so a typo costs nothing to find;
    returns the ratings' (binarize, rating_score) as written in the fingerprint."""
    binarize, rating_score = ratings
    how = (parse_binarize(binarize).spec, parse_rating_score(rating_score).spec)
    if label_scale is not None:
        parse_scale(label_scale)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise LoadError(
            f"max_chars must be a whole number >= 1, got {max_chars!r} (it would reject every row)",
            setting="max_chars",
        )
    if on_bad_row not in ON_BAD_ROW:
        raise LoadError(
            f"on_bad_row must be one of {ON_BAD_ROW}, got {on_bad_row!r}", setting="on_bad_row"
        )
    if format is not None and format not in SHAPES:
        raise LoadError(
            f"unknown format {format!r}; expected one of {', '.join(SHAPES)}", setting="format"
        )
    return how


def _read_pairs(source, path, report: LoadReport, format, mapping, max_chars: int, how):
    """Every record of ``source`` as a pair (or, for a long annotations table, an annotation;
    for ratings, a rating) or a rejection; returns the PairBuilder and that long table's
    Annotations (or None). ``how``: the label scale, and the ratings' (binarize, score)."""
    label_scale, ratings = how
    head, sample = _read_ahead(source.items)
    columns = {key for record in sample for key in record}
    report.mapping = resolve_mapping(columns, dict(mapping or {}), path)
    report.shape = format or (detect_shape(sample, report.mapping, path) if sample else "flat")
    check_required(report.shape, report.mapping, columns, path)

    builder = PairBuilder(report, source.name, source.unit, max_chars)
    if report.shape == "ratings":  # rating rows, several to a pair
        read_ratings(itertools.chain(head, source.items), builder, report.mapping, columns, ratings)
        report.notes.extend(source.notes)
        return builder, None
    # A long annotations table is read row by row as side-by-side pairs, then grouped.
    shape = "side_by_side" if report.shape == "annotations" else report.shape
    mapper = ShapeMapper(shape, report.mapping, builder)
    # Labelled rows wait until their label column has been read whole (its scale).
    held = {"annotations": AnnotationGrouper, "side_by_side": SideBySideRows}.get(report.shape)
    collector = held(mapper, label_scale) if held is not None else None
    _read_rows(
        itertools.chain(head, source.items), source.name, source.unit, report, mapper, collector
    )
    report.notes.extend(source.notes)
    report.notes.extend(mapper.notes())
    # The grouper adds its pairs to the builder, so it finishes before the pairs are framed.
    table = collector.finish() if collector is not None else None
    report.rows_rejected = len(report.rejected)
    return builder, table


def _add_annotations(path: str, pairs, report: LoadReport, table, label_scale):
    """The Annotations table with a separate annotations file's rows added, and that file's hash."""
    extra, digest = load_annotations(path, pairs, report, label_scale)
    if table is None:
        return extra, digest
    import pandas as pd

    # A long table's own judgements are kept beside the file's.
    return pd.concat([table, extra], ignore_index=True), digest


def _read_ahead(items) -> tuple[list, list[dict]]:
    """Items up to the first _SAMPLE_ROWS readable records (so leading bad lines do not hide
    the columns), and those records."""
    head, sample = [], []
    for item in items:
        head.append(item)
        if isinstance(item[1], dict):
            sample.append(item[1])
            if len(sample) >= _SAMPLE_ROWS:
                break
    return head, sample


def _read_rows(
    items, file: str, unit: str, report: LoadReport, mapper: ShapeMapper, collector
) -> None:
    """Turn every item into a pair (or an annotation) or a rejection; count both."""
    for line, item in items:
        report.rows_read += 1
        if isinstance(item, LoadIssue):
            report.reject(item)
            continue
        try:
            if collector is not None:
                collector.add(line, item)
            else:
                mapper.row_warnings.clear()
                values = mapper.convert(item)
                mapper.builder.add(line, values, mapper.pair_id(item))
                for field, reason in mapper.row_warnings:
                    report.warn(LoadIssue(file, line, field, reason, unit=unit))
                mapper.row_accepted()
        except RowError as err:
            report.reject(LoadIssue(file, line, err.field, err.reason, unit=unit, record=item))
            continue
        report.rows_accepted += 1
    report.rows_rejected = len(report.rejected)


class SideBySideRows:
    """Side-by-side records (one pair each), held until the label column has been read
    whole: what a label means depends on the column's scale."""

    def __init__(self, mapper: ShapeMapper, label_scale: Any = None):
        self.mapper, self.label_scale = mapper, label_scale
        # line, (prompt, response_a, response_b), label as read, extras or None, id, raw label
        self.rows: list[tuple[int, tuple[str, str, str], Any, dict | None, Any, Any]] = []

    def add(self, line: int, record: dict) -> None:
        values = self.mapper.convert(record)
        texts = tuple(values.pop(name) for name in ("prompt", "response_a", "response_b"))
        label = values.pop("label")
        raw = record.get(self.mapper.mapping["label"])
        self.rows.append((line, texts, label, values or None, self.mapper.pair_id(record), raw))

    def finish(self) -> None:
        builder = self.mapper.builder
        report, file, unit = builder.report, builder.file, builder.unit
        held = _Held([(row[0], row[2]) for row in self.rows], self._record)
        where = (file, unit, self.mapper.mapping["label"], False)
        p_first = _read_labels(report, where, RESPONSES, self.label_scale, held)
        report.rows_accepted -= int(np.isnan(p_first).sum())
        for index, (line, texts, _, extras, given, _) in enumerate(self.rows):
            if np.isnan(p_first[index]):
                continue  # rejected with the column's reason
            try:
                values = orient(*texts, float(p_first[index]), dict(extras or {}))
                builder.add(line, values, given)
            except RowError as err:
                report.rows_accepted -= 1
                record = self._record(index)
                report.reject(
                    LoadIssue(file, line, err.field, err.reason, unit=unit, record=record)
                )

    def _record(self, index: int) -> dict[str, Any]:
        _, texts, _, extras, given, raw = self.rows[index]
        shown = dict(zip(("prompt", "response_a", "response_b"), texts, strict=True))
        return _shown_row(self.mapper, {**shown, **(extras or {})}, given, raw)


class AnnotationGrouper:
    """Groups a long table (one row per pair x annotator) into pairs plus an Annotations table.

    Rows are grouped by ``pair_id`` when the input has one, else by the prompt and its two
    responses in either order: raters are often shown a pair's responses in a random order,
    and each order made a pair of its own (two raters of 805 pairs read as 1,610 pairs of one
    rater, and no agreement measured). Once every row is in, the label column is read whole
    (its scale: prefaudit.io.scales); a pair's orientation is the mean of its raters' labels;
    each annotation is then re-expressed relative to the pair's chosen response, and records
    which position its rater saw the chosen response in.
    """

    def __init__(self, mapper: ShapeMapper, label_scale: Any = None):
        self.mapper, self.label_scale = mapper, label_scale
        self.groups: dict[Any, int] = {}
        self.texts: list[tuple[str, str, str]] = []
        self.first: list[tuple[int, Any]] = []  # first line, given id
        self.extras: list[dict] = []  # the first row's extras
        # group, annotator, label (as read), raw label, line, shown as B then A, extras
        self.rows: list[tuple[int, str, float | str, Any, int, bool, dict]] = []

    def add(self, line: int, record: dict) -> None:
        mapper = self.mapper
        prompt, first, second, label = mapper.side_fields(record)
        annotator = record.get(mapper.mapping.get("annotator"))
        if annotator is None or annotator == "" or isinstance(annotator, (dict, list)):
            raise RowError(
                "annotator", "missing" if annotator in (None, "") else "must be a string"
            )
        given = mapper.pair_id(record)
        extras = mapper.extras(
            record, ("model_a", "model_b", "source", "split")
        )  # may reject the row
        key = str(given) if given is not None else (prompt, *sorted((first, second)))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = len(self.texts)
            self.texts.append((prompt, first, second))
            self.first.append((line, given))
            self.extras.append(extras)
        elif given is not None and self.texts[group] not in (
            (prompt, first, second),
            (prompt, second, first),
        ):
            raise RowError(
                "pair_id", f"pair id {given!r} has other texts on line {self.first[group][0]}"
            )
        swapped = self.texts[group][1] != first  # this rater saw the group's B first
        raw = record.get(mapper.mapping["label"])
        if extras == self.extras[group]:
            extras = self.extras[group]  # one dict for the rows that repeat it, not one per row
        self.rows.append((group, str(annotator), label, raw, line, swapped, extras))

    def finish(self):
        import pandas as pd

        builder = self.mapper.builder
        held = _Held([(r[4], r[2]) for r in self.rows], self._record)
        where = (builder.file, builder.unit, self.mapper.mapping["label"], True)
        p_shown = _read_labels(builder.report, where, RESPONSES, self.label_scale, held)
        read = ~np.isnan(p_shown)
        builder.report.rows_accepted -= int((~read).sum())
        rows = [r for r, kept in zip(self.rows, read, strict=True) if kept]
        groups = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        swapped = self._rebased(rows, groups)
        p_first = np.where(swapped, 1.0 - p_shown[read], p_shown[read])  # P(group's A better)
        pair_ids, first_is_chosen = self._pairs(groups, p_first, rows)
        value = (
            np.where(first_is_chosen[groups], p_first, 1.0 - p_first) if len(groups) else p_first
        )
        table = pd.DataFrame(
            {
                "pair_id": pair_ids[groups] if len(groups) else [],
                "annotator": [r[1] for r in rows],
                "label": _labels(value),
                "value": value,
                # Where this rater saw the chosen response (the order can differ by rater).
                "chosen_position": np.where(first_is_chosen[groups] != swapped, "a", "b")
                if len(groups)
                else [],
                "raw_label": [str(r[3]) for r in rows],
                "row": [r[4] for r in rows],
            }
        )
        repeats = int(table.duplicated(["pair_id", "annotator"]).sum())
        if repeats:
            self.mapper.builder.report.notes.append(
                f"{repeats} annotation(s) repeat a (pair, annotator) already seen; all are kept "
                "in the Annotations table (the agreement check reconciles them)"
            )
        return table

    def _rebased(self, rows: list[tuple], groups: np.ndarray) -> np.ndarray:
        """Whether each kept row shows its group's B first, once every group is seen as its
        first kept row shows it (its first row may have been rejected for its label): the
        pairs are then what they were when a bad label was rejected as it was read."""
        swapped = np.fromiter((r[5] for r in rows), dtype=bool, count=len(rows))
        _, first = np.unique(groups, return_index=True)
        for index in first[swapped[first]]:
            prompt, a, b = self.texts[groups[index]]
            self.texts[groups[index]] = (prompt, b, a)
        return swapped ^ swapped[first][np.searchsorted(groups[first], groups)]

    def _pairs(
        self, groups: np.ndarray, p_first: np.ndarray, rows: list[tuple]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add a pair per group with a label read, oriented by its raters' mean, in the order
        of their first kept rows; returns each group's pair id and whether its first-shown
        response is the chosen one."""
        counts = np.bincount(groups, minlength=len(self.texts))
        mean = np.bincount(groups, weights=p_first, minlength=len(self.texts)) / np.maximum(
            counts, 1
        )
        pair_ids = np.full(len(self.texts), None, dtype=object)
        first_is_chosen = np.zeros(len(self.texts), dtype=bool)
        _, first = np.unique(groups, return_index=True)
        for index in np.sort(first):  # a group whose every label was unread is no pair
            group = groups[index]
            prompt, a, b = self.texts[group]
            extras = dict(rows[index][6])  # as its first kept row shows the pair
            values = orient(prompt, a, b, float(mean[group]), extras)
            pair_ids[group] = self.mapper.builder.add(rows[index][4], values, self.first[group][1])
            first_is_chosen[group] = values["chosen_position"] == "a"
        return pair_ids, first_is_chosen

    def _record(self, index: int) -> dict[str, Any]:
        group, annotator, _, raw, _, swapped, extras = self.rows[index]
        prompt, first, second = self.texts[group]
        if swapped:
            first, second = second, first
        values = {"prompt": prompt, "response_a": first, "response_b": second, **extras}
        return _shown_row(
            self.mapper, {**values, "annotator": annotator}, self.first[group][1], raw
        )


def _shown_row(mapper: ShapeMapper, values: dict[str, Any], given: Any, raw: Any) -> dict:
    """A held row rebuilt under the input's column names for rejected.jsonl: its texts, id and
    label (its other columns were not kept: that would hold every row in memory)."""
    names = mapper.mapping
    row = {names.get(key, key): value for key, value in values.items()}
    if given is not None:
        row[names.get("pair_id", "pair_id")] = given
    row[names["label"]] = raw
    return row


def _read_labels(report: LoadReport, where: tuple, frame: str, label_scale, rows) -> np.ndarray:
    """Read a label column whole: ``where`` = (file, unit, column, whether its labels make
    annotations); ``rows``: (line, label as read) per row, and ``rows.record(i)`` rebuilds row
    i. Records the scale in the report and rejects the rows it cannot read; returns P(A
    better) per row, NaN where rejected."""
    if not rows:
        return np.empty(0)
    file, unit, column, annotations = where
    reading = read_column([label for _, label in rows], frame=frame, declared=label_scale)
    entry = {**reading.summary(file, column), "annotations": annotations}
    report.label_scales.append(entry)
    report.notes.append(note(entry))
    for index, reason in enumerate(reading.reasons):
        if reason is not None:
            record = rows.record(index)
            report.reject(
                LoadIssue(file, rows[index][0], "label", reason, unit=unit, record=record)
            )
    _in_line_order(report)
    return reading.p_first


class _Held(list):
    """(line, label) per held row, and how to rebuild a row for rejected.jsonl."""

    def __init__(self, rows, record):
        super().__init__(rows)
        self.record = record


def _in_line_order(report: LoadReport) -> None:
    """A file's rejections in line order (those found when its label column was read whole
    come last otherwise)."""
    position = {name: i for i, name in enumerate(report.files)}
    report.rejected.sort(key=lambda i: (position.get(i.file, 0), i.line or 0))


def load_annotations(path: str, pairs, report: LoadReport, label_scale: Any = None):
    """Read a separate annotations file (pair_id, annotator, label) for already-loaded pairs.

    Labels name the pair's responses: chosen / rejected / tie, a probability in [0, 1] that
    chosen is better, or a graded or Likert scale read from the whole column (its low end
    favouring chosen; see prefaudit.io.scales), or as ``label_scale`` declares. An optional
    ``chosen_position`` (a/b, first/second) says where the chosen response was shown.
    """
    import pandas as pd

    source = open_records(path)
    report.files.append(source.name)
    head, sample = _read_ahead(source.items)
    columns = {k for r in sample for k in r}
    mapping = resolve_mapping(columns, {}, path)
    missing = [f for f in ("pair_id", "annotator", "label") if f not in mapping]
    if missing and columns:
        raise LoadError(
            f"{path}: annotations need pair_id, annotator and label; missing {', '.join(missing)}"
        )
    known = set(pairs.index)
    rows: list[tuple] = []
    for line, record in itertools.chain(head, source.items):
        report.annotation_rows_read += 1
        try:
            if isinstance(record, LoadIssue):
                raise RowError(record.field, record.reason)
            rows.append(_annotation_row(record, mapping, known, line))
        except RowError as err:
            report.annotation_rows_rejected += 1
            report.reject(
                LoadIssue(source.name, line, err.field, err.reason, unit=source.unit, record=record)
            )
    report.notes.extend(source.notes)
    rows = _scaled_annotations(rows, mapping, source, report, label_scale)
    columns = ["pair_id", "annotator", "label", "value", "chosen_position", "raw_label", "row"]
    table = pd.DataFrame(rows, columns=columns)
    table["value"] = table["value"].astype("float64")
    table["label"] = _labels(table["value"].to_numpy())
    return table, source.fingerprint.hexdigest()


def _scaled_annotations(rows: list[tuple], mapping, source, report: LoadReport, label_scale):
    """The annotation rows with their labels read on the column's scale (P(chosen better));
    rows the scale cannot read are rejected."""
    names = ("pair_id", "annotator", "label", "chosen_position")

    def record(index: int) -> dict[str, Any]:
        pair_id, annotator, _, _, position, raw, _ = rows[index]
        kept = (pair_id, annotator, raw, position)
        return {mapping.get(n, n): v for n, v in zip(names, kept, strict=True) if v is not None}

    held = _Held([(row[6], row[3]) for row in rows], record)
    where = (source.name, source.unit, mapping.get("label", "label"), True)
    value = _read_labels(report, where, PAIR, label_scale, held)
    report.annotation_rows_rejected += int(np.isnan(value).sum())
    return [
        (*row[:3], float(p), row[4], str(row[5]), row[6])
        for row, p in zip(rows, value, strict=True)
        if not np.isnan(p)
    ]


def _annotation_row(record: dict, mapping: dict[str, str], known: set, line: int) -> tuple:
    pair_id = record.get(mapping.get("pair_id"))
    if pair_id is None or str(pair_id) not in known:
        raise RowError(
            "pair_id",
            "missing" if pair_id is None else f"unknown pair id {pair_id!r}: no loaded pair has it",
        )
    annotator = record.get(mapping.get("annotator"))
    if annotator in (None, "") or isinstance(annotator, (dict, list)):
        raise RowError("annotator", "missing" if annotator in (None, "") else "must be a string")
    label = label_field(record, mapping.get("label"))
    position = record.get("chosen_position")
    if position is not None:
        position = {"a": "a", "first": "a", "1": "a", "b": "b", "second": "b", "2": "b"}.get(
            str(position).lower()
        )
        if position is None:
            raise RowError("chosen_position", "expected a/b (or first/second)")
    return str(pair_id), str(annotator), None, label, position, record[mapping["label"]], line


def _labels(value: np.ndarray) -> np.ndarray:
    return np.where(value > 0.5, "chosen", np.where(value < 0.5, "rejected", "tie"))


def _fingerprint(
    data_hash: str, report: LoadReport, max_chars: int, label_scale: Any, ratings: tuple
) -> str:
    """The input's identity: its bytes plus how they were read (shape, mapping, limits, the
    label scales, declared or identified, and for ratings the score and binarisation)."""
    digest = xxhash.xxh3_128(data_hash.encode())
    digest.update(f"{report.shape}|{sorted(report.mapping.items())}|{max_chars}".encode())
    if label_scale is not None or report.label_scales:
        scales = [(e["column"], e["scale"]["spec"]) for e in report.label_scales]
        declared = "" if label_scale is None else parse_scale(label_scale).spec
        digest.update(f"|{declared}|{scales}".encode())
    if report.shape == "ratings":
        digest.update(f"|ratings {ratings}".encode())
    return digest.hexdigest()
