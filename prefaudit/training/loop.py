"""The DPO training loop, top to bottom: load, prepare, then step, log, evaluate, checkpoint.

What keeps it fast: the reference log-probs are computed once before the first step (or read
from the audit), so no reference model is held in memory; each pair is one packed row with its
prompt run once for both responses (the reference pass's layout, with gradients); pairs of
similar length share a batch; the language-model head runs only where a response token is
predicted. Weights held in bf16 (the default on a GPU) are stepped through float32 master
copies, so AdamW's small steps are not rounded away. Under ``torchrun`` / ``accelerate launch``
the model is wrapped in DDP and each micro-batch is shared out across the processes; rank 0
writes every file. With ``parallel="fsdp"`` it is sharded with FSDP2 instead
(:mod:`prefaudit.training.sharding`): weights, gradients, masters and AdamW's state split
across the processes, the reference log-probs scored by the sharded model itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prefaudit.errors import InputError, SettingError
from prefaudit.models.distributed import barrier, rank_and_world
from prefaudit.models.logps_file import read_reference_logps
from prefaudit.training.config import TrainConfig
from prefaudit.training.data import (
    Prepared,
    attach_reference,
    compute_reference,
    epoch_batches,
    evaluated,
    held_out,
    prepare,
)
from prefaudit.training.losses import LOSSES, reduce
from prefaudit.training.trackers import require as require_trackers

log = logging.getLogger(__name__)

# What every evaluation and training log line reports, under TRL's names.
# TRL's names mean what TRL's mean: "loss" is the plain mean of the per-pair losses, whatever
# weights the data carries; "loss/weighted" is the mean of weight x loss, what the steps
# minimise when the data has weights (equal to "loss" when it has none); "loss/sigmoid" is
# plain DPO's -log sigmoid(margin of rewards), whatever loss trains (equal to "loss" for
# sigmoid), so that runs with different losses compare on held-out pairs.
METRICS = (
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
    "loss/weighted",
    "loss/sigmoid",
)


@dataclass
class TrainResult:
    """Where the run wrote its files, and its last evaluation (TRL's metric names)."""

    out: Path
    steps: int
    eval_metrics: dict[str, float]
    summary: dict[str, Any]
    report: Path | None = None  # the audit folder's report prefaudit.train refreshed, if any
    loads: list[Any] = field(default_factory=list)  # LoadReports of the data (and eval data)


# long: the loop top to bottom (load, prepare, step, log, evaluate, checkpoint), in one place
def train(
    pairs: pd.DataFrame,
    config: TrainConfig,
    out: str | Path,
    *,
    eval_pairs: pd.DataFrame | None = None,
    reference_logps: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    group: str | None = None,
) -> TrainResult:
    """Train DPO on ``pairs`` (a PairSet) into ``out``: model/, metrics.jsonl, summary.json,
    checkpoints/. ``eval_pairs``: held-out pairs (default: a stable ``config.eval_fraction``
    of ``pairs``); ``reference_logps``: an audit's, reused where it matches; ``resume``:
    continue from the newest checkpoint in ``out``; ``group``: the trackers' group of runs
    (``config.report_to``) this one belongs to."""
    out = _unless_unfinished(Path(out), resume)
    require_trackers(config.report_to)  # a missing package is said now, not after the setup
    rank, world = rank_and_world()
    sharded = config.parallel == "fsdp" and world > 1
    model, tokenizer, device, dtype = _load(config, rank, place=not sharded)
    limit = config.eval_limit(device)  # the held-out pairs evaluated at most
    train_set, eval_set = _datasets(
        pairs, eval_pairs, tokenizer, config, dtype, reference_logps, limit
    )
    plan = _plan(train_set, config, world)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if sharded:  # sharded first: the whole model never sits on one GPU
        model, wrapped = _for_training(model, config, device, world)
        _score_reference_sharded(wrapped, train_set, eval_set, plan, config, pad, rank, world)
    else:
        _score_reference(model, tokenizer, train_set, eval_set, plan, progress)
        model, wrapped = _for_training(model, config, device, world)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    trainable = [p for _, p in named]
    masters = _masters(trainable)  # what AdamW steps: float32 (the parameter itself if it is)
    optimizer, scheduler = _optimizer(masters, config, len(plan))
    state = (model, named, masters, optimizer, scheduler)  # logged: tokens before this process
    start, window, logged = _start(out, resume, rank, *state, config=config)
    trackers = _trackers(config, out, start, group, active=rank == 0)
    bar = _progress(len(plan), start, show=progress and rank == 0)
    seconds, tokens, last_eval = 0.0, 0, {}  # seconds: time spent in training steps only
    metrics = _Metrics(out / "metrics.jsonl", keep_until=start, active=rank == 0, trackers=trackers)
    with metrics as writer:
        for step in range(start, len(plan)):
            began = time.perf_counter()
            sums = _accumulate(
                wrapped, train_set, plan[step], pad, config, trainable, masters, rank, world
            )
            norm = _step(optimizer, scheduler, trainable, masters, config.max_grad_norm)
            seconds += time.perf_counter() - began
            tokens += sum(int(train_set.tokens[rows].sum()) for rows in plan[step])
            window.merge(sums)
            done = step + 1
            bar.update(1)
            if done % config.log_every == 0 or done == len(plan):
                rate = scheduler.get_last_lr()[0]
                _log_train(writer, bar, done, window, norm, rate, logged + tokens)
                window = _Sums()
            due = (config.eval_every and done % config.eval_every == 0) or done == len(plan)
            if due and len(eval_set) and (rank == 0 or sharded):  # FSDP: every process runs
                share = (rank, world) if sharded else (0, 1)
                last_eval = evaluate(wrapped if sharded else model, eval_set, config, pad, share)
                writer.write(done, "eval", last_eval)
            if config.save_every and done % config.save_every == 0 and done < len(plan):
                if rank == 0 or sharded:  # FSDP: every process gathers, rank 0 writes
                    log = {**window.to_dict(), "tokens": logged + tokens}  # a resume logs these
                    _save_checkpoint(out, done, named, masters, optimizer, scheduler, config, log)
                barrier(world)
        bar.close()  # before the trackers close (W&B prints its summary then)
    summary = _summary(config, device, train_set, eval_set, plan, start, tokens, seconds, last_eval)
    summary["trackers"] = trackers.where() if trackers else {}
    summary["attention"] = _attention_path(wrapped)  # packed FlexAttention or the dense mask
    summary["processes"] = world  # and what ran across them (config.parallel is what was asked)
    summary["parallel"] = ("fsdp" if sharded else "ddp") if world > 1 else None
    whole = _gathered_model(model) if sharded else None  # FSDP: every process gathers
    if rank == 0:
        _save_outputs(out, model, tokenizer, summary, config, state=whole)
    barrier(world)
    return TrainResult(out, len(plan), last_eval, summary)


def _load(config: TrainConfig, rank: int, *, place: bool = True):
    """(model on its device, or on the CPU unless ``place``; tokenizer, device, weight dtype),
    with torch seeded first."""
    import torch

    from prefaudit.models.loading import load_causal_lm

    device, dtype = _placement(config, rank)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)  # this run's peak, not the process's
    torch.manual_seed(config.seed)
    model, tokenizer = load_causal_lm(config.model, dtype=dtype)
    if place:
        model.to(device)
    return model, tokenizer, device, dtype


