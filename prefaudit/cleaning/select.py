"""The ``select:`` step: of the pairs the other steps kept, keep those most worth training on.

Each pair gets two factors from what the audit already has, then a score:

- **trust**, the chance its (final) label is right: the lowest of ``1 - confidence score``
  (label_noise's noise score) and the raters' ``soft_label`` (P(chosen is better)), each read
  the other way round after a flip. A pair is only as trustworthy as its most doubtful signal.
- **informativeness**, from the reference model's per-token margin ``m`` (chosen minus
  rejected, negated after a flip): ``exp(-(m / s)^2 / 2)``, where ``s`` is the margins' robust
  spread (1.4826 x their median absolute deviation). A pair the reference already separates
  by a wide margin teaches little (Selective DPO, arXiv 2502.09650, drops what is already
  learnt or out of reach); one it strongly rejects is often mislabelled (margin-based
  selection, arXiv 2502.14560). Both fall off; pairs near ``m = 0`` score 1.

``by: value`` ranks by trust x informativeness, ``by: margin`` by informativeness alone,
``by: trust`` by trust alone. A pair without a signal gets that signal's median over the pairs
that have it; a signal no pair has counts as 1 (``value``) or is an error (asked for by name).

The ``keep`` share (or count) of the pool is kept, best first, ties in file order; with
``per_cluster_min``, every prompt cluster first keeps its best ``per_cluster_min`` pairs (or
all it has), even when that overruns ``keep``. Every other pair goes to the quarantine with
action ``select``, its score and the cut: nothing is lost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prefaudit.cleaning.policy import Selection
from prefaudit.errors import SettingError

# The robust spread of a normal sample is 1.4826 x its median absolute deviation.
_MAD_TO_SD = 1.4826


def select(
    flags: pd.DataFrame,
    pool: pd.Index,
    flipped: pd.Series,
    selection: Selection,
    declared,
) -> tuple[pd.Index, dict[str, dict[str, Any]], dict[str, Any]]:
    """(ids of ``pool`` not selected, their quarantine entries, the summary for the manifest).

    ``declared(flags, kind)`` lists the audit's columns of a cleaning kind (see
    prefaudit.cleaning.apply.declared); ``flipped``: which pairs the policy flipped.
    """
    if not len(pool):  # the other steps left nothing to choose from
        return (
            pool,
            {},
            {
                "by": selection.by,
                "keep": selection.keep,
                "pool": 0,
                "target": 0,
                "kept": 0,
                "cut": float("nan"),
                "signals": [],
            },
        )
    flags = flags.reindex(pool)
    swapped = flipped.reindex(pool).fillna(False).to_numpy(dtype=bool)
    trust = _trust(flags, swapped, declared)
    informative = _informativeness(flags, swapped, declared)
    score = _score(selection.by, trust, informative)
    keep, cut = _keep(score, _clusters(flags, selection, declared), selection)
    target = _target(selection.keep, len(pool))
    left = pool[~keep]
    kept = f"the best {int(keep.sum())} of {len(pool)} kept"
    if selection.per_cluster_min:
        kept += f", each prompt cluster's best {selection.per_cluster_min} first"
    entries = {
        pair_id: {
            "action": "select",
            "issues": ["select"],
            "reasons": {"select": f"{selection.by} score {value:.3f}; {kept} (cut {cut:.3f})"},
            "select_score": float(value),
        }
        for pair_id, value in zip(left, score[~keep], strict=True)
    }
    summary = {
        "by": selection.by,
        "keep": selection.keep,
        "per_cluster_min": selection.per_cluster_min,
        "pool": len(pool),
        "target": target,
        "kept": int(keep.sum()),
        "cut": cut,
        "signals": _used(selection.by, trust, informative),
        **_coverage(_clusters(flags, None, declared), keep),
    }
    return left, entries, summary


def _used(by: str, trust, informative) -> list[str]:
    """The signals the score was built from."""
    have = {"trust": trust is not None, "margin": informative is not None}
    return [name for name in ("trust", "margin") if have[name] and by in ("value", name)]


def _trust(flags, swapped: np.ndarray, declared) -> np.ndarray | None:
    """P(the final label is right) per pair: the lowest of the signals there are."""
    signals = []
    for _, column, _ in declared(flags, "confidence"):
        noise = flags[column].to_numpy(dtype=float)
        signals.append(np.where(swapped, noise, 1 - noise))
    for _, column, _ in declared(flags, "soft_label"):
        chosen_better = flags[column].to_numpy(dtype=float)
        signals.append(np.where(swapped, 1 - chosen_better, chosen_better))
    if not signals:
        return None
    return np.min(np.vstack([_filled(s) for s in signals]), axis=0)


def _informativeness(flags, swapped: np.ndarray, declared) -> np.ndarray | None:
    """exp(-(m / s)^2 / 2) of the reference's per-token margin m, s its robust spread."""
    for _, column, _ in declared(flags, "margin"):
        margin = flags[column].to_numpy(dtype=float)
        margin = np.where(swapped, -margin, margin)
        known = margin[np.isfinite(margin)]
        if not known.size:
            raise SettingError(
                "select: the reference model scored none of the pairs left (each too long "
                "for its max_length?); select by trust, or score them",
                setting="policy",
            )
        spread = _MAD_TO_SD * float(np.median(np.abs(known - np.median(known))))
        if spread <= 0:
            spread = float(np.std(known)) or 1.0
        return _filled(np.exp(-0.5 * np.clip(margin / spread, -40, 40) ** 2))
    return None


