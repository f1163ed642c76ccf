"""The training loop under torchrun (DDP, gloo on CPU) reaches the single-process weights, on
the dense path and, with FSDP too, on the packed path."""

import orjson
import pytest

torch = pytest.importorskip("torch")

from prefaudit.cli import main  # noqa: E402
from tests.helpers import task_training, torchrun, trained_weights  # noqa: E402


@pytest.mark.slow
def test_two_processes_train_to_the_single_process_weights(tmp_path):
    flags = task_training(tmp_path, 48)
    assert main([*flags, "--out", str(tmp_path / "one")]) == 0
    torchrun([*flags, "--out", str(tmp_path / "two")])
    one, two = trained_weights(tmp_path / "one"), trained_weights(tmp_path / "two")
    assert one.keys() == two.keys()
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((tmp_path / "one" / "metrics.jsonl").read_text().splitlines())
    summary = orjson.loads((tmp_path / "two" / "summary.json").read_bytes())
    assert (summary["parallel"], summary["processes"]) == ("ddp", 2)


@pytest.mark.slow
def test_ddp_and_fsdp_on_the_packed_path_reach_the_single_process_weights(tmp_path):
    """Under DDP and FSDP the pair module's forward runs the packed rows (the kernel replaced
    by SDPA over the block mask's rule: the CPU has no FlexAttention backward) and the
    blockwise head; both end at the weights of one process on the dense path."""
    flags = task_training(tmp_path, 48)
    assert main([*flags, "--out", str(tmp_path / "one")]) == 0
    one = trained_weights(tmp_path / "one")
    for parallel in ("ddp", "fsdp"):
        out, calls = tmp_path / parallel, tmp_path / f"{parallel}-calls"
        calls.mkdir()
        torchrun(
            [*flags, "--parallel", parallel, "--out", str(out)],
            module="tests.training.packed_cli",
            env={"PREFAUDIT_ATTENTION": "flex-eager", "PACKED_CALLS": str(calls)},
        )
        # Every process's training forwards ran the packed rows: at least one per step.
        counts = {path.name: int(path.read_text()) for path in calls.iterdir()}
        assert counts.keys() == {"rank-0", "rank-1"} and min(counts.values()) >= 4, counts
        summary = orjson.loads((out / "summary.json").read_bytes())
        assert summary["attention"] == "flex-eager"
        assert (summary["parallel"], summary["processes"]) == (parallel, 2)
        two = trained_weights(out)
        for name in one:
            assert torch.allclose(one[name], two[name], atol=1e-5), (parallel, name)