def _datasets(pairs, eval_pairs, tokenizer, config, dtype, reference_logps, eval_limit: int):
    """(training set, evaluation set), tokenised; without ``eval_pairs``, a stable share of
    ``pairs`` is held out; at most ``eval_limit`` of them are evaluated (0: all)."""
    if eval_pairs is None:
        held = held_out(pairs.index, config.eval_fraction, config.seed)
        pairs, eval_pairs = pairs[~held], pairs[held]
    available = len(eval_pairs)
    eval_pairs = eval_pairs[evaluated(eval_pairs.index, eval_limit, config.seed)]
    train_set, eval_set = (
        _prepared(frame, tokenizer, config, dtype, reference_logps) for frame in (pairs, eval_pairs)
    )
    eval_set.available = available
    if not len(train_set):
        raise InputError("no pairs to train on (all held out or left out)")
    return train_set, eval_set


def _for_training(model, config: TrainConfig, device: str, world: int):
    """(the model in train mode, with LoRA adapters when ``lora_r`` asks for them; what the
    steps run: that model, or its DDP wrapper under several processes, or with
    ``parallel="fsdp"`` the model sharded by FSDP2 and what the steps run of it)."""
    if config.gradient_checkpointing:
        # Each layer's activations are recomputed in the backward pass instead of kept: about
        # a third more compute for a fraction of the memory (TRL's default).
        _checkpoint_activations(model)
    if config.lora_r:
        model = _with_lora(model, config)
    model.train()
    if config.parallel == "fsdp" and world > 1:
        from prefaudit.training.sharding import shard

        return shard(model, device, world)
    return model, (_ddp(model, device) if world > 1 else model)


