"""Readers: turn a file, folder or hub name into a stream of (line, record) items.

A reader never drops a row: each item is either a dict record or a :class:`LoadIssue`
saying why that row could not be read (bad JSON, bad bytes, wrong type...).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import gzip
import io
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import xxhash

from prefaudit.io.schema import LoadError, LoadIssue, describe_type

FILE_TYPES = ("jsonl", "json", "csv", "tsv", "parquet", "hf_disk", "hf_hub")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_BOM = b"\xef\xbb\xbf"
# The most bytes one JSON Lines line or CSV line may take: a longer one is rejected without
# being held in memory (a file that is one huge line, a pasted dump). The loader raises it
# with --max-chars, so that any row whose texts fit fits (see :func:`line_limit`).
MAX_LINE_BYTES = 64 << 20
_KEPT = 100_000  # bytes of an over-long line kept in its rejection

Item = tuple[int, "dict[str, Any] | LoadIssue"]


@dataclass
class RecordSource:
    """An opened input: its display name, what its positions count, and its records."""

    name: str
    file_type: str
    unit: str  # "line" or "record"
    items: Iterator[Item]
    notes: list[str]
    fingerprint: xxhash.xxh3_128
    position: int = 0  # the last line or record read, for error messages
    max_line_bytes: int = MAX_LINE_BYTES


def detect_file_type(path: str) -> str:
    """File type from the name (``.gz`` is looked through), a folder (``FOLDER:SPLIT`` too), or
    an ``hf:`` prefix."""
    if path.startswith("hf:"):
        return "hf_hub"
    p = Path(path)
    if p.is_dir() or split_suffix(path)[1] is not None:
        return "hf_disk"
    folder, colon, split = path.rpartition(":")
    if colon and split and Path(folder).is_file():
        raise LoadError(
            f"{path}: a split (':{split}') is for a folder written by datasets' save_to_disk or "
            f"an hf: dataset; {folder} is a file: give it without ':{split}'"
        )
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".gzip"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    raise LoadError(
        f"{path}: cannot tell the file type from its name; expected one of "
        f"{', '.join(sorted(_SUFFIXES))} (optionally .gz), a `save_to_disk` folder, or hf:org/name"
    )


def split_suffix(path: str) -> tuple[str, str | None]:
    """``(folder, split)`` for a local ``FOLDER:SPLIT`` ("data/prefs:test"), else ``(path,
    None)``. A path that exists as given wins (a folder named "a:b"); so does a Windows drive
    ("C:prefs" is the folder prefs on drive C; write ./C:test for a folder named C)."""
    if path.startswith("hf:") or Path(path).exists():
        return path, None
    folder, colon, split = path.rpartition(":")
    if not (colon and folder and split) or any(c in split for c in "/\\"):
        return path, None
    if len(folder) == 1 and folder.isalpha():  # a drive letter, not a folder
        return path, None
    return (folder, split) if Path(folder).is_dir() else (path, None)


def line_limit(max_chars: int) -> int:
    """The line limit for texts of up to ``max_chars`` characters: a row holds three (a
    conversational one repeats the prompt), each up to 12 bytes a character as JSON escapes
    (an emoji is two \\uXXXX), and other fields."""
    return max(MAX_LINE_BYTES, 64 * max_chars)


def open_records(
    path: str, file_type: str | None = None, *, max_line_bytes: int = MAX_LINE_BYTES
) -> RecordSource:
    """Open ``path`` and return its records; raises :class:`LoadError` if it cannot be opened.
    A line over ``max_line_bytes`` is a rejected row, read past without being kept."""
    file_type = file_type or detect_file_type(path)
    if file_type not in FILE_TYPES:
        raise LoadError(
            f"{path}: unknown file_type {file_type!r}; expected one of {FILE_TYPES}",
            setting="file_type",
        )
    if file_type in ("hf_disk", "hf_hub"):
        return _open_hf(path, file_type)
    p = Path(path)
    if not p.exists():
        raise LoadError(f"{path}: no such file")
    if p.is_dir():
        raise LoadError(f"{path}: is a folder; expected a {file_type} file")
    source = RecordSource(
        path, file_type, "line", iter(()), [], xxhash.xxh3_128(), max_line_bytes=max_line_bytes
    )
    if file_type == "jsonl":
        source.items = _jsonl_items(p, source)
    elif file_type == "json":
        source.unit = "record"
        source.items = _json_items(p, source)
    elif file_type in ("csv", "tsv"):
        source.items = _csv_items(p, source, "\t" if file_type == "tsv" else ",")
    else:
        source.unit = "record"
        source.items = _parquet_items(p, source)
    return source


def read_all(path: Path) -> bytes:
    """The bytes of ``path`` (gunzipped when it is gzip); a damaged, truncated or unreadable
    file is a :class:`LoadError` that says so."""
    source = RecordSource(str(path), "text", "line", iter(()), [], xxhash.xxh3_128())
    with _damage_reported(path, source), _open_binary(path) as handle:
        return handle.read()


def _open_binary(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


@contextlib.contextmanager
def _damage_reported(path: Path, source: RecordSource):
    """A damaged file (truncated gzip, bad compressed data) is an error that says where."""
    try:
        yield
    except (PermissionError, FileNotFoundError, IsADirectoryError) as err:
        raise LoadError(f"{path}: cannot be read ({err.strerror})") from err
    except (EOFError, OSError, zlib.error) as err:
        if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):  # the disk, not the file
            raise
        where = f" after {source.unit} {source.position}" if source.position else ""
        raise LoadError(
            f"{path}: the file is damaged or truncated{where} ({err}); no row was loaded"
        ) from err


def _utf8_problem(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"invalid UTF-8: byte 0x{raw[err.start]:02x} at column {err.start + 1}"
    return ""


def _jsonl_items(path: Path, source: RecordSource) -> Iterator[Item]:
    with _damage_reported(path, source):
        yield from _jsonl_lines(path, source)


def _jsonl_lines(path: Path, source: RecordSource) -> Iterator[Item]:
    crlf = 0
    with _open_binary(path) as handle:
        head = handle.peek(_PEEK)[:_PEEK] if hasattr(handle, "peek") else b""
        end = b"\n"
        if b"\r" in head and b"\n" not in head:
            end = b"\r"
            source.notes.append(f"{path}: lines end in CR only (old Mac line ends); read as LF")
        lines = _bounded_lines(handle, end, source.max_line_bytes, source.fingerprint)
        for number, raw in enumerate(lines, 1):
            source.position = number
            if isinstance(raw, _Overlong):
                yield number, raw.issue(path, number, source.max_line_bytes)
                continue
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
                source.notes.append(f"{path}: starts with a UTF-8 byte-order mark; it was skipped")
            if raw.endswith(b"\r\n"):
                crlf += 1
            if not raw.strip():
                continue  # blank lines are not rows
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                reason = _utf8_problem(raw) or f"malformed JSON: {err}"
                yield number, LoadIssue(str(path), number, None, reason, record=_raw_text(raw))
                continue
            if not isinstance(record, dict):
                reason = f"expected a JSON object, got {describe_type(record)}"
                yield number, LoadIssue(str(path), number, None, reason, record=record)
                continue
            yield number, record
    if crlf:
        source.notes.append(f"{path}: {crlf} lines end in CRLF (Windows line ends); read as LF")


_PEEK = 1 << 16  # bytes looked at to tell the line-end convention


@dataclass
class _Overlong:
    """A line longer than the limit: its first bytes and its size (the rest was not kept)."""

    head: bytes
    size: int

    def issue(self, path: Path, number: int, limit: int) -> LoadIssue:
        reason = f"the line has {self.size:,} bytes, over the {limit:,} a row may take"
        return LoadIssue(str(path), number, None, reason, record=_raw_text(self.head) + " [...]")


def _bounded_lines(handle, end: bytes, limit: int, digest) -> Iterator[bytes | _Overlong]:
    """The lines of ``handle`` (each with its ``end``), every byte fed to ``digest``; a line
    of over ``limit`` bytes comes as an :class:`_Overlong`, read past in pieces, never whole."""
    if end == b"\r":
        yield from _cr_lines(handle, limit, digest)
        return
    while line := handle.readline(limit + 1):
        digest.update(line)
        if len(line) <= limit or line.endswith(end):
            yield line
            continue
        overlong = _Overlong(line[:_KEPT], len(line))
        while not line.endswith(end) and (line := handle.readline(1 << 20)):
            digest.update(line)
            overlong.size += len(line)
        yield overlong


def _cr_lines(handle, limit: int, digest) -> Iterator[bytes | _Overlong]:
    """:func:`_bounded_lines` for a file whose lines end in CR alone."""
    pieces: list[bytes] = []
    size, overlong = 0, None
    while block := handle.read(1 << 20):
        digest.update(block)
        *lines, tail = block.split(b"\r")
        for part in lines:
            size += len(part)
            if overlong is None and size <= limit:
                yield b"".join([*pieces, part, b"\r"])
            else:
                overlong = overlong or _Overlong(b"".join([*pieces, part])[:_KEPT], 0)
                overlong.size = size + 1  # with its CR
                yield overlong
            pieces, size, overlong = [], 0, None
        size += len(tail)
        if overlong is None and size > limit:
            overlong, pieces = _Overlong(b"".join([*pieces, tail])[:_KEPT], size), []
        elif overlong is None:
            pieces.append(tail)
    if overlong is not None:
        overlong.size = size
        yield overlong
    elif size:
        yield b"".join(pieces)


_WHOLE = 64 << 20  # a .json file up to this size is parsed at once (orjson); above, streamed


def _json_items(path: Path, source: RecordSource) -> Iterator[Item]:
    """The records of a JSON document: a list streamed one record at a time (ijson) when the
    file is large, else parsed whole (orjson: faster); an object holding the list under one
    key is parsed whole."""
    with _damage_reported(path, source), _open_binary(path) as handle:
        hashed = io.BufferedReader(_Hashing(handle, source.fingerprint), 1 << 20)
        raw = hashed.read(_WHOLE + 1)
        if raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
            source.notes.append(f"{path}: starts with a UTF-8 byte-order mark; it was skipped")
        if len(raw) > _WHOLE and raw.lstrip()[:1] == b"[":
            yield from _streamed_records(path, source, _Joined(raw, hashed))
            return
        raw += hashed.read()
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        if raw.lstrip()[:1] == b"{" and b"\n" in raw.strip():
            # Many ".json" files are JSON Lines; read them as such, with their line numbers.
            source.unit = "line"
            source.file_type = "jsonl"
            source.notes.append(f"{path}: holds one JSON object per line; read as JSON Lines")
            source.fingerprint = xxhash.xxh3_128()
            yield from _jsonl_lines(path, source)
            return
        raise LoadError(f"{path}: not valid JSON ({_utf8_problem(raw) or err})") from err
    for number, record in enumerate(_json_records(document, path), 1):
        yield _json_record(path, number, record)


def _streamed_records(path: Path, source: RecordSource, stream) -> Iterator[Item]:
    import ijson

    number = 0
    try:
        for record in ijson.items(stream, "item", use_float=True):
            number = source.position = number + 1
            yield _json_record(path, number, record)
    except ijson.JSONError as err:
        raise LoadError(f"{path}: not valid JSON after record {number} ({err})") from err


def _json_record(path: Path, number: int, record: Any) -> Item:
    """Record ``number`` of a JSON list: an object, or a rejected row saying what it was."""
    if isinstance(record, dict):
        return number, record
    reason = f"expected a JSON object, got {describe_type(record)}"
    return number, LoadIssue(str(path), number, None, reason, unit="record", record=record)


class _Joined:
    """Bytes already read, then the rest of a file: one stream to read on."""

    def __init__(self, head: bytes, rest):
        self._head, self._rest = memoryview(head), rest

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(size)
        size = len(self._head) if size < 0 else size
        part, self._head = bytes(self._head[:size]), self._head[size:]
        return part


def _json_records(document: Any, path: Path) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        # An object holding the records under one key ({"data": [{...}, ...]}); otherwise the
        # object is itself the one record (its list fields are values, not records).
        lists = [  # most of its items records: the others are rejected rows, with numbers
            k
            for k, v in document.items()
            if isinstance(v, list) and v and 2 * sum(isinstance(x, dict) for x in v) > len(v)
        ]
        if len(lists) == 1:
            return document[lists[0]]
        if not lists:
            return [document]
        raise LoadError(
            f"{path}: a JSON object with several lists ({', '.join(lists)}); "
            "expected a list of records, or an object holding exactly one"
        )
    raise LoadError(f"{path}: expected a list of JSON objects, got {describe_type(document)}")


def _csv_items(path: Path, source: RecordSource, delimiter: str) -> Iterator[Item]:
    with _damage_reported(path, source):
        yield from _csv_rows(path, source, delimiter)


def _csv_rows(path: Path, source: RecordSource, delimiter: str) -> Iterator[Item]:
    limit = source.max_line_bytes
    csv.field_size_limit(limit)  # a field over many lines: each bounded, and their sum too
    with _open_binary(path) as binary:
        head = binary.peek(3)[:3] if hasattr(binary, "peek") else b""
        text = io.TextIOWrapper(
            io.BufferedReader(_Hashing(binary, source.fingerprint)),
            encoding="utf-8",
            errors="surrogateescape",
            newline="",
        )
        if head == _BOM:
            text.read(1)
            source.notes.append(f"{path}: starts with a UTF-8 byte-order mark; it was skipped")
        reader = csv.reader(_bounded_text(text, limit, path), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            raise LoadError(
                f"{path}, line 1: the header repeats the column(s) {', '.join(repeated)}; rename them"
            )
        for number, values in _csv_records(reader, source, path):
            yield from _csv_record(path, number, header, values)


_NO_RESYNC = (
    "the rows after it cannot be found: fix the file, or raise --max-chars (the limit grows "
    "with it)"
)


def _csv_records(reader, source: RecordSource, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each record of ``reader``, blank lines skipped. A record the
    csv module refuses (a field over the limit, spread over many lines) ends the file with a
    :class:`LoadError`: the parser cannot find the next record's start after it."""
    end_of_previous = reader.line_num
    while True:
        number = end_of_previous + 1
        source.position = number
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise LoadError(
                f"{path}, line {number}: cannot be read as CSV ({err}); {_NO_RESYNC}"
            ) from err
        end_of_previous = reader.line_num
        if values and values != [""]:
            yield number, values


