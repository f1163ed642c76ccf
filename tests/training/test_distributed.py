"""The training loop under torchrun (DDP, gloo on CPU) reaches the single-process weights."""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from prefaudit.cli import main  # noqa: E402
from tests.helpers import preference_task, task_model  # noqa: E402


@pytest.mark.slow
def test_two_processes_train_to_the_single_process_weights(tmp_path):
    from safetensors.torch import load_file

    folder = task_model(tmp_path / "tiny")
    path = tmp_path / "pairs.jsonl"
    preference_task(48).drop(columns="flipped").to_json(path, orient="records", lines=True)
    flags = ["train", str(path), "--model", str(folder), "--max-steps", "4", "--batch-size", "8"]
    flags += ["--learning-rate", "1e-3", "--eval-fraction", "0.2", "--device", "cpu"]
    assert main([*flags, "--out", str(tmp_path / "one")]) == 0
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        + ["-m", "prefaudit", *flags, "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert run.returncode == 0, run.stderr[-3000:]
    one = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    two = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    assert one.keys() == two.keys()
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((tmp_path / "one" / "metrics.jsonl").read_text().splitlines())