def _checkpoint_activations(model) -> None:
    """Turn activation checkpointing on by the name this transformers gives it (it deprecates
    ``gradient_checkpointing_enable`` for ``activation_checkpointing_enable``, gone in v6)."""
    options = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)


def _score_reference(model, tokenizer, train_set, eval_set, plan, progress: bool) -> None:
    """Reference log-probs of the pairs the steps will see (a short run on a large dataset
    scores only its share), computed under the model before any step: the reference itself."""
    used = np.unique(np.concatenate([rows for step in plan for rows in step] or [[]]))
    for prepared, rows in ((train_set, used), (eval_set, None)):
        computed = compute_reference(prepared, model, tokenizer, rows=rows, progress=progress)
        prepared.reference_source["computed"] = computed
    unscored = int(np.isnan(train_set.reference).any(axis=1).sum())
    if unscored:  # pairs past --max-steps: never trained on, so never scored
        train_set.reference_source["not_needed"] = unscored


def _score_reference_sharded(wrapped, train_set, eval_set, plan, config, pad, rank, world):
    """:func:`_score_reference` under FSDP: the pairs dealt out across the processes, each
    scored by the sharded model (``eval_batch_size`` pairs a batch), gathered on every one."""
    from prefaudit.training.sharding import score_reference

    used = np.unique(np.concatenate([rows for step in plan for rows in step] or [[]]))
    for prepared, rows in ((train_set, used), (eval_set, None)):
        batch = config.eval_batch_size
        computed = score_reference(wrapped, prepared, rows, pad, batch, rank, world)
        prepared.reference_source["computed"] = computed
    unscored = int(np.isnan(train_set.reference).any(axis=1).sum())
    if unscored:
        train_set.reference_source["not_needed"] = unscored


def _optimizer(masters, config: TrainConfig, steps: int):
    """(AdamW over the float32 masters, its learning-rate schedule over ``steps``)."""
    import torch

    optimizer = torch.optim.AdamW(
        masters, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, steps))


def _progress(steps: int, start: int, *, show: bool):
    """A bar counting optimizer steps (rank 0's only)."""
    from tqdm import tqdm

    return tqdm(total=steps, initial=start, desc="training", unit="step", disable=not show)


def _accumulate(model, prepared, micro_batches, pad, config, trainable, masters, rank, world):
    """Forward and backward one optimizer step's micro-batches (this process's share of each),
    the gradients summed onto the float32 masters; returns the step's :class:`_Sums` over
    every process."""
    sums = _Sums()
    count = sum(len(rows) for rows in micro_batches)  # pairs in this optimizer step
    for rows in micro_batches:
        mine = np.array_split(rows, world)[rank]
        stats = _pair_stats(model, prepared, mine, pad, config)
        loss = reduce(stats["loss"], stats["weight"], count) * world  # DDP averages
        loss.backward()
        _gather_grads(trainable, masters)  # accumulated in float32
        sums.add(stats)
    sums.all_reduce(world)
    return sums


