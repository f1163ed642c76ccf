"""Label noise: recovering injected flips in real pairs, against cleanlab, and the time at scale.

On the real HH-RLHF harmless pairs and the real AlpacaEval pairs (judged by 2-3 LLM judges, so
the rater signal exists there) in ../shared/data: flip a known random 10%, 20% and 30% of the
labels (3 seeds each; on AlpacaEval the judges' votes stay with the texts they voted for, so a
flipped label disagrees with its raters, as a real mislabelled pair would), run the
`label_noise` validator (with `agreement` where there are raters), and print for its noise
score: AUROC and precision at k (k = number flipped) for recovering the injected flips, and the
estimated noise rate against the injected one.

The data's own noise is unknown: pairs mislabelled before injection count as clean in AUROC and
precision (which caps both), and the estimated rate is printed next to "expected" =
e0 + r(1 - 2 e0), with e0 the estimate on the data as it is (r injected flips on top of a base
rate e0: a flip of a wrong label makes it right).

Side by side, in the same run, cleanlab's ``get_label_quality_scores`` (self-confidence) and
noise-rate estimate (``num_label_issues`` / n) fed two ways: like with like, the validator's
own combined probabilities (every signal it has: the model and, on AlpacaEval, the raters);
and the out-of-fold probabilities of its preference model alone (same features, same folds),
which is what cleanlab could compute by itself from the texts. The difference between the two
cleanlab columns is what the raters add; the difference between prefaudit and cleanlab on the
same probabilities is what prefaudit's own ranking and estimate add (nothing, when the
probabilities are the same: both rank by them). Then the time of the validator
on 100,000 pairs after embeddings (vectors looked up, not computed; 2-core machine target < 60 s).

    python benchmarks/bench_label_noise.py [--seeds 3] [--scale 100000]

The embeddings of the real texts (about 12,000, the embedded all-MiniLM-L6-v2) are computed
once and cached on disk (~/.cache/prefaudit): the first run takes 10-20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realdata import SHARED  # noqa: E402


def flipped(data, share: float, seed: int):
    """A copy of the loaded data with a random ``share`` of its labels flipped (and the mask).

    Chosen and rejected swap texts (and their model and position columns); annotations of a
    flipped pair are re-expressed for the swapped pair, so each vote stays with the text it
    chose."""
    from prefaudit.io import LoadedData

    rng = np.random.default_rng(seed)
    n = len(data.pairs)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, int(round(share * n)), replace=False)] = True
    pairs = data.pairs.copy()
    for a, b in (("chosen", "rejected"), ("model_chosen", "model_rejected")):
        if a in pairs and b in pairs:
            pairs.loc[mask, [a, b]] = pairs.loc[mask, [b, a]].to_numpy()
    if "chosen_position" in pairs:
        pairs.loc[mask, "chosen_position"] = pairs.loc[mask, "chosen_position"].map(_other_side)
    notes = data.annotations
    if notes is not None:
        notes = notes.copy()
        hit = notes["pair_id"].isin(pairs.index[mask]).to_numpy()
        notes.loc[hit, "label"] = notes.loc[hit, "label"].map(
            {"chosen": "rejected", "rejected": "chosen", "tie": "tie"}
        )
        notes.loc[hit, "value"] = 1 - notes.loc[hit, "value"]
        if "chosen_position" in notes:
            notes.loc[hit, "chosen_position"] = notes.loc[hit, "chosen_position"].map(_other_side)
    return LoadedData(pairs, notes, data.report), mask


def _other_side(position):
    return {"a": "b", "b": "a"}.get(position, position)


def precision_at_k(scores: np.ndarray, truth: np.ndarray) -> float:
    k = int(truth.sum())
    top = np.argsort(-scores, kind="stable")[:k]
    return float(truth[top].mean()) if k else float("nan")


def cleanlab_figures(model_flip: np.ndarray, truth: np.ndarray, seed: int) -> dict:
    """cleanlab on the validator's own out-of-fold model probabilities.

    cleanlab needs both classes among the labels: each pair is shown in a random orientation
    (label 1 = "the first response is better" as the data says), the probabilities turned with
    it."""
    from cleanlab.count import num_label_issues
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.metrics import roc_auc_score

    known = ~np.isnan(model_flip)
    p_flip, truth = model_flip[known], truth[known]
    rng = np.random.default_rng(seed)
    first = rng.random(len(p_flip)) < 0.5  # shown as given: the chosen response first
    labels = np.where(first, 1, 0)
    p_first_better = np.where(first, 1 - p_flip, p_flip)
    pred_probs = np.column_stack([1 - p_first_better, p_first_better])
    quality = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    issues = find_label_issues(labels, pred_probs)
    return {
        "auroc": roc_auc_score(truth, 1 - quality),
        "p_at_k": precision_at_k(1 - quality, truth),
        "estimate": num_label_issues(labels, pred_probs) / len(labels),
        "flagged": int(issues.sum()),
    }


def accuracy(name: str, data, embedder, seeds: int) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    from prefaudit.auditing import run_audit

    validators = ["label_noise"] + (["agreement"] if data.annotations is not None else [])
    rows = []
    base = None
    for share in (0.0, 0.1, 0.2, 0.3):
        for seed in range(seeds if share else 1):
            started = time.perf_counter()
            noisy, truth = flipped(data, share, seed)
            result = run_audit(noisy, validators=validators, embedder=embedder)
            noise = result.validators["label_noise"]
            seconds = time.perf_counter() - started
            estimate = noise.metrics["label_noise/estimated_rate"]
            if share == 0:
                base = estimate
                print(
                    f"{name}: {len(noisy.pairs):,} pairs, signals {noise.info['signals_used']}, "
                    f"estimated rate as it is {estimate:.3f} "
                    f"[{noise.metrics['label_noise/estimated_rate_ci_low']:.3f}, "
                    f"{noise.metrics['label_noise/estimated_rate_ci_high']:.3f}], "
                    f"model agreement with the labels "
                    f"{noise.metrics['label_noise/model_agreement']:.3f}"
                )
                continue
            score = noise.flags["noise_score"].to_numpy()
            model = noise.flags["model"].to_numpy()
            theirs = cleanlab_figures(model, truth, seed)
            same = cleanlab_figures(score, truth, seed)
            rows.append(
                {
                    "data": name,
                    "injected": share,
                    "seed": seed,
                    "auroc": roc_auc_score(truth, score),
                    "p_at_k": precision_at_k(score, truth),
                    "model_auroc": roc_auc_score(truth, model),
                    "estimate": estimate,
                    "ci": (
                        noise.metrics["label_noise/estimated_rate_ci_low"],
                        noise.metrics["label_noise/estimated_rate_ci_high"],
                    ),
                    "expected": base + share * (1 - 2 * base),
                    "flagged": noise.metrics["label_noise/flagged"],
                    "cl_auroc": theirs["auroc"],
                    "cl_p_at_k": theirs["p_at_k"],
                    "cl_estimate": theirs["estimate"],
                    "cl_same_auroc": same["auroc"],
                    "cl_same_p_at_k": same["p_at_k"],
                    "cl_same_estimate": same["estimate"],
                    "seconds": seconds,
                }
            )
    return rows


def scale(n: int, texts: list[str], dim: int = 384) -> float:
    """Seconds for the validator on n pairs whose embeddings are already computed."""
    from prefaudit.auditing import AuditContext
    from prefaudit.validators.label_noise import LabelNoiseValidator

    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(texts), (n, 3))
    pairs = pd.DataFrame(
        {
            "prompt": [texts[i] for i in pick[:, 0]],
            "chosen": [texts[i] for i in pick[:, 1]],
            "rejected": [texts[i] for i in pick[:, 2]],
        },
        index=[f"p{i}" for i in range(n)],
    )
    vectors = rng.normal(size=(len(texts), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lookup = {t: k for k, t in enumerate(texts)}

    class Precomputed:  # embeddings already computed: looked up, as a warm cache would
        def encode(self, batch):
            return vectors[[lookup[t] for t in batch]]

    context = AuditContext(pairs, embedder=Precomputed())
    for column in ("prompt", "chosen", "rejected"):
        context.embeddings(column)  # outside the timing: "after embeddings"
    started = time.perf_counter()
    LabelNoiseValidator().run(context)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scale", type=int, default=100_000, help="pairs for the timing (0: skip)")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    import prefaudit
    from prefaudit.models.embeddings import Embedder

    embedder = Embedder()
    sets = {
        "HH": prefaudit.load(str(SHARED / "hh-rlhf-harmless-test.jsonl.gz")),
        "AlpacaEval": prefaudit.load(str(SHARED / "alpacaeval-judges.jsonl.gz")),
    }
    rows = []
    for name, data in sets.items():
        rows += accuracy(name, data, embedder, args.seeds)
    table = pd.DataFrame(rows)
    summary = table.groupby(["data", "injected"]).agg(
        auroc=("auroc", "mean"),
        cl_same_auroc=("cl_same_auroc", "mean"),
        cl_model_auroc=("cl_auroc", "mean"),
        model_only_auroc=("model_auroc", "mean"),
        p_at_k=("p_at_k", "mean"),
        cl_same_p_at_k=("cl_same_p_at_k", "mean"),
        cl_model_p_at_k=("cl_p_at_k", "mean"),
        estimate=("estimate", "mean"),
        expected=("expected", "mean"),
        cl_same_estimate=("cl_same_estimate", "mean"),
        cl_model_estimate=("cl_estimate", "mean"),
        flagged=("flagged", "mean"),
        seconds=("seconds", "mean"),
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"means over {args.seeds} seeds:")
        print(summary.round(3).to_string())
        for column, fed in (
            ("cl_same_auroc", "the same probabilities"),
            ("cl_auroc", "the model's"),
        ):
            worst = (table["auroc"] - table[column]).min()
            print(f"AUROC minus cleanlab's on {fed}, worst single run: {worst:+.4f}")
    if args.scale:
        texts = sorted(
            {t for d in sets.values() for c in ("prompt", "chosen", "rejected") for t in d.pairs[c]}
        )
        seconds = scale(args.scale, texts)
        print(
            f"label_noise on {args.scale:,} pairs after embeddings (5 folds, 776 features): "
            f"{seconds:.1f} s (target < 60 s)"
        )


if __name__ == "__main__":
    main()
