import contextlib
import io

import orjson
import pytest

from prefaudit.cli import main
from prefaudit.demo import LOAD_REPORT, generate_demo, planted_found
from prefaudit.validators import VALIDATORS


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """(the output folder, what `prefaudit demo` printed): one run for the tests below."""
    out = tmp_path_factory.mktemp("demo")
    args = ["demo", "--out", str(out), "--pairs", "200", "--seed", "3", "--ref-sample", "0"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    return out, printed.getvalue()


def test_demo_finds_every_planted_content_defect(demo_run):
    tmp_path, printed = demo_run
    assert "SYNTHETIC" in printed and f"open {tmp_path / 'index.html'}" in printed
    for name in (
        "audit.json",
        "flags.parquet",
        "rejected.jsonl",
        "index.html",
        "flagged_texts.parquet",
        "data/pairs.jsonl",
        "data/annotations.jsonl",
        "data/planted.json",
    ):
        assert (tmp_path / name).exists(), name
    audit = orjson.loads((tmp_path / "audit.json").read_bytes())
    assert audit["load"]["pairs"] == 200 and audit["load"]["rejected_rows"] == 3
    from prefaudit.outputs import read_audit

    rows = planted_found(
        read_audit(tmp_path), orjson.loads((tmp_path / "data" / "planted.json").read_bytes())
    )
    raters = {r["defect"]: r["found"] for r in rows if r["check"] == "agreement"}
    assert raters["unreliable_annotator"] == 1 and raters["position_biased_annotator"] == 1
    content = [r for r in rows if r["check"] in ("content", LOAD_REPORT, "duplication")]
    assert len(content) == 11 and all(r["found"] == r["planted"] for r in content), content
    (flips,) = [r for r in rows if r["check"] == "label_noise"]
    assert flips["found"] >= 14, flips  # of 16 flipped labels, without embeddings in tests
    # Nothing else is flagged by content: the planted defects are the only ones.
    planted_ids = {
        i
        for r in (
            "identical",
            "empty_response",
            "truncated_at_cap",
            "ends_mid_sentence",
            "extreme_length",
        )
        for i in orjson.loads((tmp_path / "data" / "planted.json").read_bytes())["content"][r][
            "pair_ids"
        ]
    }
    assert set(read_audit(tmp_path).validators["content"].issues) == planted_ids


def test_every_row_of_the_planted_table_names_a_check_that_exists(demo_run):
    out, printed = demo_run
    checks = {*VALIDATORS, LOAD_REPORT}
    planted = orjson.loads((out / "data" / "planted.json").read_bytes())
    from prefaudit.outputs import read_audit

    rows = planted_found(read_audit(out), planted)
    assert {r["check"] for r in rows} <= checks
    assert LOAD_REPORT in {r["check"] for r in rows}  # the broken lines: the loader finds them
    table = printed.split("planted defects found", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    shown = [line for line in table if not line.startswith(("  also planted", "    ("))]
    assert len(shown) == len(rows)
    for line, row in zip(shown, rows, strict=True):
        assert line.startswith(f"  {row['check']:<12} {row['defect']} "), line
    # The report's hostile texts are planted for it to show as text: no check counts them.
    hostile = len(planted["report"]["hostile_text"]["pair_ids"])
    assert f"  also planted, for the report: hostile_text in {hostile} pairs" in table


def test_demo_is_reproducible_and_needs_enough_pairs(tmp_path):
    first = generate_demo(tmp_path / "a", pairs=160, seed=1)
    second = generate_demo(tmp_path / "b", pairs=160, seed=1)
    assert first.pairs.read_bytes() == second.pairs.read_bytes()
    assert first.annotations.read_bytes() == second.annotations.read_bytes()
    with pytest.raises(ValueError, match="at least 150"):
        generate_demo(tmp_path / "c", pairs=20)
