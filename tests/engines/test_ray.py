"""The audit on Ray (prefaudit.engines.ray): the same audit.json and flags.parquet as one
process, per-block loading that accounts for every row, stages that resume from their shards,
and clear errors. One local cluster (2 CPUs) per module."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefaudit import api
from prefaudit.cli import main
from prefaudit.io import load
from tests.helpers import (
    BAD_WORDS,
    FILLER_WORDS,
    GOOD_WORDS,
    CharTokenizer,
    WordEmbedder,
    save_tiny_model,
    tiny_causal_lm,
)

ray = pytest.importorskip("ray")
engine = pytest.importorskip("prefaudit.engines.ray")

ROOT = Path(__file__).resolve().parents[2]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-test.jsonl.gz"
TIMING = {"reference/tokens_per_second"}


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster whose workers import prefaudit and tests from this checkout."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}},
    )
    yield ray
    ray.shutdown()


def _same_audit(a: Path, b: Path) -> None:
    """audit.json (timings aside) and flags.parquet of two audit folders are equal: every
    key, string, count and flag, and every float within 1e-6 (relative, or absolute near 0).
    A Ray actor runs torch on its one CPU, the driver on all of them: float32 sums in another
    order move the reference model's log-probs in their last bits (3e-9 relative on the demo's
    margins, 1.3e-8 absolute on a mean near 0, with torch 2.13 and transformers 5.25)."""
    first, second = (json.loads((f / "audit.json").read_text()) for f in (a, b))
    for saved in (first, second):
        for key in ("timings", "created", "versions"):
            saved.pop(key)
        for result in saved["validators"].values():
            for name in TIMING & set(result.get("metrics", {})):
                result["metrics"][name] = None
    _assert_close(first, second)
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "flags.parquet"),
        pd.read_parquet(b / "flags.parquet"),
        check_exact=False,
        rtol=1e-6,
        atol=1e-6,
    )


def _assert_close(first, second) -> None:
    """``first`` equals ``second``: dicts and lists item by item, floats within 1e-6
    (relative or absolute)."""
    if isinstance(first, dict) and isinstance(second, dict):
        assert first.keys() == second.keys()
        for key in first:
            _assert_close(first[key], second[key])
        return
    if isinstance(first, list) and isinstance(second, list):
        assert len(first) == len(second)
        for x, y in zip(first, second, strict=True):
            _assert_close(x, y)
        return
    if isinstance(first, float) and isinstance(second, float):
        assert first == pytest.approx(second, rel=1e-6, abs=1e-6, nan_ok=True)
        return
    assert first == second


def test_the_demo_audit_on_ray_is_the_single_process_audit(cluster, tmp_path):
    from prefaudit.demo import generate_demo

    data = generate_demo(tmp_path / "data", pairs=200)
    model = save_tiny_model(tmp_path / "ref", FILLER_WORDS + GOOD_WORDS + BAD_WORDS)
    options = {
        "annotations": str(data.annotations),
        "against": str(data.eval_prompts),
        "coverage_reference": str(data.eval_prompts),
        "reference_model": str(model),
        "reference_sample": 30,
        "embedding_model": WordEmbedder(),
        "report": False,
    }
    api.audit(str(data.pairs), out=tmp_path / "local", **options)
    api.audit(str(data.pairs), out=tmp_path / "ray", engine="ray", ray_block_rows=40, **options)
    _same_audit(tmp_path / "local", tmp_path / "ray")
    saved = json.loads((tmp_path / "ray" / "audit.json").read_text())
    assert saved["validators"]["reference"]["metrics"]["reference/scored_pairs"] > 20
    assert len(list(engine.shard_folder("reference").glob("*.parquet"))) == 1  # 30 pairs
    assert len(list(engine.shard_folder("embeddings").glob("*.parquet"))) > 1


def _lines(path: Path, records: list) -> Path:
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in records))
    return path


def _rows_with_bad_ones(n: int = 30) -> list:
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(n)]
    planted = {
        2: "{not json\n",  # block 1
        8: {"prompt": "q8", "chosen": None, "rejected": "x"},  # block 2
        13: {"prompt": "q13", "chosen": " ", "rejected": "y"},  # kept, with a warning
        17: {"prompt": "q17", "chosen": "same", "rejected": "same"},
        21: {"prompt": "q17", "chosen": "same", "rejected": "same"},  # a repeat: another id
        26: {"prompt": "q26", "chosen": "a" * 500, "rejected": "b"},  # over max_chars
    }
    for row, record in planted.items():
        if row < n:
            rows[row] = record
    return rows


def test_the_load_report_accounts_for_every_row_across_blocks(cluster, tmp_path):
    path = _lines(tmp_path / "pairs.jsonl", _rows_with_bad_ones())
    alone = load(str(path), max_chars=100)
    blocks = engine.load_blocks(str(path), max_chars=100, block_rows=5)
    report = blocks.report
    assert report.rows_read == report.rows_accepted + report.rows_rejected == 30
    assert [(i.line, i.field) for i in report.rejected] == [
        (3, None),
        (9, "chosen"),
        (27, "chosen"),
    ]
    assert report.to_dict() == alone.report.to_dict()
    pd.testing.assert_frame_equal(blocks.pairs, alone.pairs)


def test_a_pair_id_given_twice_in_two_blocks_is_rejected_as_in_one_process(cluster, tmp_path):
    rows = [
        {"id": f"x{i % 7}", "prompt": f"q{i}", "chosen": "c", "rejected": "r"} for i in range(12)
    ]
    path = _lines(tmp_path / "ids.jsonl", rows)
    blocks = engine.load_blocks(str(path), mapping={"pair_id": "id"}, block_rows=4)
    alone = load(str(path), mapping={"pair_id": "id"})
    assert blocks.report.to_dict() == alone.report.to_dict()
    assert blocks.report.rows_rejected == 5
    pd.testing.assert_frame_equal(blocks.pairs, alone.pairs)


def test_a_folder_of_shards_is_read_file_by_file(cluster, tmp_path):
    rows = _rows_with_bad_ones(20)
    folder = tmp_path / "shards"
    folder.mkdir()
    _lines(folder / "part-0.jsonl", rows[:10])
    _lines(folder / "part-1.jsonl", rows[10:])
    report = engine.load_blocks(str(folder), max_chars=100, block_rows=3).report
    assert report.rows_read == report.rows_accepted + report.rows_rejected == 20
    assert [(Path(i.file).name, i.line) for i in report.rejected] == [
        ("part-0.jsonl", 3),
        ("part-0.jsonl", 9),
    ]
    assert [(Path(w.file).name, w.line) for w in report.warnings] == [("part-1.jsonl", 4)]


class CountingScorer:
    """A reference scorer built in code that writes one line per block it scores (the model
    calls, counted across the actors' processes) and, when told, fails after N blocks."""

    def __init__(self, log: Path, fail_after: int | None = None):
        from prefaudit.models.reference import ReferenceScorer

        self.inner = ReferenceScorer(loaded=(tiny_causal_lm(), CharTokenizer()), max_length=256)
        self.log, self.fail_after = log, fail_after
        self.identity, self.model_identity = self.inner.identity, None

    @property
    def tokens_scored(self) -> int:
        return self.inner.tokens_scored

    def score(self, prompts, chosen, rejected, messages=None, progress=False):
        if self.fail_after is not None and _calls(self.log) >= self.fail_after:
            raise RuntimeError("killed mid-way")
        frame = self.inner.score(prompts, chosen, rejected, messages)
        with open(self.log, "a") as handle:
            handle.write(f"{len(prompts)}\n")
        return frame


def _calls(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def test_a_rerun_after_a_kill_scores_only_the_unfinished_blocks(cluster, tmp_path):
    n = 50
    pairs = pd.DataFrame(
        {
            "prompt": [f"say {i}" for i in range(n)],
            "chosen": [f"yes {i}" for i in range(n)],
            "rejected": [f"no {i * 7}" for i in range(n)],
        }
    )
    rows = np.arange(n)
    first = tmp_path / "first.log"
    with pytest.raises(Exception, match="killed mid-way"):
        engine.reference_logps(
            pairs, None, 256, rows, scorer=CountingScorer(first, 2), block_rows=10, actors=1
        )
    finished = len(list(engine.shard_folder("reference").glob("*.parquet")))
    assert _calls(first) == finished == 2  # one actor: two blocks done, then the kill

    second = tmp_path / "second.log"
    table, _ = engine.reference_logps(
        pairs, None, 256, rows, scorer=CountingScorer(second), block_rows=10, actors=1
    )
    assert _calls(second) == 5 - finished  # only the unfinished blocks were scored
    assert sum(map(int, second.read_text().split())) == n - 10 * finished
    whole = CountingScorer(tmp_path / "whole.log").inner.score(
        pairs["prompt"].tolist(), pairs["chosen"].tolist(), pairs["rejected"].tolist()
    )
    pd.testing.assert_frame_equal(table, whole)

    third = tmp_path / "third.log"
    engine.reference_logps(
        pairs, None, 256, rows, scorer=CountingScorer(third), block_rows=10, actors=1
    )
    assert _calls(third) == 0  # everything was kept


def test_engine_ray_without_ray_installed_exits_2_naming_the_extra(tmp_path, monkeypatch, capsys):
    path = _lines(tmp_path / "pairs.jsonl", _rows_with_bad_ones(5))
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["audit", str(path), "--engine", "ray", "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'prefaudit[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:9", "ray://127.0.0.1:9", "nowhere"])
def test_an_unreachable_ray_address_exits_2_naming_it(tmp_path, capsys, address):
    path = _lines(tmp_path / "pairs.jsonl", _rows_with_bad_ones(5))
    argv = ["audit", str(path), "--engine", "ray", "--ray-address", address]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert f"ray_address {address}" in capsys.readouterr().err


def test_ray_options_are_refused_without_the_engine(tmp_path, capsys):
    path = _lines(tmp_path / "pairs.jsonl", _rows_with_bad_ones(5))
    assert main(["audit", str(path), "--ray-address", "127.0.0.1:9"]) == 2
    assert "ray_address needs engine='ray'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not HH.exists(), reason=f"needs the shared data folder ({HH})")
def test_1000_hh_pairs_audit_the_same_on_ray(cluster, tmp_path):
    with gzip.open(HH, "rt") as handle:
        lines = list(itertools.islice(handle, 1000))
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(lines))
    api.audit(str(path), out=tmp_path / "local", report=False)
    api.audit(str(path), out=tmp_path / "ray", report=False, engine="ray", ray_block_rows=250)
    _same_audit(tmp_path / "local", tmp_path / "ray")


