import orjson
import pytest

from prefaudit.cli import main
from prefaudit.demo import generate_demo, planted_found


def test_demo_finds_every_planted_content_defect(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path), "--pairs", "200", "--seed", "3", "--ref-sample", "0"]
    assert main(args) == 0
    printed = capsys.readouterr().out
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
    raters = {r["defect"]: r["found"] for r in rows if r["validator"] == "agreement"}
    assert raters["unreliable_annotator"] == 1 and raters["position_biased_annotator"] == 1
    content = [r for r in rows if r["validator"] in ("content", "load", "duplication")]
    assert len(content) == 11 and all(r["found"] == r["planted"] for r in content), content
    (flips,) = [r for r in rows if r["validator"] == "label_noise"]
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


def test_demo_is_reproducible_and_needs_enough_pairs(tmp_path):
    first = generate_demo(tmp_path / "a", pairs=160, seed=1)
    second = generate_demo(tmp_path / "b", pairs=160, seed=1)
    assert first.pairs.read_bytes() == second.pairs.read_bytes()
    assert first.annotations.read_bytes() == second.annotations.read_bytes()
    with pytest.raises(ValueError, match="at least 150"):
        generate_demo(tmp_path / "c", pairs=20)
