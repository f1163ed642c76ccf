"""Pairs packed for one forward call, and the summed log-probs of their responses.

One row per pair: the prompt once, then both responses, an attention mask that keeps the
rejected tokens from seeing the chosen ones. The reference pass scores batches this way
(float64 log-softmax) and the trainer runs its forward on the same layout, with gradients.
"""

from __future__ import annotations

import weakref

import numpy as np


def pack_pairs(prompts: list[list[int]], responses: list[list[list[int]]], pad: int) -> dict:
    """A batch of pairs laid out for one forward call, the prompt run once per pair.

    Each pair is one row, prompt + chosen + rejected (each response less its last token, which
    predicts nothing), left-padded; ``segment`` (0 prompt, 1 chosen, 2 rejected, -1 padding)
    drives an attention mask that lets the rejected tokens see the prompt and themselves but
    not the chosen ones; position ids restart both responses where the prompt ends. The
    language-model head is needed from the prompt's last position on (``kept`` positions),
    whose logits predict the first token of both responses. ``rows``/``columns``/``targets``
    locate every scored token; ``owner`` is 2 * pair (+1 for rejected).
    """
    n = len(prompts)
    sizes = np.array(
        [
            (len(p), max(len(c) - 1, 0), max(len(r) - 1, 0))
            for p, (c, r) in zip(prompts, responses, strict=True)
        ]
    ).reshape(n, 3)
    lengths = sizes.sum(axis=1)
    width = int(lengths.max())
    kept = int((lengths - sizes[:, 0]).max()) + 1
    ids = np.full((n, width), pad, dtype=np.int64)
    segment = np.full((n, width), -1, dtype=np.int64)
    position = np.zeros((n, width), dtype=np.int64)
    where, targets, owner = [], [], []
    for k, (prompt, (chosen, rejected)) in enumerate(zip(prompts, responses, strict=True)):
        p, c, r = sizes[k]
        offset = width - lengths[k]
        ids[k, offset:] = prompt + chosen[:-1] + rejected[:-1]
        segment[k, offset:] = np.repeat([0, 1, 2], (p, c, r))
        position[k, offset:] = np.concatenate(
            [np.arange(p), np.arange(p, p + c), np.arange(p, p + r)]
        )
        last = offset + p - 1  # the prompt's last token predicts the first token of both
        where += [
            last + np.arange(len(chosen)),
            np.r_[last, last + c + np.arange(1, len(rejected))],
        ]
        targets += [chosen, rejected]
        owner += [np.full(len(chosen), 2 * k), np.full(len(rejected), 2 * k + 1)]
    owner_all = np.concatenate(owner)
    return {
        "ids": ids,
        "segment": segment,
        "position": position,
        "kept": kept,
        "owner": owner_all,
        "rows": owner_all // 2,
        "columns": np.concatenate(where) - (width - kept),
        "targets": np.concatenate(targets).astype(np.int64),
    }


def packed_logps(model, packed: dict, *, precise: bool = True):
    """(pairs, 2) tensor of summed response log-probs for a :func:`pack_pairs` batch; keeps
    the autograd graph when gradients are on (the DPO trainer's forward). ``precise``: the
    log-softmax in float64 (the reference pass); float32 otherwise (training).

    The language-model head runs on the scored positions only, a block of them at a time
    (under activation checkpointing when gradients are on), so the (rows x positions x
    vocabulary) logits tensor never exists: on 4 AlpacaEval pairs that tensor alone is about
    0.8 GB in float32, kept twice over for the backward pass. Models whose logits are more than
    their head over the last hidden state (soft-capped, scaled or cropped logits: checked once
    per model) and models that DDP wraps directly (DDP syncs gradients through its own
    forward) take the whole-logits path; the trainer has DDP and FSDP wrap
    :func:`prefaudit.models.flex.pair_module`'s module instead, whose forward calls this.
    """
    import torch

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    sees = _attention(torch.from_numpy(packed["segment"]).to(device))
    mask = torch.zeros(sees.shape, dtype=dtype, device=device)
    mask.masked_fill_(~sees, torch.finfo(dtype).min)
    inputs = {
        "input_ids": torch.from_numpy(packed["ids"]).to(device),
        "attention_mask": mask[:, None],
        "position_ids": torch.from_numpy(packed["position"]).to(device),
        "use_cache": False,
    }
    rows = torch.from_numpy(packed["rows"]).to(device)
    columns = torch.from_numpy(packed["columns"]).to(device)
    targets = torch.from_numpy(packed["targets"]).to(device)
    parts = _decoder_and_head(model)
    if parts is None:
        logits = model(**inputs, logits_to_keep=packed["kept"]).logits[rows, columns]
        picked = _picked(logits, targets, precise)
    else:
        decoder, head = parts
        hidden = decoder(**inputs).last_hidden_state
        states = hidden[rows, columns + (hidden.shape[1] - packed["kept"])]
        picked = _blockwise(head, states, targets, precise)
    owner = torch.from_numpy(packed["owner"]).to(device)
    n = len(packed["ids"])
    totals = torch.zeros(2 * n, dtype=picked.dtype, device=device).index_add(0, owner, picked)
    return totals.view(n, 2)


