"""Pairs packed several to a row through FlexAttention give the log-probs of the plain loop
(one pair at a time, prompt cache cropped back for the rejected response), and the packed
layout's gradients equal the dense path's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.helpers import (
    DEVICES,
    TINY_SHAPE,
    dense_flex_kernel,
    dense_twin,
    logps_and_grads,
    one_process_group,
    packed_on,
    tiny_causal_lm,
    token_pairs,
)

pytestmark = pytest.mark.models


@pytest.fixture
def flex_eager(monkeypatch):
    monkeypatch.setenv("PREFAUDIT_ATTENTION", "flex-eager")
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")


def _plain_loop(model, prompts, responses):
    import torch

    from prefaudit.models.reference import _pair_logps

    with torch.no_grad():
        return np.array([_pair_logps(model, p, r) for p, r in zip(prompts, responses, strict=True)])


@pytest.mark.parametrize("row_tokens", [4096, 40])
def test_packed_rows_give_the_plain_loops_log_probs(flex_eager, monkeypatch, row_tokens):
    """Several pairs a row (and, at 40 tokens a row, several rows and a pair longer than a
    row) within 1e-4 of the unpacked loop, float32."""
    import torch

    from prefaudit.models import flex

    monkeypatch.setattr(flex, "ROW_TOKENS", row_tokens)
    model = tiny_causal_lm()
    prompts, responses = token_pairs()
    assert flex.attention_path(model) == "flex-eager"
    packed = flex.pack_rows(prompts, responses, 0, row_tokens=row_tokens)
    assert (len(packed["ids"]) == 1) == (row_tokens == 4096)
    with torch.no_grad():
        got = flex.pair_logps(model, prompts, responses, pad=0).numpy()
    np.testing.assert_allclose(got, _plain_loop(model, prompts, responses), rtol=0, atol=1e-4)


def test_rows_are_filled_first_fit_without_padding_between_pairs():
    from prefaudit.models.flex import BLOCK, first_fit, pack_rows

    assert first_fit(np.array([3, 9, 4, 6, 20]), 10) == [[4], [1], [3, 2], [0]]
    prompts, responses = [[5, 6, 7], [8]], [[[1, 2], [3, 4, 2]], [[9, 2], [2]]]
    packed = pack_rows(prompts, responses, 0, row_tokens=100)
    row = slice(0, 6 + 2)  # the longer pair first: 3 + 1 + 2; then 1 + 1 + 0
    assert packed["ids"].shape == (1, BLOCK)
    assert packed["ids"][0, row].tolist() == [5, 6, 7, 1, 3, 4, 8, 9]
    assert packed["document"][0, row].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert packed["segment"][0, row].tolist() == [0, 0, 0, 1, 2, 2, 0, 1]
    assert packed["position"][0, row].tolist() == [0, 1, 2, 3, 3, 4, 0, 1]
    assert (packed["document"][0, 8:] == -1).all() and (packed["ids"][0, 8:] == 0).all()
    # chosen [1, 2] from positions 2, 3; rejected [3, 4, 2] from 2, 4, 5; pair 1 from 6 and 7.
    assert packed["flat"].tolist() == [2, 3, 2, 4, 5, 6, 7, 6]
    assert packed["owner"].tolist() == [0, 0, 1, 1, 1, 2, 2, 3]
    assert packed["targets"].tolist() == [1, 2, 3, 4, 2, 9, 2, 2]


def test_packed_layout_gradients_equal_the_dense_paths(monkeypatch):
    """With gradients on: the packed rows (positions, scoring, the mask's rule) against one
    pair a row under the dense mask. The CPU has no FlexAttention backward, so the kernel is
    replaced by SDPA over the same rule; the forward check above covers the kernel itself."""
    import torch

    from prefaudit.models import flex

    model = tiny_causal_lm().train()
    prompts, responses = token_pairs(1)
    monkeypatch.setenv("PREFAUDIT_ATTENTION", "dense")
    dense, dense_grads = logps_and_grads(model, list(model.named_parameters()), prompts, responses)
    monkeypatch.setenv("PREFAUDIT_ATTENTION", "flex-eager")
    monkeypatch.setattr(flex, "kernel", dense_flex_kernel)
    monkeypatch.setattr(flex, "ROW_TOKENS", 60)  # two rows
    assert flex.attention_path(model) == "flex-eager"
    packed, packed_grads = logps_and_grads(
        model, list(model.named_parameters()), prompts, responses
    )
    torch.testing.assert_close(packed, dense, rtol=0, atol=1e-5)
    for name, grad in dense_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_architectures_the_block_mask_does_not_describe_keep_the_dense_path(flex_eager):
    """Mistral slides a window over its keys: its attention layers ask for more than the block
    mask says, the probe sees it and keeps the dense path (a plain Llama takes the packed)."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from prefaudit.models.flex import attention_path

    torch.manual_seed(0)
    mistral = MistralForCausalLM(
        MistralConfig(vocab_size=64, sliding_window=4, head_dim=8, **TINY_SHAPE)
    ).eval()
    assert attention_path(mistral) == "dense"
    assert attention_path(tiny_causal_lm()) == "flex-eager"


def test_activation_checkpointing_keeps_the_dense_path_while_training(flex_eager):
    """Checkpointed layers run again in the backward pass, outside the packed forward: a model
    training with them stays dense (evaluating, it packs)."""
    from prefaudit.models.flex import attention_path

    model = tiny_causal_lm()
    from prefaudit.training.loop import _checkpoint_activations

    _checkpoint_activations(model)
    assert attention_path(model.train()) == "dense"
    assert attention_path(model.eval()) == "flex-eager"


def test_attention_dropout_keeps_the_dense_path_while_training(flex_eager):
    """The packed kernel runs without dropout, and the probe runs in eval mode: a model with
    attention dropout trains on the dense path (evaluating, it packs), and its training
    forward runs."""
    from prefaudit.models.flex import attention_path, pair_logps

    model = tiny_causal_lm()
    model.config.attention_dropout = 0.1
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.1
    assert attention_path(model.eval()) == "flex-eager"
    assert attention_path(model.train()) == "dense"
    prompts, responses = token_pairs()
    logps = pair_logps(model, prompts, responses, 0, precise=False)
    assert logps.shape == (len(prompts), 2) and logps.requires_grad


def test_the_path_is_dense_on_cpu_by_default_and_compiled_on_cuda(monkeypatch):
    import torch

    from prefaudit.models.flex import attention_path, compiled_on

    monkeypatch.delenv("PREFAUDIT_ATTENTION", raising=False)
    assert attention_path(tiny_causal_lm()) == "dense"
    assert compiled_on(torch.device("cuda")) and not compiled_on(torch.device("cpu"))
    monkeypatch.setenv("PREFAUDIT_ATTENTION", "flash")
    with pytest.raises(ValueError, match="PREFAUDIT_ATTENTION must be one of"):
        attention_path(tiny_causal_lm())


@pytest.mark.slow
def test_the_compiled_kernel_gives_the_same_log_probs(monkeypatch):
    """torch.compile(flex_attention), the kernel CUDA runs, compiled here for the CPU (about
    30 s): the same log-probs as the plain loop."""
    import torch

    from prefaudit.models.flex import attention_path, pair_logps

    monkeypatch.setenv("PREFAUDIT_ATTENTION", "flex-compiled")
    model = tiny_causal_lm()
    prompts, responses = token_pairs(2)
    assert attention_path(model) == "flex-compiled"
    with torch.no_grad():
        got = pair_logps(model, prompts, responses, pad=0).numpy()
    np.testing.assert_allclose(got, _plain_loop(model, prompts, responses), rtol=0, atol=1e-4)


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_on_cuda_the_compiled_packed_path_runs_by_default(monkeypatch):
    import torch

    from prefaudit.models.flex import attention_path, pair_logps

    monkeypatch.delenv("PREFAUDIT_ATTENTION", raising=False)
    model = tiny_causal_lm().cuda()
    prompts, responses = token_pairs(3)
    assert attention_path(model) == "flex-compiled"
    with torch.no_grad():
        got = pair_logps(model, prompts, responses, pad=0).cpu().numpy()
        want = _plain_loop(model, prompts, responses)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_a_pair_longer_than_a_row_is_a_batch_of_its_own():
    """Rows are padded to the widest one: a 12k-token pair among 1k-token ones would pad every
    row of its batch to 12k (65,000 tokens planned, 180,480 positions run)."""
    from prefaudit.models.budget import plan_packed
    from prefaudit.models.flex import ROW_TOKENS, first_fit, padded_size

    length = np.array([1_000] * 30 + [12_000] + [1_000] * 35)
    batches = plan_packed(length, lambda tokens: tokens <= 65_000, ROW_TOKENS)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(length)))
    assert [b.tolist() for b in batches if 30 in b] == [[30]]
    for batch in batches:
        run = padded_size(length[batch], first_fit(length[batch], ROW_TOKENS))
        assert run <= 1.1 * length[batch].sum() + 128


