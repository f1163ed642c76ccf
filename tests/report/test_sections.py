"""Report sections as drawn in the page, from small audits with one thing planted."""

from __future__ import annotations

import re

from prefaudit.auditing import run_audit
from prefaudit.io import load
from prefaudit.outputs import save_audit
from prefaudit.report import write_report
from tests.helpers import pair, write_lines

TEMPLATE = (
    "{} Try to explain your answer. Your explanation should take the reader through your "
    "reasoning step-by-step."
)
BREAD = "Can you give me a simple recipe for a loaf of white bread that I can bake at home?"


def _section(tmp_path, rows, name, annotations=None, **params):
    """The HTML of section ``name`` in the report of an audit of ``rows`` (and of annotation
    records, when given)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    notes = annotations and str(write_lines(tmp_path / "notes.jsonl", annotations))
    data = load(write_lines(tmp_path / "pairs.jsonl", rows), annotations=notes)
    result = run_audit(data, validators=[name], params={name: params}, embedder=None)
    out = tmp_path / "out"
    save_audit(out, result, data, texts=True)
    write_report(out)
    html = (out / "index.html").read_text("utf-8")
    return re.search(rf'<section id="{name}".*?</section>', html, re.S).group(0)


def _part(html: str, heading: str) -> str:
    """From an <h3> to the next one."""
    return html.split(f"<h3>{heading}</h3>")[1].split("<h3>")[0]


def test_nearly_identical_prompts_shows_light_edits_and_counts_the_template_ones(tmp_path):
    rows = [
        pair(TEMPLATE.format("How many atoms are in a grain of salt?"), "A lot.", "Few."),
        pair(TEMPLATE.format("How many words are spoken daily on Earth?"), "Many.", "Ten."),
        pair(BREAD, "Yes.", "No."),
        pair(BREAD.replace("give me", "please give me").replace("recipe", "recipie"), "Ok.", "No."),
    ]
    near = _part(_section(tmp_path, rows, "duplication"), "Nearly identical prompts")
    assert "recipie" in near and "please" in near
    assert "grain of salt" not in near and "spoken daily" not in near
    assert "1 of the 2 pairs of prompts that look alike" in near


def test_over_represented_column_only_when_a_prompt_is_over_the_limit(tmp_path):
    rows = [pair("Tell me a joke.", f"Joke {i}.", f"No {i}.") for i in range(3)]
    rows += [pair(f"Question {i}?", f"Answer {i}.", f"Wrong {i}.") for i in range(3)]
    over = _part(
        _section(tmp_path / "a", rows, "duplication", max_pairs_per_prompt=2),
        "Prompts with the most pairs",
    )
    assert "<th>over-represented</th>" in over
    assert re.search(
        r"<td>3</td><td>yes</td><td class=\"text\"><div class=\"clamp\">Tell me a joke.</div>", over
    )
    within = _part(_section(tmp_path / "b", rows, "duplication"), "Prompts with the most pairs")
    assert "over-represented</th>" not in within
    assert re.search(r"No prompt has more pairs than the over-representation limit \(\d+\)", within)


def test_agreement_counts_pairs_not_ratings(tmp_path):
    rows = [pair(f"Q{i}?", f"Good {i}.", f"Bad {i}.", id=f"p{i}") for i in range(3)]
    rated = [("p0", "r1", "chosen"), ("p0", "r2", "chosen"), ("p1", "r1", "chosen")]
    rated += [("p1", "r2", "rejected"), ("p2", "r1", "chosen")]
    notes = [{"pair_id": p, "annotator": r, "label": label} for p, r, label in rated]
    html = _section(tmp_path, rows, "agreement", annotations=notes, bootstrap_resamples=0)
    figures = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "2 raters; 3 pairs rated, 2 of them by two raters or more; 1.67 per pair" in figures
    assert "(on the 2 pairs with 2 raters each" in figures
