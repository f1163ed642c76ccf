"""The packed forward's language-model head, run a block of scored positions at a time, gives
the log-probs and gradients of the whole-logits forward."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import TINY_SHAPE, tiny_causal_lm

pytestmark = pytest.mark.models


def _batch(seed: int = 0):
    from prefaudit.models.packing import pack_pairs

    rng = np.random.default_rng(seed)
    draw = lambda n: rng.integers(3, 64, n).tolist()  # noqa: E731
    prompts = [draw(5), draw(9), draw(3)]
    responses = [[draw(7), draw(4)], [draw(2), draw(11)], [draw(6), draw(6)]]
    return pack_pairs(prompts, responses, pad=0)


def _logps_and_grads(model, packed, precise: bool):
    from prefaudit.models.packing import packed_logps

    model.zero_grad()
    logps = packed_logps(model, packed, precise=precise)
    logps.sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), grads


@pytest.mark.parametrize("precise", [False, True])
def test_blockwise_head_equals_the_whole_logits_forward(monkeypatch, precise):
    import torch

    from prefaudit.models import packing

    model = tiny_causal_lm().train()
    packed = _batch()
    monkeypatch.setattr(packing, "BLOCK_LOGITS", 64 * 5)  # 5 positions a block: several blocks
    calls = []
    original = packing._blockwise
    monkeypatch.setattr(packing, "_blockwise", lambda *a: calls.append(1) or original(*a))
    blockwise, blockwise_grads = _logps_and_grads(model, packed, precise)
    assert calls  # the blockwise head ran
    monkeypatch.setattr(packing, "_decoder_and_head", lambda model: None)
    whole, whole_grads = _logps_and_grads(model, packed, precise)
    assert blockwise.shape == whole.shape == (3, 2)
    torch.testing.assert_close(blockwise, whole, rtol=0, atol=1e-5)
    assert blockwise_grads.keys() == whole_grads.keys() and len(whole_grads) > 10
    for name, grad in whole_grads.items():
        torch.testing.assert_close(blockwise_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_models_whose_logits_are_more_than_their_head_take_the_whole_logits_path():
    """Gemma 2 soft-caps its logits after the head: the probe sees head(hidden) differ from
    the logits and keeps the whole-logits path; a plain Llama, and the same Llama with LoRA
    adapters, take the blockwise path."""
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from prefaudit.models.packing import _decoder_and_head

    assert _decoder_and_head(tiny_causal_lm()) is not None
    lora = get_peft_model(tiny_causal_lm(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert _decoder_and_head(lora) is not None
    gemma = Gemma2ForCausalLM(
        Gemma2Config(
            vocab_size=64,
            head_dim=8,
            final_logit_softcapping=0.5,  # small enough to change every logit
            **TINY_SHAPE,
        )
    ).eval()
    assert _decoder_and_head(gemma) is None


def test_lora_models_get_the_same_log_probs_and_gradients_blockwise(monkeypatch):
    import torch
    from peft import LoraConfig, get_peft_model

    from prefaudit.models import packing

    model = get_peft_model(
        tiny_causal_lm(),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    ).train()
    packed = _batch(1)
    blockwise, blockwise_grads = _logps_and_grads(model, packed, precise=False)
    monkeypatch.setattr(packing, "_decoder_and_head", lambda model: None)
    whole, whole_grads = _logps_and_grads(model, packed, precise=False)
    torch.testing.assert_close(blockwise, whole, rtol=0, atol=1e-5)
    assert blockwise_grads.keys() == whole_grads.keys() and len(whole_grads) == 8  # adapters only
    for name, grad in whole_grads.items():
        torch.testing.assert_close(blockwise_grads[name], grad, rtol=1e-4, atol=1e-6)
