"""The proof: does auditing, cleaning and selecting real preference pairs make DPO better?

On the real GPT-4-judged AlpacaEval pairs in ../shared/data (alpacaeval-gpt4-dev.jsonl.gz;
GPT-4's label is the truth), for every injected flip rate and seed:

1. split the instructions (never the rows) into train and held-out, draw a pool of training
   pairs and a set of held-out pairs (both within ``--max-chars``: prompt + longer response);
2. flip a known share of the pool's labels (the held-out pairs keep GPT-4's);
3. audit the flipped pool with prefaudit's API (every default validator and the reference
   model), clean it with the built-in `default` policy, and clean it again with ``select:``
   added (``--keep`` of the pairs, by value, one per prompt cluster first);
4. train the same model with the same budget (optimizer steps x batch: one epoch of the raw
   pool) on (a) the raw pool, (b) the cleaned pairs, (c) the cleaned and selected pairs,
   (d) the raw pool with robust DPO at the audit's estimated flip rate (what a TRL user would
   try instead); a smaller set is passed over more often, never for more steps;
5. evaluate every run on the same held-out pairs: preference accuracy against GPT-4 (the
   policy's implicit reward ranks GPT-4's chosen response first), the mean reward margin and
   the held-out DPO loss (plain DPO's, unweighted, whatever loss the arm trained with).

Nothing is tuned on the held-out pairs: the settings are fixed before any run. It prints a table
of means and 95% t-intervals over seeds, the default policy's flips checked against GPT-4 (a
flip of an injected flip restores GPT-4's label; any other flip overrides it), and saves
``results.jsonl`` (one line per run; a re-run skips the runs it holds), ``table.md`` and
``proof.png`` in ``--out``.

    python benchmarks/bench_proof.py                      # CPU: LoRA, the documented size
    python benchmarks/bench_proof.py --device cuda --full --pool 2000 --eval-pairs 400 \\
        --max-chars 2000 --batch 16                       # GPU: full fine-tune, thousands

The reference log-probs of each seed's pool and held-out pairs are scored once (an audit with
the reference validator) and reused by every run of that seed (cleaning flips and the injected
flips swap the responses, which the trainer's reuse follows).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realdata import SHARED  # noqa: E402

ARMS = ("raw", "cleaned", "selected", "robust")
ARM_NAMES = {
    "raw": "(a) raw",
    "cleaned": "(b) cleaned (default policy)",
    "selected": "(c) cleaned + select",
    "robust": "(d) raw, robust DPO at the estimated rate",
}
# "loss/sigmoid": plain DPO's held-out loss for every arm ("loss" is the robust loss for (d)).
METRICS = ("rewards/accuracies", "rewards/margins", "loss/sigmoid")
METRIC_NAMES = {
    "rewards/accuracies": "accuracy vs GPT-4",
    "rewards/margins": "reward margin",
    "loss/sigmoid": "held-out DPO loss",
}


def main() -> None:
    args = _args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = _done(results)
    pairs = _pairs(args.max_chars)
    print(
        f"{len(pairs):,} GPT-4-judged pairs within {args.max_chars} characters, "
        f"{pairs['prompt'].nunique()} instructions; pool {args.pool}, held-out {args.eval_pairs}",
        flush=True,
    )
    start = time.perf_counter()
    for seed in range(args.seeds):
        pool, held_out = _split(pairs, args.pool, args.eval_pairs, seed)
        logps = None
        for rate in args.flip_rates:
            if all((seed, rate, arm) in done for arm in ARMS):
                continue
            logps = logps or _reference_logps(pool, held_out, args, seed)
            for record in _runs(pool, held_out, rate, seed, logps, args, done):
                with open(results, "ab") as handle:
                    handle.write(orjson.dumps(record) + b"\n")
                done[(seed, rate, record["arm"])] = record
                print(
                    f"  seed {seed} flips {rate:.0%} {record['arm']:<9} "
                    f"acc {record['rewards/accuracies']:.3f} "
                    f"margin {record['rewards/margins']:+.4f} loss {record['loss/sigmoid']:.4f} "
                    f"({record['train_pairs']} pairs, {record['seconds']:.0f} s; "
                    f"{time.perf_counter() - start:.0f} s so far)",
                    flush=True,
                )
    table = _table(pd.DataFrame(done.values()), args)
    (args.out / "table.md").write_text(table, "utf-8")
    print(table)
    _plot(pd.DataFrame(done.values()), args.out / "proof.png")
    print(f"results in {args.out}/ (results.jsonl, table.md, proof.png)")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=96, help="training pairs drawn per seed")
    parser.add_argument("--eval-pairs", type=int, default=96, help="held-out pairs per seed")
    parser.add_argument("--max-chars", type=int, default=400, help="prompt + longer response")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--flip-rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.0, 0.1, 0.2, 0.3],
    )
    parser.add_argument("--keep", type=float, default=0.5, help="select: share kept")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="default: 5e-4 with LoRA, 1e-6 (TRL's) for a full fine-tune",
    )
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--full", action="store_true", help="full fine-tune (no LoRA)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: CUDA if present)")
    parser.add_argument("--model", default=None, help="default: the embedded SmolLM2-135M")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "proof")
    args = parser.parse_args()
    if args.lr is None:
        args.lr = 1e-6 if args.full else 5e-4
    return args


def _done(results: Path) -> dict[tuple, dict]:
    """The runs a previous invocation finished, by (seed, flip rate, arm)."""
    if not results.exists():
        return {}
    records = [orjson.loads(line) for line in results.read_bytes().splitlines() if line.strip()]
    return {(r["seed"], r["flip_rate"], r["arm"]): r for r in records}


def _pairs(max_chars: int) -> pd.DataFrame:
    """GPT-4's pairs (ties and unparsed judgements are the loader's rejects), short ones only."""
    from prefaudit.io import load

    pairs = load(str(SHARED / "alpacaeval-gpt4-dev.jsonl.gz")).pairs
    longest = np.maximum(pairs["chosen"].str.len(), pairs["rejected"].str.len())
    short = pairs[pairs["prompt"].str.len() + longest <= max_chars]
    return short[["pair_id", "prompt", "chosen", "rejected"]].reset_index(drop=True)


def _split(pairs: pd.DataFrame, pool: int, held: int, seed: int):
    """(training pool, held-out pairs): instructions split 80/20 by the seed, then pairs drawn."""
    rng = np.random.default_rng(seed)
    prompts = pairs["prompt"].unique()
    held_prompts = set(rng.choice(prompts, len(prompts) // 5, replace=False))
    is_held = pairs["prompt"].isin(held_prompts).to_numpy()
    train, test = pairs[~is_held], pairs[is_held]
    if len(train) < pool or len(test) < held:
        sys.exit(f"only {len(train)} training and {len(test)} held-out pairs; lower the sizes")
    return (
        train.sample(pool, random_state=seed).reset_index(drop=True),
        test.sample(held, random_state=seed).reset_index(drop=True),
    )


def _flipped(pool: pd.DataFrame, rate: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The pool with a known ``rate`` of its labels flipped (same pair ids), and which."""
    rng = np.random.default_rng(1000 + seed)
    mask = np.zeros(len(pool), dtype=bool)
    mask[rng.choice(len(pool), int(round(rate * len(pool))), replace=False)] = True
    out = pool.copy()
    out.loc[mask, ["chosen", "rejected"]] = pool.loc[mask, ["rejected", "chosen"]].to_numpy()
    return out, mask


