"""Loading + the content validator vs ``pandas.read_json`` with the pyarrow engine.

Builds N realistic pairs (default 200,000) from the real texts in ../shared/data (HH-RLHF
harmless and AlpacaEval), varied so that no two are alike, writes them as JSON Lines, then
measures three arms, each run in a fresh process (so each peak memory is its own), alternated
for --repeat rounds (the order rotates every round):

- pandas, pyarrow: ``pandas.read_json(path, lines=True, engine="pyarrow")`` (Arrow's
  multi-threaded JSON reader; the strongest plain reader, no checks);
- pandas, default: ``pandas.read_json(path, lines=True)`` (the ujson engine);
- prefaudit: ``prefaudit.load(path)`` (every row parsed and checked: JSON, types, empty texts,
  ids, line numbers kept, rejected rows recorded), then the ``content`` validator
  (normalised-identity hashes, truncation, lengths, length bias); both timed separately.

It prints min and median wall seconds, CPU seconds, pairs/s and the peak resident memory added
by the step, and the ratios prefaudit / each pandas engine (medians; target against the pandas
default: time within 1.5x) and peak memory / file size (target: under 4x).

    python benchmarks/bench_load.py [--pairs 200000] [--repeat 3] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / "benchmarks" / ".cache"


def build(path: Path, pairs: int, seed: int = 0) -> None:
    """Realistic pairs from the shared texts, varied: mixed prompts, responses and edits."""
    import orjson
    from realdata import real_pairs

    base = [(prompt, chosen, rejected) for prompt, chosen, rejected, _ in real_pairs()]
    responses = [text for _, c, r in base for text in (c, r) if text.strip()]
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        for i in range(pairs):
            prompt, chosen, rejected = rng.choice(base)
            if rng.random() < 0.3:  # a different weak response
                rejected = rng.choice(responses)
            if rng.random() < 0.5:  # sentence-level reshuffle of a long response
                parts = chosen.split(". ")
                rng.shuffle(parts)
                chosen = ". ".join(parts)
            prompt = f"{prompt} (variant {i})" if rng.random() < 0.7 else f"[{i}] {prompt}"
            record = {
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "source": "hh" if "Human:" in prompt else "alpaca",
            }
            out.write(orjson.dumps(record) + b"\n")
    tmp.replace(path)


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


TOOLS = ("pandas-pyarrow", "pandas-default", "prefaudit")


def measure(tool: str, path: str) -> dict:
    """Run one tool in this process; report seconds and the peak RSS it added (MiB)."""
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from prefaudit.auditing import run_audit
    from prefaudit.io import load

    parts: dict[str, float] = {}

    def step():
        if tool != "prefaudit":
            engine = "pyarrow" if tool == "pandas-pyarrow" else "ujson"
            return len(pd.read_json(path, lines=True, engine=engine))
        started = time.perf_counter()
        data = load(path)
        parts["load_seconds"] = time.perf_counter() - started
        result = run_audit(data, validators=["content"])
        parts["content_seconds"] = time.perf_counter() - started - parts["load_seconds"]
        return len(result.validators["content"].flags)

    before = _rss_mb()
    started, started_cpu = time.perf_counter(), time.process_time()
    rows = step()
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "tool": tool,
        "rows": rows,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_added_mb": peak - before,
        "peak_mb": peak,
        **parts,
    }


def run_rounds(path: Path, repeat: int, env: dict) -> dict[str, list[dict]]:
    """Every tool once per round in a fresh process, the order rotated each round."""
    runs: dict[str, list[dict]] = {tool: [] for tool in TOOLS}
    for round_ in range(repeat):
        order = TOOLS[round_ % len(TOOLS) :] + TOOLS[: round_ % len(TOOLS)]
        for tool in order:
            done = subprocess.run(
                [sys.executable, __file__, "--measure", tool, "--file", str(path)],
                capture_output=True,
                text=True,
                env=env,
            )
            if done.returncode == -9:  # the kernel's OOM killer, on a machine short of memory
                sys.exit(f"bench_load: {tool} was killed (out of memory?); try fewer --pairs")
            done.check_returncode()
            runs[tool].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def summarise(runs: dict[str, list[dict]], size_mb: float) -> None:
    median = {tool: statistics.median(r["seconds"] for r in rs) for tool, rs in runs.items()}
    print(
        f"{'':<15} {'min s':>7} {'median s':>9} {'CPU s':>7} {'pairs/s':>9} "
        f"{'peak added':>11} {'peak / file':>11}"
    )
    for tool, rs in runs.items():
        peak = statistics.median(r["peak_added_mb"] for r in rs)
        print(
            f"{tool:<15} {min(r['seconds'] for r in rs):>7.2f} {median[tool]:>9.2f} "
            f"{statistics.median(r['cpu_seconds'] for r in rs):>7.2f} "
            f"{rs[0]['rows'] / median[tool]:>9,.0f} {peak:>8,.0f} MiB {peak / size_mb:>10.2f}x"
        )
    ours = runs["prefaudit"]
    load_s = statistics.median(r["load_seconds"] for r in ours)
    content_s = statistics.median(r["content_seconds"] for r in ours)
    print(f"prefaudit's parts (median): load {load_s:.2f} s, content validator {content_s:.2f} s")
    for tool in ("pandas-pyarrow", "pandas-default"):
        print(
            f"time ratio prefaudit / {tool}: {median['prefaudit'] / median[tool]:.2f} "
            f"(load alone: {load_s / median[tool]:.2f})"
        )
    ratio = median["prefaudit"] / median["pandas-default"]
    memory = statistics.median(r["peak_added_mb"] for r in ours) / size_mb
    print(
        f"target, prefaudit / pandas-default <= 1.5: {ratio:.2f} {'OK' if ratio <= 1.5 else 'MISSED'}"
    )
    print(f"target, peak memory / file size < 4: {memory:.2f} {'OK' if memory < 4 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternated rounds; min and median are reported"
    )
    parser.add_argument(
        "--threads", type=int, help="threads for prefaudit's text pass (default: all CPUs)"
    )
    parser.add_argument("--quick", action="store_true", help="50,000 pairs")
    parser.add_argument("--measure", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.file)))
        return
    if args.quick:
        args.pairs = 50_000
    if not SHARED.exists():
        sys.exit(f"bench_load: the real data is not at {SHARED}; it is needed to build the pairs")
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"pairs_{args.pairs}.jsonl"
    if not path.exists():
        print(f"building {args.pairs:,} pairs into {path} ...", flush=True)
        build(path, args.pairs)
    size_mb = path.stat().st_size / 2**20
    print(f"file: {path.name}, {args.pairs:,} pairs, {size_mb:,.0f} MiB")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.threads:
        env["PREFAUDIT_THREADS"] = str(args.threads)
    sys.path.insert(0, str(ROOT))
    from prefaudit.text import default_threads

    os.environ.update(env)
    print(
        f"cpus: {os.cpu_count()}, prefaudit text-pass threads: {default_threads()}, "
        f"pyarrow threads: {_arrow_threads()}, pandas default engine: one; {args.repeat} rounds"
    )
    summarise(run_rounds(path, args.repeat, env), size_mb)


def _arrow_threads() -> int:
    import pyarrow

    return pyarrow.cpu_count()


if __name__ == "__main__":
    main()
