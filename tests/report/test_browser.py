"""The report in a real browser (headless Chromium): hostile text stays text, nothing errors,
every section is there, and the flagged-pair table filters, searches and opens rows."""

from __future__ import annotations

import random

import pytest

from prefaudit.auditing import run_audit
from prefaudit.io import load
from prefaudit.outputs import save_audit
from prefaudit.report import write_report
from tests.helpers import pair, write_lines
from tests.report.browser import browser_page, open_report, screenshot

pytestmark = pytest.mark.browser

# Each tries to run script (setting window.__pwned) or to break out of where text goes.
HOSTILE = {
    "script": "<script>window.__pwned = 'script'</script>",
    "textarea": "</textarea><img src=x onerror=\"window.__pwned='img'\">",
    "link": "<a href=\"javascript:window.__pwned='link'\" id=evil>click me</a>",
    "handler": '<div onmouseover="window.__pwned=\'handler\'" style="position:fixed;inset:0">x</div>',
    "json": "\"}]}</script><script>window.__pwned='json'</script>",
    "bidi": "safe \u202eevil\u202c text \u2066isolate\u2069",
}


def hostile_folder(tmp_path):
    rng = random.Random(0)
    rows, annotations = [], []
    for i in range(60):
        kind = list(HOSTILE)[i % len(HOSTILE)]
        text = HOSTILE[kind]
        prompt = f"{text} question {i}?" if i % 2 else f"Ordinary question {i} about {text}?"
        chosen, rejected = f"A helpful answer {i} {text}", f"Unhelpful {i}."
        if i % 10 == 0:
            rejected = chosen  # identical: flagged by content and duplication
        rows.append(pair(prompt, chosen, rejected, id=f"{kind}-{i}", source=text))
        for rater in (HOSTILE["script"], HOSTILE["bidi"], "rater_c"):
            label = "chosen" if rng.random() < 0.7 else "rejected"
            annotations.append({"pair_id": f"{kind}-{i}", "annotator": rater, "label": label})
    rows.append(pair(HOSTILE["json"], "x", "x", id=HOSTILE["textarea"]))  # hostile pair id too
    data = load(
        write_lines(tmp_path / "pairs.jsonl", rows),
        annotations=write_lines(tmp_path / "annotations.jsonl", annotations),
    )
    out = tmp_path / "hostile"
    save_audit(out, run_audit(data, embedder=None), data, texts=True)
    write_report(out)
    return out, data


def expand_first_row(page) -> str:
    """The first row and its opened detail, as the page shows them."""
    page.click("#pairs tbody tr.pair")
    first = page.locator("#pairs tbody tr.pair").first.inner_text()
    return first + "\n" + page.inner_text("#pairs tr.detail")


def test_hostile_text_never_runs_and_shows_literally(tmp_path):
    out, data = hostile_folder(tmp_path)
    with browser_page() as page:
        open_report(page, out / "index.html")
        page.mouse.move(300, 300)  # over where an injected overlay would be
        page.mouse.click(300, 300)
        for kind, text in HOSTILE.items():
            if kind == "bidi":
                continue
            page.fill("#pairs-search", text[:24])
            page.wait_for_function(
                "() => !document.querySelector('.table-status').textContent.startsWith('loading')"
            )
            page.wait_for_timeout(300)  # the search is debounced
            detail = expand_first_row(page)
            assert text in detail, kind  # the text itself, as written
        page.fill("#pairs-search", "isolate")
        page.wait_for_timeout(300)
        assert "safe ⟦U+202E⟧evil⟦U+202C⟧ text ⟦U+2066⟧isolate⟦U+2069⟧" in expand_first_row(page)
        page_text = page.inner_text("body")
        assert HOSTILE["script"] in page_text  # in the raters' table and the sources, as text
        assert page.evaluate("() => window.__pwned") is None
        assert (
            page.evaluate(
                "() => document.querySelectorAll('#evil, script:not([type]):not([id])').length"
            )
            == 1
        )
        assert page.errors == []  # no CSP violation, no script error
        screenshot(page, "hostile-table")


def test_demo_report_works_in_the_browser(tmp_path):
    from prefaudit.demo import generate_demo

    demo = generate_demo(tmp_path / "data")
    data = load(str(demo.pairs), annotations=str(demo.annotations))
    out = tmp_path / "demo"
    prompts = str(demo.eval_prompts)
    params = {"duplication": {"against": prompts}, "coverage": {"reference": prompts}}
    result = run_audit(data, params=params, embedder=None)
    save_audit(out, result, data, texts=True)
    write_report(out)
    check_report(out, result, "demo")


@pytest.mark.slow
def test_hh_report_works_in_the_browser(tmp_path, hh_file):
    data = load(str(hh_file))
    result = run_audit(data, embedder=None)
    out = tmp_path / "hh"
    save_audit(out, result, data, texts=True)
    write_report(out)
    check_report(out, result, "hh")