# Logits per block of the head (positions x vocabulary): 128 MiB in float32.
BLOCK_LOGITS = 2**25


def _decoder_and_head(model):
    """(the decoder returning the last hidden state, the language-model head), or None when
    the model's logits are more than that head over that state (soft-capped, scaled or
    cropped logits: checked once per model by comparing the two on a few tokens), or DDP
    wraps it (DDP syncs gradients through its own forward)."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel):
        return None
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or decoder is model or head is None or not hasattr(head, "weight"):
        return None
    if model not in _HEAD_IS_LOGITS:
        _HEAD_IS_LOGITS[model] = _head_gives_the_logits(model, decoder, head)
    return (decoder, head) if _HEAD_IS_LOGITS[model] else None


# model -> whether head(last hidden state) gives its logits, checked once per model object.
_HEAD_IS_LOGITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _head_gives_the_logits(model, decoder, head) -> bool:
    """Whether head(decoder(ids)) equals model(ids).logits on a few tokens."""
    import torch

    device = head.weight.device
    ids = torch.arange(3, 11, device=device)[None] % head.weight.shape[0]
    training = model.training
    model.eval()  # no dropout in the comparison
    try:
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=False).logits.float()
            hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
            ours = head(hidden.to(head.weight.dtype)).float()
    except Exception:  # any model this probe cannot run: the whole-logits path
        return False
    finally:
        model.train(training)
    return ours.shape == logits.shape and bool(torch.allclose(ours, logits, rtol=1e-3, atol=1e-3))


def _picked(logits, targets, precise: bool):
    """log p(target) per scored position from its logits row."""
    if precise:
        return token_logps(logits, targets)
    return logits.float().log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)


def _blockwise(head, states, targets, precise: bool):
    """:func:`_picked` of ``head(states)``, a block of positions at a time; with gradients on,
    each block's logits are recomputed in the backward pass instead of kept."""
    import torch
    from torch.utils.checkpoint import checkpoint

    def block(state, target):
        return _picked(head(state.to(head.weight.dtype)), target, precise)

    rows = max(1, BLOCK_LOGITS // head.weight.shape[0])
    parts = []
    for start in range(0, states.shape[0], rows):
        state, target = states[start : start + rows], targets[start : start + rows]
        if torch.is_grad_enabled() and state.requires_grad:
            parts.append(checkpoint(block, state, target, use_reentrant=False))
        else:
            parts.append(block(state, target))
    if not parts:
        return torch.zeros(
            0, dtype=torch.float64 if precise else torch.float32, device=states.device
        )
    return torch.cat(parts)


def _attention(segment):
    """(rows, queries, keys) bool: who each token may attend to. Causal; the prompt (segment 0)
    is seen by all; a response (1 or 2) sees only itself besides; padding (-1) sees only itself
    (so no row of the mask is empty) and is seen by nobody."""
    import torch

    width = segment.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segment.device).tril()
    query, key = segment[:, :, None], segment[:, None, :]
    sees = causal & (key >= 0) & ((key == 0) | (key == query))
    return sees | torch.eye(width, dtype=torch.bool, device=segment.device)


def token_logps(logits, targets, rows: int | None = None):
    """log p(target) at each position (any leading shape; the vocabulary last), the log-softmax
    taken in float64 over blocks of positions: in float32 the normaliser over a ~50k
    vocabulary alone is off by about 1e-6 per token, which adds up to 1e-4 over a few hundred
    tokens."""
    import torch

    flat, wanted = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    rows = rows or max(1, 2**24 // logits.shape[-1])  # 128 MiB of float64 per block
    parts = []
    for start in range(0, flat.shape[0], rows):
        block = flat[start : start + rows].double()
        picked = block.gather(-1, wanted[start : start + rows, None]).squeeze(-1)
        parts.append(picked - torch.logsumexp(block, dim=-1))
    if not parts:
        return torch.zeros(targets.shape, dtype=torch.float64, device=logits.device)
    return torch.cat(parts).view(targets.shape)
