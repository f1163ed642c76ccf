"""The report rendered from an audit folder: complete, self-contained, deterministic, escaped."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html import unescape

import pandas as pd
import pytest

from prefaudit.auditing import run_audit
from prefaudit.cli import main
from prefaudit.io import load
from prefaudit.outputs import TEXTS_FILE, save_audit
from prefaudit.report import write_report
from prefaudit.report.sections import SECTIONS, build_section
from prefaudit.report.table import _cap, decode, table_data
from prefaudit.validators.base import VALIDATORS, Validator, empty_flags
from tests.helpers import pair, write_lines

HOSTILE = "<script>window.__pwned=1</script>"


def audited(tmp_path, rows, validators=("content", "duplication")):
    data = load(write_lines(tmp_path / "pairs.jsonl", rows))
    out = tmp_path / "out"
    save_audit(out, run_audit(data, validators=list(validators)), data, texts=True)
    write_report(out)
    return out


@pytest.fixture
def folder(tmp_path):
    rows = [pair(f"Question {i}?", f"Answer number {i}.", f"Wrong {i}.") for i in range(8)]
    rows += [
        pair(HOSTILE, "Same.", "same."),
        pair("Repeat?", "Yes.", "No."),
        pair("Repeat?", "Yes.", "No."),
    ]
    return audited(tmp_path, rows)


def test_audit_writes_a_self_contained_report_with_every_section(folder):
    html = (folder / "index.html").read_text("utf-8")
    for anchor in ("scorecard", "overview", "content", "duplication", "pairs"):
        assert f'id="{anchor}"' in html
    # Nothing is fetched: no external address in any src or href, no @import.
    assert not re.search(r'(src|href)="(?!#|data:)', html)
    assert "@import" not in html and "http://" not in html.split("<body>")[0]
    # The audit's figures, in the scorecard and in their sections.
    assert '<span class="value">11</span><span class="label">pairs audited</span>' in html
    assert "1 pair has the same chosen and rejected response" in html
    assert "<dt>identical pairs</dt><dd>1</dd>" in html


def test_the_policy_allows_exactly_the_inline_style_and_script(folder):
    html = (folder / "index.html").read_text("utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    policy = unescape(policy)  # the attribute is HTML-escaped; the browser reads it unescaped
    assert "default-src 'none'" in policy and "img-src data:" in policy
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    script = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(script) == 1 and len(re.findall("<style>", html)) == 1

    def digest(text):
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"style-src 'sha256-{digest(style)}'" in policy
    assert f"script-src 'sha256-{digest(script[0])}'" in policy
    assert " style=" not in html.split("<body>")[1]  # inline style attributes would be blocked


def test_data_text_is_escaped_and_the_table_carries_the_flagged_pairs(folder):
    html = (folder / "index.html").read_text("utf-8")
    assert HOSTILE not in html
    blob = re.search(
        r'<script type="application/json" id="pairs-data">([^<]*)</script>', html
    ).group(1)
    data = decode(blob)
    flags = pd.read_parquet(folder / "flags.parquet")
    assert len(data["rows"]) == int(flags["any_issue"].sum()) == 2  # a repeat flags its second copy
    by_id = {row[0]: row for row in data["rows"]}
    hostile = next(r for r in data["rows"] if data["strings"][r[2]] == HOSTILE)
    assert data["strings"][hostile[3]] == "Same." and hostile[1] == 9  # texts and input line
    assert {data["validators"][v] for v, _, _ in hostile[6]} == {"content", "duplication"}
    assert "content/identical" in [data["tags"][t] for t in hostile[7]]
    assert [r[5] for r in data["rows"]] == sorted((r[5] for r in data["rows"]), reverse=True)
    assert set(by_id) == set(flags.index[flags["any_issue"]])


def test_report_command_renders_the_same_file_again(folder, capsys):
    first = (folder / "index.html").read_bytes()
    (folder / "index.html").unlink()
    assert main(["report", str(folder)]) == 0
    assert "index.html" in capsys.readouterr().out
    assert (folder / "index.html").read_bytes() == first  # deterministic, charts included


def test_report_without_saved_texts_says_so(folder):
    (folder / TEXTS_FILE).unlink()
    html = write_report(folder).read_text("utf-8")
    assert "texts of the pairs were not saved" in html


def test_report_of_a_folder_without_an_audit_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no audit.json" in capsys.readouterr().err


def test_no_report_option_writes_no_html(tmp_path, capsys):
    data = write_lines(tmp_path / "pairs.jsonl", [pair(), pair("Q", "A", "A")])
    assert main(["audit", str(data), "--out", str(tmp_path / "o"), "--no-report"]) == 0
    assert (tmp_path / "o" / "audit.json").exists() and not (tmp_path / "o" / "index.html").exists()
    assert "report:" not in capsys.readouterr().out
    assert main(["audit", str(data), "--out", str(tmp_path / "o")]) == 0
    assert f"report: {tmp_path / 'o' / 'index.html'}" in capsys.readouterr().out


def test_check_and_clean_add_their_results_to_the_report(tmp_path, capsys):
    rows = [pair(f"Q{i}?", f"A{i}.", f"B{i}.") for i in range(6)] + [pair("Q?", "Same", "same")]
    data = write_lines(tmp_path / "pairs.jsonl", rows)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nmetrics:\n  content/identical_pairs: {max: 0, severity: error}\n"
        "clean:\n  drop: [content]\n"
    )
    out = tmp_path / "o"
    base = [str(data), "--out", str(out), "--validators", "content"]
    assert main(["check", *base, "--rules", str(rules)]) == 1
    html = (out / "index.html").read_text("utf-8")
    assert "FAILED" in html and "The rule file fails: content/identical_pairs" in html
    assert main(["clean", *base, "--policy", str(rules)]) == 0
    html = (out / "index.html").read_text("utf-8")
    assert 'id="cleaning"' in html and "6 of 7 pairs kept" in html


def test_the_cleaning_section_shows_each_decision_with_its_texts_and_evidence(tmp_path):
    """The flipped-pairs list gave only ids: the flips (wrong on AlpacaEval) could not be
    judged where they were reported."""
    import prefaudit
    from prefaudit.report.inputs import ReportInputs
    from prefaudit.report.review import review_groups

    rows = [pair(f"Question {i}?", f"Answer number {i}.", f"Wrong {i}.") for i in range(8)]
    rows += [pair("Which way?", "The labelled answer.", "The raters' answer.", id="turned")]
    rows += [pair("Same?", "Same.", "same.", id="twin")]
    votes = [{"pair_id": "turned", "annotator": r, "label": "rejected"} for r in "abc"]
    votes += [
        {"pair_id": f"p{i}", "annotator": r, "label": "chosen"} for i in range(3) for r in "ab"
    ]
    data = write_lines(tmp_path / "pairs.jsonl", rows)
    annotations = write_lines(tmp_path / "votes.jsonl", votes)
    out = tmp_path / "o"
    prefaudit.clean(data, out=out, annotations=annotations, embedding_model="off")
    groups = {g.action: g for g in review_groups(ReportInputs.read(out))}
    assert list(groups) == ["flip", "drop"]
    (flip,) = groups["flip"].rows
    assert (flip.pair_id, flip.prompt, flip.chosen, flip.rejected, flip.in_table) == (
        "turned",
        "Which way?",
        "The labelled answer.",
        "The raters' answer.",
        True,
    )
    assert flip.decision.startswith("flipped by raters: ")
    assert "agreement (" in flip.evidence_text and "prefer the rejected" in flip.evidence_text
    (drop,) = groups["drop"].rows
    assert groups["drop"].total == 1  # dropped by content and by duplication: one pair
    assert (drop.pair_id, drop.chosen, drop.rejected) == ("twin", "Same.", "same.")
    assert drop.decision.startswith("content: ")
    html = (out / "index.html").read_text("utf-8")
    assert html.count('class="pair-link" href="#pair=turned"') == 1
    assert "Flipped: chosen and rejected swapped (1 pair)" in html


def scorecard_claims(html: str) -> list[tuple[str, list]]:
    """Each tile and problem of the scorecard: its text and the figures it says it states."""
    card = html[html.index('<section id="scorecard">') : html.index('<section id="overview">')]
    found = re.findall(
        r"<(?:div|li) class=\"(?:tile|problem)[^\"]*\" data-figures='([^']*)'>(.*?)</(?:div|li)>",
        card,
    )
    claims = []
    for figures, body in found:
        body = re.sub(r'<span class="sev">\w+</span>|<a href="#\w+">details</a>', "", body)
        text = unescape(re.sub(r"<[^>]+>", " ", body)).strip()
        claims.append((re.sub(r"\s+", " ", text), json.loads(unescape(figures))))
    return claims


def test_every_number_on_the_scorecard_is_the_figure_of_the_audit_it_claims(tmp_path):
    """Each sentence is written from the figures it states; this reads them back from
    audit.json and flags.parquet, independently of the report's code."""
    import prefaudit
    from prefaudit.demo import generate_demo
    from prefaudit.report.sections import num, pct

    demo = generate_demo(tmp_path / "data")
    prompts = str(demo.eval_prompts)
    params = {"duplication": {"against": prompts}, "coverage": {"reference": prompts}}
    out = tmp_path / "demo"
    options = dict(annotations=str(demo.annotations), embedding_model="off", params=params)
    prefaudit.check(str(demo.pairs), rules="default", out=out, **options)
    audit = json.loads((out / "audit.json").read_text())
    flags = pd.read_parquet(out / "flags.parquet")
    issues = [c for c in flags.columns if c.endswith("/issue")]
    flagged = int(flags[issues].any(axis=1).sum())
    known = {k: v for r in audit["validators"].values() for k, v in r["metrics"].items()}
    known |= {"pairs": len(flags), "flagged": flagged, "flagged/share": flagged / len(flags)}
    known |= {f"load/{k}": audit["load"][k] for k in ("rows_read", "rows_rejected")}
    html = (out / "index.html").read_text("utf-8")
    claims = scorecard_claims(html)
    assert len(claims) >= 15  # six tiles and the demo's planted problems
    for text, figures in claims:
        rest = text
        for key, kind, written in sorted(figures, key=lambda f: -len(f[2])):
            assert written in rest, (text, written)
            rest = rest.replace(written, "", 1)
            if kind != "text" and key != "guide":
                value = sum(known[k] or 0 for k in key.split("+"))
                assert written == (num(value) if kind == "num" else pct(value)), (text, key)
        # What is left states no number: only the interval's level and DPO's constant loss.
        assert not re.search(r"\d", rest.replace("95% CI", "").replace("ln 2", "")), text
    for check, count in re.findall(
        r'<tr><td><a href="#(\w+)">\1</a></td><td class="num">([\d,]+)</td>', html
    ):
        assert int(count.replace(",", "")) == int(flags[f"{check}/issue"].sum()), check
    rules = json.loads((out / "check.json").read_text())["results"]
    for rule in rules:
        if rule["rule"] in known and rule.get("value") is not None:
            assert rule["value"] == pytest.approx(known[rule["rule"]]), rule["rule"]


