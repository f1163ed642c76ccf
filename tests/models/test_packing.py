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


def _peak_bytes(run) -> int:
    """The most bytes of tensor storage alive at once while ``run()`` goes (counted from its
    start: every storage an operator creates, until it is freed), forward and backward."""
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Live(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen, self.now, self.peak = weakref.WeakKeyDictionary(), 0, 0

        def _freed(self, size: int) -> None:
            self.now -= size

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in tree_flatten(out)[0]:
                if isinstance(tensor, torch.Tensor) and tensor.untyped_storage() not in self.seen:
                    storage = tensor.untyped_storage()
                    self.seen[storage] = True
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self._freed, storage.nbytes())
            return out

    with Live() as live:
        run()
    return live.peak


def test_the_blockwise_heads_peak_does_not_grow_with_vocabulary_times_tokens(monkeypatch):
    """Forward and backward of 1,600 scored tokens at vocabularies of 2,048 and 8,192 (a
    one-layer model of width 16): the whole-logits head holds at least twice the logits
    tensor at its peak (logits and their log-softmax), and grows with it; the blockwise head
    stays under a quarter of it at the larger vocabulary, and grows by less than a tenth of
    what the logits tensor grows by (its growth: the head's and the embeddings' gradients)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from prefaudit.models import packing

    monkeypatch.setattr(packing, "BLOCK_LOGITS", 2**16)  # 256 KiB of float32 logits a block
    rng = np.random.default_rng(0)
    peaks, logits = {}, {}
    for vocab in (2048, 8192):
        torch.manual_seed(0)
        shape = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2)
        model = LlamaForCausalLM(
            LlamaConfig(vocab_size=vocab, num_hidden_layers=1, num_key_value_heads=1, **shape)
        ).train()
        prompt, chosen, rejected = (rng.integers(3, vocab, n).tolist() for n in (4, 200, 200))
        packed = packing.pack_pairs([prompt] * 4, [[chosen, rejected]] * 4, pad=0)
        logits[vocab] = len(packed["targets"]) * vocab * 4  # bytes of float32 logits

        def run(model=model, packed=packed):
            packing.packed_logps(model, packed, precise=False).sum().backward()
            model.zero_grad(set_to_none=True)

        peaks["blockwise", vocab] = _peak_bytes(run)
        with monkeypatch.context() as whole:
            whole.setattr(packing, "_decoder_and_head", lambda model: None)
            peaks["whole", vocab] = _peak_bytes(run)
    assert len(packed["targets"]) == 1600
    print({key: round(value / 2**20, 2) for key, value in peaks.items()})  # MiB, with -s
    assert all(peaks["whole", vocab] >= 2 * logits[vocab] for vocab in (2048, 8192))
    assert peaks["blockwise", 8192] <= logits[8192] / 4
    grown = logits[8192] - logits[2048]
    assert peaks["whole", 8192] - peaks["whole", 2048] >= 2 * grown
    assert peaks["blockwise", 8192] - peaks["blockwise", 2048] <= grown / 10
