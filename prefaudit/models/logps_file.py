"""``reference_logps.parquet``: the reference log-probs an audit computed, in the form the
trainer reads back, so that training need not score the pairs again.

One row per scored pair, indexed by ``pair_id``, with ``attrs["reference_model"]`` naming the
model and dtype they were computed under (see :func:`prefaudit.models.loading.model_identity`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xxhash

log = logging.getLogger(__name__)

# Columns of reference_logps.parquet (written by the audit, read by the trainer).
REFERENCE_COLUMNS = (
    "ref_chosen_logps",
    "ref_rejected_logps",
    "chosen_tokens",
    "rejected_tokens",
    "prompt_tokens",
    "chosen_key",
    "rejected_key",
)


def response_key(text: str) -> str:
    """What identifies a response in reference_logps.parquet (with its pair id and token
    counts): a pair flipped by cleaning finds its log-probs under the other column."""
    return xxhash.xxh64_hexdigest(text.encode("utf-8"))


def write_reference_logps(
    path: str | Path, flags: pd.DataFrame, pairs: pd.DataFrame, model_identity: str | None
) -> Path:
    """Write the scored pairs of the reference validator's ``flags`` (columns ``scored``,
    ``chosen_logps``, ``rejected_logps`` and the three token counts; indexed by pair id) in
    the columns the trainer reads, the response texts keyed from ``pairs``, with the identity
    of the model they were computed under (``attrs["reference_model"]``). Returns the path."""
    from prefaudit.fileio import write_parquet

    scored = flags[flags["scored"].astype(bool)]
    texts = pairs.reindex(scored.index)
    table = pd.DataFrame(
        {
            "ref_chosen_logps": scored["chosen_logps"].astype(float),
            "ref_rejected_logps": scored["rejected_logps"].astype(float),
            "chosen_tokens": scored["chosen_tokens"].astype(np.int64),
            "rejected_tokens": scored["rejected_tokens"].astype(np.int64),
            "prompt_tokens": scored["prompt_tokens"].astype(np.int64),
            "chosen_key": [response_key(t) for t in texts["chosen"]],
            "rejected_key": [response_key(t) for t in texts["rejected"]],
        },
        index=scored.index.rename("pair_id"),
    )
    table.attrs["reference_model"] = model_identity
    return write_parquet(path, table)


def read_reference_logps(path: str | Path, model_identity: str) -> pd.DataFrame | None:
    """An audit's reference log-probs, if they were computed under ``model_identity`` (None,
    with a warning, when they were not or the file predates these columns)."""
    table = pd.read_parquet(path)
    missing = [c for c in REFERENCE_COLUMNS if c not in table.columns]
    if missing:
        log.warning("%s lacks %s (an older audit): reference log-probs recomputed", path, missing)
        return None
    identity = table.attrs.get("reference_model")
    if identity != model_identity:
        log.warning(
            "%s was scored under %r, training uses %r: reference log-probs recomputed",
            path,
            identity,
            model_identity,
        )
        return None
    return table
