"""The agreement validator on 1,000,000 annotations vs its peers: ``krippendorff`` with a
bootstrap, and crowd-kit's Dawid-Skene.

200,000 pairs x 5 raters of different accuracy (0.95 ... 0.5, one position-biased), each rater
skipping 5% of the pairs at random, one shown order per pair. Three arms on the same ratings,
alternated (the order rotates every round), each timed from the annotation table:

- prefaudit: the whole validator (alpha with an R-resample bootstrap 95% interval, Cohen's kappa
  matrix, Fleiss' kappa, Dawid-Skene, per-pair majority and flags, per-rater agreement and
  position bias);
- krippendorff + bootstrap: the raters x pairs matrix built from the table, ``krippendorff.alpha``
  once and on R resamples of the pairs (drawn with replacement), the 2.5/97.5 percentiles;
- crowd-kit: ``DawidSkene(n_iter=100, tol=1e-5).fit`` on (task, worker, label), each rater's
  accuracy read from its confusion matrix.

The two peers together compute less than the validator (no kappas, no per-pair or per-rater
agreement figures, no position bias, no flags). It prints min and median seconds per arm and
the ratios of the medians, then checks that the arms agree (alpha, interval, accuracies).
Target: the validator in under 60 s on the 2-core machine.

    python benchmarks/bench_agreement.py [--pairs 200000] [--resamples 1000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ACCURACY = (0.95, 0.9, 0.85, 0.7, 0.5)
POSITION_BIASED = 3  # this rater picks the first-shown response 60% of the time


def build(pairs: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.char.add("p", np.arange(pairs).astype(str)).astype(object)
    frame = pd.DataFrame(
        {"pair_id": ids, "prompt": "q", "chosen": "a", "rejected": "b"},
        index=pd.Index(ids, dtype="str"),
    )
    chosen_better = rng.random(pairs) < 0.8
    shown_first = np.where(rng.random(pairs) < 0.5, "a", "b")
    parts = []
    for rater, accuracy in enumerate(ACCURACY):
        rated = rng.random(pairs) >= 0.05
        right = rng.random(pairs) < accuracy
        says_chosen = np.where(right, chosen_better, ~chosen_better)
        if rater == POSITION_BIASED:
            biased = rng.random(pairs) < 0.6
            says_chosen = np.where(biased, shown_first == "a", says_chosen)
        value = says_chosen.astype(float)
        parts.append(
            pd.DataFrame(
                {
                    "pair_id": ids[rated],
                    "annotator": f"rater_{rater}",
                    "label": np.where(says_chosen, "chosen", "rejected")[rated],
                    "value": value[rated],
                    "chosen_position": shown_first[rated],
                }
            )
        )
    return frame, pd.concat(parts, ignore_index=True)


def validator_arm(pairs: pd.DataFrame, annotations: pd.DataFrame, resamples: int) -> dict:
    from prefaudit.auditing import AuditContext
    from prefaudit.validators import AgreementValidator

    result = AgreementValidator(bootstrap_resamples=resamples).run(AuditContext(pairs, annotations))
    metrics = result.metrics
    return {
        "alpha": metrics["agreement/krippendorff_alpha"],
        "low": metrics["agreement/krippendorff_alpha_ci_low"],
        "high": metrics["agreement/krippendorff_alpha_ci_high"],
        "accuracy": {r["annotator"]: r["estimated_accuracy"] for r in result.info["annotators"]},
        "fleiss": metrics["agreement/fleiss_kappa"],
    }


def krippendorff_arm(pairs: pd.DataFrame, annotations: pd.DataFrame, resamples: int) -> dict:
    """What a team writes with the package: the reliability matrix, alpha, a percentile bootstrap."""
    import krippendorff

    unit = pairs.index.get_indexer(annotations["pair_id"])
    raters, rater = np.unique(annotations["annotator"].to_numpy(dtype=str), return_inverse=True)
    matrix = np.full((len(raters), len(pairs)), np.nan)
    # The side each rater prefers in the shown order (the validator's nominal sides).
    shown_second = annotations["chosen_position"].to_numpy() == "b"
    value = annotations["value"].to_numpy()
    first_better = np.where(shown_second, 1.0 - value, value)
    matrix[rater, unit] = np.where(first_better > 0.5, 0.0, 1.0)
    alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    rng = np.random.default_rng(0)
    resampled = np.empty(resamples)
    for i in range(resamples):
        columns = rng.integers(0, matrix.shape[1], matrix.shape[1])
        resampled[i] = krippendorff.alpha(
            reliability_data=matrix[:, columns], level_of_measurement="nominal"
        )
    low, high = np.percentile(resampled[~np.isnan(resampled)], [2.5, 97.5])
    return {"alpha": alpha, "low": float(low), "high": float(high)}


def crowdkit_arm(pairs: pd.DataFrame, annotations: pd.DataFrame, resamples: int) -> dict:
    """crowd-kit's Dawid-Skene on the same votes; accuracy = sum over classes of prior x diagonal."""
    from crowdkit.aggregation import DawidSkene

    frame = pd.DataFrame(
        {
            "task": annotations["pair_id"].to_numpy(),
            "worker": annotations["annotator"].to_numpy(),
            "label": annotations["label"].to_numpy(),
        }
    )
    model = DawidSkene(n_iter=100, tol=1e-5).fit(frame)
    accuracy = {}
    for worker, confusion in model.errors_.groupby(level=0):
        # errors_: rows (worker, observed label), columns the true label; columns sum to 1.
        confusion = confusion.droplevel(0)
        accuracy[worker] = float(
            sum(model.priors_[k] * confusion.loc[k, k] for k in model.priors_.index)
        )
    return {"accuracy": accuracy, "labels": len(model.labels_)}


