"""The README's five-minute tour on 3,000 real pairs: each step's wall time and peak memory
against the two minutes a step may take on a CPU.

The pairs: the first ``--pairs`` GPT-4-judged AlpacaEval pairs (``alpacaeval-gpt4-dev.jsonl.gz``,
read by prefaudit's loader; ties and unparsed judgements are its rejects), written as
``my_pairs.jsonl`` in a fresh folder that has the clone's ``rules/`` and ``.venv`` (as the tour
test sets up). Each round runs the README's tour commands as written, in order, in a fresh
folder with an empty embedding cache (``PREFAUDIT_CACHE_DIR``), so step 1 pays for embedding
every text. Embeddings are the performance issue's cost, not the tour's: the audit is then run
once more on the warm cache, and that time is step 1 "embeddings excepted".

    .venv/bin/python benchmarks/bench_tour.py       # 3,000 pairs, 1 round
    .venv/bin/python benchmarks/bench_tour.py --rounds 3  # min and median of 3

Each command runs under ``/usr/bin/time`` (wall seconds, peak resident memory of the command's
process). Nothing else should run on the machine meanwhile: the figures are wall times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realdata import SHARED  # noqa: E402

BUDGET_S = 120.0  # what a tour step may take on a CPU (embeddings excepted)


def main() -> None:
    args = _args()
    from tests.test_readme import tour_commands

    commands = tour_commands()
    pairs = _pairs(args.pairs)
    print(f"{len(pairs):,} GPT-4-judged AlpacaEval pairs; {args.rounds} round(s)", flush=True)
    steps: dict[str, list[tuple[float, float]]] = {}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="prefaudit-tour-") as folder:
            here = Path(folder)
            _fresh_folder(here, pairs)
            env = {**os.environ, "PREFAUDIT_CACHE_DIR": str(here / "cache")}
            for command in commands:
                name = command.split()[1]
                steps.setdefault(name, []).append(_timed(command, here, env))
                _say(round_, name, steps[name][-1])
            audit = commands[0]  # the same audit again: every text's vectors are cached now
            name = "audit (embeddings excepted)"
            steps.setdefault(name, []).append(_timed(audit, here, env))
            _say(round_, name, steps[name][-1])
    print()
    print(_table(steps, len(pairs), args.rounds))


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1)
    return parser.parse_args()


def _pairs(count: int) -> list[dict[str, str]]:
    """The first ``count`` pairs prefaudit's loader accepts, as the tour's flat JSONL records."""
    from prefaudit.io import load

    loaded = load(str(SHARED / "alpacaeval-gpt4-dev.jsonl.gz")).pairs.head(count)
    return loaded[["prompt", "chosen", "rejected"]].to_dict("records")


def _fresh_folder(folder: Path, pairs: list[dict[str, str]]) -> None:
    (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    (folder / "my_pairs.jsonl").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in pairs))


def _timed(command: str, folder: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one tour command, which must succeed (check: 0 or 1)."""
    stats = folder / "time.txt"
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", "-o", str(stats), "sh", "-c", command],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    allowed = (0, 1) if " check " in command else (0,)
    if done.returncode not in allowed:
        sys.exit(
            f"{command} exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    seconds, kilobytes = stats.read_text().split()[-2:]
    return float(seconds), float(kilobytes) / 1024


def _say(round_: int, name: str, result: tuple[float, float]) -> None:
    print(f"  round {round_}: {name:<28} {result[0]:7.1f} s  {result[1]:7.0f} MB", flush=True)


def _table(steps: dict[str, list[tuple[float, float]]], pairs: int, rounds: int) -> str:
    lines = [
        f"Tour steps on {pairs:,} AlpacaEval pairs ({rounds} round(s); min / median):",
        "",
        "| step | wall s | peak MB | of the 120 s budget |",
        "| --- | --- | --- | --- |",
    ]
    for name, results in steps.items():
        seconds = [s for s, _ in results]
        memory = max(m for _, m in results)
        spread = f"{min(seconds):.1f} / {statistics.median(seconds):.1f}"
        share = statistics.median(seconds) / BUDGET_S
        lines.append(f"| {name} | {spread} | {memory:.0f} | {share:.2f}x (median) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