def test_the_scorecard_lists_one_problem_per_set_of_pairs(tmp_path):
    """Identical responses are found by content (high) and duplication (medium): the same
    three pairs were listed twice."""
    rows = [pair(f"Question {i}?", f"Answer number {i}.", f"Wrong {i}.") for i in range(12)]
    rows += [pair(f"Same {i}?", "Same.", "same.") for i in range(3)]
    html = (audited(tmp_path, rows) / "index.html").read_text("utf-8")
    texts = [text for text, _ in scorecard_claims(html)]
    assert any(t.startswith("3 pairs have the same chosen and rejected response") for t in texts)
    assert not any("the same response on both sides" in t for t in texts)
    assert "the same response on both sides" in html  # still in its own section


def test_only_problems_about_the_very_same_pairs_are_merged():
    """An empty chosen response among the label-noise suspects is a finding of its own."""
    from prefaudit.report.render import _one_per_pairs
    from prefaudit.report.sections import Problem

    flags = pd.DataFrame(
        {
            "label_noise/issue": [True, True, True, False],
            "content/empty_response": [True, False, False, False],
            "content/identical": [False, False, False, True],
            "duplication/degenerate": [False, False, False, True],
        },
        index=["a", "b", "c", "d"],
    )
    noise = Problem("high", "noise", covers=("label_noise/issue",))
    identical = Problem("high", "identical", covers=("content/identical",))
    empty = Problem("medium", "empty chosen", covers=("content/empty_response",))
    degenerate = Problem("medium", "degenerate", covers=("duplication/degenerate",))
    kept = _one_per_pairs([noise, identical, empty, degenerate], flags)
    assert [p.text for p in kept] == ["noise", "identical", "empty chosen"]