def _reference_logps(pool, held_out, args, seed: int) -> Path:
    """Score the seed's pool and held-out pairs under the reference once; the runs reuse it."""
    import prefaudit

    folder = args.out / f"reference-seed{seed}"
    both = pd.concat([pool, held_out], ignore_index=True)
    prefaudit.audit(
        both,
        validators=["reference"],
        reference_model=args.model or "embedded",
        out=folder,
        report=False,
        reuse=True,
    )
    return folder / "reference_logps.parquet"


def _runs(pool, held_out, rate: float, seed: int, logps: Path, args, done):
    """Audit, clean and select the flipped pool, then train and evaluate each arm not done."""
    import prefaudit
    from prefaudit.cleaning import load_policy
    from prefaudit.cleaning.policy import Selection

    flipped, mask = _flipped(pool, rate, seed)
    audit = prefaudit.audit(flipped, reference_model=args.model or "embedded")
    default = load_policy("default")
    cleaned = prefaudit.clean(flipped, default, audit=audit)
    selecting = dataclasses.replace(default, select=Selection(args.keep, "value", 1))
    selected = prefaudit.clean(flipped, selecting, audit=audit)
    estimated = float(audit.metrics.get("label_noise/estimated_rate") or 0.0)
    injected = set(flipped["pair_id"][mask])
    flips = [f["pair_id"] for f in cleaned.flips]
    context = {
        "seed": seed,
        "flip_rate": rate,
        "injected": int(mask.sum()),
        "estimated_rate": estimated,
        "flips": len(flips),
        "flips_restoring_gpt4": sum(p in injected for p in flips),
        "quarantined": int(cleaned.counts["quarantined"]),
        "quarantined_injected": int(cleaned.quarantine["pair_id"].isin(injected).sum())
        if len(cleaned.quarantine)
        else 0,
        "selected_injected": int(selected.pairs["pair_id"].isin(injected).sum()),
    }
    data = {
        "raw": (flipped, {}),
        "cleaned": (cleaned.pairs, {}),
        "selected": (selected.pairs, {}),
        "robust": (flipped, {"loss": "robust", "label_smoothing": min(estimated, 0.45)}),
    }
    steps = -(-len(pool) // args.batch)  # one epoch of the raw pool, for every arm
    for arm in ARMS:
        if (seed, rate, arm) in done:
            continue
        pairs, settings = data[arm]
        yield {**context, "arm": arm, **_train(pairs, held_out, logps, steps, seed, args, settings)}


def _train(pairs, held_out, logps: Path, steps: int, seed: int, args, settings) -> dict:
    import tempfile

    import prefaudit

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        run = prefaudit.train(
            pairs.reset_index(drop=True),
            out=Path(folder) / "run",
            eval_data=held_out,
            reference_logps=logps,
            model=args.model,
            device=args.device,
            lora_r=0 if args.full else args.lora_r,
            learning_rate=args.lr,
            batch_size=args.batch,
            max_steps=steps,
            seed=seed,
            eval_every=0,
            eval_max_pairs=0,
            save_every=0,
            log_every=1000,
            **settings,
        )
    metrics = run.eval_metrics
    return {
        **{name: float(metrics[name]) for name in METRICS},
        "train_pairs": int(run.summary["train_pairs"]),
        "pairs_seen": int(run.summary["pairs_seen"]),
        "steps": int(run.steps),
        "seconds": time.perf_counter() - started,
    }


def _interval(values: pd.Series) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval over seeds)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return float(values.mean()), float(half)


