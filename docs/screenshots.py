"""Refresh the scorecard screenshots in docs/images/ (``make screenshots``).

Two reports, each opened in headless Chromium (as the browser tests do) and its scorecard
captured at a 1280x900 window, reduced to a small palette PNG:

- ``scorecard-demo.png``: the demo's synthetic data with its planted defects, checked against
  the built-in ``default`` rule set and cleaned (what ``make demo`` shows);
- ``scorecard-alpacaeval.png``: the first ``--pairs`` real GPT-4-judged AlpacaEval pairs from
  ``../shared/data/alpacaeval-gpt4-dev.jsonl.gz`` (read from there, never copied), audited with
  the embedded embedding model, checked and cleaned with the defaults.

Run: ``.venv/bin/python docs/screenshots.py [--pairs 3000] [--work DIR]``. It needs Chromium
and Playwright (the test extra) and takes a few minutes (the AlpacaEval audit embeds 3,000
prompts and 6,000 responses on the CPU).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMAGES = ROOT / "docs" / "images"
ALPACA = ROOT.parent / "shared" / "data" / "alpacaeval-gpt4-dev.jsonl.gz"
RULES = "default"  # the built-in rule set, as a user names it (the page shows it)
WINDOW = {"width": 1280, "height": 900}


def demo_report(work: Path) -> Path:
    import prefaudit
    from prefaudit.demo import generate_demo

    demo = generate_demo(work / "demo-data")
    out = work / "demo"
    prompts = str(demo.eval_prompts)
    options = dict(
        annotations=str(demo.annotations),
        params={"duplication": {"against": prompts}, "coverage": {"reference": prompts}},
    )
    prefaudit.check(str(demo.pairs), rules=str(RULES), out=out, **options)
    prefaudit.clean(str(demo.pairs), audit=out, out=out, annotations=str(demo.annotations))
    return out / "index.html"


def alpaca_report(work: Path, pairs: int) -> Path:
    import prefaudit

    if not ALPACA.exists():
        raise SystemExit(f"{ALPACA}: not found (the shared data folder sits beside the project)")
    data = work / f"alpacaeval-{pairs}.jsonl"
    with gzip.open(ALPACA, "rt", encoding="utf-8") as source, open(data, "w") as target:
        target.writelines(itertools.islice(source, pairs))
    out = work / "alpacaeval"
    prefaudit.check(str(data), rules=str(RULES), out=out)
    prefaudit.clean(str(data), audit=out, out=out)
    return out / "index.html"


def capture(report: Path, target: Path) -> None:
    """The scorecard of ``report`` as a small PNG at ``target``."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from tests.report.browser import CHROMIUM_ARGS, chromium_path

    executable = chromium_path()
    if executable is None:
        raise SystemExit("no Chromium found: install it, or set PREFAUDIT_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=WINDOW)
        page.goto(report.resolve().as_uri())
        page.wait_for_selector("#pairs[data-ready]")
        page.screenshot(path=str(target), full_page=False)
        browser.close()
    # A 64-colour palette keeps the text sharp at a fraction of the size.
    image = Image.open(target).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    image.save(target, optimize=True)
    print(f"{target.relative_to(ROOT)}: {target.stat().st_size / 1024:.0f} KB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3_000, help="AlpacaEval pairs to audit")
    parser.add_argument("--work", type=Path, help="folder for the reports (default: a temp one)")
    args = parser.parse_args(argv)
    IMAGES.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as temp:
        work = args.work or Path(temp)
        capture(demo_report(work), IMAGES / "scorecard-demo.png")
        capture(alpaca_report(work, args.pairs), IMAGES / "scorecard-alpacaeval.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