def _csv_record(path: Path, number: int, header: list[str], values: list[str]) -> Iterator[Item]:
    if len(values) != len(header):
        reason = f"has {len(values)} fields, the header has {len(header)}"
        record = [_clean(v) for v in values]
        yield number, LoadIssue(str(path), number, None, reason, record=record)
        return
    record = dict(zip(header, values, strict=True))
    bad = next((k for k, v in record.items() if _has_surrogates(v)), None)
    if bad is not None:
        raw = record[bad].encode("utf-8", "surrogateescape")
        kept = {k: _clean(v) for k, v in record.items()}
        yield number, LoadIssue(str(path), number, bad, _utf8_problem(raw), record=kept)
        return
    yield number, record


def _bounded_text(text, limit: int, path: Path) -> Iterator[str]:
    """The lines of ``text`` for the csv module. A line of over ``limit`` characters is a
    :class:`LoadError` naming it, read no further: after a line it could not read, a CSV
    parser cannot know whether the next line starts a record or continues a quoted field, so
    the rows after it could not be accounted for."""
    number = 0
    while line := text.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(("\n", "\r")):
            raise LoadError(
                f"{path}, line {number}: over {limit:,} characters, more than a row may take; "
                + _NO_RESYNC
            )
        yield line


class _Hashing(io.RawIOBase):
    """A read-through wrapper that feeds every byte read into the input's fingerprint."""

    def __init__(self, inner, digest):
        self._inner, self._digest = inner, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(len(buffer))
        self._digest.update(data)
        buffer[: len(data)] = data
        return len(data)


