"""The whole CPU audit (embeddings off, no reference model) at 10k, 30k and 100k distinct pairs.

    python benchmarks/bench_audit.py --baseline-checkout /tmp/audit-base [--sizes 10000,30000,100000]
                                     [--repeat 3] [--million]

Each run is ``prefaudit audit DATA --embedding-model off --out DIR`` (load, the default
validators, writing audit.json, flags.parquet and the report) in a fresh Python process, so
its peak resident memory (``ru_maxrss`` of that process, from ``os.wait4``) is its own. The
arms, this checkout and ``--baseline-checkout`` (another copy of the project, e.g. the commit
before a change: ``git archive COMMIT | tar -x -C /tmp/audit-base``), run alternately, size by
size, ``--repeat`` times; the script prints min and median seconds, the per-validator seconds
the audit itself records (``timings`` in audit.json; "rest" = load, writing outputs and the
report), peak memory, and the growth exponent b of time ~ a * n^b fitted on the log-log
medians. ``--million`` adds one run of this checkout at 1,000,000 pairs (built once, about
3 GB of text): run it once, not per change.

The pairs (``benchmarks/.cache/audit_pairs_N.parquet``, built once per size): every prompt and
every response is a distinct string, and none is a near copy of a few thousand texts. The base
pairs are the real ones in ../shared/data: AlpacaEval gpt4-dev (28,175 judged pairs, oriented
by GPT-4's preference, ties and unparsed judgements left out) and the HH-RLHF harmless pairs
(split into prompt and responses). Pair i takes base pair i mod B and changes every text:

- the prompt is followed by another real prompt drawn at random (the same instruction never
  comes back with only a number added: two prompts built on the same base share about half
  their words);
- each response gets a real response sentence drawn at random from every response of the
  files inserted between two of its sentences, and, when it has three sentences or more,
  one of its sentences replaced by another drawn sentence (newlines, lists and punctuation
  of the base text are kept).

A text that still equals one already made gets another drawn sentence until it is new
(checked on a 64-bit hash of every text built). The responses keep their length and shape,
so the text features and hashed words the audit computes cost what they cost on real data.

Distinct strings are not distinct to near-duplicate search, and this data has many near
copies: a long prompt, as the base or as the one drawn after it, makes most of the shingles
of every prompt it is in, and each response is its base with two sentences changed. At the
validator's threshold (Jaccard 0.6 of 5-byte shingles), about 74,300 of 100,000 prompts are in
about 3,270 groups (the largest 976), with 1.17 million links; 300,000 prompts have 9.5 million.
That makes the duplication validator's work grow faster than the pairs (``near_duplicate_groups``
bounds its memory, not the checks it makes); data without such reuse costs less.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
sys.path.insert(0, str(ROOT / "benchmarks"))

from realdata import SHARED, hh_pairs  # noqa: E402

_SENTENCE = re.compile(r"((?<=[.!?])\s+)")

# The child process: runs the CLI in-process, prints one JSON line.
_CHILD = r"""
import json, sys, time
started = time.perf_counter()
from prefaudit.cli import main
import contextlib, io
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["audit", sys.argv[1], "--embedding-model", "off", "--out", sys.argv[2]])
seconds = time.perf_counter() - started
audit = json.load(open(sys.argv[2] + "/audit.json"))
print(json.dumps({"code": code, "seconds": seconds, "timings": audit.get("timings", {})}))
"""


def base_pairs() -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected): AlpacaEval gpt4-dev oriented by its label, then HH."""
    import orjson

    rows = []
    with gzip.open(SHARED / "alpacaeval-gpt4-dev.jsonl.gz") as handle:
        for line in handle:
            record = orjson.loads(line)
            preference = record.get("preference")
            if preference not in (1, 2):  # ties (1.5), unparsed (0) and null left out
                continue
            first, second = record["output_1"], record["output_2"]
            chosen, rejected = (first, second) if preference == 1 else (second, first)
            rows.append((record["instruction"], chosen, rejected))
    return rows + hh_pairs()