def test_an_audit_saved_before_empty_chosen_existed_does_not_call_its_empty_responses_rejected():
    from prefaudit.report.sections.content import _problems

    (old,) = _problems({"content/empty_responses": 2})
    assert (old.severity, old.text.split(":")[0]) == ("medium", "2 pairs have an empty response")
    (new,) = _problems({"content/empty_responses": 2, "content/empty_chosen": 0})
    assert new.severity == "low" and "empty rejected response" in new.text


def test_the_long_text_store_keeps_within_its_budget_and_says_what_it_left_out():
    from prefaudit.report.text import LongTexts, decode

    store = LongTexts(budget=50_000)
    first, second = store.add("x" * 40_000), store.add("y" * 40_000)
    assert store.add("x" * 40_000) == first  # stored once
    texts = decode(store.blob())
    assert texts[first] == "x" * 40_000 and texts[second].startswith("y" * LongTexts.FLOOR)
    assert texts[second].endswith(
        "[… 20,000 more characters not in this report: the input file has the whole text]"
    )


def test_a_validator_without_its_own_section_gets_the_generic_one(tmp_path, monkeypatch):
    class ShoutValidator(Validator):
        name = "shout_test"
        description = "Flags prompts written in capitals."
        metric_names = ("shout_test/count",)

        def run(self, context):
            flags = empty_flags(context.pairs.index)
            flags["issue"] = context.pairs["prompt"].str.isupper().to_numpy()
            flags["score"] = flags["issue"].astype(float)
            flags["reason"] = ["capitals" if i else "" for i in flags["issue"]]
            return self.result(flags, {"shout_test/count": int(flags["issue"].sum())})

    monkeypatch.setitem(VALIDATORS, "shout_test", ShoutValidator)
    assert "shout_test" not in SECTIONS
    out = audited(tmp_path, [pair("HELLO?"), pair("hello?")], ("content", "shout_test"))
    html = (out / "index.html").read_text("utf-8")
    assert 'id="shout_test"' in html and "Flags prompts written in capitals." in html
    assert "shout_test/count" in html
    data = decode(re.search(r'id="pairs-data">([^<]*)<', html).group(1))
    assert data["validators"] == ["content", "shout_test"] and len(data["rows"]) == 1


