"""The agreement validator on 1,000,000 annotations vs the ``krippendorff`` call alone.

200,000 pairs x 5 raters of different accuracy (0.95 ... 0.5, one position-biased), each rater
skipping 5% of the pairs at random, one shown order per pair. Times the whole validator (alpha
with a 1,000-resample bootstrap, kappas, Fleiss, Dawid-Skene, per-pair and per-rater figures)
and, on the same ratings, ``krippendorff.alpha`` alone; the ratio says what everything else
costs. Target: the validator in under 60 s on the 2-core machine.

    python benchmarks/bench_agreement.py [--pairs 200000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()

    import krippendorff

    from prefaudit.auditing import AuditContext
    from prefaudit.validators import AgreementValidator

    pairs, annotations = build(args.pairs)
    print(
        f"{len(annotations):,} annotations on {len(pairs):,} pairs by {annotations['annotator'].nunique()} raters"
    )
    validator = AgreementValidator(bootstrap_resamples=args.resamples)
    validator.run(
        AuditContext(
            pairs.iloc[:1000], annotations[annotations["pair_id"].isin(pairs.index[:1000])]
        )
    )  # imports

    started = time.perf_counter()
    result = validator.run(AuditContext(pairs, annotations))
    total = time.perf_counter() - started

    # The krippendorff package alone, on the same reliability matrix (raters x pairs).
    unit = pairs.index.get_indexer(annotations["pair_id"])
    raters, rater = np.unique(annotations["annotator"], return_inverse=True)
    matrix = np.full((len(raters), len(pairs)), np.nan)
    shown_second = annotations["chosen_position"].to_numpy() == "b"
    first_better = np.where(shown_second, 1.0 - annotations["value"], annotations["value"])
    matrix[rater, unit] = np.where(first_better > 0.5, 0.0, 1.0)
    started = time.perf_counter()
    package = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    package_seconds = time.perf_counter() - started

    metrics = result.metrics
    print(
        f"validator (all figures, {args.resamples:,}-resample bootstrap): {total:.2f} s "
        f"(target < 60 s: {'OK' if total < 60 else 'MISSED'})"
    )
    print(
        f"krippendorff.alpha alone:  {package_seconds:.2f} s  -> validator / package = {total / package_seconds:.1f}x"
    )
    print(
        f"alpha {metrics['agreement/krippendorff_alpha']:.4f} (package {package:.4f}) "
        f"[{metrics['agreement/krippendorff_alpha_ci_low']:.4f}, {metrics['agreement/krippendorff_alpha_ci_high']:.4f}], "
        f"percent agreement {metrics['agreement/percent_agreement']:.4f}, Fleiss {metrics['agreement/fleiss_kappa']:.4f}"
    )
    for row in result.info["annotators"]:
        print(
            f"  #{row['rank']} {row['annotator']}: estimated accuracy {row['estimated_accuracy']:.3f}, "
            f"position bias {row['position_bias']:.2f}, unreliable {row['unreliable']}"
        )


if __name__ == "__main__":
    main()
