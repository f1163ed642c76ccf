"""Headless Chromium for the report tests (Playwright driving Debian's ``chromium``)."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

ENABLE = (
    "install Debian's Chromium (`apt-get install chromium chromium-driver`; `.ci/run` does) "
    "and Playwright (`pip install -e .[test]`), or point PREFAUDIT_CHROMIUM at a Chromium binary"
)
# A folder the screenshots stay in after the run (reports/ is ignored by git).
SCREENSHOTS = Path(
    os.environ.get("PREFAUDIT_TEST_OUTPUT")
    or Path(__file__).resolve().parents[2] / "reports" / "tests"
)


# Headless in a sandboxed, offline machine: no background connections (they are refused here,
# many at a time), no GPU, no first-run or sync machinery.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("PREFAUDIT_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
    ):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@contextmanager
def browser_page():
    """A fresh page in headless Chromium, with the console errors and page errors collected
    in ``page.errors``; skips the test when there is no browser."""
    executable = chromium_path()
    if executable is None:
        pytest.skip(f"no Chromium for the browser tests: {ENABLE}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"Playwright is not installed: {ENABLE}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.errors = []
            page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page.errors.append(f"page error: {e}"))
            yield page
        finally:
            browser.close()


def open_report(page, path: Path) -> None:
    """Open a report and wait until its flagged-pair table is drawn."""
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("#pairs[data-ready]", timeout=60_000)
    assert page.get_attribute("#pairs", "data-ready") == "true", page.inner_text(".table-status")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
