"""The ``select:`` step: of the pairs the other steps kept, keep those most worth training on.

Each pair gets two factors from what the audit already has, then a score:

- **trust**, the chance its (final) label is right: the lowest of ``1 - confidence score``
  (label_noise's noise score) and the raters' ``soft_label`` (P(chosen is better)), each read
  the other way round after a flip. A pair is only as trustworthy as its most doubtful signal.
- **informativeness**, from the reference model's per-token margin ``m`` (chosen minus
  rejected, negated after a flip): ``exp(-(m / s)^2 / 2)``, where ``s`` is the margins' robust
  spread around zero (1.4826 x the median of ``|m|``). A pair the reference already separates
  by a wide margin teaches little (Selective DPO, arXiv 2502.09650, drops what is already
  learnt or out of reach); one it strongly rejects is often mislabelled (margin-based
  selection, arXiv 2502.14560). Both fall off; pairs near ``m = 0`` score 1.

``by: value`` ranks by trust x informativeness (a factor no pair has a value for counts as 1;
with neither, it is refused), ``by: margin`` by informativeness alone, ``by: trust`` by trust
alone (refused without it). A pair without a value gets the median of the pairs that have one.

The ``keep`` share (or count) of the pool is kept, best first, ties in file order; with
``per_cluster_min``, every prompt cluster first keeps its best ``per_cluster_min`` pairs (or
all it has), even when that overruns ``keep``. Every other pair goes to the quarantine with
action ``select``, its score and the cut (the lowest score kept): nothing is lost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prefaudit.cleaning.declared import declared, declaring
from prefaudit.cleaning.policy import Selection
from prefaudit.errors import SettingError

# The robust spread of a normal sample is 1.4826 x its median absolute deviation.
_MAD_TO_SD = 1.4826


def select(
    flags: pd.DataFrame, pool: pd.Index, flipped: pd.Series, selection: Selection
) -> tuple[pd.Index, dict[str, dict[str, Any]], dict[str, Any]]:
    """(ids of ``pool`` not selected, their quarantine entries, the summary for the manifest);
    ``flipped``: which pairs the policy flipped."""
    if not len(pool):  # the other steps left nothing to choose from
        empty = {"pool": 0, "target": 0, "kept": 0, "cut": float("nan"), "signals": []}
        return pool, {}, {**_settings(selection), **empty, "known": {}}
    flags = flags.reindex(pool)
    swapped = flipped.reindex(pool).fillna(False).to_numpy(dtype=bool)
    trust = _trust(flags, swapped)
    informative = _informativeness(flags, swapped)
    score = _score(selection.by, trust, informative)
    clusters = _clusters(flags)
    if selection.per_cluster_min and clusters is None:
        raise SettingError(
            "clean.select.per_cluster_min needs prompt clusters "
            f"({' or '.join(declaring('cluster'))}); this audit has none",
            setting="policy",
        )
    keep, floor = _keep(score, clusters, selection)
    filled = keep & ~floor  # the places filled by rank, after each cluster's floor
    cut = float(score[filled].min()) if filled.any() else float("nan")
    used = [
        name
        for name, values in (("trust", trust), ("margin", informative))
        if values is not None and selection.by in ("value", name)
    ]
    known = {name: _known(flags, name) for name in used}
    missing = ~known["margin"] if "margin" in known else np.zeros(len(pool), dtype=bool)
    rule = _rule(selection, keep, filled, cut)
    entries = {
        pool[i]: _entry(selection.by, float(score[i]), bool(missing[i]), rule)
        for i in np.flatnonzero(~keep)
    }
    summary = {
        **_settings(selection),
        "pool": len(pool),
        "target": _target(selection.keep, len(pool)),
        "kept": int(keep.sum()),
        "cut": cut,
        "signals": used,
        # Pairs of the pool with a value of each signal used (the others got its median).
        "known": {name: int(mask.sum()) for name, mask in known.items()},
        **_coverage(clusters, keep),
    }
    return pool[~keep], entries, summary


def _rule(selection: Selection, keep: np.ndarray, filled: np.ndarray, cut: float) -> str:
    """How the kept pairs were chosen, for the reasons of those that were not."""
    if selection.per_cluster_min:
        rule = (
            f"each prompt cluster kept its best {selection.per_cluster_min}, then the best "
            f"{int(filled.sum())} of the rest"
        )
    else:
        rule = f"the best {int(keep.sum())} of {len(keep)} kept"
    return rule + (
        f" (cut {cut:.3f})" if filled.any() else " (the clusters' floors took every place)"
    )


def _entry(by: str, score: float, no_margin: bool, rule: str) -> dict[str, Any]:
    """A quarantine entry of a pair not selected."""
    median = " (no reference margin: the median)" if no_margin else ""
    return {
        "action": "select",
        "issues": ["select"],
        "reasons": {"select": f"{by} score {score:.3f}{median}; {rule}"},
        "select_score": score,
    }


def _settings(selection: Selection) -> dict[str, Any]:
    return {
        "by": selection.by,
        "keep": selection.keep,
        "per_cluster_min": selection.per_cluster_min,
    }


def _trust(flags, swapped: np.ndarray) -> np.ndarray | None:
    """P(the final label is right) per pair: the lowest of the signals there are (None: no
    pair has a value)."""
    signals = []
    for _, column, _ in declared(flags, "confidence"):
        noise = flags[column].to_numpy(dtype=float)
        signals.append(np.where(swapped, noise, 1 - noise))
    for _, column, _ in declared(flags, "soft_label"):
        chosen_better = flags[column].to_numpy(dtype=float)
        signals.append(np.where(swapped, 1 - chosen_better, chosen_better))
    known = [_filled(s) for s in signals if np.isfinite(s).any()]
    return np.min(np.vstack(known), axis=0) if known else None


def _informativeness(flags, swapped: np.ndarray) -> np.ndarray | None:
    """exp(-(m / s)^2 / 2) of the reference's per-token margin m, s its robust spread around
    zero (None: no pair was scored)."""
    for _, column, _ in declared(flags, "margin"):
        margin = flags[column].to_numpy(dtype=float)
        margin = np.where(swapped, -margin, margin)
        known = np.abs(margin[np.isfinite(margin)])
        if not known.size:
            continue
        spread = _MAD_TO_SD * float(np.median(known)) or float(known.max()) or 1.0
        return _filled(np.exp(-0.5 * np.clip(margin / spread, -40, 40) ** 2))
    return None


def _filled(values: np.ndarray) -> np.ndarray:
    """NaN -> the median of the known values."""
    known = values[np.isfinite(values)]
    return np.where(np.isfinite(values), values, float(np.median(known)) if known.size else 1.0)


def _score(by: str, trust, informative) -> np.ndarray:
    """The ranking score ``by`` asks for; refused when its signal is missing."""
    sources = {
        "margin": (informative, "the reference model's margins (--ref-model)"),
        "trust": (trust, f"label trust ({' or '.join(declaring('confidence', 'soft_label'))})"),
    }
    if by in sources:
        values, source = sources[by]
        if values is None:
            raise SettingError(
                f"select by {by} needs {source}; no pair left has one", setting="policy"
            )
        return values
    if trust is None and informative is None:
        raise SettingError(
            "select needs a score: label trust "
            f"({' or '.join(declaring('confidence', 'soft_label'))}) or the reference model's "
            "margins (--ref-model); no pair left has either",
            setting="policy",
        )
    return (1.0 if trust is None else trust) * (1.0 if informative is None else informative)


def _clusters(flags) -> np.ndarray | None:
    """Each pair's prompt cluster as a whole number (a pair without one: a cluster of its
    own kind, -1), or None when the audit has no clusters."""
    for _, column, _ in declared(flags, "cluster"):
        codes, _ = pd.factorize(flags[column])  # NaN -> -1, one group
        return codes
    return None


def _target(keep: float, n: int) -> int:
    """How many pairs ``keep`` asks for out of ``n``."""
    if keep >= 1:
        return min(int(keep), n)
    return min(n, max(1, round(keep * n))) if n else 0


def _keep(score: np.ndarray, clusters, selection: Selection) -> tuple[np.ndarray, np.ndarray]:
    """(which pairs stay, which of them each cluster's floor took): the floors first, then
    the best of the rest."""
    order = np.argsort(-score, kind="stable")
    floor = np.zeros(len(score), dtype=bool)
    if clusters is not None and selection.per_cluster_min:
        taken: dict[int, int] = {}
        for i in order:
            if taken.get(clusters[i], 0) < selection.per_cluster_min:
                taken[clusters[i]] = taken.get(clusters[i], 0) + 1
                floor[i] = True
    keep = floor.copy()
    room = _target(selection.keep, len(score)) - int(keep.sum())
    keep[order[~keep[order]][: max(room, 0)]] = True
    return keep, floor


def _known(flags, signal: str) -> np.ndarray:
    """Which pairs have a value of ``signal`` (trust: any of its columns; margin: scored)."""
    kinds = ("confidence", "soft_label") if signal == "trust" else ("margin",)
    known = np.zeros(len(flags), dtype=bool)
    for kind in kinds:
        for _, column, _ in declared(flags, kind):
            known |= np.isfinite(flags[column].to_numpy(dtype=float))
    return known


def _coverage(clusters, keep: np.ndarray) -> dict[str, Any]:
    """The clusters represented, and the smallest one's pairs, before and after."""
    if clusters is None or not len(clusters):
        return {}
    before = pd.Series(clusters).value_counts()
    after = pd.Series(clusters[keep]).value_counts().reindex(before.index).fillna(0)
    return {
        "clusters_before": int(len(before)),
        "clusters_after": int((after > 0).sum()),
        "smallest_cluster_before": int(before.min()),
        "smallest_cluster_after": int(after.min()),
    }
