"""Loading + the content validator vs plain ``pandas.read_json(lines=True)`` on the same file.

Builds N realistic pairs (default 200,000) from the real texts in ../shared/data (HH-RLHF
harmless and AlpacaEval), varied so that no two are alike, writes them as JSON Lines, then
measures in separate processes (so each peak memory is its own):

- baseline: ``pandas.read_json(path, lines=True)``
- prefaudit: ``prefaudit.load(path)`` (every row checked and accounted for) + the ``content``
  validator (normalised-identity hashes, truncation, lengths, length bias)

It prints wall time, pairs/s and the peak resident memory added by the step, and the ratios
prefaudit / pandas (target: time within 1.5x) and peak memory / file size (target: under 4x).

    python benchmarks/bench_load.py [--pairs 200000] [--repeat 1] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
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


def measure(tool: str, path: str) -> dict:
    """Run one tool in this process; report seconds and the peak RSS it added (MiB)."""
    if tool == "pandas":
        import pandas as pd

        def step():
            return len(pd.read_json(path, lines=True))
    else:
        sys.path.insert(0, str(ROOT))
        import pandas  # noqa: F401  (imports are not part of the measured step)

        from prefaudit.auditing import run_audit
        from prefaudit.io import load

        def step():
            data = load(path)
            result = run_audit(data, validators=["content"])
            return len(result.validators["content"].flags)

    before = _rss_mb()
    started = time.perf_counter()
    rows = step()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "tool": tool,
        "rows": rows,
        "seconds": seconds,
        "peak_added_mb": peak - before,
        "peak_mb": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per tool; the median is reported"
    )
    parser.add_argument(
        "--threads", type=int, help="threads for prefaudit's text pass (default: all CPUs)"
    )
    parser.add_argument("--measure", choices=["pandas", "prefaudit"], help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.file)))
        return
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
        f"cpus: {os.cpu_count()}, prefaudit text-pass threads: {default_threads()} (pandas uses one)"
    )
    results = {}
    for tool in ("pandas", "prefaudit"):
        runs = []
        for _ in range(args.repeat):
            output = subprocess.run(
                [sys.executable, __file__, "--measure", tool, "--file", str(path)],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            ).stdout
            runs.append(json.loads(output.strip().splitlines()[-1]))
        runs.sort(key=lambda r: r["seconds"])
        results[tool] = runs[len(runs) // 2]
        r = results[tool]
        print(
            f"{tool:<10} {r['seconds']:7.2f} s  {r['rows'] / r['seconds']:>10,.0f} pairs/s  "
            f"peak +{r['peak_added_mb']:,.0f} MiB ({r['peak_added_mb'] / size_mb:.2f}x file)"
        )
    base, ours = results["pandas"], results["prefaudit"]
    ratio = ours["seconds"] / base["seconds"]
    memory = ours["peak_added_mb"] / size_mb
    print(
        f"time ratio prefaudit/pandas: {ratio:.2f} (target <= 1.5)  {'OK' if ratio <= 1.5 else 'MISSED'}"
    )
    print(f"peak memory / file size: {memory:.2f} (target < 4)  {'OK' if memory < 4 else 'MISSED'}")


if __name__ == "__main__":
    main()