class _Maker:
    """Distinct variants of real texts (see the module docstring)."""

    def __init__(self, base: list[tuple[str, str, str]], seed: int):
        self.rng = random.Random(seed)
        self.prompts = sorted({p for p, _, _ in base})
        self.pieces: dict[str, list[str]] = {}
        sentences = set()
        for _, chosen, rejected in base:
            for text in (chosen, rejected):
                sentences.update(s for s in _SENTENCE.split(text)[::2] if len(s) > 10)
        self.sentences = sorted(sentences)
        self.seen: set[int] = set()

    def prompt(self, text: str) -> str:
        out = f"{text}\n\n{self.rng.choice(self.prompts)}"
        while hash(out) in self.seen:
            out = f"{out} {self.rng.choice(self.prompts)}"
        self.seen.add(hash(out))
        return out

    def response(self, text: str) -> str:
        pieces = self.pieces.get(text)
        if pieces is None:
            pieces = self.pieces[text] = _SENTENCE.split(text)
        parts = list(pieces)  # sentence, separator, sentence, ...
        sentences = len(parts) // 2 + 1
        if sentences >= 3:
            parts[2 * self.rng.randrange(sentences)] = self.rng.choice(self.sentences)
        out = self._insert(parts)
        while hash(out) in self.seen:
            out = self._insert(_SENTENCE.split(out))
        self.seen.add(hash(out))
        return out

    def _insert(self, parts: list[str]) -> str:
        at = 2 * self.rng.randrange(len(parts) // 2 + 1)
        parts = [*parts[:at], self.rng.choice(self.sentences), " ", *parts[at:]]
        return "".join(parts)


def build(path: Path, pairs: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = base_pairs()
    maker = _Maker(base, seed)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema(
        [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())]
    )
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for start in range(0, pairs, 50_000):
            rows = {"prompt": [], "chosen": [], "rejected": []}
            for i in range(start, min(pairs, start + 50_000)):
                prompt, chosen, rejected = base[i % len(base)]
                rows["prompt"].append(maker.prompt(prompt))
                rows["chosen"].append(maker.response(chosen))
                rows["rejected"].append(maker.response(rejected))
            writer.write_table(pa.table(rows, schema=schema))
    tmp.replace(path)


def data_for(pairs: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"audit_pairs_{pairs}.parquet"
    if not path.exists():
        started = time.perf_counter()
        build(path, pairs)
        print(f"built {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def run_once(checkout: Path, data: Path) -> dict:
    """One audit in a fresh process on ``checkout``'s code: seconds (in the process, from
    before the imports), the audit's own timings, peak RSS (MiB) and wall seconds."""
    env = dict(os.environ, PYTHONPATH=str(checkout), PREFAUDIT_EMBEDDING_MODEL="off")
    with tempfile.TemporaryDirectory() as out:
        stdout, stderr = Path(out) / "stdout", Path(out) / "stderr"
        started = time.perf_counter()
        with open(stdout, "wb") as o, open(stderr, "wb") as e:
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(data), out + "/audit"],
                env=env,
                stdout=o,
                stderr=e,
                cwd=out,
            )
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
        wall = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"audit failed on {checkout}:\n{stderr.read_text()[-3000:]}")
        result = json.loads(stdout.read_text().strip().splitlines()[-1])
    result["wall"] = wall
    result["peak_mib"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-checkout", type=Path, help="another copy of the project")
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--million", action="store_true", help="also one run at 1,000,000")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    paths = {n: data_for(n) for n in sizes + ([1_000_000] if args.million else [])}
    if args.build_only:
        return
    arms = {"this checkout": ROOT}
    if args.baseline_checkout:
        arms = {"baseline": args.baseline_checkout.resolve(), **arms}
    print(f"arms: {', '.join(f'{k} = {v}' for k, v in arms.items())}", flush=True)
    runs: dict[tuple[str, int], list[dict]] = {}
    for n in sizes:
        for r in range(args.repeat):
            order = list(arms) if r % 2 == 0 else list(arms)[::-1]  # alternate who goes first
            for arm in order:
                result = run_once(arms[arm], paths[n])
                runs.setdefault((arm, n), []).append(result)
                print(
                    f"  {n:>9,} {arm:<14} run {r + 1}: {result['seconds']:.1f} s, "
                    f"peak {result['peak_mib']:,.0f} MiB; "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in result["timings"].items()),
                    flush=True,
                )
    if args.million:
        result = run_once(ROOT, paths[1_000_000])
        runs[("this checkout", 1_000_000)] = [result]
    report(runs, arms, sizes + ([1_000_000] if args.million else []))


def report(runs: dict, arms: dict, sizes: list[int]) -> None:
    import numpy as np

    print("\n| pairs | arm | min s | median s | peak MiB | per validator (median s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        for arm in arms:
            done = runs.get((arm, n))
            if not done:
                continue
            seconds = [d["seconds"] for d in done]
            names = list(done[0]["timings"])
            costs = {k: statistics.median(d["timings"][k] for d in done) for k in names}
            rest = statistics.median(d["seconds"] - sum(d["timings"].values()) for d in done)
            parts = ", ".join(f"{k} {v:.1f}" for k, v in costs.items()) + f", rest {rest:.1f}"
            peak = max(d["peak_mib"] for d in done)
            print(
                f"| {n:,} | {arm} | {min(seconds):.1f} | {statistics.median(seconds):.1f} "
                f"| {peak:,.0f} | {parts} |"
            )
    for arm in arms:
        points = [
            (n, statistics.median(d["seconds"] for d in runs[(arm, n)]))
            for n in sizes
            if (arm, n) in runs
        ]
        if len(points) >= 2:
            x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
            slope, intercept = np.polyfit(x, y, 1)
            million = float(np.exp(intercept + slope * np.log(1e6)))
            print(
                f"{arm}: time ~ n^{slope:.2f} over {points[0][0]:,}-{points[-1][0]:,} pairs; "
                f"extrapolated to 1,000,000: {million:.0f} s"
            )
    if "baseline" in arms:
        for n in sizes:
            if ("baseline", n) in runs and ("this checkout", n) in runs:
                old = statistics.median(d["seconds"] for d in runs[("baseline", n)])
                new = statistics.median(d["seconds"] for d in runs[("this checkout", n)])
                print(f"{n:,} pairs: baseline / this checkout = {old / new:.2f}x (medians)")


if __name__ == "__main__":
    main()