def _raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace").rstrip("\r\n")


def _clean(value: str) -> str:
    """Undecodable bytes kept visible as \\xNN escapes."""
    return _raw_text(value.encode("utf-8", "surrogateescape"))


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _parquet_items(path: Path, source: RecordSource) -> Iterator[Item]:
    import pyarrow.parquet as pq

    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            source.fingerprint.update(block)

    import pyarrow as pa

    with contextlib.ExitStack() as stack:
        data: Any = path
        with _damage_reported(path, source), _open_binary(path) as handle:
            if isinstance(handle, gzip.GzipFile):  # Parquet needs random access: unpacked
                data = stack.enter_context(tempfile.TemporaryFile(prefix="prefaudit-"))
                shutil.copyfileobj(handle, data, 1 << 20)  # into a file, not into memory
                data.seek(0)
        try:
            parquet = pq.ParquetFile(data)
        except (pa.ArrowInvalid, OSError) as err:
            raise LoadError(f"{path}: not a readable Parquet file ({err})") from err
        yield from _parquet_groups(path, parquet)


def _parquet_groups(path: Path, parquet) -> Iterator[Item]:
    import pyarrow as pa

    number = 0
    for group in range(parquet.num_row_groups):
        # A damaged page (corrupt compressed data, a bad header, invalid UTF-8 in a string
        # column) spoils its row group: the rows of it not read are rejected, the rest loads.
        left = parquet.metadata.row_group(group).num_rows
        try:
            for batch in parquet.iter_batches(batch_size=8192, row_groups=[group]):
                for record in batch.to_pylist():
                    number, left = number + 1, left - 1
                    yield number, record
        except (pa.ArrowException, OSError) as err:
            reason = f"in row group {group + 1}, which cannot be read ({err})"
            for _ in range(left):
                number += 1
                yield number, LoadIssue(str(path), number, None, reason, unit="record")


