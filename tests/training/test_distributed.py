"""The training loop under torchrun (DDP, gloo on CPU) reaches the single-process weights."""

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
