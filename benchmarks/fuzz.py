"""The long fuzz campaign: N seeded cases from tests/fuzz/corpus.py, each run as
``prefaudit.cli.main`` would be, counted by outcome. Not a speed benchmark: a reliability count.

    python benchmarks/fuzz.py --cases 10000 [--seed 0]

Prints how many cases exited 0, 1 and 2, the commonest exit-2 messages (their first words),
and every case that broke a promise (exit 3, a traceback for an input error, a file written
outside --out, rows not accounted for) with its seed, to replay with ``--replay SEED``. Exits 1
when any did.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFAUDIT_EMBEDDING_MODEL", "off")  # as in the tests: no model per case

from tests.fuzz.corpus import generate, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replay", type=int, help="run one seed and print its output")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    seeds = [args.replay] if args.replay is not None else range(args.seed, args.seed + args.cases)
    codes: Counter = Counter()
    messages: Counter = Counter()
    broken = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        for seed in seeds:
            folder = Path(root) / str(seed)
            folder.mkdir()
            case = generate(random.Random(seed))
            outcome = run(case, folder)
            codes[outcome.code] += 1
            if outcome.code == 2:
                messages[_kind(outcome.stderr)] += 1
            if outcome.problems:
                broken.append((seed, case.command, outcome.problems))
            if args.replay is not None:
                print(case, outcome.stderr, sep="\n")
    seconds = time.perf_counter() - started
    total = sum(codes.values())
    print(f"{total} cases in {seconds:.0f} s (seeds {seeds[0]}..{seeds[-1]})")
    for code in sorted(codes):
        print(f"  exit {code}: {codes[code]} ({codes[code] / total:.1%})")
    print("commonest exit-2 messages:")
    for kind, count in messages.most_common(12):
        print(f"  {count:>6}  {kind}")
    print(f"broken promises: {len(broken)}")
    for seed, command, problems in broken[:50]:
        print(f"  seed {seed} ({command}): {'; '.join(problems)[:300]}")
    return 1 if broken else 0


def _kind(stderr: str) -> str:
    """An exit-2 message without its particulars (paths, numbers, quoted values)."""
    line = next((x for x in stderr.splitlines() if x.startswith("prefaudit: error:")), stderr)
    line = re.sub(r"/\S+", "<path>", line)
    line = re.sub(r"'[^']*'|\"[^\"]*\"|\d[\d,.]*", "_", line)
    return line.removeprefix("prefaudit: error: ")[:110]


if __name__ == "__main__":
    sys.exit(main())