def test_every_registered_validator_has_its_own_section():
    from prefaudit.report.sections import _discover

    _discover()
    assert set(VALIDATORS) <= set(SECTIONS)


def test_sections_render_from_an_older_audit_missing_figures(folder):
    from prefaudit.report.inputs import ReportInputs

    inputs = ReportInputs.read(folder)
    result = inputs.result.validators["duplication"]
    stripped = type(result)(result.name, result.flags, {}, {}, result.params)
    section = build_section("duplication", stripped, inputs)
    assert section.problems == [] and section.context["groups"] == []


def test_text_budget_cuts_long_texts_to_a_common_length():
    flags = pd.DataFrame(
        {
            "content/score": [1.0, 1.0],
            "content/issue": [True, True],
            "content/reason": ["x", "y"],
            "any_issue": [True, True],
        },
        index=["a", "b"],
    )
    texts = pd.DataFrame(
        {
            "prompt": ["p" * 5000, "q"],
            "chosen": ["c" * 300, "d"],
            "rejected": ["r" * 100, "e"],
            "row": [1, 2],
        },
        index=["a", "b"],
    )
    data = table_data(flags, ["content"], texts, budget=1000)
    assert data["text_cap"] == 597 and data["texts_cut"] == 1
    prompt = data["strings"][data["rows"][0][2]]
    assert prompt.startswith("p" * 597) and "4,403 more characters not shown" in prompt
    assert table_data(flags, ["content"], texts)["text_cap"] is None


@pytest.mark.parametrize(
    "lengths,budget", [([5, 10, 1000], 300), ([100] * 50, 2500), ([3, 3000, 40], 2000)]
)
def test_cap_keeps_the_total_within_the_budget(lengths, budget):
    import numpy as np

    cap = _cap(np.array(lengths), budget)
    assert sum(min(n, cap) for n in lengths) <= budget or cap == 200
    assert sum(min(n, cap + 1) for n in lengths) > budget


