"""The training loop on a CUDA GPU: bf16 by default and it still learns, AdamW's small steps
survive bf16 weights, and float32 on the GPU follows float32 on the CPU step by step. Every
test skips on a machine without CUDA."""

import numpy as np
import orjson
import pytest

torch = pytest.importorskip("torch")

from prefaudit.training import TrainConfig, loop, train  # noqa: E402
from tests.helpers import preference_task, task_model  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

QUICK = dict(eval_every=0, save_every=0, warmup_ratio=0.0, log_every=1)


def _lines(folder) -> list[dict]:
    return [orjson.loads(x) for x in (folder / "metrics.jsonl").read_bytes().split()]


def _weights(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model" / "model.safetensors"))


def test_on_cuda_it_trains_in_bf16_by_default_and_learns(tmp_path, monkeypatch):
    seen = []
    pair_stats = loop._pair_stats

    def spy(model, *args, **kwargs):
        weight = next(model.parameters())
        stats = pair_stats(model, *args, **kwargs)
        seen.append((weight.device.type, weight.dtype, stats["loss"].device.type))
        return stats

    monkeypatch.setattr(loop, "_pair_stats", spy)
    folder = task_model(tmp_path / "tiny")
    held = preference_task(100, seed=1, prefix="e")
    # The CPU test's settings (test_loop.py), device and dtype left to their defaults.
    config = TrainConfig(model=str(folder), learning_rate=1e-3, batch_size=16, max_steps=20)
    result = train(preference_task(300), config, tmp_path / "run", eval_pairs=held)

    assert seen and set(seen) == {("cuda", torch.bfloat16, "cuda")}  # training and evaluation
    assert result.eval_metrics["rewards/accuracies"] > 0.9
    assert result.eval_metrics["loss"] < 0.6  # below log 2, where it starts
    lines = _lines(tmp_path / "run")
    assert [x["step"] for x in lines if x["split"] == "eval"] == [20]
    assert {x["split"] for x in lines} == {"train", "eval"}
    for line in lines:
        assert all(np.isfinite(v) for k, v in line.items() if k not in ("step", "split"))
    summary = orjson.loads((tmp_path / "run" / "summary.json").read_bytes())
    assert summary["train_pairs"] == 300 and summary["eval_pairs"] == 100
    assert summary["reference_logps"]["train"] == {"audit": 0, "computed": 300}
    assert summary["peak_gpu_memory_gib"] is not None and summary["peak_gpu_memory_gib"] > 0
    assert summary["tokens_per_second"] > 0
    # The saved model keeps the dtype it was trained in.
    assert {t.dtype for t in _weights(tmp_path / "run").values()} == {torch.bfloat16}


def test_bf16_weights_take_adamws_small_steps(tmp_path):
    """At TRL's learning rate (1e-6), AdamW moves each weight by about 1e-6 a step, while a bf16
    weight of 0.02 can only move in steps of 1.2e-4: stepping the bf16 weights themselves rounds
    every update away except on the tiniest weights (about 2% of the tiny model's after 5 steps
    or 60). Stepped through float32 masters, the updates add up until they cross a bf16 step:
    18.5% of the weights had moved after 60 steps (95% in float32, where every update lands).
    All three measured on the CPU (the first two in bf16)."""
    folder = task_model(tmp_path / "tiny")
    config = TrainConfig(model=str(folder), learning_rate=1e-6, batch_size=8, max_steps=60, **QUICK)
    pairs = preference_task(64)
    train(pairs, config, tmp_path / "run", eval_pairs=pairs.iloc[:0])
    from safetensors.torch import load_file

    before = load_file(str(folder / "model.safetensors"))
    after = _weights(tmp_path / "run")
    assert {t.dtype for t in after.values()} == {torch.bfloat16}
    moved = sum(int((after[k] != before[k].to(torch.bfloat16)).sum()) for k in before)
    assert moved / sum(t.numel() for t in before.values()) > 0.1


def test_float32_on_cuda_follows_float32_on_the_cpu(tmp_path):
    folder = task_model(tmp_path / "tiny")
    pairs, losses = preference_task(128), {}
    for device in ("cpu", "cuda"):
        config = TrainConfig(
            model=str(folder),
            learning_rate=1e-3,
            batch_size=16,
            max_steps=8,
            device=device,
            dtype="float32",
            **QUICK,
        )
        result = train(pairs, config, tmp_path / device, eval_pairs=pairs.iloc[:0])
        losses[device] = np.array([x["loss"] for x in _lines(tmp_path / device)])
        assert (result.summary["peak_gpu_memory_gib"] is None) == (device == "cpu")
    assert len(losses["cpu"]) == len(losses["cuda"]) == 8
    assert losses["cpu"][0] - losses["cpu"][-1] > 0.03  # it trained: the comparison means something
    # Same seed, pairs, batches and float32 weights: only the order of float32 sums differs
    # (cuBLAS and the attention kernel split them otherwise; index_add uses atomics). On the
    # CPU, 1 thread against 2 moved these losses by at most 3e-8. AdamW divides each gradient by
    # its running scale, so a weight whose gradient is near zero can take a different step
    # (up to the learning rate) on the GPU, and later steps drift further than the first:
    # 1e-4 allows that drift and is still hundreds of times smaller than what the 8 steps move
    # the loss (0.056 on the CPU).
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=0, atol=1e-4)
