"""The DPO trainer's settings: one dataclass, a help text on every field.

A YAML file (``--config``) gives any of the fields; command-line flags override it. Defaults
follow TRL's ``DPOConfig`` where TRL has the same setting, so results compare.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from prefaudit.errors import SettingError
from prefaudit.training.losses import LOSSES
from prefaudit.training.trackers import tracker_names

SCHEDULES = ("linear", "constant")
DTYPES = ("float32", "bfloat16", "float16")
PARALLEL = ("ddp", "fsdp")
_DEVICES = ("cpu", "cuda", "mps", "xpu")


def _is_device(device: str) -> bool:
    """``cpu``, ``cuda``, ``cuda:1``...: what torch.device accepts, checked without torch."""
    kind, _, index = device.partition(":")
    return kind in _DEVICES and (not index or index.isdigit())


_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "str | list[str]": "tracker names",
}


def _as(kind: str, value: Any) -> Any:
    """``value`` as ``kind`` ("int", "float", "bool", "str"); TypeError or ValueError if it
    is not one (a number with a fraction is not an int, nor a number a switch, nor the
    reverse; a path is text)."""
    if isinstance(value, bool) != (kind == "bool"):
        raise TypeError(value)
    if kind == "float":
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    if kind == "int":
        number = float(value) if isinstance(value, str) else value
        if not isinstance(number, numbers.Real) or number != int(number):  # numpy's too
            raise ValueError(value)
        return int(number)
    if kind == "str" and isinstance(value, Path):
        return str(value)
    if kind == "str" and not isinstance(value, str):
        raise TypeError(value)
    return value


def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """How to train DPO on a preference dataset (see each field's help)."""

    model: str | None = _help(
        "policy to train and reference to train against: a hub name or folder; None = the "
        "embedded SmolLM2-135M-Instruct (dequantised from its GGUF into a plain model)",
        None,
    )
    loss: str = _help(
        "sigmoid (DPO), ipo, cdpo (conservative DPO: label smoothing, per-pair soft labels) "
        "or robust (robust DPO: unbiased under a known flip rate)",
        "sigmoid",
    )
    beta: float = _help("strength of the KL penalty to the reference (TRL's default)", 0.1)
    label_smoothing: float = _help(
        "cdpo / robust: the assumed share of flipped labels; a pair's soft_label, when the "
        "data has one, replaces it for that pair (cdpo)",
        0.0,
    )
    use_weights: bool = _help(
        "multiply each pair's loss by its `weight` column when the data has one (written by "
        "`prefaudit clean` with weights: confidence or strength)",
        True,
    )
    learning_rate: float = _help("peak AdamW learning rate (TRL's default)", 1e-6)
    weight_decay: float = _help("AdamW weight decay (TRL's default: none)", 0.0)
    warmup_ratio: float = _help("share of the steps spent warming the learning rate up", 0.1)
    schedule: str = _help("after warm-up: linear decay to 0, or constant", "linear")
    epochs: int = _help("passes over the training pairs (max_steps wins when set)", 1)
    max_steps: int | None = _help("optimizer steps to run; None = epochs' worth", None)
    batch_size: int = _help("pairs per micro-batch (forward/backward)", 8)
    grad_accumulation: int = _help(
        "micro-batches per optimizer step (the effective batch is their product)", 1
    )
    max_grad_norm: float = _help("gradient clipping by global norm; 0 turns it off", 1.0)
    max_length: int = _help(
        "longest prompt + response in tokens; longer pairs are left out and counted, not cut",
        1024,
    )
    group_by_length: bool = _help(
        "batch pairs of similar length together (shuffled in groups of 16 batches), so "
        "padding stays small",
        True,
    )
    eval_fraction: float = _help(
        "share of pairs held out for evaluation when no evaluation set is given", 0.1
    )
    eval_max_pairs: int | None = _help(
        "held-out pairs evaluated at most: a stable sample by pair id when there are more "
        "(0: all; None: 200 on a GPU, 16 on a CPU, where each pair costs a second or more); "
        "each evaluation scores them all, so this bounds its cost",
        None,
    )
    eval_every: int = _help("evaluate every this many optimizer steps (0: only at the end)", 50)
    eval_batch_size: int = _help("pairs per evaluation batch", 16)
    log_every: int = _help("write training metrics every this many optimizer steps", 10)
    save_every: int = _help("checkpoint every this many optimizer steps (0: never)", 100)
    keep_checkpoints: int = _help("checkpoints kept on disk (the newest ones)", 2)
    seed: int = _help("seed of the data order, the held-out split and the initial LoRA", 42)
    lora_r: int = _help("LoRA rank; 0 trains every weight (LoRA needs the `peft` package)", 0)
    lora_alpha: int = _help("LoRA scaling numerator", 16)
    lora_dropout: float = _help("dropout on the LoRA input", 0.0)
    gradient_checkpointing: bool = _help(
        "recompute each layer's activations in the backward pass instead of keeping them: "
        "about a third more compute, a fraction of the memory (TRL turns it on by default)",
        False,
    )
    parallel: str = _help(
        "under torchrun / accelerate launch: ddp (a whole model on every GPU) or fsdp (FSDP2: "
        "weights, gradients and AdamW's state sharded across the processes, for a model whose "
        "full fine-tune does not fit one GPU; no LoRA). Alone, neither applies",
        "ddp",
    )
    device: str | None = _help("cuda, cpu, ...; None = CUDA when there is a GPU", None)
    dtype: str | None = _help(
        "weights' dtype: None = bfloat16 on a GPU that has it, float32 elsewhere", None
    )
    # "none" as in TRL and transformers (v5): nothing but metrics.jsonl unless asked.
    report_to: str | list[str] = _help(
        "also log metrics.jsonl's lines (as train/loss, eval/rewards/accuracies, ...) to "
        "tensorboard (OUT/tensorboard), wandb (OUT/wandb; offline unless logged in to W&B) "
        "or trackio (its local store): one or several (comma-separated or repeated), all "
        "(every one installed) or none",
        "none",
    )
    run_name: str | None = _help(
        "the run's name in the trackers; None = the output folder. clean-then-train names its "
        "runs RUN_NAME/cleaned and RUN_NAME/raw (default OUT/cleaned, OUT/raw), one group",
        None,
    )

    def __post_init__(self) -> None:
        problems = self._typed()
        if problems:  # a value of the wrong type cannot be range-checked
            raise SettingError("; ".join(problems))
        problems += self._named_trackers()
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be linear or constant, got {self.schedule!r}")
        if self.beta <= 0:
            problems.append(f"beta must be > 0, got {self.beta}")
        if not 0 <= self.label_smoothing < 0.5:
            problems.append(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if not 0 <= self.eval_fraction < 1:
            problems.append(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        ranges = {  # name: (lowest, highest, whether the lowest is allowed)
            "learning_rate": (0, None, False),
            "weight_decay": (0, None, True),
            "warmup_ratio": (0, 1, True),
            "max_grad_norm": (0, None, True),
            "lora_r": (0, None, True),
            "lora_alpha": (0, None, False),
            "lora_dropout": (0, 1, True),
            "eval_every": (0, None, True),
            "eval_max_pairs": (0, None, True),
            "save_every": (0, None, True),
        }
        for name, (low, high, inclusive) in ranges.items():
            value = getattr(self, name)
            if value is None:  # the field's "decide for me"
                continue
            if (
                value < low
                or (value == low and not inclusive)
                or (high is not None and value >= high)
            ):
                bound = f">= {low}" if inclusive else f"> {low}"
                bound += f" and < {high}" if high is not None else ""
                problems.append(f"{name} must be {bound}, got {value}")
        for name in (
            "batch_size",
            "grad_accumulation",
            "epochs",
            "max_length",
            "keep_checkpoints",
            "log_every",
            "eval_batch_size",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        problems += self._parallel_problems()
        if self.dtype is not None and self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.device is not None and not _is_device(self.device):
            problems.append(f"device must be cpu, cuda, cuda:N, mps or xpu, got {self.device!r}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}")
        if problems:
            raise SettingError("; ".join(problems))

    def _parallel_problems(self) -> list[str]:
        if self.parallel not in PARALLEL:
            return [f"parallel must be ddp or fsdp, got {self.parallel!r}"]
        if self.parallel == "fsdp" and self.lora_r:
            return ["parallel=fsdp trains every weight: it does not take lora_r > 0"]
        return []

    def _typed(self) -> list[str]:
        """Each number and switch made the type its field declares, as YAML and flags give
        them loosely (YAML reads ``1e-5`` as a string, ``4.0`` is a whole number); what cannot
        be is a problem naming the field."""
        problems = []
        for f in fields(self):
            kind, value = str(f.type).removesuffix(" | None"), getattr(self, f.name)
            if value is None and str(f.type).endswith("| None"):
                continue
            try:
                setattr(self, f.name, _as(kind, value))
            except (TypeError, ValueError, OverflowError):
                problems.append(f"{f.name} must be {_KINDS.get(kind, kind)}, got {value!r}")
        return problems

    def _named_trackers(self) -> list[str]:
        """``report_to`` made a list of tracker names, read as transformers reads it ("none"
        -> []); or the problem."""
        try:
            self.report_to = tracker_names(self.report_to)
        except SettingError as err:
            return [str(err)]
        return []

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Settings from a YAML file, then ``overrides`` (flags) on top."""
        import yaml

        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise SettingError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(values, dict):
            raise SettingError(
                f"{path}: expected a mapping of settings, got {type(values).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        return cls(**{**values, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def eval_limit(self, device: str) -> int:
        """The held-out pairs evaluated at most on ``device`` (0: all)."""
        if self.eval_max_pairs is not None:
            return self.eval_max_pairs
        return 200 if device.startswith("cuda") else 16

    def same_training(self, other: TrainConfig) -> list[str]:
        """Settings that differ in a way that changes the trained weights (for --resume)."""
        cosmetic = {
            "eval_every",
            "eval_batch_size",
            "eval_max_pairs",
            "log_every",
            "save_every",
            "keep_checkpoints",
            "gradient_checkpointing",  # the same weights, recomputed instead of kept
            "parallel",  # the same weights; checkpoints hold whole tensors either way
            "report_to",
            "run_name",
        }
        return [
            f.name
            for f in fields(self)
            if f.name not in cosmetic and getattr(self, f.name) != getattr(other, f.name)
        ]
