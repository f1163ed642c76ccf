"""Scoring under torchrun: pairs are shared out across processes, results come back in order."""

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

pytest.importorskip("torch")

from prefaudit.models.reference import ReferenceScorer  # noqa: E402
from tests.helpers import save_tiny_model, torchrun  # noqa: E402

PAIRS = [(f"question number {i} about things", f" answer {i}", f" wrong {i} {i}") for i in range(7)]


@pytest.mark.slow
@pytest.mark.parametrize("cache", [False, True], ids=["gathered", "through-the-cache"])
def test_two_processes_give_the_single_process_results(tmp_path, cache):
    words = " ".join(" ".join(p) for p in PAIRS).split()
    model = save_tiny_model(tmp_path / "tiny", words)
    cache_dir = str(tmp_path / "cache") if cache else False
    script = tmp_path / "score.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            from prefaudit.models.reference import ReferenceScorer
            pairs = {PAIRS!r}
            scorer = ReferenceScorer({str(model)!r}, cache_dir={cache_dir!r})
            frame = scorer.score(*map(list, zip(*pairs)))
            frame["scored_here"] = scorer.tokens_scored
            frame.to_parquet({str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.parquet")
            """
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    single = ReferenceScorer(str(model), cache_dir=False).score(
        *map(list, zip(*PAIRS, strict=True))
    )
    ranks = [pd.read_parquet(tmp_path / f"rank{r}.parquet") for r in (0, 1)]
    for frame in ranks:
        pd.testing.assert_frame_equal(frame.drop(columns="scored_here"), single, atol=1e-6)
    shares = [frame["scored_here"].iat[0] for frame in ranks]
    assert all(share > 0 for share in shares)  # both processes did part of the work
    total = int(
        (single["prompt_tokens"] + single["chosen_tokens"] + single["rejected_tokens"]).sum()
    )
    assert sum(shares) == total  # ...and no pair was scored twice


@pytest.mark.slow
def test_the_audit_command_under_torchrun_writes_once_from_rank_0(tmp_path, monkeypatch):
    import orjson

    words = " ".join(" ".join(p) for p in PAIRS).split()
    model = save_tiny_model(tmp_path / "tiny", words)
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(
        b"\n".join(orjson.dumps({"prompt": p, "chosen": c, "rejected": r}) for p, c, r in PAIRS)
    )
    command = ["audit", str(data), "--ref-model", str(model), "--validators", "content"]
    run = torchrun([*command, "--out", str(tmp_path / "two")])
    assert run.stdout.count("reference/scored_pairs") == 1  # one report, from rank 0
    audit = orjson.loads((tmp_path / "two" / "audit.json").read_bytes())
    assert set(audit["validators"]) == {"content", "reference"}
    from prefaudit.cli import main

    monkeypatch.setenv("PREFAUDIT_CACHE_DIR", str(tmp_path / "fresh"))  # computed again, alone
    assert main([*command, "--out", str(tmp_path / "one")]) == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "two" / "reference_logps.parquet"),
        pd.read_parquet(tmp_path / "one" / "reference_logps.parquet"),
        atol=1e-6,
    )
