"""The HTML report: file size, render time and time to open in a real browser, at scale.

For the real HH file (2,312 pairs) and for N realistic pairs (default 100,000, built from the
real texts as bench_load.py builds them), it audits with the CLI (embeddings off: the report
is what is measured), then renders and opens two self-contained HTML pages of the flagged pairs:

- prefaudit: ``prefaudit report`` (a fresh process, imports included) renders ``index.html``;
- the peer: the same flagged pairs with the same texts (cut where the report cuts them) and
  every check's reason, as an interactive ITables page (DataTables, bundled offline into the
  file; the data as JSON, drawn a page at a time, with search and sort over every row):
  ``itables.to_html_datatable(table, connected=False, maxBytes=0)``, built in a fresh process
  from the audit's parquet files. It has no summaries, charts or per-check sections.
- with ``--eager``, also the old baseline: the same rows as one ``pandas.DataFrame.to_html``
  table (slow to open at 100,000 pairs: about 90 s each).

Each page is opened --opens times in headless Chromium (Debian's ``chromium``;
``PREFAUDIT_CHROMIUM`` to choose another), in a fresh page each time, the pages alternated in a
rotating order: the time from navigation start to the load event, and to the table's first page
drawn (prefaudit: the mark ``prefaudit:table-ready``; ITables: the first data row in the
DataTable). Min and median are printed.

Targets (issue 9): under 25 MB and under 3 s to open at 100,000 pairs.

    python benchmarks/bench_report.py [--pairs 100000] [--opens 3] [--reuse-audit] [--eager] [--quick]
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


def flagged_table(out: Path):
    """The flagged pairs with their texts, cut at the report's common length, and every reason."""
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
    return texts.join(reasons)


def write_peer(out: Path, kind: str) -> Path:
    """Run in a fresh process (``--peer``): the peer's page from the audit's files."""
    table = flagged_table(out)
    if kind == "eager":
        path = out / "baseline-eager.html"
        body = table.to_html()
    else:
        from itables import to_html_datatable
        from itables.javascript import generate_init_offline_itables_html
        from itables.options import dt_bundle

        path = out / "baseline-itables.html"
        # maxBytes=0: every row (ITables otherwise drops rows above 64 kB of data).
        body = generate_init_offline_itables_html(dt_bundle) + to_html_datatable(
            table, connected=False, maxBytes=0, table_id="flagged"
        )
    path.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>flagged pairs</title></head>"
        f"<body>{body}</body></html>",
        "utf-8",
    )
    return path


def peer(out: Path, kind: str) -> tuple[Path, float]:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--peer", kind, "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    name = "baseline-eager.html" if kind == "eager" else "baseline-itables.html"
    return out / name, time.perf_counter() - started


# Seconds from navigation start until the page's table shows its first rows.
TABLE_DRAWN = {
    "prefaudit": (
        "#pairs[data-ready='true']",
        "() => performance.getEntriesByName('prefaudit:table-ready')[0].startTime",
    ),
    "itables": ("#flagged tbody tr td + td", "() => performance.now()"),
    "eager": (None, None),
}


def open_times(pages: dict[str, Path], opens: int) -> dict[str, dict[str, list[float]]]:
    """Each page opened ``opens`` times, alternated (the order rotates), each in a fresh page."""
    from playwright.sync_api import sync_playwright

    from tests.report.browser import CHROMIUM_ARGS, chromium_path

    times = {name: {"load": [], "table": []} for name in pages}
    names = list(pages)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for round_ in range(opens):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                page = browser.new_page()
                page.goto(pages[name].resolve().as_uri(), wait_until="load", timeout=300_000)
                selector, drawn = TABLE_DRAWN[name]
                if selector:
                    page.wait_for_selector(selector, timeout=300_000)
                    times[name]["table"].append(page.evaluate(drawn) / 1000)
                times[name]["load"].append(
                    page.evaluate(
                        "() => performance.getEntriesByType('navigation')[0].loadEventEnd"
                    )
                    / 1000
                )
                page.close()
        browser.close()
    return times


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.2f} / {statistics.median(values):.2f}"


def measure(name: str, data: Path, out: Path, opens: int, reuse: bool, eager: bool) -> None:
    import pandas as pd

    seconds = None if reuse and (out / "audit.json").exists() else audit(data, out)
    flags = pd.read_parquet(out / "flags.parquet", columns=["any_issue"])
    renders = {"prefaudit": render(out)}
    pages = {"prefaudit": out / "index.html"}
    for kind in ("itables", "eager") if eager else ("itables",):
        pages[kind], renders[kind] = peer(out, kind)
    times = open_times(pages, opens)
    took = "audit reused" if seconds is None else f"audit + report {seconds:.1f} s"
    print(f"\n{name}: {len(flags):,} pairs, {int(flags['any_issue'].sum()):,} flagged; {took}")
    print(f"  {opens} opens each, alternated; min / median seconds")
    print(f"  {'':<22} {'size MB':>8} {'render s':>9} {'load event':>13} {'table drawn':>13}")
    labels = {
        "prefaudit": "prefaudit index.html",
        "itables": "ITables page",
        "eager": "pandas to_html",
    }
    for kind, path in pages.items():
        print(
            f"  {labels[kind]:<22} {path.stat().st_size / 1e6:>8.2f} {renders[kind]:>9.1f} "
            f"{_spread(times[kind]['load']):>13} {_spread(times[kind]['table']):>13}"
        )
    ours = times["prefaudit"]
    for kind in pages:
        if kind == "prefaudit":
            continue
        theirs = times[kind]
        size = pages[kind].stat().st_size / pages["prefaudit"].stat().st_size
        line = (
            f"  {labels[kind]} / prefaudit (medians): size {size:.2f}x, "
            f"load {statistics.median(theirs['load']) / statistics.median(ours['load']):.2f}x"
        )
        if theirs["table"]:
            table = statistics.median(theirs["table"]) / statistics.median(ours["table"])
            line += f", table drawn {table:.2f}x"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--opens", type=int, default=3)
    parser.add_argument(
        "--reuse-audit", action="store_true", help="keep audits already in benchmarks/.cache"
    )
    parser.add_argument(
        "--eager", action="store_true", help="also the old baseline: one pandas to_html table"
    )
    parser.add_argument("--quick", action="store_true", help="HH and 20,000 pairs")
    parser.add_argument("--peer", choices=["itables", "eager"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        write_peer(args.out, args.peer)
        return
    if args.quick:
        args.pairs = 20_000
    CACHE.mkdir(parents=True, exist_ok=True)
    hh = SHARED / "hh-rlhf-harmless-test.jsonl.gz"
    measure("HH harmless test", hh, CACHE / "report-hh", args.opens, args.reuse_audit, args.eager)
    if args.pairs:
        from bench_load import build

        data = CACHE / f"report-pairs-{args.pairs}.jsonl"
        if not data.exists():
            build(data, args.pairs)
        name, out = f"{args.pairs:,} realistic pairs", CACHE / f"report-{args.pairs}"
        measure(name, data, out, args.opens, args.reuse_audit, args.eager)


if __name__ == "__main__":
    main()