def test_every_text_cell_of_the_templates_is_folded_when_long():
    """Each table cell that shows text from the data goes through `clamped` (the word diff,
    which compares only what it shows, through the `clamp` macro): issue 21 found a
    900,000-character response printed whole by the label-noise section, freezing the page for
    18 s, and issue 27 one 12,964-character response making a row 81,831 px tall."""
    from importlib import resources

    from prefaudit.report.render import _environment

    folder = resources.files("prefaudit.report").joinpath("templates")
    templates = [folder.joinpath(n) for n in ("cleaning.html", "report.html", "training.html")]
    templates += list(folder.joinpath("sections").iterdir())
    cells = [
        cell
        for template in templates
        for cell in re.findall(r'<td class="text">(.*?)</td>', template.read_text("utf-8"))
    ]
    assert len(cells) > 15
    assert all("|clamped" in cell or "clamp(diff(" in cell for cell in cells), cells
    long = "word " * 200_000
    html = _environment().from_string("<td>{{ text|clamped }}</td>").render(text=long)
    assert html == (
        '<td><div class="clamp" data-rest="0">' + long[:1_999] + ' …</div><button type="button"'
        ' class="more">show more (1,000,000 characters in all)</button></td>'
    )


def test_shown_folds_what_is_over_the_limit_and_escapes_both_parts():
    from prefaudit.report.text import shown

    text = "<i>" + "x" * 3_000 + "\u202e"
    html = str(shown(text))
    head, rest = html.split('<details class="more">')
    assert head == "&lt;i&gt;" + "x" * 1_997 and "1,011 more characters" in rest
    assert unescape(head + rest.split("</summary>")[1].removesuffix("</details>")) == (
        "<i>" + "x" * 3_000 + "⟦U+202E⟧"
    )


def test_ids_with_bidi_or_zero_width_characters_are_marked(tmp_path):
    rows = [pair(f"Question {i}?", f"Answer {i}.", f"Wrong {i}.") for i in range(6)]
    rows += [pair("Same?", "Same.", "same.", id="ab\u202ecd\u200b")]
    out = audited(tmp_path, rows)
    html = (out / "index.html").read_text("utf-8")
    blob = re.search(r'id="pairs-data">([^<]*)</script>', html).group(1)
    ids = [row[0] for row in decode(blob)["rows"]]
    assert ids == ["ab⟦U+202E⟧cd⟦U+200B⟧"]


def test_word_diff_compares_only_what_is_shown():
    from prefaudit.report.text import word_diff

    left, right = word_diff("a " * 500_000, "a " * 500_000 + "b")
    assert left[-1] == ("same", " … (998,000 more characters)")
    assert right[-1] == ("same", " … (998,001 more characters)")


def test_report_of_a_damaged_audit_exits_2_naming_the_folder(folder, capsys):
    (folder / "audit.json").write_text("{not json")
    assert main(["report", str(folder)]) == 2
    assert f"{folder}: the saved audit cannot be read" in capsys.readouterr().err


@pytest.mark.parametrize("scores", [False, True])
def test_the_noise_rate_is_a_headline_only_with_signals_besides_the_preference_model(
    tmp_path, scores
):
    """The model alone learns what the judge liked as much as wrong labels: its rate was
    headlined as HIGH ("11.1% of labels look flipped") on correctly labelled AlpacaEval pairs."""
    import numpy as np

    import prefaudit
    from tests.validators.test_label_noise import _planted

    pairs, _ = _planted(200, flipped=0.2)
    if scores:  # explicit scores: a second signal
        pairs["score_chosen"] = np.where(pairs["chosen"].str.contains("clear"), 5, 3)
        pairs["score_rejected"] = 4
    result = prefaudit.audit(pairs, validators=["label_noise"], embedding_model="off")
    html = prefaudit.to_html(result, tmp_path / "r.html").read_text("utf-8")
    assert ("labels estimated flipped (scores, model)" in html) == scores
    assert ("The preference model alone suspects about" in html) == (not scores)


def test_a_reference_that_does_not_predict_the_labels_points_at_no_flips():
    """The reference section said "look for flipped labels there" (HIGH) for a lean that
    label_noise, calibrating the same reference on the labels, found no evidence of."""
    from prefaudit.report.sections.reference import _problems

    m = {"reference/dispreferred_rate": 0.2}
    (trusted,) = _problems(m, unsure=False)
    (unsure,) = _problems(m, unsure=True)
    assert trusted.severity == "high" and "look for flipped labels" in trusted.text
    assert unsure.severity == "low" and "not evidence of flipped labels" in unsure.text