def _filled(values: np.ndarray) -> np.ndarray:
    """NaN -> the median of the known values (1 when none is known)."""
    known = values[np.isfinite(values)]
    return np.where(np.isfinite(values), values, float(np.median(known)) if known.size else 1.0)


def _score(by: str, trust, informative) -> np.ndarray:
    needs = {
        "margin": ("informativeness", informative, "the reference model's margins (--ref-model)"),
        "trust": ("trust", trust, "label_noise or agreement scores"),
    }
    if by in needs:
        _, values, source = needs[by]
        if values is None:
            raise SettingError(
                f"select by {by} needs {source}; this audit has none", setting="policy"
            )
        return values
    if trust is None and informative is None:
        raise SettingError(
            "select needs a score: audit with label_noise, agreement (annotations) or a "
            "reference model (--ref-model)",
            setting="policy",
        )
    return (1.0 if trust is None else trust) * (1.0 if informative is None else informative)


def _clusters(flags, selection: Selection | None, declared) -> np.ndarray | None:
    """Each pair's prompt cluster, or None (refused when ``selection`` asks for a floor)."""
    for _, column, _ in declared(flags, "cluster"):
        return flags[column].to_numpy()
    if selection is not None and selection.per_cluster_min:
        raise SettingError(
            "select.per_cluster_min needs the prompt clusters of the coverage validator; "
            "this audit did not run it",
            setting="policy",
        )
    return None


def _target(keep: float, n: int) -> int:
    """How many pairs ``keep`` asks for out of ``n``."""
    if keep >= 1:
        return min(int(keep), n)
    return min(n, max(1, round(keep * n))) if n else 0


def _keep(score: np.ndarray, clusters, selection: Selection) -> tuple[np.ndarray, float]:
    """(which pairs stay, the lowest score kept by rank): each cluster's floor first, then
    the best of the rest."""
    order = np.argsort(-score, kind="stable")
    keep = np.zeros(len(score), dtype=bool)
    if clusters is not None and selection.per_cluster_min:
        taken: dict[Any, int] = {}
        for i in order:
            if taken.get(clusters[i], 0) < selection.per_cluster_min:
                taken[clusters[i]] = taken.get(clusters[i], 0) + 1
                keep[i] = True
    room = _target(selection.keep, len(score)) - int(keep.sum())
    ranked = order[~keep[order]][: max(room, 0)]
    keep[ranked] = True
    return keep, float(score[ranked[-1]]) if len(ranked) else float("nan")


def _coverage(clusters, keep: np.ndarray) -> dict[str, Any]:
    """The clusters represented, and the smallest one's pairs, before and after."""
    if clusters is None:
        return {}
    before = pd.Series(clusters).value_counts()
    after = pd.Series(clusters[keep]).value_counts()
    return {
        "clusters_before": int(len(before)),
        "clusters_after": int(len(after)),
        "smallest_cluster_before": int(before.min()) if len(before) else 0,
        "smallest_cluster_after": int(after.reindex(before.index).fillna(0).min())
        if len(before)
        else 0,
    }
