"""``reference_logps.parquet``: the reference log-probs an audit computed, in the form the
trainer reads back, so that training need not score the pairs again; and the same log-probs in
TRL's columns for ``cleaned.jsonl`` (:func:`with_trl_columns`), so that TRL need not either.

One row per scored pair, indexed by ``pair_id``, with ``attrs["reference_model"]`` naming the
model and dtype they were computed under (see :func:`prefaudit.models.loading.model_identity`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

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


# The columns TRL's DPOTrainer reads as the reference model's summed log-probs of a pair's
# responses (those its precompute_ref_log_probs=True fills in).
TRL_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


def with_trl_columns(
    rows: list[dict[str, Any]], reference: Any, flipped: Collection[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The cleaned ``rows`` with :data:`TRL_COLUMNS` from the audit's reference pass
    (``reference``: the reference validator's result, None when the audit ran none), and what
    ``manifest.json`` records of them: ``written``; then the ``model`` they belong to (as the
    audit named it), its ``model_identity`` (name or folder signature, and dtype) and
    ``longest_pair_tokens`` (TRL's ``max_length`` must be None or at least this); else the
    ``reason``.

    All or nothing: the columns are added only when every row's pair was scored and TRL 1.x
    would tokenise it into the very ids scored (no ``boundary_mismatch`` or
    ``layout_mismatch``); a pair in ``flipped`` gets its two values swapped.
    """
    if reference is None:
        return rows, {"written": False, "reason": "the audit ran no reference model (--ref-model)"}
    flags = reference.flags.set_axis(reference.flags.index.astype(str))
    kept = flags.reindex([str(row["pair_id"]) for row in rows])
    refusals = _refusals(kept, reference)
    if refusals:
        return rows, {"written": False, "reason": "; ".join(refusals)}
    swap = np.array([row["pair_id"] in flipped for row in rows], dtype=bool)
    chosen = kept["chosen_logps"].to_numpy(dtype=float)
    rejected = kept["rejected_logps"].to_numpy(dtype=float)
    values = zip(np.where(swap, rejected, chosen), np.where(swap, chosen, rejected), strict=True)
    longest = kept["prompt_tokens"] + np.maximum(kept["chosen_tokens"], kept["rejected_tokens"])
    return [
        {**row, TRL_COLUMNS[0]: float(c), TRL_COLUMNS[1]: float(r)}
        for row, (c, r) in zip(rows, values, strict=True)
    ], {
        "written": True,
        "columns": list(TRL_COLUMNS),
        "model": reference.info.get("model"),
        "model_identity": reference.info.get("model_identity"),
        "longest_pair_tokens": int(longest.max()) if len(rows) else 0,
    }


def _refusals(kept: pd.DataFrame, reference: Any) -> list[str]:
    """Why the reference pass's log-probs of the cleaned pairs ``kept`` are not TRL's ([]: they
    are), one clause per cause."""
    if not {"boundary_mismatch", "layout_mismatch"} <= set(kept.columns):
        return ["the audit predates the check of TRL's tokenisation: audit again"]
    of = f"of the {len(kept)} cleaned pairs"
    params = reference.params

    def mask(column: str) -> pd.Series:
        return kept[column].eq(True)  # a pair missing from the flags: NaN, False

    too_long = ~mask("scored") & mask("truncated")
    unscored = ~mask("scored") & ~too_long
    why = f"--ref-sample {params.get('sample')}" if reference.info.get("sampled") else "no prompt"
    causes = (
        (too_long, f"{{were}} longer than --max-length {params.get('max_length')} tokens"),
        (unscored, f"{{were}} not scored ({why})"),
        (
            mask("boundary_mismatch"),
            "{were} tokenised otherwise by TRL where prompt and response meet",
        ),
        (
            mask("layout_mismatch"),
            "{were} laid out otherwise by TRL (a chat template that ends the assistant turn with "
            "more than the EOS token, or none; or a response ending in the EOS text)",
        ),
    )
    return [
        f"{int(hit.sum())} {of} " + what.format(were="was" if hit.sum() == 1 else "were")
        for hit, what in causes
        if hit.any()
    ]