ARMS = {
    "prefaudit validator": validator_arm,
    "krippendorff + bootstrap": krippendorff_arm,
    "crowd-kit DawidSkene": crowdkit_arm,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of every arm")
    parser.add_argument(
        "--quick", action="store_true", help="20,000 pairs (about 95,000 annotations)"
    )
    args = parser.parse_args()
    if args.quick:
        args.pairs = 20_000

    pairs, annotations = build(args.pairs)
    print(
        f"{len(annotations):,} annotations on {len(pairs):,} pairs by "
        f"{annotations['annotator'].nunique()} raters; {args.resamples:,} bootstrap resamples; "
        f"{args.rounds} alternated rounds"
    )
    small = annotations[annotations["pair_id"].isin(pairs.index[:1000])]
    for arm in ARMS.values():  # imports and first-call costs, outside the timings
        arm(pairs.iloc[:1000], small, 10)

    seconds: dict[str, list[float]] = {name: [] for name in ARMS}
    cpu: dict[str, list[float]] = {name: [] for name in ARMS}
    outputs = {}
    names = list(ARMS)
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            outputs[name] = ARMS[name](pairs, annotations, args.resamples)
            seconds[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    report(seconds, cpu, outputs)


def report(seconds: dict[str, list[float]], cpu: dict[str, list[float]], outputs: dict) -> None:
    """Wall seconds (min, median) and CPU seconds (median: steadier on a shared machine)."""
    median = {name: statistics.median(runs) for name, runs in seconds.items()}
    ours = median["prefaudit validator"]
    print(f"\n{'arm':<26} {'min s':>8} {'median s':>9} {'peer / validator':>17} {'CPU s':>8}")
    for name, runs in seconds.items():
        print(
            f"{name:<26} {min(runs):>8.2f} {median[name]:>9.2f} {median[name] / ours:>16.2f}x "
            f"{statistics.median(cpu[name]):>8.2f}"
        )

    def summed(runs: dict[str, list[float]]) -> list[float]:
        return [
            a + b
            for a, b in zip(
                runs["krippendorff + bootstrap"], runs["crowd-kit DawidSkene"], strict=True
            )
        ]

    peers, peers_cpu = summed(seconds), summed(cpu)
    print(
        f"{'both peers, same round':<26} {min(peers):>8.2f} {statistics.median(peers):>9.2f} "
        f"{statistics.median(peers) / ours:>16.2f}x {statistics.median(peers_cpu):>8.2f}"
    )
    print(f"validator target < 60 s: {'OK' if ours < 60 else 'MISSED'}")
    ours_out, package = outputs["prefaudit validator"], outputs["krippendorff + bootstrap"]
    print(
        f"\nalpha {ours_out['alpha']:.4f} [{ours_out['low']:.4f}, {ours_out['high']:.4f}]; "
        f"package {package['alpha']:.4f} [{package['low']:.4f}, {package['high']:.4f}]; "
        f"Fleiss {ours_out['fleiss']:.4f}"
    )
    theirs = outputs["crowd-kit DawidSkene"]["accuracy"]
    for rater, accuracy in sorted(ours_out["accuracy"].items()):
        print(
            f"  {rater}: Dawid-Skene accuracy {accuracy:.3f} (crowd-kit {theirs.get(rater, float('nan')):.3f})"
        )


if __name__ == "__main__":
    main()
