"""The trainer's loss and gradient against TRL's DPOTrainer (TRL: a test-only dependency):
same model, same pairs, same settings, for every loss TRL also has."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")

from prefaudit.models.loading import load_causal_lm  # noqa: E402
from prefaudit.training import TrainConfig  # noqa: E402
from prefaudit.training.data import compute_reference, prepare  # noqa: E402
from prefaudit.training.loop import _pair_stats  # noqa: E402
from prefaudit.training.losses import reduce  # noqa: E402
from tests.helpers import save_tiny_model  # noqa: E402

# Completions start with a space, so TRL's joint tokenisation splits where ours does.
PAIRS = [
    {"prompt": "what is two plus two", "chosen": " it is four", "rejected": " it is five or six"},
    {"prompt": "say hi to me please now", "chosen": " hi", "rejected": " no thanks"},
    {"prompt": "name a colour", "chosen": " blue is a colour", "rejected": " seven"},
    {"prompt": "count to three", "chosen": " one two three", "rejected": " four"},
]


def _perturb(model):
    """Move the policy away from the reference (a seeded nudge to every weight), so the
    log-ratios, and with them the losses, are not zero."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))


def _trl_loss_and_grads(folder, tmp_path, loss, beta, smoothing):
    from datasets import Dataset

    model, tokenizer = load_causal_lm(folder)
    args = trl.DPOConfig(
        output_dir=str(tmp_path / "trl"),
        loss_type=[loss],
        beta=beta,
        label_smoothing=smoothing,
        per_device_train_batch_size=len(PAIRS),
        max_length=None,
        report_to=[],
        use_cpu=True,
        bf16=False,
        fp16=False,
    )
    trainer = trl.DPOTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(PAIRS), processing_class=tokenizer
    )
    batch = next(iter(trainer.get_train_dataloader()))
    _perturb(trainer.model)  # TRL's reference is a copy made before this
    trainer.model.train()
    value = trainer.compute_loss(trainer.model, batch)
    value.backward()
    return value.item(), {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


@pytest.mark.parametrize(
    ("loss", "beta", "smoothing"), [("sigmoid", 0.1, 0.0), ("ipo", 0.5, 0.0), ("robust", 0.2, 0.1)]
)
def test_loss_and_gradient_equal_trl(tmp_path, loss, beta, smoothing):
    words = " ".join(" ".join(p.values()) for p in PAIRS).split()
    folder = save_tiny_model(tmp_path / "tiny", words)
    expected, expected_grads = _trl_loss_and_grads(folder, tmp_path, loss, beta, smoothing)

    model, tokenizer = load_causal_lm(folder)
    pairs = pd.DataFrame(PAIRS, index=[f"p{i}" for i in range(len(PAIRS))])
    config = TrainConfig(model=str(folder), loss=loss, beta=beta, label_smoothing=smoothing)
    prepared = prepare(pairs, tokenizer, max_length=1024, use_weights=True)
    compute_reference(prepared, model, tokenizer)
    _perturb(model)
    model.train()
    stats = _pair_stats(model, prepared, np.arange(len(PAIRS)), tokenizer.pad_token_id, config)
    value = reduce(stats["loss"], stats["weight"])
    value.backward()

    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    grads = dict(model.named_parameters())
    assert set(grads) == set(expected_grads)
    for name, theirs in expected_grads.items():
        ours = grads[name].grad
        scale = theirs.abs().max().item() + 1e-12
        assert (ours - theirs).abs().max().item() / scale < 1e-4, name
    assert any(g.abs().max() > 0 for g in expected_grads.values())  # a real gradient
    assert np.abs(stats["rewards"].numpy()).min() > 1e-3  # the policy has moved off the reference