def _step(optimizer, scheduler, trainable, masters, max_grad_norm: float) -> float:
    """Clip the accumulated gradients, step AdamW on the masters and copy them into the model,
    advance the schedule; returns the gradient norm before clipping."""
    norm = _clip(masters, max_grad_norm)
    optimizer.step()
    _publish(trainable, masters)
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def _log_train(writer, bar, step: int, window, norm: float, learning_rate: float, tokens: int):
    """A training line of metrics.jsonl (the means since the last one) and the bar's loss."""
    extra = {"grad_norm": norm, "learning_rate": learning_rate}
    writer.write(step, "train", {**window.means(), **extra, "tokens": tokens})
    bar.set_postfix(loss=f"{window.means()['loss']:.4f}")


def _start(out: Path, resume: bool, rank: int, *state, config) -> tuple[int, _Sums, int]:
    """Where the run starts: the newest checkpoint's step with ``resume`` (``state``: model,
    named parameters, masters, optimizer, scheduler), else 0 after :func:`_clear_run`."""
    start, window, logged = _resume(out, *state, config) if resume else (0, _Sums(), 0)
    if start == 0 and rank == 0:
        _clear_run(out)
    return start, window, logged


def _trackers(config: TrainConfig, out: Path, start: int, group: str | None, *, active: bool):
    """The run's experiment trackers (``config.report_to``), opened by the process that writes
    (None elsewhere, and when there are none), named ``config.run_name`` or ``out``."""
    if not active or not config.report_to:
        return None
    from prefaudit.training.trackers import Trackers

    name = config.run_name or str(out)
    return Trackers.open(
        config.report_to, out, config.to_dict(), start=start, name=name, group=group
    )


def _unless_unfinished(out: Path, resume: bool) -> Path:
    """``out``, unless a run from step 0 (not ``resume``) would delete the checkpoints of an
    unfinished run there (no summary.json): refused, before any model loads."""
    found = sorted((out / "checkpoints").glob("step-*"))
    if found and resume and not zipfile.is_zipfile(found[-1] / "state.pt"):
        raise SettingError(  # found before any model loads, not after the reference pass
            f"resume: {found[-1] / 'state.pt'} is not a checkpoint (not a torch file)",
            setting="resume",
        )
    if found and not resume and not (out / "summary.json").exists():
        raise SettingError(
            f"{out} holds checkpoints of an unfinished run (the newest: {found[-1].name}); "
            f"resume it, or remove {out / 'checkpoints'} to start over",
            setting="resume",
        )
    return out


def _clear_run(out: Path) -> None:
    """A run from step 0 replaces an earlier one: its checkpoints and summary.json go at the
    start (metrics.jsonl is rewritten by :class:`_Metrics`), its model/ only when the new one
    is swapped in at the end, so that ``out`` always holds a whole model. A run without
    summary.json is unfinished (the report does not show it). Its TensorBoard events and its
    trackers' ids go too (its W&B runs stay: an offline one may not be uploaded yet)."""
    from prefaudit.outputs import TENSORBOARD_FOLDER, TRACKERS_FILE

    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    shutil.rmtree(out / TENSORBOARD_FOLDER, ignore_errors=True)
    (out / "summary.json").unlink(missing_ok=True)
    (out / TRACKERS_FILE).unlink(missing_ok=True)


def _save_outputs(
    out: Path, model, tokenizer, summary: dict, config: TrainConfig, state: dict | None = None
) -> None:
    """The trained model (LoRA merged in; ``state``: its whole weights, gathered from FSDP's
    shards) and summary.json."""
    from prefaudit.fileio import write_json

    _save_model(out / "model", model, tokenizer, merge=bool(config.lora_r), state=state)
    write_json(out / "summary.json", summary)