def test_import_prefaudit_and_a_local_audit_stay_free_of_ray(tmp_path):
    import subprocess

    path = _lines(tmp_path / "pairs.jsonl", _rows_with_bad_ones(5))
    code = (
        "import sys, prefaudit; prefaudit.audit(sys.argv[1], report=False); "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env, cwd=tmp_path)


def test_the_band_join_finds_the_near_duplicate_groups_of_one_process(cluster, monkeypatch):
    from prefaudit import dedup
    from prefaudit.auditing import run_audit

    base = [
        f"tell me about the weather in town number {i} today and about its roads, trains, "
        "buses, bridges and the river that runs through it, please"
        for i in range(40)
    ]
    texts = base + [t.replace("today", "now") for t in base[:15]] + ["short", "", "short"]
    texts += [" ".join(["same words again"] * 5)] * 70  # a bucket over the 64-neighbour window
    # Long texts get one-permutation signatures, texts in between both kinds (dedup.sketch).
    long = [" ".join(f"word{i}x{k} and more{k}" for k in range(60)) for i in range(12)]
    texts += long + [t.replace("more3 ", "more3! ") for t in long] + [t[:700] for t in long]
    values = dedup.comparable(texts)
    settings = {"threshold": 0.7, "shingle_size": 5, "num_perm": 128, "seed": 0}
    alone = dedup.near_duplicate_pairs(values, **settings)
    joined = dedup.near_duplicate_pairs(
        values, candidates=lambda v: engine.band_join(v, block_rows=17, **settings), **settings
    )
    sketches = dedup.sketch(values, 5, 128, 0, 1, 0.7)
    assert len(sketches.long) >= 24 and len(np.intersect1d(sketches.short, sketches.long))
    assert len(alone) > 100 and alone.candidates == joined.candidates
    for field in ("left", "right", "similarity"):
        np.testing.assert_array_equal(getattr(alone, field), getattr(joined, field))
    # Texts normalised as they are read (dedup.ComparableTexts past its size): the same.
    monkeypatch.setattr(dedup, "_HELD_BYTES", 0)
    raw = dedup.ComparableTexts([t.upper() + "!" for t in texts])
    read = dedup.near_duplicate_pairs(
        raw, candidates=lambda v: engine.band_join(v, block_rows=17, **settings), **settings
    )
    for field in ("left", "right", "similarity"):
        np.testing.assert_array_equal(getattr(alone, field), getattr(read, field))
    monkeypatch.undo()

    pairs = pd.DataFrame(
        {"prompt": texts, "chosen": [f"yes {i}" for i in range(len(texts))], "rejected": "no"},
        index=[f"p{i}" for i in range(len(texts))],
    )
    data = load(pairs)
    local = run_audit(data, validators=["duplication"], embedder=None)
    forced = engine.artefacts(data, ["duplication"], {}, None, block_rows=17, band_join_min=0)
    ray_run = run_audit(data, validators=["duplication"], embedder=None, artefacts=forced)
    assert local.metrics["duplication/near_duplicate_prompt_rate"] > 0
    pd.testing.assert_frame_equal(local.flags, ray_run.flags)
    assert local.metrics == ray_run.metrics