def open_table(table: Any) -> RecordSource:
    """Records of an in-memory table: a pandas ``DataFrame`` or a Hugging Face ``Dataset``
    (each row one record, numbered from 1). The fingerprint hashes every record's JSON."""
    kind = type(table).__name__
    if hasattr(table, "to_dict") and hasattr(table, "columns"):  # pandas
        records = table.to_dict(orient="records")
    elif hasattr(table, "column_names") and hasattr(table, "__iter__"):  # datasets.Dataset
        records = table
    else:
        raise LoadError(
            f"cannot load a {kind}: expected a path, a pandas DataFrame or a datasets.Dataset"
        )
    source = RecordSource(f"<{kind}>", kind, "record", iter(()), [], xxhash.xxh3_128())

    def items() -> Iterator[Item]:
        for number, record in enumerate(records, 1):
            source.fingerprint.update(
                orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
            )
            yield number, record

    source.items = items()
    return source


def _open_hf(path: str, file_type: str) -> RecordSource:
    try:
        import datasets
    except ImportError as err:
        raise LoadError(
            f"{path}: reading Hugging Face datasets needs the `datasets` package: "
            "pip install 'prefaudit[hf]'"
        ) from err
    split = None
    try:
        if file_type == "hf_hub":
            name, _, split = path[3:].partition(":")
            dataset = datasets.load_dataset(name, split=split or "train")
        else:
            folder, split = split_suffix(path)
            dataset = datasets.load_from_disk(folder)
    except FileNotFoundError as err:
        raise LoadError(f"{path}: not a folder written by datasets' save_to_disk ({err})") from err
    except Exception as err:  # hub, network and format errors of the datasets library
        raise LoadError(f"{path}: could not load the dataset: {type(err).__name__}: {err}") from err
    source = RecordSource(path, file_type, "record", iter(()), [], xxhash.xxh3_128())
    if isinstance(dataset, datasets.DatasetDict):
        dataset = dataset[_chosen_split(path, list(dataset), split, source.notes)]
    elif split and file_type == "hf_disk":
        raise LoadError(
            f"{path}: {folder} holds one dataset, without splits; give it without ':{split}'"
        )
    source.fingerprint.update(str(getattr(dataset, "_fingerprint", path)).encode())
    source.items = ((n, r) for n, r in enumerate(dataset, 1))
    return source


def _chosen_split(path: str, splits: list[str], split: str | None, notes: list[str]) -> str:
    """The split of a ``DatasetDict`` to read: the one named (``FOLDER:SPLIT``), else ``train``,
    else the first (with a note naming the others)."""
    if split:
        if split not in splits:
            raise LoadError(
                f"{path}: no split {split!r}; the folder has {', '.join(map(repr, splits))}"
            )
        return split
    split = "train" if "train" in splits else splits[0]
    notes.append(
        f"{path}: has splits {', '.join(splits)}; read {split!r} (FOLDER:SPLIT reads another)"
    )
    return split