def _prepared(frame, tokenizer, config, dtype, reference_logps) -> Prepared:
    """``frame`` tokenised, with the audit's reference log-probs where they match (same model
    and dtype); the others are computed once the plan says which pairs are trained on."""
    from prefaudit.models.loading import model_identity

    prepared = prepare(
        frame, tokenizer, max_length=config.max_length, use_weights=config.use_weights
    )
    table = None
    if reference_logps is not None and Path(reference_logps).exists():
        table = read_reference_logps(Path(reference_logps), model_identity(config.model, dtype))
    prepared.reference_source = {"audit": attach_reference(prepared, table), "computed": 0}
    return prepared


def evaluate(
    model, prepared: Prepared, config: TrainConfig, pad: int, share: tuple[int, int] = (0, 1)
) -> dict[str, float]:
    """TRL's metrics over every pair of ``prepared``, the model in eval mode, no gradients.
    ``share``: (rank, world) when every process evaluates its share of each batch (FSDP)."""
    import torch

    from prefaudit.training.sharding import evaluation_share

    rank, world = share
    was_training = model.training
    model.eval()
    sums = _Sums()
    order = np.argsort(prepared.row_length, kind="stable")
    with torch.no_grad():
        for start in range(0, len(order), config.eval_batch_size):
            rows = order[start : start + config.eval_batch_size]
            mine, counts = evaluation_share(rows, rank, world) if world > 1 else (rows, True)
            stats = _pair_stats(model, prepared, mine, pad, config)
            if counts:
                sums.add(stats)
    sums.all_reduce(world)
    model.train(was_training)
    return sums.means()


def _attention_path(model) -> str:
    from prefaudit.models.flex import attention_path

    return attention_path(model)


def _pair_stats(model, prepared: Prepared, rows: np.ndarray, pad: int, config: TrainConfig):
    """Forward ``rows`` of ``prepared``: per-pair loss (with its graph), weight, and the
    detached figures the metrics are built from."""
    import torch

    from prefaudit.models.flex import pair_logps

    device = next(model.parameters()).device
    prompts, responses = (
        [prepared.prompt_ids[k] for k in rows],
        [prepared.responses[k] for k in rows],
    )
    logps = pair_logps(model, prompts, responses, pad, precise=False)
    reference = torch.as_tensor(prepared.reference[rows], dtype=logps.dtype, device=device)
    ratios = logps - reference
    lengths = torch.tensor(
        [[len(r) for r in prepared.responses[k]] for k in rows], dtype=logps.dtype, device=device
    ).view(-1, 2)
    smoothing: Any = config.label_smoothing
    if config.loss == "cdpo":
        soft = prepared.soft_labels[rows]
        smoothing = torch.as_tensor(
            np.where(np.isnan(soft), config.label_smoothing, 1 - soft), dtype=logps.dtype
        ).to(device)
    loss = LOSSES[config.loss](
        ratios[:, 0],
        ratios[:, 1],
        beta=config.beta,
        smoothing=smoothing,
        chosen_tokens=lengths[:, 0],
        rejected_tokens=lengths[:, 1],
    )
    rewards = config.beta * ratios.detach()
    return {
        "loss": loss,
        "weight": torch.as_tensor(prepared.weights[rows], dtype=logps.dtype).to(device),
        "rewards": rewards,
        "logps": logps.detach(),
    }


