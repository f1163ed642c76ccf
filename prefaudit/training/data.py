"""Training data: pairs tokenised the way the reference pass tokenises them, their reference
log-probs (read from an audit's ``reference_logps.parquet`` when they match, else computed),
the held-out split, and length-grouped batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import xxhash

from prefaudit.models.logps_file import (
    response_key,
)


@dataclass
class Prepared:
    """Tokenised pairs ready for the loop; row k of every array is pair ``pair_ids[k]``."""

    pairs: pd.DataFrame
    prompt_ids: list[list[int]]
    responses: list[list[list[int]]]  # per pair: [chosen ids + EOS, rejected ids + EOS]
    reference: np.ndarray  # (pairs, 2) log pi_ref of chosen / rejected; NaN until known
    weights: np.ndarray  # per-pair loss weight
    soft_labels: np.ndarray  # per-pair P(chosen better); NaN where the data has none
    left_out: dict[str, int] = field(default_factory=dict)  # pairs not trained on, by reason
    reference_source: dict[str, int] = field(default_factory=dict)
    available: int | None = None  # held-out pairs there were, when only a sample is evaluated

    def __len__(self) -> int:
        return len(self.prompt_ids)

    @cached_property
    def tokens(self) -> np.ndarray:
        """Tokens of each pair: prompt + chosen + rejected."""
        return np.array(
            [
                len(p) + len(c) + len(r)
                for p, (c, r) in zip(self.prompt_ids, self.responses, strict=True)
            ],
            dtype=np.int64,
        )

    @cached_property
    def row_length(self) -> np.ndarray:
        """Positions of each pair's packed row (prompt once, both responses less one token)."""
        return np.array(
            [
                len(p) + len(c) + len(r) - 2
                for p, (c, r) in zip(self.prompt_ids, self.responses, strict=True)
            ],
            dtype=np.int64,
        )


def prepare(pairs: pd.DataFrame, tokenizer, *, max_length: int, use_weights: bool) -> Prepared:
    """Tokenise ``pairs`` (a PairSet); pairs longer than ``max_length`` (prompt + the longer
    response) or with an empty prompt are left out and counted."""
    from prefaudit.models.reference import tokenize_pairs

    messages = pairs["prompt_messages"].tolist() if "prompt_messages" in pairs else None
    prompt_ids, responses, _ = tokenize_pairs(
        tokenizer,
        pairs["prompt"].tolist(),
        [[c, r] for c, r in zip(pairs["chosen"], pairs["rejected"], strict=True)],
        messages if messages is not None else [None] * len(pairs),
    )
    longest = np.array(
        [len(p) + max(len(c), len(r)) for p, (c, r) in zip(prompt_ids, responses, strict=True)],
        dtype=int,
    )
    empty = np.array([len(p) == 0 for p in prompt_ids], dtype=bool)
    keep = (longest <= max_length) & ~empty
    left_out = {}
    if (longest > max_length).any():
        left_out[f"longer than max_length={max_length} tokens"] = int((longest > max_length).sum())
    if empty.any():
        left_out["prompt has no tokens"] = int(empty.sum())
    rows = np.flatnonzero(keep)
    kept = pairs.iloc[rows]
    weights = np.ones(len(rows))
    if use_weights and "weight" in kept:
        weights = kept["weight"].astype(float).fillna(1.0).to_numpy()
    soft = (
        kept["soft_label"].astype(float).to_numpy()
        if "soft_label" in kept
        else np.full(len(rows), np.nan)
    )
    return Prepared(
        pairs=kept,
        prompt_ids=[prompt_ids[i] for i in rows],
        responses=[responses[i] for i in rows],
        reference=np.full((len(rows), 2), np.nan),
        weights=weights,
        soft_labels=soft,
        left_out=left_out,
    )