def _table(runs: pd.DataFrame, args) -> str:
    """Means and 95% intervals per flip rate and arm, then the cleaning's flips against GPT-4."""
    lines = [
        f"| flips | arm | seeds | pairs trained | {' | '.join(METRIC_NAMES[m] for m in METRICS)} |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in METRICS) + " |",
    ]
    for rate in sorted(runs["flip_rate"].unique()):
        for arm in ARMS:
            group = runs[(runs["flip_rate"] == rate) & (runs["arm"] == arm)]
            if group.empty:
                continue
            cells = []
            for metric in METRICS:
                mean, half = _interval(group[metric])
                digits = 4 if metric == "rewards/margins" else 3
                cells.append(f"{mean:.{digits}f} ± {half:.{digits}f}")
            trained = f"{group['train_pairs'].mean():.0f}"
            seeds = group["seed"].nunique()
            lines.append(
                f"| {rate:.0%} | {ARM_NAMES[arm]} | {seeds} | {trained} | {' | '.join(cells)} |"
            )
    lines += [
        "",
        "± = half-width of the 95% t-interval over the seeds (none with one seed).",
        "",
        "| flips | injected (mean) | estimated rate | cleaning's flips | restoring GPT-4 | "
        "quarantined (of them injected) | injected left after select |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    first = runs[runs["arm"] == "cleaned"]  # the cleaning's figures, once per seed and rate
    for rate in sorted(first["flip_rate"].unique()):
        group = first[first["flip_rate"] == rate]
        lines.append(
            f"| {rate:.0%} | {group['injected'].mean():.1f} | "
            f"{group['estimated_rate'].mean():.3f} | {group['flips'].sum()} | "
            f"{group['flips_restoring_gpt4'].sum()} | {group['quarantined'].sum()} "
            f"({group['quarantined_injected'].sum()}) | {group['selected_injected'].sum()} |"
        )
    return "\n".join(lines) + "\n"


def _plot(runs: pd.DataFrame, path: Path) -> None:
    """Accuracy against GPT-4 by flip rate, one line per arm, with the 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("rewards/accuracies", "loss/sigmoid"), strict=True):
        for arm in ARMS:
            group = runs[runs["arm"] == arm]
            if group.empty:
                continue
            stats = [
                _interval(group[group["flip_rate"] == r][metric])
                for r in sorted(group["flip_rate"].unique())
            ]
            rates = sorted(group["flip_rate"].unique())
            axis.errorbar(
                [100 * r for r in rates],
                [s[0] for s in stats],
                yerr=[s[1] for s in stats],
                label=ARM_NAMES[arm],
                marker="o",
                capsize=3,
            )
        axis.set_xlabel("injected label flips (%)")
        axis.set_ylabel(METRIC_NAMES[metric] + " (held-out)")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