class _Sums:
    """Running sums of the per-pair figures behind TRL's metrics (means over pairs)."""

    def __init__(self):
        self.values = np.zeros(len(METRICS))
        self.pairs = 0

    def add(self, stats) -> None:
        rewards = stats["rewards"].double().cpu().numpy()
        logps = stats["logps"].double().cpu().numpy()
        loss = stats["loss"].detach()
        weighted = (loss * stats["weight"]).double().cpu().numpy()
        margins = rewards[:, 0] - rewards[:, 1]
        self.values += [
            loss.double().cpu().numpy().sum(),
            rewards[:, 0].sum(),
            rewards[:, 1].sum(),
            margins.sum(),
            (margins > 0).sum(),
            logps[:, 0].sum(),
            logps[:, 1].sum(),
            weighted.sum(),
            np.logaddexp(0.0, -margins).sum(),  # -log sigmoid(margin)
        ]
        self.pairs += len(rewards)

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values.tolist(), "pairs": self.pairs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Sums:
        sums = cls()
        # A checkpoint of an earlier version summed other figures: its window starts afresh.
        if data.get("values") is not None and len(data["values"]) == len(METRICS):
            sums.values, sums.pairs = np.asarray(data["values"], dtype=float), int(data["pairs"])
        return sums

    def merge(self, other: _Sums) -> None:
        self.values += other.values
        self.pairs += other.pairs

    def all_reduce(self, world: int) -> None:
        if world == 1:
            return
        import torch
        import torch.distributed as dist

        # A group set up by another launcher with NCCL alone takes CUDA tensors only.
        nccl_only = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl_only else "cpu"
        both = torch.tensor([*self.values, self.pairs], dtype=torch.float64, device=device)
        dist.all_reduce(both)
        both = both.cpu()
        self.values, self.pairs = both[:-1].numpy(), int(both[-1])

    def means(self) -> dict[str, float]:
        return {
            name: float(v / self.pairs) if self.pairs else float("nan")
            for name, v in zip(METRICS, self.values, strict=True)
        }


