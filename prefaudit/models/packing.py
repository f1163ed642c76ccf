"""Pairs packed for one forward call, and the summed log-probs of their responses.

One row per pair: the prompt once, then both responses, an attention mask that keeps the
rejected tokens from seeing the chosen ones. The reference pass scores batches this way
(float64 log-softmax) and the trainer runs its forward on the same layout, with gradients.
"""

from __future__ import annotations

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
    log-softmax in float64 (the reference pass); float32 otherwise (training)."""
    import torch

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    sees = _attention(torch.from_numpy(packed["segment"]).to(device))
    mask = torch.zeros(sees.shape, dtype=dtype, device=device)
    mask.masked_fill_(~sees, torch.finfo(dtype).min)
    out = model(
        input_ids=torch.from_numpy(packed["ids"]).to(device),
        attention_mask=mask[:, None],
        position_ids=torch.from_numpy(packed["position"]).to(device),
        use_cache=False,
        logits_to_keep=packed["kept"],
    )
    owner = torch.from_numpy(packed["owner"]).to(device)
    logits = out.logits[
        torch.from_numpy(packed["rows"]).to(device), torch.from_numpy(packed["columns"]).to(device)
    ]
    targets = torch.from_numpy(packed["targets"]).to(device)
    if precise:
        picked = token_logps(logits, targets)
    else:
        picked = logits.float().log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    n = len(packed["ids"])
    totals = torch.zeros(2 * n, dtype=picked.dtype, device=device).index_add(0, owner, picked)
    return totals.view(n, 2)


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
