"""The HTML report: file size, render time and time to open in a real browser, at scale.

For the real HH file (2,312 pairs) and for N realistic pairs (default 100,000, built from the
real texts as bench_load.py builds them), it audits with the CLI (embeddings off: the report
is what is measured), then:

- renders ``index.html`` again with ``prefaudit report`` (seconds);
- opens it in headless Chromium (Debian's ``chromium``; ``PREFAUDIT_CHROMIUM`` to choose
  another) three times, each in a fresh page, and takes the median time from navigation start
  to the load event and to the flagged-pair table's first page drawn (the mark
  ``prefaudit:table-ready``);
- does the same for the baseline: the flagged pairs with their texts (cut where the report
  cuts them) and reasons as one plain HTML table (``pandas.DataFrame.to_html``), the quick
  report a team writes by hand.

Targets (issue 9): under 25 MB and under 3 s to open at 100,000 pairs.

    python benchmarks/bench_report.py [--pairs 100000] [--opens 3] [--reuse-audit]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from realdata import SHARED  # noqa: E402


def audit(data: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "prefaudit",
            "audit",
            str(data),
            "--out",
            str(out),
            "--embedding-model",
            "off",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def render(out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "prefaudit", "report", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def baseline(out: Path) -> Path:
    """The flagged pairs and their reasons as one plain HTML table (pandas), with the texts cut
    at the same length as the report cuts them (the same content, drawn eagerly)."""
    import numpy as np
    import pandas as pd

    from prefaudit.report.table import TEXT_BUDGET, TEXT_COLUMNS, _cap

    flags = pd.read_parquet(out / "flags.parquet")
    texts = pd.read_parquet(out / "flagged_texts.parquet")
    unique = pd.unique(texts[list(TEXT_COLUMNS)].to_numpy().ravel())
    cap = _cap(np.array([len(t) for t in unique]), TEXT_BUDGET)
    if cap is not None:
        for column in TEXT_COLUMNS:
            texts[column] = texts[column].str.slice(0, cap)
    reasons = flags.loc[flags["any_issue"], [c for c in flags.columns if c.endswith("/reason")]]
    table = texts.join(reasons)
    path = out / "baseline.html"
    path.write_text(
        f"<!DOCTYPE html><meta charset='utf-8'><title>flagged</title>{table.to_html()}", "utf-8"
    )
    return path


def open_times(path: Path, opens: int) -> tuple[float, float | None]:
    """Median seconds from navigation start to the load event, and to the table drawn."""
    from playwright.sync_api import sync_playwright

    from tests.report.browser import CHROMIUM_ARGS, chromium_path

    loads, tables = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for _ in range(opens):
            page = browser.new_page()
            page.goto(path.resolve().as_uri(), wait_until="load", timeout=120_000)
            has_table = page.evaluate("() => !!document.getElementById('pairs-data')")
            if has_table:
                page.wait_for_selector("#pairs[data-ready='true']", timeout=120_000)
                tables.append(
                    page.evaluate(
                        "() => performance.getEntriesByName('prefaudit:table-ready')[0].startTime"
                    )
                    / 1000
                )
            loads.append(
                page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
                / 1000
            )
            page.close()
        browser.close()
    return statistics.median(loads), (statistics.median(tables) if tables else None)


def measure(name: str, data: Path, out: Path, opens: int, reuse: bool) -> None:
    import pandas as pd

    seconds = None if reuse and (out / "audit.json").exists() else audit(data, out)
    flags = pd.read_parquet(out / "flags.parquet", columns=["any_issue"])
    rerender = render(out)
    report = out / "index.html"
    size = report.stat().st_size / 1e6
    load, table = open_times(report, opens)
    base = baseline(out)
    base_load, _ = open_times(base, opens)
    base_size = base.stat().st_size / 1e6
    took = "audit reused" if seconds is None else f"audit + report {seconds:.1f} s"
    print(f"\n{name}: {len(flags):,} pairs, {int(flags['any_issue'].sum()):,} flagged; {took}")
    print(f"  {'':<28} {'size MB':>9} {'load s':>8} {'table s':>8}")
    print(
        f"  {'prefaudit index.html':<28} {size:>9.2f} {load:>8.2f} {table:>8.2f}"
        f"   (prefaudit report: {rerender:.1f} s)"
    )
    print(f"  {'baseline pandas to_html':<28} {base_size:>9.2f} {base_load:>8.2f} {'-':>8}")
    print(
        f"  ratio baseline / prefaudit: size {base_size / size:.1f}x, load {base_load / load:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--opens", type=int, default=3)
    parser.add_argument(
        "--reuse-audit", action="store_true", help="keep audits already in benchmarks/.cache"
    )
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    hh = SHARED / "hh-rlhf-harmless-test.jsonl.gz"
    measure("HH harmless test", hh, CACHE / "report-hh", args.opens, args.reuse_audit)
    if args.pairs:
        from bench_load import build

        data = CACHE / f"report-pairs-{args.pairs}.jsonl"
        if not data.exists():
            build(data, args.pairs)
        name, out = f"{args.pairs:,} realistic pairs", CACHE / f"report-{args.pairs}"
        measure(name, data, out, args.opens, args.reuse_audit)


if __name__ == "__main__":
    main()