def attach_reference(prepared: Prepared, table: pd.DataFrame | None) -> int:
    """Fill ``prepared.reference`` from an audit's table where a pair matches (same pair id,
    same response text and token counts, in either orientation); returns how many matched."""
    if table is None or not len(prepared):
        return 0
    found: dict[tuple[str, str, int], float] = {}
    prompts: dict[str, int] = {}
    for pair_id, row in zip(table.index.astype(str), table.itertuples(index=False), strict=True):
        prompts[pair_id] = int(row.prompt_tokens)
        found[(pair_id, row.chosen_key, int(row.chosen_tokens))] = row.ref_chosen_logps
        found[(pair_id, row.rejected_key, int(row.rejected_tokens))] = row.ref_rejected_logps
    matched = 0
    for k, pair_id in enumerate(prepared.pairs.index.astype(str)):
        if prompts.get(pair_id) != len(prepared.prompt_ids[k]):
            continue
        texts = (prepared.pairs["chosen"].iat[k], prepared.pairs["rejected"].iat[k])
        values = [
            found.get((pair_id, response_key(text), len(ids)))
            for text, ids in zip(texts, prepared.responses[k], strict=True)
        ]
        if all(v is not None and np.isfinite(v) for v in values):
            prepared.reference[k] = values
            matched += 1
    return matched


def compute_reference(
    prepared: Prepared, model, tokenizer, *, rows: np.ndarray | None = None, progress: bool = False
) -> int:
    """Score the pairs still without reference log-probs under ``model`` (the policy before
    any step: the reference itself), with the reference-pass engine; only ``rows`` of them
    when given. Returns how many were scored."""
    from prefaudit.models.reference import ReferenceScorer

    todo = np.flatnonzero(np.isnan(prepared.reference).any(axis=1))
    if rows is not None:
        todo = np.intersect1d(todo, rows)
    if not len(todo):
        return 0
    subset = prepared.pairs.iloc[todo]
    messages = subset["prompt_messages"].tolist() if "prompt_messages" in subset else None
    scorer = ReferenceScorer(loaded=(model, tokenizer), max_length=10**9, cache_dir=False)
    was_training = model.training
    model.eval()
    scores = scorer.score(
        subset["prompt"].tolist(),
        subset["chosen"].tolist(),
        subset["rejected"].tolist(),
        messages,
        progress=progress,
    )
    model.train(was_training)
    prepared.reference[todo] = scores[["chosen_logps", "rejected_logps"]].to_numpy(dtype=float)
    return len(todo)


def held_out(pair_ids, fraction: float, seed: int) -> np.ndarray:
    """A stable held-out mask: a pair is held out by a hash of its id, so the same pairs are
    held out of the raw and the cleaned data alike."""
    limit = fraction * 2**64
    return np.array(
        [xxhash.xxh64_intdigest(f"{seed}:{pair_id}".encode()) < limit for pair_id in pair_ids],
        dtype=bool,
    )


def evaluated(pair_ids, most: int, seed: int) -> np.ndarray:
    """Which held-out pairs are evaluated: all, or the ``most`` (0: no limit) whose hash of
    id comes first, so two runs on the same held-out pairs (raw and cleaned) evaluate the
    same ones."""
    if not most or len(pair_ids) <= most:
        return np.ones(len(pair_ids), dtype=bool)
    keys = np.array([xxhash.xxh64_intdigest(f"{seed}:eval:{p}".encode()) for p in pair_ids])
    chosen = np.zeros(len(pair_ids), dtype=bool)
    chosen[np.argsort(keys, kind="stable")[:most]] = True
    return chosen


def epoch_batches(
    lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int, group_by_length: bool
) -> list[np.ndarray]:
    """One epoch's micro-batches (arrays of row numbers), a pure function of (seed, epoch) so
    a resumed run sees the same order. Grouped by length: shuffled, cut into groups of 16
    batches, each group sorted by length and cut into batches, then the batches shuffled."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if group_by_length:
        group = 16 * batch_size
        order = np.concatenate(
            [
                chunk[np.argsort(-lengths[chunk], kind="stable")]
                for chunk in np.split(order, range(group, len(order), group))
            ]
            or [order]
        )
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