@pytest.mark.parametrize("device", DEVICES)
def test_ddp_around_the_pair_module_runs_packed_rows_and_the_blockwise_head(
    device, tmp_path, monkeypatch
):
    """DDP wraps flex.pair_module(model) (what the trainer does on several GPUs): the training
    forward runs the packed rows and the blockwise head inside DDP's forward, with the dense
    path's log-probs and gradients. One process; on CUDA the compiled kernel's backward."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from prefaudit.models import flex

    model = tiny_causal_lm().to(device).train()
    want, expected = dense_twin(model, monkeypatch)
    packed, head, path = packed_on(device, monkeypatch)
    with one_process_group(tmp_path, "gloo" if device == "cpu" else "nccl"):
        wrapped = DistributedDataParallel(flex.pair_module(model))
        assert flex.attention_path(wrapped) is None  # no training forward yet
        got, grads = logps_and_grads(wrapped, list(model.named_parameters()), *token_pairs(4))
        assert flex.attention_path(wrapped) == path
        # DDP around the model itself has no config to ask: the dense path (this raised
        # AttributeError on CUDA's default path before the pair module).
        plain = DistributedDataParallel(tiny_causal_lm().to(device).train())
        assert flex.attention_path(plain) == "dense"
    assert packed and head  # with gradients on: the training forward, not the probe
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-3, atol=1e-5, msg=name)
