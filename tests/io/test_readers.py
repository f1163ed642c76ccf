import gzip
import json

import pandas as pd
import pytest

from prefaudit.io import LoadError, load
from prefaudit.io.readers import detect_file_type
from tests.helpers import pair, write_lines

ROWS = [pair("Q1", "A1", "B1"), pair("Q2", "A2", "B2"), pair("Q3", "A3", "B3")]


def _texts(data):
    return data.pairs[["prompt", "chosen", "rejected"]].values.tolist()


EXPECTED = [["Q1", "A1", "B1"], ["Q2", "A2", "B2"], ["Q3", "A3", "B3"]]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".ndjson"])
def test_jsonl_plain_and_gzip(tmp_path, suffix):
    path = tmp_path / f"pairs{suffix}"
    body = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    path.write_bytes(gzip.compress(body) if suffix.endswith(".gz") else body)
    data = load(str(path))
    assert _texts(data) == EXPECTED
    assert data.report.file_type == "jsonl"
    assert data.pairs["row"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("wrap", [lambda rows: rows, lambda rows: {"data": rows}])
def test_json_document(tmp_path, wrap):
    path = tmp_path / "pairs.json.gz"
    path.write_bytes(gzip.compress(json.dumps(wrap(ROWS)).encode()))
    data = load(str(path))
    assert _texts(data) == EXPECTED
    assert data.report.file_type == "json"


def test_json_file_holding_json_lines_is_read_as_lines(tmp_path):
    path = write_lines(tmp_path / "pairs.json", ROWS)
    data = load(str(path))
    assert _texts(data) == EXPECTED
    assert any("one JSON object per line" in n for n in data.report.notes)


def test_json_element_that_is_not_an_object_is_rejected(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([ROWS[0], [1, 2], ROWS[1]]))
    data = load(str(path))
    assert data.report.pairs == 2
    (issue,) = data.report.rejected
    assert (issue.line, issue.unit, issue.reason) == (
        2,
        "record",
        "expected a JSON object, got a list",
    )


@pytest.mark.parametrize("suffix,sep", [(".csv", ","), (".tsv", "\t"), (".csv.gz", ",")])
def test_csv_and_tsv(tmp_path, suffix, sep):
    path = tmp_path / f"pairs{suffix}"
    frame = pd.DataFrame(ROWS)
    frame.loc[1, "chosen"] = 'multi\nline, with "quotes"'
    text = frame.to_csv(index=False, sep=sep).encode()
    path.write_bytes(gzip.compress(text) if suffix.endswith(".gz") else text)
    data = load(str(path))
    assert data.pairs["chosen"].tolist() == ["A1", 'multi\nline, with "quotes"', "A3"]
    # The third record starts on line 5: header, record 1, record 2 spanning two lines.
    assert data.pairs["row"].tolist() == [2, 3, 5]


def test_csv_row_with_wrong_number_of_fields(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,chosen,rejected\nQ1,A1,B1\nQ2,A2\nQ3,A3,B3\n")
    data = load(str(path))
    assert data.report.pairs == 2
    (issue,) = data.report.rejected
    assert (issue.line, issue.reason) == (3, "has 2 fields, the header has 3")


def test_csv_scores_are_parsed_as_numbers(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(
        "prompt,chosen,rejected,score_chosen,score_rejected\nQ,A,B,8.5,\nQ2,A2,B2,x,1\n"
    )
    data = load(str(path))
    assert data.pairs["score_chosen"].tolist() == [8.5]
    assert pd.isna(data.pairs["score_rejected"].iloc[0])
    (issue,) = data.report.rejected
    assert (issue.line, issue.field) == (3, "score_chosen")


def test_parquet(tmp_path):
    path = tmp_path / "pairs.parquet"
    pd.DataFrame(ROWS).to_parquet(path)
    data = load(str(path))
    assert _texts(data) == EXPECTED
    assert data.report.file_type == "parquet"


def test_byte_order_mark_is_skipped_and_reported(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in ROWS).encode())
    data = load(str(path))
    assert _texts(data) == EXPECTED
    assert any("byte-order mark" in n for n in data.report.notes)


def test_crlf_line_ends_are_read_and_reported(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes("".join(json.dumps(r) + "\r\n" for r in ROWS).encode())
    data = load(str(path))
    assert _texts(data) == EXPECTED
    assert any("3 lines end in CRLF" in n for n in data.report.notes)


@pytest.mark.parametrize("name", ["pairs.jsonl", "pairs.jsonl.gz"])
def test_cr_only_line_ends_are_read_as_lines_with_their_numbers(tmp_path, name):
    """Old Mac line ends: the rows used to read as one line, rejected with no hint."""
    import gzip

    text = "".join(json.dumps(r) + "\r" for r in ROWS).encode() + b"{broken\r"
    path = tmp_path / name
    path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    data = load(str(path))
    assert _texts(data) == EXPECTED
    assert [issue.line for issue in data.report.rejected] == [len(ROWS) + 1]
    assert any("CR only" in n for n in data.report.notes)


def test_non_utf8_bytes_reject_the_line_with_the_column(tmp_path):
    path = tmp_path / "pairs.jsonl"
    good = json.dumps(ROWS[0]).encode()
    path.write_bytes(good + b"\n" + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    data = load(str(path))
    assert data.report.pairs == 1
    (issue,) = data.report.rejected
    assert issue.line == 2
    assert issue.reason == "invalid UTF-8: byte 0xe9 at column 16"
    assert "caf\\xe9" in issue.record  # the raw line is kept for rejected.jsonl, bytes escaped


def test_non_utf8_bytes_in_csv(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"prompt,chosen,rejected\nQ,A,B\nQ2,caf\xe9,B2\n")
    data = load(str(path))
    (issue,) = data.report.rejected
    assert (issue.line, issue.field) == (3, "chosen")
    assert issue.reason.startswith("invalid UTF-8: byte 0xe9")


def test_malformed_json_and_non_objects_and_blank_lines(tmp_path):
    path = write_lines(
        tmp_path / "pairs.jsonl", [ROWS[0], '{"prompt": "x",', "", "[1, 2]", '"text"', ROWS[1]]
    )
    data = load(str(path))
    assert data.report.rows_read == 5  # the blank line is not a row
    assert data.report.pairs == 2
    reasons = {i.line: i.reason for i in data.report.rejected}
    assert reasons[2].startswith("malformed JSON")
    assert reasons[4] == "expected a JSON object, got a list"
    assert reasons[5] == "expected a JSON object, got a string"


def test_unknown_suffix_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(LoadError, match="cannot tell the file type"):
        detect_file_type(str(tmp_path / "pairs.txt"))
    with pytest.raises(LoadError, match="no such file"):
        load(str(tmp_path / "missing.jsonl"))


def test_save_to_disk_folder_and_dataset_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(folder))
    data = load(str(folder))
    assert _texts(data) == EXPECTED
    assert data.report.file_type == "hf_disk"

    both = tmp_path / "dd"
    datasets.DatasetDict(
        {"test": datasets.Dataset.from_list(ROWS[:1]), "train": datasets.Dataset.from_list(ROWS)}
    ).save_to_disk(str(both))
    data = load(str(both))
    assert len(data.pairs) == 3
    assert any("read 'train'" in n for n in data.report.notes)


def test_hub_name_goes_through_load_dataset(tmp_path, monkeypatch):
    """``hf:NAME[:split]`` calls datasets.load_dataset; a local folder stands in for the hub."""
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "hub_dataset"
    folder.mkdir()
    write_lines(folder / "train.jsonl", ROWS)
    write_lines(folder / "test.jsonl", ROWS[:1])
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    data = load(f"hf:{folder}")
    assert _texts(data) == EXPECTED
    assert data.report.file_type == "hf_hub"
    assert len(load(f"hf:{folder}:test").pairs) == 1


# --- damaged and unusual files (each found by a review) -----------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".csv.gz", ".json.gz"])
def test_truncated_gzip_is_an_error_that_says_so(tmp_path, suffix):
    path = tmp_path / f"pairs{suffix}"
    if suffix == ".csv.gz":
        body = pd.DataFrame(ROWS * 50).to_csv(index=False).encode()
    elif suffix == ".json.gz":
        body = json.dumps(ROWS * 50).encode()
    else:
        body = "".join(json.dumps(r) + "\n" for r in ROWS * 50).encode()
    path.write_bytes(gzip.compress(body)[:-30])
    with pytest.raises(LoadError, match="damaged or truncated"):
        load(str(path))


def test_parquet_gz_and_broken_parquet(tmp_path):
    plain = tmp_path / "pairs.parquet"
    pd.DataFrame(ROWS).to_parquet(plain)
    packed = tmp_path / "pairs.parquet.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert _texts(load(str(packed))) == EXPECTED
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(LoadError, match="not a readable Parquet file"):
        load(str(broken))


def test_csv_header_repeating_a_column_is_refused(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,chosen,rejected,chosen\nQ,GOOD,B,OTHER\n")
    with pytest.raises(LoadError, match="line 1: the header repeats the column.s. chosen"):
        load(str(path))


def test_a_single_json_object_with_a_list_field_is_one_record(tmp_path):
    path = tmp_path / "pair.json"
    path.write_text(json.dumps({**ROWS[0], "tags": ["x", "y"]}))
    assert _texts(load(str(path))) == [EXPECTED[0]]


def test_leading_bad_lines_do_not_hide_the_columns(tmp_path):
    path = write_lines(tmp_path / "pairs.jsonl", ["{oops"] * 250 + ROWS)
    data = load(str(path))
    assert (data.report.rows_rejected, data.report.pairs) == (250, 3)


def test_folder_that_is_not_a_dataset(tmp_path):
    pytest.importorskip("datasets")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadError, match="not a folder written by datasets' save_to_disk"):
        load(str(tmp_path / "empty"))


def test_unknown_format_through_the_api(tmp_path):
    with pytest.raises(LoadError, match="unknown format 'foo'"):
        load(str(write_lines(tmp_path / "p.jsonl", ROWS)), format="foo")


def test_a_damaged_parquet_row_group_rejects_its_rows_and_the_rest_loads(tmp_path):
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    words = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(3000)]
    rows = [
        {"prompt": " ".join(words[i : i + 8]), "chosen": " ".join(words[i + 8 : i + 20])}
        for i in range(300)
    ]
    rows = [{**row, "rejected": "no"} for row in rows]
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100, compression="snappy")
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2  # inside the second row group's pages
    raw[middle : middle + 256] = bytes(b ^ 0x5A for b in raw[middle : middle + 256])
    path.write_bytes(bytes(raw))
    data = load(str(path))
    report = data.report
    assert report.rows_read == 300 and len(data.pairs) + report.rows_rejected == 300
    assert report.rows_rejected >= 1 and len(data.pairs) >= 100
    reasons = {issue.reason for issue in report.rejected}
    assert len(reasons) == 1 and "which cannot be read" in reasons.pop()


@pytest.mark.parametrize("name,end", [("p.jsonl", "\n"), ("p.jsonl.gz", "\n"), ("p.jsonl", "\r")])
def test_a_line_over_the_limit_is_rejected_without_being_held(tmp_path, monkeypatch, name, end):
    """A file that is one huge line used to be read whole (a 100 MB line peaked at 329 MB)."""
    import tracemalloc

    from prefaudit.io import readers

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1 << 20)
    huge = json.dumps(pair("Q", "x" * (30 << 20), "B"))
    body = end.join([json.dumps(ROWS[0]), huge, json.dumps(ROWS[1]), ""]).encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(body, 1) if name.endswith(".gz") else body)
    del huge, body
    tracemalloc.start()
    data = load(str(path), max_chars=10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak:,} bytes"
    assert _texts(data) == EXPECTED[:2]
    (issue,) = data.report.rejected
    assert issue.line == 2 and issue.reason.startswith("the line has 31,457,")
    assert issue.reason.endswith("bytes, over the 1,048,576 a row may take")


