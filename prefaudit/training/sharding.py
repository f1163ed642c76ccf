"""FSDP2 for the training loop (``parallel="fsdp"`` under ``torchrun`` / ``accelerate launch``):
each decoder layer, then the rest of the model, sharded across the processes with
``torch.distributed.fsdp.fully_shard``, so a process holds 1/N of the weights, of their
gradients, of the float32 masters and of AdamW's two moments.

What changes beside the wrapping, and why:

- The model is loaded on the CPU of every process and moved to its GPU a layer at a time by
  ``fully_shard``, as shards: no process ever holds the whole model on its GPU (it does in host
  memory, once, while loading).
- The root unit is :func:`~prefaudit.models.flex.pair_module`'s module around the model, whose
  forward gives the pairs' log-probs: the packed FlexAttention rows and the blockwise head run
  inside FSDP's hooks (which gather the embeddings, final norm and head), as on one GPU.
- The reference log-probs (the policy before any step) are scored by the sharded model itself,
  each process a share of the pairs, then gathered: no second model, and no whole one.
- Every forward runs on every process in step (each layer's weights are gathered for it), so
  evaluation and the reference pass give each process the same number of batches.
- Checkpoints and the saved model hold whole tensors, gathered a tensor at a time (the same
  ``state.pt`` as a single-process or DDP run: a run resumes under any of the three).

Nothing here imports torch at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def shard(
    model: torch.nn.Module, device: str, world: int
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``model`` (on the CPU) sharded in place across the ``world`` processes onto ``device``:
    each decoder layer (the classes the model names in ``_no_split_modules``) its own unit,
    then the root, :func:`~prefaudit.models.flex.pair_module`'s module around the model (the
    embeddings, final norm and head: tied weights stay in one unit). Returns (the sharded
    model, what the steps run: that root, whose forward gives the pairs' log-probs, so FSDP
    gathers the root's weights around the packed layout and the blockwise head)."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from prefaudit.models.flex import pair_module

    kind = device.split(":")[0]
    if kind == "cuda":
        torch.cuda.set_device(torch.device(device))
    mesh = init_device_mesh(kind, (world,))
    low = next(model.parameters()).dtype != torch.float32
    # Weights stay in their dtype (bf16 on a GPU) and AdamW steps float32 masters of the shards,
    # as in the single-GPU loop; the gradients are summed across processes in float32.
    policy = MixedPrecisionPolicy(reduce_dtype=torch.float32 if low else None)
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in blocks]
    if not layers:
        from prefaudit.errors import SettingError

        raise SettingError(
            f"parallel=fsdp: {type(model).__name__} names no decoder layer class "
            "(_no_split_modules) to shard by",
            setting="parallel",
        )
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    root = pair_module(model)
    fully_shard(root, mesh=mesh, mp_policy=policy)
    return model, root


def score_reference(wrapped, prepared, rows, pad: int, batch: int, rank: int, world: int) -> int:
    """The sharded reference pass: the pairs of ``prepared`` still without reference log-probs
    (only ``rows`` of them when given), sorted by length and cut into batches of ``batch``
    pairs, the batches dealt out across the processes, scored under ``wrapped`` (the sharded
    policy before any step) and gathered into ``prepared.reference`` on every process.
    Returns how many were scored."""
    import torch
    import torch.distributed as dist

    from prefaudit.models.flex import pair_logps

    todo = np.flatnonzero(np.isnan(prepared.reference).any(axis=1))
    if rows is not None:
        todo = np.intersect1d(todo, rows)
    order = todo[np.argsort(prepared.row_length[todo], kind="stable")]
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    mine = batches[rank::world]
    found = []
    was_training = wrapped.training
    wrapped.eval()
    with torch.no_grad():
        for k in range(-(-len(batches) // world)):  # as many forwards on every process
            picked = mine[k] if k < len(mine) else batches[0][:1]  # a filler, dropped
            logps = pair_logps(
                wrapped,
                [prepared.prompt_ids[j] for j in picked],
                [prepared.responses[j] for j in picked],
                pad,
                precise=True,
            )
            if k < len(mine):
                found.append((picked, logps.double().cpu().numpy()))
    wrapped.train(was_training)
    # The root unit keeps its weights gathered after a forward (its backward would need them at
    # once): shard them again, or the optimizer built next would step the gathered copies.
    wrapped.reshard()
    everyone: list = [None] * world
    dist.all_gather_object(everyone, found)
    for part in everyone:
        for picked, logps in part:
            prepared.reference[picked] = logps
    return len(todo)


def evaluation_share(rows: np.ndarray, rank: int, world: int) -> tuple[np.ndarray, bool]:
    """This process's share of an evaluation batch, and whether it counts: a process whose
    share is empty runs the batch's first pair and drops it (every process must forward)."""
    mine = np.array_split(rows, world)[rank]
    return (mine, True) if len(mine) else (rows[:1], False)


def is_sharded(tensor) -> bool:
    import torch.distributed as dist

    if not dist.is_available():  # torch built without distributed support: nothing sharded
        return False
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def gathered(value, keep: bool = True):
    """``value`` (a tensor, or dicts and lists of them) with every sharded tensor gathered
    whole onto the CPU where ``keep`` (rank 0), None elsewhere: a collective, every process
    calls it in the same order, and a whole tensor stays on the other processes' devices only
    while it is gathered."""
    if isinstance(value, dict):
        return {k: gathered(v, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(gathered(v, keep) for v in value)
    if hasattr(value, "full_tensor") and is_sharded(value):
        whole = value.full_tensor()
        return whole.cpu() if keep else None
    return value


def shard_like(full, like):
    """This process's shard of the whole tensor ``full``, laid out as the sharded ``like``
    (every process holds ``full``: no communication)."""
    from torch.distributed.tensor import distribute_tensor

    full = full.to(device=like.device, dtype=like.dtype)
    return distribute_tensor(full, like.device_mesh, like.placements, src_data_rank=None)


def shard_optimizer_state(optimizer, state: dict) -> dict:
    """A checkpoint's whole optimizer ``state`` (``optimizer.state_dict()`` form) with each
    tensor shaped like its sharded parameter made that parameter's shard, before
    ``optimizer.load_state_dict``: loading whole moments first would put every one of them on
    every process's device at once."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entry in state.get("state", {}).items():
        p = params[index]
        for key, value in entry.items():
            if is_sharded(p) and not is_sharded(value) and getattr(value, "shape", None) == p.shape:
                entry[key] = shard_like(value, p)
    return state


def full_model_state(model) -> dict:
    """The sharded model's whole state dict on the CPU of rank 0 (empty elsewhere); a
    collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)
