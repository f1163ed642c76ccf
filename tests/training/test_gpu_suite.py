"""The GPU benchmarks' arithmetic (benchmarks/mfu.py) and the GPU suite's CPU rehearsal."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import mfu  # noqa: E402


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),  # SXM
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.05),
        ("NVIDIA A10G", None),  # listed as unknown, not taken for an A10
        ("NVIDIA A10", 125.0),
        ("Some Future Accelerator", None),
        (None, None),
    ],
)
def test_peak_is_looked_up_from_the_device_name(name, peak):
    assert mfu.peak_tflops(name) == peak


def test_mfu_is_none_without_a_peak_and_a_fraction_with_one():
    assert mfu.mfu(1e12, 1.0, None) is None
    assert mfu.shown(None) == "n/a"
    assert mfu.mfu(989.4e12 / 2, 1.0, 989.4) == pytest.approx(0.5)


def test_training_flops_are_six_per_parameter_per_token_plus_head_and_attention():
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=100,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    body = sum(p.numel() for p in model.parameters()) - 2 * 100 * 16
    assert mfu.body_params(model) == body
    # One pair: prompt 3, chosen 2, rejected 1 tokens.
    attention = 4 * 2 * 16 * (3 * 4 / 2 + (5 * 6 - 3 * 4) / 2 + (4 * 5 - 3 * 4) / 2)
    forward = 2 * body * 6 + 2 * 100 * 16 * 3 + attention
    assert mfu.training_flops(model, [(3, 2, 1)]) == pytest.approx(3 * forward)


@pytest.mark.slow
def test_the_gpu_suite_rehearses_on_the_cpu(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    from realdata import SHARED

    if not (SHARED / "hh-rlhf-harmless-test.jsonl.gz").exists():
        pytest.skip(f"the real pairs are not at {SHARED}")
    root = str(BENCHMARKS.parent)
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_suite.py"), "--tiny", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads((tmp_path / "summary.json").read_text())
    steps = figures["steps"]
    assert set(steps) == {"reference-tiny", "train-tiny", "fsdp"}
    assert all(step["status"] == "measured" for step in steps.values())
    assert set(steps["reference-tiny"]["methods"]) >= {"plain loop", "prefaudit"}
    assert steps["reference-tiny"]["methods"]["prefaudit"]["max_abs_diff_vs_plain"] < 1e-4
    assert steps["reference-tiny"]["methods"]["prefaudit"]["mfu"] is None  # a CPU: n/a
    assert set(steps["fsdp"]["runs"]) == {"fsdp", "ddp"}
    assert all(run["status"] == "measured" for run in steps["fsdp"]["runs"].values())
    markdown = (tmp_path / "summary.md").read_text()
    assert "## fsdp: measured" in markdown and "n/a" in markdown
