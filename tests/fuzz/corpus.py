"""Odd and malformed inputs for prefaudit, made from a ``random.Random``: the fuzz tests draw
them through hypothesis (``st.randoms``), ``benchmarks/fuzz.py`` from seeds, so both run the
same cases.

A :class:`Case` is the files of one command line: the data (JSONL, JSON, CSV, TSV, Parquet,
sometimes gzipped, sometimes damaged) and what an option reads (``--against``,
``--coverage-reference``, ``--annotations``, ``--rules``, ``--policy``, ``--baseline``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

ODD_TEXT = [
    "",
    " ",
    "plain text",
    "ünïcödé ✓ 中文 العربية",
    "bidi \u202eevil\u202c and zero\u200bwidth",
    "nul \x00 byte",
    "<script>alert(1)</script>",
    "line\nbreak\r\nand\rcarriage",
    "\ufeffbom inside",
    "a" * 3_000,
    "emoji 🧪🧪",
    "'quotes' \"double\" `back`",
    "{{ template }} {% tag %}",
    "\\u0000 escaped",
]
KEYS = ["prompt", "chosen", "rejected", "id", "pair_id", "instruction", "output_1", "output_2"]
KEYS += ["response_a", "response_b", "label", "preference", "annotator", "messages", "source"]
LABELS = ["chosen", "rejected", "tie", "a", "b", "A", "B", 1, 2, 0, 0.5, "1", "", None, "maybe"]
LABELS += [-3, 3, 7, "A>>B", "B>A", "tie (bothbad)"]  # graded scales, Arena's winners
LABEL_SCALES = ["-3..3", "1..7", "7..1", "1..2", "0..1", "labels", "1..1", "seven"]
RULES = [
    "version: 1\nmetrics:\n  content/identical_pairs: {max: 0, severity: error}\n",
    "version: 1\nmetrics:\n  duplication/exact_rate: {max: 0.1, severity: warn}\n"
    "pairs:\n  - {check: unique_pair_ids, severity: error}\n",
    "version: 1\nmetrics:\n  load/rejected_rate: {max: 0}\n  coverage/clusters: {min: 50}\n",
    "version: 1\nmetrics:\n  no/such_metric: {max: 1}\n",
    "version: 1\nmetrics:\n  content/identical_pairs: {max: [1]}\n",
    "version: 1\nmetrics: [1, 2\n",
    "version: 1\nrules:\n  - 3\n",
    "version: 2\n",
    "",
    "version: 1\nclean:\n  drop: [content]\n",
    "version: 1\nclean:\n  drop: [content, duplication]\n  dedupe: true\n",
    "version: 1\nclean:\n  drop: [nope]\n  flip_min_noise: 2\n",
    "version: 1\nclean:\n  drop: [label_noise]\n  weights: {label_noise: 0.5}\n",
    "\x00\x01 binary",
]


@dataclass
class Case:
    """One command line and the files it reads (names relative to a working folder)."""

    command: str
    data: str
    files: dict[str, bytes] = field(default_factory=dict)
    options: list[str] = field(default_factory=list)
    again: bool = False  # run a second time, into the folder the first run wrote

    def write(self, folder: Path) -> list[str]:
        """Write the files into ``folder``; the argv for ``prefaudit.cli.main``."""
        for name, content in self.files.items():
            (folder / name).write_bytes(content)
        args = [a if not a.startswith("@") else str(folder / a[1:]) for a in self.options]
        return [self.command, str(folder / self.data), *args]


def generate(rng: random.Random) -> Case:
    """A random case: a data file of a random type and shape, and sometimes option files."""
    records = [_record(rng) for _ in range(rng.choice([0, *range(1, 13), *range(4, 13)]))]
    kind = rng.choice(["jsonl"] * 4 + ["json", "csv", "tsv", "parquet"])
    content = _encode(rng, kind, records)
    name = f"data.{kind}"
    if rng.random() < 0.2:
        content, name = gzip.compress(content), name + ".gz"
    if rng.random() < 0.15:
        content = _damage(rng, content)
    case = Case("audit", name, {name: content}, ["--out", "@out"])
    for _ in range(rng.choice([0, 0, 1, 2])):
        _add_option(rng, case, records)
    case.again = rng.random() < 0.2
    return case


def _text(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return f"{rng.choice(['what', 'how', 'why'])} {rng.randint(0, 9)} {rng.choice(ODD_TEXT)}"
    return rng.choice(ODD_TEXT)


def _value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if roll < 0.55 or depth > 2:
        return _text(rng)
    if roll < 0.65:
        return rng.choice([None, True, 0, -1, 1.5, float("nan"), 10**30])
    if roll < 0.8:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.9:
        role = rng.choice(["user", "assistant", "system", "bot", 3])
        return [{"role": role, "content": _value(rng, depth + 1)} for _ in range(rng.randint(1, 3))]
    return {"nested": _value(rng, depth + 1)}


def _record(rng: random.Random):
    roll = rng.random()
    if roll < 0.6:  # a valid pair, sometimes with extras
        record = {"prompt": _text(rng), "chosen": _text(rng), "rejected": _text(rng)}
        if rng.random() < 0.3:
            record[rng.choice(["id", "pair_id", "annotator", "source"])] = _text(rng)[:20]
        return record
    if roll < 0.68:  # pairwise with a label
        keys = ("prompt", "response_a", "response_b")
        return {**{k: _text(rng) for k in keys}, "label": rng.choice(LABELS)}
    if roll < 0.74:  # chat message lists
        return {"chosen": _value(rng, 2) or [], "rejected": _value(rng, 2) or []}
    if roll < 0.93:  # any keys, any values
        return {rng.choice(KEYS): _value(rng) for _ in range(rng.randint(0, 5))}
    return rng.choice([[], [1, 2], "a string", 7, None, "[" * 300 + "]" * 300])


def _encode(rng: random.Random, kind: str, records: list) -> bytes:
    if kind == "json":
        document = records if rng.random() < 0.7 else {"data": records}
        return json.dumps(document, allow_nan=True).encode("utf-8", "surrogatepass")
    if kind in ("csv", "tsv"):
        return _table_text(rng, records, "\t" if kind == "tsv" else ",")
    if kind == "parquet":
        return _parquet(records)
    end = rng.choice([b"\n", b"\n", b"\r\n", b"\r"])
    lines = []
    for record in records:
        line = record if isinstance(record, str) and record.startswith("[[") else None
        line = line or json.dumps(record, allow_nan=True, ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.1:
            line = line[: rng.randint(0, len(line))]  # a line cut short
        lines.append(line.encode("utf-8", "surrogatepass"))
        if rng.random() < 0.05:
            lines.append(rng.choice([b"", b"   ", b"\xff\xfe not utf-8", b"\x00\x00"]))
    head = b"\xef\xbb\xbf" if rng.random() < 0.1 else b""
    return head + end.join(lines) + (end if rng.random() < 0.8 else b"")


def _table_text(rng: random.Random, records: list, delimiter: str) -> bytes:
    columns = sorted({k for r in records if isinstance(r, dict) for k in r}) or ["prompt"]
    if rng.random() < 0.2:
        columns = columns[:-1]  # a column the rows have is missing from the header
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(columns)
    for record in records:
        row = record if isinstance(record, dict) else {}
        cells = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in row.values()]
        if rng.random() < 0.2:  # a row with fewer cells than the header
            cells = cells[: rng.randint(0, len(cells))]
        writer.writerow(cells or [""])
    text = buffer.getvalue()
    if rng.random() < 0.1:
        text = text.replace('"', "", 1)  # an unbalanced quote
    return text.encode("utf-8", "surrogatepass")


def _parquet(records: list) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [r for r in records if isinstance(r, dict)]
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        columns = sorted({k for r in rows for k in r})
        table = pa.table({c: [None if c not in r else str(r[c]) for r in rows] for c in columns})
    buffer = io.BytesIO()
    try:
        pq.write_table(table, buffer)
    except (pa.ArrowException, ValueError):  # e.g. a struct with no fields
        pq.write_table(pa.table({"prompt": [str(r) for r in rows]}), buffer)
    return buffer.getvalue()


def _damage(rng: random.Random, content: bytes) -> bytes:
    if not content:
        return content
    if rng.random() < 0.5:
        return content[: rng.randint(0, len(content) - 1)]  # truncated
    raw = bytearray(content)
    start = rng.randrange(len(raw))
    for i in range(start, min(len(raw), start + rng.randint(1, 64))):
        raw[i] ^= rng.randint(1, 255)
    return bytes(raw)


def _add_option(rng: random.Random, case: Case, records: list) -> None:
    option = rng.choice(
        ["--against", "--coverage-reference", "--annotations", "--rules", "--policy", "--baseline"]
        + ["--label-scale"]
    )
    needs = {"--rules": "check", "--baseline": "check", "--policy": "clean"}.get(option)
    if option in case.options or (needs and case.command not in ("audit", needs)):
        return  # one command per case
    if option == "--label-scale":
        if not any(o.startswith(option) for o in case.options):
            case.options.append(f"{option}={rng.choice(LABEL_SCALES)}")
        return
    if option in ("--against", "--coverage-reference"):
        name = rng.choice(["prompts.txt", "prompts.jsonl", "prompts.txt.gz"])
        lines = [_text(rng).replace("\n", " ") for _ in range(rng.randint(0, 6))]
        content = "\n".join(lines).encode("utf-8", "surrogatepass")
        if name.endswith(".jsonl"):
            content = b"\n".join(json.dumps({"prompt": line}).encode() for line in lines)
        if name.endswith(".gz"):
            content = gzip.compress(content)
            if rng.random() < 0.3:
                content = content[: len(content) // 2]
        case.files[name] = content
    elif option == "--annotations":
        name = "annotations.jsonl"
        rows = [
            {"pair_id": _text(rng)[:8], "annotator": f"r{rng.randint(0, 3)}", "label": lab}
            for lab in rng.choices(LABELS, k=rng.randint(0, 8))
        ]
        case.files[name] = b"\n".join(json.dumps(r).encode() for r in rows)
    elif option in ("--rules", "--policy"):
        name = "rules.yaml"
        case.files[name] = rng.choice(RULES).encode()
        case.command = "check" if option == "--rules" else "clean"
    else:
        if case.command != "check":
            case.command = "check"
            case.files["rules.yaml"] = RULES[0].encode()
            case.options += ["--rules", "@rules.yaml"]
        name = "baseline.json"
        plausible = b'{"validators": {"content": {"metrics": {"content/identical_pairs": 0}}}}'
        case.files[name] = rng.choice([b"{}", b"[1]", b"not json", b'{"validators": 3}', plausible])
    case.options += [option, f"@{name}"]


@dataclass
class Outcome:
    code: int
    problems: list[str]  # broken promises; empty when the run kept them all
    stderr: str


def run(case: Case, folder: Path) -> Outcome:
    """Run ``case`` in-process in ``folder`` and check what prefaudit promises: exit 0, 1
    (``check`` only) or 2, never 3; exit 2 with a one-line message that names a file or an
    option, not a traceback; nothing written outside ``--out``; on success, an audit folder
    whose rows are all accounted for, whose report can be drawn again; run again into that
    folder, the same exit code and the same promises."""
    argv = case.write(folder)
    before = {p for p in folder.rglob("*")}
    code, stderr = _main(argv)
    problems = _promises(case, folder, code, stderr)
    out = folder / "out"
    if code in (0, 1):
        problems += _consistent(out)
        again, message = _main(["report", str(out)])
        if again != 0:
            problems.append(f"report of the folder: exit {again} ({message.strip()})")
    if case.again:
        again, message = _main(argv)
        if again != code:
            problems.append(f"run again into its own folder: exit {again}, was {code}")
        problems += _promises(case, folder, again, message)
        stderr += message
    written = {p for p in folder.rglob("*")} - before
    outside = sorted(str(p.relative_to(folder)) for p in written if out not in (p, *p.parents))
    if outside:
        problems.append(f"written outside --out: {outside}")
    return Outcome(code, problems, stderr)


def _main(argv: list[str]) -> tuple[int, str]:
    import contextlib

    from prefaudit.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse
            code = exit.code if isinstance(exit.code, int) else 2
    return code, stderr.getvalue()


def _promises(case: Case, folder: Path, code: int, stderr: str) -> list[str]:
    problems = []
    allowed = {0, 2} | ({1} if case.command == "check" else set())
    if code not in allowed:
        problems.append(f"exit {code}")
    if code == 2:
        if "Traceback" in stderr:
            problems.append("a traceback for an input error")
        error = next((line for line in stderr.splitlines() if "error:" in line), "")
        files = [str(folder / name) for name in (case.data, *case.files, "out")]
        if not any(name in error for name in files) and not re.search(r"--[a-z]", error):
            problems.append(f"an exit-2 message that names no file nor option: {error!r}")
    return problems


def _consistent(out: Path) -> list[str]:
    import orjson
    import pandas as pd

    audit = orjson.loads((out / "audit.json").read_bytes())
    load = audit["load"]
    problems = []
    if load["rows_read"] != load["rows_accepted"] + load["rows_rejected"]:
        problems.append(f"rows read {load['rows_read']} != accepted + rejected")
    rejected = (out / "rejected.jsonl").read_bytes().splitlines()
    expected = load["rows_rejected"] + load["annotation_rows_rejected"]
    if len(rejected) != expected:
        problems.append(f"rejected.jsonl has {len(rejected)} rows, not {expected}")
    if len(pd.read_parquet(out / "flags.parquet")) != load["pairs"]:
        problems.append("flags.parquet and audit.json count other pairs")
    return problems