def test_the_line_limit_grows_with_max_chars():
    from prefaudit.io.readers import MAX_LINE_BYTES, line_limit

    assert line_limit(1000) == MAX_LINE_BYTES
    assert line_limit(10_000_000) == 640_000_000  # a row of 10M-character texts, all escaped


@pytest.mark.parametrize(
    "body",
    [
        # One line over the limit, with a quote in an unquoted field: a parser that skipped
        # it could not know whether the next line starts a record (rows were lost silently).
        'prompt,chosen,rejected\nQ1,A1,B1\nQ2,a 12" pizza ' + "y" * 5000 + ",B2\nQ3,A3,B3\n",
        # A quoted field over the limit spread over many short lines.
        'prompt,chosen,rejected\nQ1,A1,B1\nQ2,"' + "line\n" * 400 + '",B2\nQ3,A3,B3\n',
    ],
    ids=["long-line", "long-field"],
)
def test_a_csv_row_over_the_limit_is_exit_2_naming_its_line_never_a_silent_loss(
    tmp_path, monkeypatch, body
):
    from prefaudit.io import readers

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "p.csv"
    path.write_text(body)
    with pytest.raises(LoadError, match=r"p.csv, line 3: .*raise --max-chars"):
        load(str(path), max_chars=10)


def test_a_json_object_holding_the_records_rejects_its_bad_items_with_their_numbers(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"meta": {"v": 1}, "data": [ROWS[0], "junk", ROWS[1], ROWS[2]]}))
    data = load(str(path))
    assert _texts(data) == EXPECTED
    assert [(i.line, i.reason) for i in data.report.rejected] == [
        (2, "expected a JSON object, got a string")
    ]


def test_a_large_json_list_is_streamed_with_the_same_result(tmp_path, monkeypatch):
    from prefaudit.io import readers

    rows = [*ROWS, 7]
    path = tmp_path / "p.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(rows, indent=1).encode())
    whole = load(str(path))
    monkeypatch.setattr(readers, "_WHOLE", 16)  # a "large" file: streamed
    streamed = load(str(path))
    assert _texts(streamed) == _texts(whole) == EXPECTED
    assert streamed.report.fingerprint == whole.report.fingerprint
    assert [i.reason for i in streamed.report.rejected] == ["expected a JSON object, got a number"]
    path.write_bytes(json.dumps(rows).encode()[:-30])
    with pytest.raises(LoadError, match=r"p.json: not valid JSON after record 2"):
        load(str(path))