def test_a_weak_reference_does_not_make_the_noise_rate_a_headline():
    """signals_supporting decides; an audit saved before it existed falls back to "any signal
    besides the preference model"."""
    from prefaudit.report.sections.label_noise import _problems, supported

    weak = {"signals_used": ["model", "reference"], "signals_supporting": []}
    assert not supported(weak)
    assert supported({"signals_used": ["model", "reference"], "signals_supporting": ["reference"]})
    assert supported({"signals_used": ["model", "reference"]})  # saved before
    assert not supported({"signals_used": ["model"]})
    m = {"label_noise/estimated_rate": 0.3, "label_noise/flagged": 12}
    (hint,) = _problems(m, ["model", "reference"], supported(weak))
    assert hint.severity == "low"
    assert hint.text.startswith("The model and reference signals, none of them firm")


def _verdict_of(html: str) -> tuple[str, str, str | None]:
    """(tone, label, the rules tile's tone or None) of a rendered report."""
    import re

    tone, label = re.search(r'<div class="verdict (\w+)"><strong>([^<]+)\.</strong>', html).groups()
    tile = re.search(r'<div class="tile (\w+)"><span class="value">(?:PASSED|FAILED)<', html)
    return tone, label, tile.group(1) if tile else None


@pytest.mark.parametrize(
    ("rows", "rule", "expected"),
    [
        # Clean data, rules that pass: nothing to fix.
        (
            [pair(f"Q{i}?", f"Answer {i}.", f"No {i}.") for i in range(8)],
            "max: 0",
            "Ready to train",
        ),
        # An identical pair: a high problem cleaning drops (content/identical), rules pass.
        (
            [pair(f"Q{i}?", f"Answer {i}.", f"No {i}.") for i in range(8)]
            + [pair("Q?", "Same", "same")],
            "max: 1",
            "Train after cleaning",
        ),
        # The same pair, and a rule that fails on it: CI stops here, so does the verdict.
        (
            [pair(f"Q{i}?", f"Answer {i}.", f"No {i}.") for i in range(8)]
            + [pair("Q?", "Same", "same")],
            "max: 0",
            "Do not train yet",
        ),
    ],
)
def test_the_verdict_the_rules_tile_and_the_problems_agree(tmp_path, rows, rule, expected):
    """A green PASSED tile stood beside three HIGH problems: the verdict comes first, and the
    rules tile takes its colour."""
    data = write_lines(tmp_path / "pairs.jsonl", rows)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"version: 1\nmetrics:\n  content/identical_pairs: {{{rule}, severity: error}}\n"
        "clean:\n  drop: [content/identical]\n"
    )
    out = tmp_path / "o"
    code = main(
        ["check", str(data), "--out", str(out), "--validators", "content", "--rules", str(rules)]
    )
    html = (out / "index.html").read_text("utf-8")
    tone, label, tile = _verdict_of(html)
    assert label == expected and tile == tone
    high = 'class="problem high"' in html
    assert code == (1 if expected == "Do not train yet" else 0)
    assert high == (expected != "Ready to train")  # the problem list says why, or nothing high
    if expected == "Train after cleaning":
        assert "the same chosen and rejected response" in html.split("</ul></div>")[0]


def test_the_verdict_follows_the_policy_the_folder_was_cleaned_with():
    from prefaudit.report.sections import Problem
    from prefaudit.report.verdict import decide

    identical = Problem("high", "identical pairs", "content", "drop:content/identical")
    alpha = Problem("medium", "raters agree moderately", "agreement")
    assert decide([identical, alpha], None, None).label == "Train after cleaning"
    dropped = {"policy": {"drop": ["content"], "dedupe": True}}
    assert decide([identical], None, dropped).label == "Train after cleaning"
    kept = {"policy": {"drop": [], "dedupe": True}}  # a cleaning that kept them: still there
    assert decide([identical], None, kept).label == "Do not train yet"
    ready = decide([alpha], None, None)
    assert ready.label == "Ready to train" and ready.reasons == ["raters agree moderately"]
    failed = {"results": [{"rule": "r", "status": "failed", "severity": "error"}]}
    assert decide([], failed, None).reasons == ["The rule file fails: r."]
