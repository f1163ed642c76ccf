"""FSDP2 under torchrun (2 gloo processes on the CPU): the sharded run reaches the
single-process weights, and a run resumed from its sharded checkpoint ends where an
uninterrupted one does; under ``accelerate launch`` too."""

import shutil

import orjson
import pytest

torch = pytest.importorskip("torch")

from prefaudit.cli import main  # noqa: E402
from prefaudit.errors import SettingError  # noqa: E402
from prefaudit.training import TrainConfig  # noqa: E402
from tests.helpers import (  # noqa: E402
    ACCELERATE,
    DEVICES,
    dense_twin,
    logps_and_grads,
    one_process_group,
    packed_on,
    task_training,
    tiny_causal_lm,
    token_pairs,
    torchrun,
    trained_weights,
)


def _lines(folder) -> list[dict]:
    return [orjson.loads(x) for x in (folder / "metrics.jsonl").read_bytes().splitlines()]


@pytest.mark.slow
def test_fsdp_trains_to_the_single_process_weights_and_resumes(tmp_path):
    flags = task_training(tmp_path, 40)
    flags += ["--log-every", "1", "--eval-every", "2", "--save-every", "2", "--warmup-ratio", "0"]
    assert main([*flags, "--out", str(tmp_path / "one")]) == 0
    torchrun([*flags, "--parallel", "fsdp", "--out", str(tmp_path / "two")])
    one, two = trained_weights(tmp_path / "one"), trained_weights(tmp_path / "two")
    assert one.keys() == two.keys()
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name
    # The same metrics: training lines from both processes' shares, evaluations sharded too.
    a, b = _lines(tmp_path / "one"), _lines(tmp_path / "two")
    assert [(x["step"], x["split"]) for x in a] == [(x["step"], x["split"]) for x in b]
    for x, y in zip(a, b, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], abs=1e-5)
    summary = orjson.loads((tmp_path / "two" / "summary.json").read_bytes())
    assert summary["reference_logps"]["train"]["computed"] > 0  # the sharded reference pass
    assert (summary["parallel"], summary["processes"]) == ("fsdp", 2)

    # Killed after the step-2 checkpoint (its files as a kill leaves them), then resumed under
    # FSDP, with activation checkpointing this time (inside each sharded layer): the same
    # weights and metrics as the uninterrupted run.
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "two", cut)
    shutil.rmtree(cut / "model")
    (cut / "summary.json").unlink()
    assert [p.name for p in (cut / "checkpoints").iterdir()] == ["step-0000002"]
    torchrun(
        [*flags, "--parallel", "fsdp", "--gradient-checkpointing", "--resume", "--out", str(cut)]
    )
    resumed = trained_weights(cut)
    for name in two:
        assert torch.allclose(two[name], resumed[name], atol=1e-6), name
    assert [x["loss"] for x in _lines(cut)] == pytest.approx([x["loss"] for x in b], abs=1e-6)


def test_fsdp_refuses_lora_and_unknown_parallel():
    with pytest.raises(SettingError, match="lora_r"):
        TrainConfig(parallel="fsdp", lora_r=8)
    with pytest.raises(SettingError, match="parallel must be ddp or fsdp"):
        TrainConfig(parallel="zero3")


@pytest.mark.slow
def test_accelerate_launch_runs_fsdp_across_its_processes(tmp_path):
    """The same command under ``accelerate launch`` (its --multi_gpu launcher, which starts
    torchrun's processes; on a CPU they use gloo) reaches the single-process weights."""
    pytest.importorskip("accelerate")
    flags = task_training(tmp_path, 40)
    assert main([*flags, "--out", str(tmp_path / "one")]) == 0
    launched = [*flags, "--parallel", "fsdp", "--out", str(tmp_path / "two")]
    torchrun(launched, launcher=ACCELERATE)
    summary = orjson.loads((tmp_path / "two" / "summary.json").read_bytes())
    assert (summary["parallel"], summary["processes"]) == ("fsdp", 2)
    one, two = trained_weights(tmp_path / "one"), trained_weights(tmp_path / "two")
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name


@pytest.mark.parametrize("device", DEVICES)
def test_the_sharded_root_runs_packed_rows_and_the_blockwise_head(device, tmp_path, monkeypatch):
    """FSDP2's root unit is flex.pair_module(model): its forward gathers the embeddings, final
    norm and head (sharded outside it) around the packed rows and the blockwise head, with the
    dense path's log-probs and gradients. One process; on CUDA the compiled kernel's backward."""
    from prefaudit.models import flex
    from prefaudit.training.sharding import is_sharded, shard

    model = tiny_causal_lm().to(device).train()
    want, expected = dense_twin(model, monkeypatch)
    packed, head, path = packed_on(device, monkeypatch)
    with one_process_group(tmp_path, "gloo" if device == "cpu" else "nccl"):
        sharded, root = shard(model.cpu(), device, 1)
        assert flex.causal_lm(root) is sharded
        assert all(is_sharded(p) for p in sharded.parameters())
        got, grads = logps_and_grads(root, list(sharded.named_parameters()), *token_pairs(4))
        assert flex.attention_path(root) == path
    assert packed and head  # with gradients on: the training forward, not the probe
    torch.testing.assert_close(got.cpu(), want.cpu(), rtol=0, atol=1e-4)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name].cpu(), grad.cpu(), rtol=1e-3, atol=1e-5, msg=name)