def check_report(out, result, name):
    flags = result.flags
    with browser_page() as page:
        open_report(page, out / "index.html")
        screenshot(page, f"{name}-scorecard")
        for section in ("scorecard", "overview", *result.validators, "pairs"):
            assert page.locator(f"section#{section}").count() == 1, section
        for image in page.locator("img").all():  # every chart decoded and drawn
            assert image.evaluate("i => i.complete && i.naturalWidth > 0")
        total = int(flags["any_issue"].sum())
        assert page.inner_text(".table-status") == f"pairs 1–{min(50, total)} of {total:,}"
        assert page.locator("#pairs tbody tr.pair").count() == min(50, total)
        # Filter by one check: the count is that check's flagged pairs.
        name_, column = "content", "content/issue"
        page.select_option("#pairs-issue", label=f"{name_} ({int(flags[column].sum())})")
        shown = int(flags[column].sum())
        assert page.inner_text(".table-status").endswith(f"of {shown:,} (of {total:,} flagged)")
        badges = page.locator("#pairs tbody tr.pair").first.inner_text()
        assert name_ in badges
        # Search a flagged pair's id; open it: the prompt and both responses side by side.
        page.select_option("#pairs-issue", value="")
        pair_id = flags.index[flags["any_issue"]][0]
        page.fill("#pairs-search", pair_id)
        page.wait_for_function(
            f"() => document.querySelector('.table-status').textContent.includes('of {total:,} flagged')"
        )
        page.click("#pairs tbody tr.pair")
        assert page.locator("#pairs tr.detail .side").count() == 3
        page.fill("#pairs-search", "")
        page.wait_for_timeout(300)  # the search is debounced: let it apply before paging
        page.select_option("#pairs-sort", value="line")
        if total > 50:
            page.click("#pairs-next")
            assert page.inner_text(".table-status").startswith("pairs 51–")
        page.locator("#pairs").scroll_into_view_if_needed()
        screenshot(page, f"{name}-table")
        assert page.errors == []


# Elements a reader scrolls past one at a time: none may be taller than two windows.
BOUNDED = "tr, td, th, li, p, pre, dd, dt, figure, summary, .clamp, .side, .group, .verdict, .tile"
VIEWPORT = 900  # browser_page's window height


def long_text_folder(tmp_path):
    """An audited, checked and cleaned folder whose pairs hold a 13,000-character,
    4,000-line response and a 1 MB one, in every place the report shows texts: the suspects
    (the raters contradict the label), duplicate groups, extreme lengths, the cleaning review."""
    import prefaudit

    lines = "\n".join(["ab"] * 4_000) + "x" * 1_000  # 12,999 characters, 4,000 lines
    megabyte = "word " * 200_000
    rows = [
        pair(f"Ordinary question {i}?", f"A helpful answer {i}.", f"No {i}.") for i in range(60)
    ]
    rows += [
        pair("Tall question?", lines, "Short answer.", id="tall"),
        pair("Huge question?", megabyte, "Short.", id="huge"),
        pair("Huge question?", megabyte, "Short.", id="huge-again"),
        pair(lines, "A fine answer.", megabyte, id="both"),
    ]
    annotations = [
        {"pair_id": pid, "annotator": rater, "label": "rejected"}
        for pid in ("tall", "both")
        for rater in ("r1", "r2", "r3")
    ]
    pairs = write_lines(tmp_path / "pairs.jsonl", rows)
    votes = write_lines(tmp_path / "annotations.jsonl", annotations)
    out = tmp_path / "long"
    prefaudit.check(pairs, rules="default", out=out, annotations=votes, embedding_model="off")
    prefaudit.clean(pairs, audit=out, out=out, annotations=votes)
    return out


def tall_elements(page) -> list[str]:
    return page.evaluate(
        """([selector, limit]) => [...document.querySelectorAll(selector)]
            .filter((e) => e.getBoundingClientRect().height > limit)
            .map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().height)}px`)""",
        [BOUNDED, 2 * VIEWPORT],
    )


def test_long_texts_keep_every_element_within_two_windows(tmp_path):
    """One 12,964-character response made a report 137,886 px tall (a single row 81,831 px)."""
    out = long_text_folder(tmp_path)
    with browser_page() as page:
        open_report(page, out / "index.html")
        ready = page.evaluate("performance.getEntriesByName('prefaudit:table-ready')[0].startTime")
        assert ready < 2_000
        page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
        assert tall_elements(page) == []
        assert page.locator("#cleaning .review").count() >= 2  # flips and drops, with texts
        assert page.locator("button.more").count() > 10
        # Open every clamped cell: each stays a scroll box; a long text's rest is fetched on
        # demand, 20,000 characters a click.
        page.evaluate("document.querySelectorAll('button.more').forEach((b) => b.click())")
        page.wait_for_function(
            "() => !document.querySelector('.clamp[data-rest]:not([data-shown])')"
        )
        assert tall_elements(page) == []
        huge = page.locator(".clamp.open[data-rest]", has_text="word word").first
        assert huge.evaluate("e => e.textContent.length") == 20_000 + len(" …")
        assert huge.evaluate("e => e.nextElementSibling.textContent") == (
            "show 20,000 more characters (980,000 not shown)"
        )
        page.fill("#pairs-search", "huge")
        page.wait_for_timeout(300)
        for row in page.locator("#pairs tbody tr.pair").all():
            row.click()
        assert page.locator("#pairs tr.detail").count() == 2
        assert tall_elements(page) == []
        screenshot(page, "long-texts")
        assert page.errors == []


def test_a_pair_link_in_the_cleaning_review_opens_that_pair_in_the_table(tmp_path):
    out = long_text_folder(tmp_path)
    with browser_page() as page:
        open_report(page, out / "index.html")
        link = page.locator("#cleaning a.pair-link", has_text="tall").first
        link.click()
        page.wait_for_selector("#pairs tr.detail")
        opened = page.locator("#pairs tr.pair").first.inner_text()
        assert opened.startswith("tall") and page.locator("#pairs tr.pair").count() == 1
        assert page.errors == []
