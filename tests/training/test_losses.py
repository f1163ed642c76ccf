"""The DPO losses against their closed forms, and the reduction that makes accumulation exact."""

import math

import pytest

torch = pytest.importorskip("torch")

from prefaudit.training.losses import LOSSES, reduce  # noqa: E402

CHOSEN = torch.tensor([0.5, -1.0, 2.0, 0.0])
REJECTED = torch.tensor([-0.5, 1.0, 0.0, 0.0])
TOKENS = torch.tensor([4.0, 2.0, 8.0, 1.0])


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_sigmoid_is_dpo():
    out = LOSSES["sigmoid"](CHOSEN, REJECTED, beta=0.1)
    expected = [
        -_log_sigmoid(0.1 * (c - r))
        for c, r in zip(CHOSEN.tolist(), REJECTED.tolist(), strict=True)
    ]
    assert out.tolist() == pytest.approx(expected, abs=1e-7)
    assert out[3].item() == pytest.approx(math.log(2))  # an unmoved pair


@pytest.mark.parametrize("name", ["cdpo", "robust"])
def test_smoothed_losses_reduce_to_dpo_without_smoothing(name):
    plain = LOSSES["sigmoid"](CHOSEN, REJECTED, beta=0.3)
    assert torch.allclose(LOSSES[name](CHOSEN, REJECTED, beta=0.3, smoothing=0.0), plain)


def test_cdpo_mixes_both_orientations_per_pair():
    smoothing = torch.tensor([0.0, 0.1, 0.5, 0.2])
    out = LOSSES["cdpo"](CHOSEN, REJECTED, beta=1.0, smoothing=smoothing)
    swapped = LOSSES["sigmoid"](REJECTED, CHOSEN, beta=1.0)
    plain = LOSSES["sigmoid"](CHOSEN, REJECTED, beta=1.0)
    assert torch.allclose(out, (1 - smoothing) * plain + smoothing * swapped)
    # A soft label of 0.5 is no preference at all: the loss is symmetric in the two responses.
    assert out[2].item() == pytest.approx(
        LOSSES["cdpo"](REJECTED, CHOSEN, beta=1.0, smoothing=smoothing)[2].item()
    )


def test_robust_is_unbiased_under_the_assumed_flip_rate():
    # E over a flip with probability e of the robust loss equals the clean DPO loss.
    e = 0.2
    kept = LOSSES["robust"](CHOSEN, REJECTED, beta=0.5, smoothing=e)
    flipped = LOSSES["robust"](REJECTED, CHOSEN, beta=0.5, smoothing=e)
    clean = LOSSES["sigmoid"](CHOSEN, REJECTED, beta=0.5)
    assert torch.allclose((1 - e) * kept + e * flipped, clean, atol=1e-6)


def test_ipo_uses_per_token_log_ratios():
    out = LOSSES["ipo"](
        CHOSEN, REJECTED, beta=0.1, chosen_tokens=TOKENS, rejected_tokens=TOKENS.flip(0)
    )
    delta = CHOSEN / TOKENS - REJECTED / TOKENS.flip(0)
    assert torch.allclose(out, (delta - 5.0) ** 2)


def test_reduce_over_micro_batches_equals_one_batch():
    losses, weights = torch.rand(10), torch.rand(10)
    whole = reduce(losses, weights)
    parts = reduce(losses[:4], weights[:4], count=10) + reduce(losses[4:], weights[4:], count=10)
    assert parts.item() == pytest.approx(whole.item())
    assert reduce(losses).item() == pytest.approx(losses.mean().item())
