"""Train on the cleaned pairs and, for comparison, on the raw ones: the step after cleaning,
shared by ``prefaudit clean-then-train`` and :func:`prefaudit.clean_then_train`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from prefaudit.errors import SettingError
from prefaudit.training.config import TrainConfig
from prefaudit.training.data import held_out
from prefaudit.training.loop import TrainResult, train

# The held-out figures printed side by side (every metric is in comparison.json).
COMPARED = ("loss", "rewards/accuracies", "rewards/margins")


@dataclass
class Runs:
    """The training runs (``cleaned``, and ``raw`` when compared) and ``comparison.json``'s
    content (None without a raw run)."""

    runs: dict[str, TrainResult]
    comparison: dict[str, Any] | None


def train_cleaned(
    cleaned: pd.DataFrame,
    raw: pd.DataFrame | None,
    config: TrainConfig,
    out: Path,
    *,
    eval_pairs: pd.DataFrame | None = None,
    reference_logps: Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> Runs:
    """Train on ``cleaned`` into ``out/train``; with ``raw`` (the pairs before cleaning), also
    on them less the held-out pairs, for the same number of steps, into ``out/train-raw``, and
    write ``out/comparison.json``. Both runs are evaluated on the same held-out pairs:
    ``eval_pairs``, or a stable ``config.eval_fraction`` of the cleaned pairs (by pair id)."""
    from prefaudit.fileio import write_json

    if eval_pairs is None:
        held = held_out(cleaned.index, config.eval_fraction, config.seed)
        cleaned, eval_pairs = cleaned[~held], cleaned[held]
    if raw is not None and not len(eval_pairs):
        raise SettingError(
            "comparing with the raw pairs needs held-out pairs: eval_fraction > 0",
            setting="eval_fraction",
        )
    # The trackers show both runs side by side: one group, named <run_name or out>/cleaned, /raw.
    group = config.run_name or str(out)
    options = {
        "eval_pairs": eval_pairs,
        "reference_logps": reference_logps,
        "resume": resume,
        "progress": progress,
        "group": group,
    }
    named = replace(config, run_name=f"{group}/cleaned")
    runs = {"cleaned": train(cleaned, named, out / "train", **options)}
    if raw is None:
        return Runs(runs, None)
    raw = raw[~raw.index.isin(eval_pairs.index)]
    same_budget = replace(config, max_steps=runs["cleaned"].steps, run_name=f"{group}/raw")
    runs["raw"] = train(raw, same_budget, out / "train-raw", **options)
    evaluated = runs["cleaned"].summary["eval_pairs"]  # a bounded sample of the held out
    comparison = {
        "eval_pairs": evaluated,
        "eval_pairs_available": len(eval_pairs),
        "steps": runs["cleaned"].steps,
        **{
            name: {
                "train_pairs": run.summary["train_pairs"],
                **run.eval_metrics,
                "accuracy_interval": _interval(run.eval_metrics, evaluated),
            }
            for name, run in runs.items()
        },
    }
    write_json(out / "comparison.json", comparison)
    return Runs(runs, comparison)


def _interval(metrics: dict[str, float], n: int) -> list[float | None]:
    """The 95% Wilson interval of the held-out accuracy over ``n`` pairs."""
    from prefaudit.stats import wilson

    accuracy = metrics.get("rewards/accuracies")
    if accuracy is None or accuracy != accuracy:
        return [None, None]
    return list(wilson(round(accuracy * n), n))