class _Metrics:
    """metrics.jsonl: one line per log or evaluation, each also given to the run's trackers.
    On resume, lines after the checkpoint's step are dropped (they will be written again).
    The trackers (None where there are none) close when the ``with`` block ends, as failed
    when it raises."""

    def __init__(self, path: Path, *, keep_until: int, active: bool, trackers=None):
        self.path, self.active, self.trackers = path, active, trackers
        if not active:
            return
        import orjson

        from prefaudit.fileio import write_bytes

        kept = b""
        if keep_until and path.exists():
            lines = path.read_bytes().splitlines()
            kept = b"".join(
                line + b"\n" for line in lines if line and orjson.loads(line)["step"] <= keep_until
            )
        write_bytes(path, kept)

    def write(self, step: int, split: str, values: dict[str, Any]) -> None:
        if not self.active:
            return
        import orjson

        line = {"step": step, "split": split, **values}
        with open(self.path, "ab") as handle:
            handle.write(orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        if self.trackers is not None:
            self.trackers.log(step, split, values)

    def __enter__(self) -> _Metrics:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.trackers is not None:
            self.trackers.close(failed=kind is not None)


def _plan(prepared: Prepared, config: TrainConfig, world: int) -> list[list[np.ndarray]]:
    """Optimizer steps, each a list of ``grad_accumulation`` micro-batches of row numbers."""
    per_epoch = -(-len(prepared) // config.batch_size)
    wanted = (config.max_steps or 0) * config.grad_accumulation
    epochs = -(-wanted // per_epoch) if config.max_steps else config.epochs
    micro = []
    for epoch in range(epochs):
        batches = epoch_batches(
            prepared.row_length,
            config.batch_size,
            seed=config.seed,
            epoch=epoch,
            group_by_length=config.group_by_length,
        )
        # Every process needs a share of every micro-batch (an idle one would stall DDP).
        micro += [b for b in batches if len(b) >= world]
    steps = [
        micro[i : i + config.grad_accumulation]
        for i in range(0, len(micro), config.grad_accumulation)
    ]
    return steps[: config.max_steps] if config.max_steps else steps


def _schedule(config: TrainConfig, total: int):
    """Learning-rate multiplier per step: linear warm-up, then linear decay to 0 or flat."""
    warmup = int(round(config.warmup_ratio * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if config.schedule == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _masters(parameters) -> list:
    """The tensors AdamW steps: a float32 copy of each parameter held in lower precision, the
    parameter itself otherwise. In bf16 a weight of 0.02 moves in steps of 1.2e-4: AdamW's
    updates of about the learning rate (1e-6 by default) would round to nothing."""
    import torch

    return [
        p if p.dtype == torch.float32 else p.detach().float().requires_grad_() for p in parameters
    ]


def _gather_grads(parameters, masters) -> None:
    """Move a micro-batch's gradients from low-precision parameters onto their float32
    masters (summed there, so accumulation over micro-batches is in float32)."""
    for p, m in zip(parameters, masters, strict=True):
        if m is p or p.grad is None:
            continue
        m.grad = p.grad.float() if m.grad is None else m.grad.add_(p.grad)
        p.grad = None


def _publish(parameters, masters) -> None:
    """The stepped masters back into the model's parameters (rounded to their dtype)."""
    import torch

    with torch.no_grad():
        for p, m in zip(parameters, masters, strict=True):
            if m is not p:
                p.copy_(m)


def _clip(parameters, max_norm: float) -> float:
    import torch

    limit = max_norm if max_norm > 0 else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(parameters, limit)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # FSDP: a DTensor


def _save_checkpoint(
    out: Path, step: int, named, masters, optimizer, scheduler, config, log: dict
) -> None:
    """checkpoints/step-NNNNNNN/state.pt, written into a temporary folder and renamed, so a
    kill leaves either the whole checkpoint or none; older ones beyond the limit removed. The
    trainable weights are saved as their float32 masters. Under FSDP every process calls it:
    the sharded tensors are gathered whole (a collective), rank 0 writes them."""
    import torch

    from prefaudit.training.sharding import gathered, is_sharded

    sharded = any(is_sharded(m) for m in masters)
    model = {n: m.detach() for (n, _), m in zip(named, masters, strict=True)}
    rank = rank_and_world()[0] if sharded else 0
    model, optimizer_state = (
        gathered((model, optimizer.state_dict()), keep=rank == 0)
        if sharded
        else (model, optimizer.state_dict())
    )
    if rank != 0:
        return
    root = out / "checkpoints"
    final = root / f"step-{step:07d}"
    tmp = root / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {
        "step": step,
        "model": {n: m.cpu() for n, m in model.items()},
        "optimizer": optimizer_state,
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "config": config.to_dict(),
        "log": log,  # the metrics window not yet logged, and the tokens trained so far
    }
    torch.save(state, tmp / "state.pt")
    os.replace(tmp, final)
    for old in sorted(root.glob("step-*"))[: -config.keep_checkpoints or None]:
        shutil.rmtree(old, ignore_errors=True)


def _resume(
    out: Path, model, named, masters, optimizer, scheduler, config: TrainConfig
) -> tuple[int, _Sums, int]:
    """Load the newest complete checkpoint; returns its step (0 when there is none), the
    metrics not yet logged and the tokens trained before it."""
    import torch

    found = sorted((out / "checkpoints").glob("step-*"))
    if not found:
        log.warning("resume: no checkpoint in %s, starting from the beginning", out)
        return 0, _Sums(), 0
    try:
        # Tensors and plain containers only: a checkpoint is never unpickled, so a crafted
        # state.pt in the output folder cannot run code.
        state = torch.load(found[-1] / "state.pt", map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to read a file in the output folder: its fault
        raise InputError(
            f"resume: {found[-1] / 'state.pt'} cannot be read as a checkpoint "
            f"({type(err).__name__}: {err})"
        ) from err
    if not isinstance(state, dict) or not {"config", "model"} <= set(state):
        raise InputError(f"resume: {found[-1] / 'state.pt'} is not a prefaudit checkpoint")
    differs = config.same_training(TrainConfig(**state["config"]))
    if differs:
        raise InputError(
            f"resume: {found[-1]} was trained with other settings ({', '.join(differs)})"
        )
    mismatched = set(state["model"]) ^ {n for n, _ in named}
    if mismatched:
        raise InputError(f"resume: {found[-1]} does not fit this model ({sorted(mismatched)[:3]})")
    from prefaudit.training.sharding import is_sharded, shard_like, shard_optimizer_state

    sharded = any(is_sharded(m) for m in masters)
    if not sharded:
        model.load_state_dict(state["model"], strict=False)
    with torch.no_grad():
        for (name, p), m in zip(named, masters, strict=True):
            if sharded:  # this process's shard of the whole tensor, then into the model
                m.copy_(shard_like(state["model"][name], m))
                if m is not p:
                    p.copy_(m)
            elif m is not p:
                m.copy_(state["model"][name])
    optimizer_state = state["optimizer"]
    if sharded:  # each moment as this process's shard before it reaches the device
        optimizer_state = shard_optimizer_state(optimizer, optimizer_state)
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    log.info("resumed from %s", found[-1])
    logged = state.get("log", {})  # absent from checkpoints of earlier versions
    return int(state["step"]), _Sums.from_dict(logged), int(logged.get("tokens", 0))


def _gathered_model(model) -> dict:
    """The FSDP-sharded model's whole weights on rank 0's CPU; every process calls it."""
    from prefaudit.training.sharding import full_model_state

    return full_model_state(model)


def _save_model(folder: Path, model, tokenizer, *, merge: bool, state: dict | None = None) -> None:
    """The trained model as a from_pretrained-able folder (LoRA merged in; ``state``: the
    weights to write instead of the model's own), atomically."""
    from prefaudit.fileio import swap_folder

    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if state is not None:
        model.save_pretrained(tmp, state_dict=state)
    else:
        (model.merge_and_unload() if merge else model).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    swap_folder(tmp, folder)  # a kill at any moment leaves the old model or the new one


def _with_lora(model, config: TrainConfig):
    from prefaudit.models.quiet import unactionable_warnings_filtered

    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise InputError("lora_r > 0 needs the peft package: pip install peft") from err
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    with unactionable_warnings_filtered():  # peft reads a property transformers deprecates
        return get_peft_model(model, lora)


def _placement(config: TrainConfig, rank: int) -> tuple[str, str]:
    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and torch.cuda.device_count() > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    dtype = config.dtype
    if dtype is None:
        bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        dtype = "bfloat16" if bf16 else "float32"
    return device, dtype


def _ddp(model, device: str):
    """DDP around :func:`~prefaudit.models.flex.pair_module`'s module: its forward gives the
    pairs' log-probs (packed rows, blockwise head), and DDP syncs the gradients of all of it."""
    from torch.nn.parallel import DistributedDataParallel

    from prefaudit.models.flex import pair_module

    ids = [int(device.split(":")[1])] if device.startswith("cuda:") else None
    return DistributedDataParallel(pair_module(model), device_ids=ids)


def _summary(config, device, train_set, eval_set, plan, start, tokens, seconds, last_eval) -> dict:
    import torch

    cuda = device.startswith("cuda")
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    return {
        "config": config.to_dict(),
        "device": device,
        "steps": len(plan),
        "resumed_at": start,
        "train_pairs": len(train_set),
        # Pairs the steps of this run went through (a pair counts once per epoch it is in).
        "pairs_seen": int(sum(len(rows) for step in plan[start:] for rows in step)),
        "eval_pairs": len(eval_set),
        "eval_pairs_available": eval_set.available,
        "left_out": {"train": train_set.left_out, "eval": eval_set.left_out},
        "reference_logps": {
            "train": train_set.reference_source,
            "eval": eval_set.reference_source,
        },
        "train_tokens": tokens,
        "train_seconds": round(seconds, 3),
        "tokens_per_second": tokens / seconds if seconds else None,
        "peak_gpu_memory_gib": peak,
        "eval": last_eval,
    }
