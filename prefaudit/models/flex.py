"""Pairs packed several to a row, attending through FlexAttention: no L x L mask, no padding
to the longest pair.

:func:`pack_rows` lays pairs end to end in rows of up to ``row_tokens`` tokens (first fit,
longest pair first), each pair as prompt + chosen + rejected (each response less its last
token), positions restarting at 0 for each prompt and both responses continuing from the
prompt's end, as :func:`prefaudit.models.packing.pack_pairs` does for one pair a row. Every
token carries a ``document`` (its pair) and a ``segment`` (0 prompt, 1 chosen, 2 rejected):
a token sees the earlier tokens of its own pair's prompt and of its own response, nothing else.
That rule goes to FlexAttention as a ``mask_mod``; its block mask skips every 128 x 128 block
the rule leaves empty, so the kernel never builds a mask or a score matrix of the row.

:func:`pair_logps` is the one entry point the reference pass and the trainer call: it takes
this path where it is available (:func:`attention_path`) and the dense-mask path of
:mod:`prefaudit.models.packing` elsewhere, with the same results (fp32: within 1e-4 per
sequence; tested on CPU against the one-pair-at-a-time loop).

Which kernel: on CUDA ``torch.compile(flex_attention)`` (the fused Triton kernel; eager
FlexAttention there would materialise the scores); on CPU the path is off by default (the
CPU kernel has no backward pass, and eager FlexAttention is slower than the dense path), and
tests turn it on with ``PREFAUDIT_ATTENTION=flex-eager``. ``PREFAUDIT_ATTENTION``: ``auto``
(the default), ``dense`` (the fallback, everywhere), ``flex-eager`` or ``flex-compiled``.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from prefaudit.errors import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ROW_TOKENS = 4096  # tokens a packed row holds (a longer pair gets a row of its own)
BLOCK = 128  # FlexAttention's block size: rows are padded to a multiple of it
MODES = ("auto", "dense", "flex-eager", "flex-compiled")
_NAME = "prefaudit_flex"  # the attention implementation registered with transformers


def pack_rows(
    prompts: list[list[int]], responses: list[list[list[int]]], pad: int, *, row_tokens: int
) -> dict:
    """Pairs laid end to end in rows (see the module's docstring). ``flat`` indexes the
    (rows x width) positions whose logits predict each scored token (``targets``); ``owner``
    is 2 * pair (+1 for rejected), the pair numbered in input order."""
    sizes = np.array(
        [
            (len(p), max(len(c) - 1, 0), max(len(r) - 1, 0))
            for p, (c, r) in zip(prompts, responses, strict=True)
        ],
        dtype=np.int64,
    ).reshape(len(prompts), 3)
    rows = first_fit(sizes.sum(axis=1), row_tokens)
    used = max((int(sizes[row].sum()) for row in rows), default=1)
    width = -(-used // BLOCK) * BLOCK
    shape = (len(rows), width)
    ids = np.full(shape, pad, dtype=np.int64)
    document, segment = np.full(shape, -1, dtype=np.int64), np.full(shape, -1, dtype=np.int64)
    position = np.zeros(shape, dtype=np.int64)
    flat, owner, targets = [], [], []
    for r, row in enumerate(rows):
        offset = 0
        for k in row:
            (p, c, q), (chosen, rejected) = sizes[k], responses[k]
            span = slice(offset, offset + p + c + q)
            ids[r, span] = prompts[k] + chosen[:-1] + rejected[:-1]
            document[r, span] = k
            segment[r, span] = np.repeat([0, 1, 2], (p, c, q))
            position[r, span] = np.r_[np.arange(p), np.arange(p, p + c), np.arange(p, p + q)]
            last = r * width + offset + p - 1  # the prompt's last token predicts both firsts
            flat += [
                last + np.arange(len(chosen)),
                np.r_[last, last + c + np.arange(1, len(rejected))],
            ]
            owner += [np.full(len(chosen), 2 * k), np.full(len(rejected), 2 * k + 1)]
            targets += [chosen, rejected]
            offset += p + c + q
    return {
        "ids": ids,
        "document": document,
        "segment": segment,
        "position": position,
        "flat": np.concatenate(flat).astype(np.int64),
        "owner": np.concatenate(owner).astype(np.int64),
        "targets": np.concatenate(targets).astype(np.int64),
        "pairs": len(prompts),
    }


def first_fit(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Indexes of each row: longest first, each into the first row with room for it (a pair
    longer than ``capacity`` alone in a row of its own)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for k in np.argsort(-np.asarray(lengths), kind="stable"):
        size = int(lengths[k])
        for r, left in enumerate(room):
            if size <= left:
                rows[r].append(int(k))
                room[r] -= size
                break
        else:
            rows.append([int(k)])
            room.append(capacity - size)
    return rows


def padded_size(lengths: np.ndarray, rows: list[list[int]]) -> int:
    """Positions a :func:`pack_rows` batch runs: its rows x their width (the fullest row's
    tokens, rounded up to a block)."""
    used = max((int(lengths[row].sum()) for row in rows), default=0)
    return len(rows) * -(-used // BLOCK) * BLOCK


def pair_logps(model, prompts, responses, pad: int, *, precise: bool = True):
    """(pairs, 2) tensor of the summed log-probs of each pair's chosen and rejected response
    (the autograd graph kept when gradients are on); ``precise``: the log-softmax in float64.
    Packed rows through FlexAttention where :func:`attention_path` says so, else one pair a
    row under a dense mask (:func:`prefaudit.models.packing.packed_logps`).

    ``model``: a causal LM, or :func:`pair_module`'s module around one (alone, inside DDP, or
    sharded by FSDP as its root), which is called: its forward runs this on the causal LM."""
    from prefaudit.models.packing import pack_pairs, packed_logps

    if causal_lm(model) is not model:
        return model(_Batch(prompts, responses), pad=pad, precise=precise)
    path = attention_path(model)
    if path == "dense":
        return packed_logps(model, pack_pairs(prompts, responses, pad), precise=precise)
    packed = pack_rows(prompts, responses, pad, row_tokens=ROW_TOKENS)
    return flex_logps(model, packed, precise=precise, compiled=path == "flex-compiled")


_PAIRS = None  # pair_module's class, built on first use (torch is imported then)


def pair_module(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` behind a torch module whose forward is :func:`pair_logps` on it: what DDP
    wraps and what FSDP shards as its root, so that their hooks (DDP's gradient sync; FSDP
    gathering the embeddings, the final norm and the head) run around the packed layout and
    the blockwise head as around any forward. Calling ``model``'s decoder and head apart, as
    those do, outside such a forward would skip the hooks. Its ``path`` is the attention path
    its last training forward took (None before one): :func:`attention_path` of the wrapper."""
    global _PAIRS
    if _PAIRS is None:
        import torch

        class PairLogps(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner
                self.path = None

            def forward(self, batch, pad: int, precise: bool):
                if self.training:
                    self.path = attention_path(self.inner)
                logps = pair_logps(self.inner, batch.prompts, batch.responses, pad, precise=precise)
                # A copy of (pairs, 2), not the view pair_logps returns: FSDP2 warns of a root
                # returning a view, as an in-place change of it would skip its backward hook.
                return logps.clone()

        _PAIRS = PairLogps
    return _PAIRS(model)


def causal_lm(model: torch.nn.Module) -> torch.nn.Module:
    """The causal LM inside :func:`pair_module`'s module (itself inside DDP or not), else
    ``model``."""
    inside = getattr(model, "module", None)  # DDP's
    if _PAIRS is not None and isinstance(inside, _PAIRS):
        return inside.inner
    return model.inner if _PAIRS is not None and isinstance(model, _PAIRS) else model


class _Batch:
    """A micro-batch's token lists as one argument: DDP's forward walks lists and dicts of its
    inputs element by element (to move tensors), and passes other objects untouched."""

    __slots__ = ("prompts", "responses")

    def __init__(self, prompts, responses):
        self.prompts, self.responses = prompts, responses


def flex_logps(model, packed: dict, *, precise: bool, compiled: bool):
    """:func:`pair_logps` of a :func:`pack_rows` batch through FlexAttention (the model must
    pass :func:`attention_path`'s checks)."""
    import torch

    from prefaudit.models.packing import _blockwise, _decoder_and_head

    device = next(model.parameters()).device
    tensor = lambda name: torch.from_numpy(packed[name]).to(device)  # noqa: E731
    decoder, head = _decoder_and_head(model)
    mask = block_mask(tensor("document"), tensor("segment"), compiled=compiled)
    with _flex_attention(model, compiled):
        hidden = decoder(
            input_ids=tensor("ids"),
            position_ids=tensor("position"),
            attention_mask=mask,
            use_cache=False,
        ).last_hidden_state
    states = hidden.reshape(-1, hidden.shape[-1])[tensor("flat")]
    picked = _blockwise(head, states, tensor("targets"), precise)
    n = packed["pairs"]
    totals = torch.zeros(2 * n, dtype=picked.dtype, device=device)
    return totals.index_add(0, tensor("owner"), picked).view(n, 2)


def block_mask(document, segment, *, compiled: bool):
    """FlexAttention's block mask of a packed batch: causal, within a pair, a response sees the
    prompt and itself (padding, document -1, sees earlier padding only: no query is empty).
    Eager, ``create_block_mask`` evaluates the rule over every (row, query, key) once per
    batch, as booleans; ``compiled`` fuses that sweep (as transformers does for its own
    FlexAttention masks)."""
    from torch.nn.attention.flex_attention import create_block_mask

    def sees(b, h, q, k):
        same = document[b, q] == document[b, k]
        seen = (segment[b, k] == 0) | (segment[b, k] == segment[b, q])
        return (k <= q) & same & seen

    rows, width = document.shape
    return create_block_mask(
        sees, rows, None, width, width, device=document.device, BLOCK_SIZE=BLOCK, _compile=compiled
    )


def attention_path(model) -> str:
    """``flex-compiled``, ``flex-eager`` or ``dense``: what :func:`pair_logps` runs for this
    model. ``auto`` (``PREFAUDIT_ATTENTION`` unset): the compiled kernel on CUDA, dense
    elsewhere. FlexAttention needs a model whose attention layers take transformers' attention
    functions and a language-model head over the last hidden state; a probe (once per model)
    checks that its log-probs equal the dense path's on two pairs in one row, so an
    architecture whose attention adds what the block mask does not say (sliding windows,
    soft-capping, sinks) keeps the dense path. Models training with activation checkpointing
    or attention dropout stay on the dense path, as do models that DDP wraps directly (DDP
    syncs gradients through its own forward). For :func:`pair_module`'s module, inside DDP or
    FSDP or not: the path its last training forward took, None before one (asking its causal
    LM here could run a forward, which under DDP and FSDP every process must run together)."""
    import torch

    inner = causal_lm(model)
    if inner is not model:
        return getattr(model, "module", model).path
    mode = os.environ.get("PREFAUDIT_ATTENTION", "auto")
    if mode not in MODES:
        raise InputError(
            f"environment variable PREFAUDIT_ATTENTION must be one of {', '.join(MODES)}, "
            f"got {mode!r}"
        )
    device = next(model.parameters()).device
    if mode == "dense" or (mode == "auto" and device.type != "cuda"):
        return "dense"
    if getattr(model, "config", None) is None:  # DDP around the model itself: its own forward
        return "dense"
    if model.training and any(getattr(m, "gradient_checkpointing", False) for m in model.modules()):
        # Checkpointed layers run again in the backward pass, after the forward has put the
        # model's own attention back: they would get a block mask they cannot read.
        return "dense"
    if model.training and float(getattr(model.config, "attention_dropout", 0) or 0) > 0:
        return "dense"  # the packed kernel runs without dropout; the probe runs in eval mode
    compiled = mode == "flex-compiled" or (mode == "auto" and compiled_on(device))
    probed = _SUPPORTED.setdefault(model, {})
    if compiled not in probed:
        with torch.no_grad():
            probed[compiled] = _flex_matches_dense(model, compiled)
        kind = "compiled" if compiled else "eager"
        taken = f"packed rows through {kind} FlexAttention" if probed[compiled] else "dense mask"
        log.info("%s log-probs: %s", type(model).__name__, taken)
    if not probed[compiled]:
        return "dense"
    return "flex-compiled" if compiled else "flex-eager"


def compiled_on(device) -> bool:
    """Whether FlexAttention runs compiled by default on ``device``: on CUDA, where the compiled
    kernel is the fused one; elsewhere eager (CPU tests: compiling costs ~30 s a shape)."""
    return device.type == "cuda"


# model -> {compiled: whether the flex path gives its log-probs}, probed once per model object.
_SUPPORTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _flex_matches_dense(model, compiled: bool) -> bool:
    """Two pairs in one row through FlexAttention against each alone under the dense mask."""
    import torch

    from prefaudit.models.packing import _decoder_and_head, pack_pairs, packed_logps

    if _decoder_and_head(model) is None:
        return False
    vocab = model.get_output_embeddings().weight.shape[0]
    prompts = [[(7 * i + 3) % vocab for i in range(5)], [(5 * i + 2) % vocab for i in range(3)]]
    responses = [
        [[(3 * i + 1) % vocab for i in range(4)], [(11 * i + 4) % vocab for i in range(3)]],
        [[(13 * i + 5) % vocab for i in range(2)], [(2 * i + 6) % vocab for i in range(5)]],
    ]
    training = model.training
    model.eval()  # no dropout in the comparison
    try:
        packed = pack_rows(prompts, responses, 0, row_tokens=ROW_TOKENS)
        flex = flex_logps(model, packed, precise=True, compiled=compiled)
        dense = packed_logps(model, pack_pairs(prompts, responses, 0), precise=True)
    except Exception as err:  # any model this probe cannot run: the dense path
        log.info("FlexAttention not used for %s: %s", type(model).__name__, err)
        return False
    finally:
        model.train(training)
    exact = next(model.parameters()).dtype == torch.float32
    tolerance = 1e-4 if exact else 0.05 * float(dense.abs().max()) + 1e-2
    same = bool((flex - dense).abs().max() <= tolerance)
    if not same:
        log.info("FlexAttention not used for %s: its log-probs differ", type(model).__name__)
    return same


@contextmanager
def _flex_attention(model, compiled: bool):
    """The model's attention layers call :func:`_attention` (registered with transformers
    under ``_NAME``) for the duration; its configured implementation is restored after."""
    _register()
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = _NAME
    _COMPILED[0] = compiled
    try:
        yield
    finally:
        config._attn_implementation = before


_COMPILED = [False]  # the kernel :func:`_attention` runs, set by :func:`_flex_attention`


@functools.cache
def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(_NAME, _attention)


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention-function signature: (batch, heads, length, head size) in,
    (batch, length, heads, head size) out, the mask a FlexAttention block mask."""
    from torch.nn.attention.flex_attention import BlockMask

    unsupported = [
        name
        for name in ("softcap", "sliding_window", "s_aux", "position_bias")
        if kwargs.get(name) is not None
    ]
    if unsupported or dropout or not isinstance(attention_mask, BlockMask):
        raise NotImplementedError(
            f"the packed FlexAttention path does not take {unsupported or 'this mask or dropout'}"
        )
    out = kernel(_COMPILED[0])(
        query,
        key,
        value,
        block_mask=attention_mask,
        scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


@functools.cache
def kernel(compiled: bool):
    """``flex_attention``, compiled (the fused kernel) or eager."""
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention) if compiled else flex_attention
