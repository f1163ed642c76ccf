"""DPO training throughput: prefaudit's loop against TRL's DPOTrainer, same model, pairs and
batch settings, in one run.

Real HH-RLHF harmless pairs from ../shared/data (the shortest --max-chars ones, plain-text
prompts: TRL's "standard" format for both), the embedded SmolLM2-135M-Instruct in fp32 on CPU
(bf16 on CUDA with --device cuda), --steps optimizer steps of --batch pairs, one epoch, AdamW,
learning rate 1e-6, clipping at 1.0, no gradient checkpointing for either (TRL's DPOConfig
turns it on by default; it trades time for memory).

Both loops process the same pairs; throughput counts each pair's prompt + chosen + rejected
tokens once (what the pair is), divided by:

- steps: the optimizer steps alone (prefaudit: ``summary.json``'s train_seconds; TRL:
  ``trainer.train()``, which also runs its reference model every step);
- end to end: from the model in memory to the trained model (prefaudit: ``train()`` with its
  tokenising, reference precompute and final save; TRL: the ``DPOTrainer`` constructor, which
  tokenises and copies the reference model, plus ``train()``).

TRL is also run with ``precompute_ref_log_probs=True`` (its reference pass before step 1).

    python benchmarks/bench_train.py [--pairs 16] [--batch 4] [--device cpu] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realdata import real_pairs  # noqa: E402


def short_pairs(count: int, max_chars: int) -> list[dict]:
    rows = [
        {"prompt": p, "chosen": c, "rejected": r}
        for p, c, r, source in real_pairs()
        if source == "hh" and len(p) + max(len(c), len(r)) <= max_chars and c != r
    ]
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} HH pairs within {max_chars} characters")
    return rows[:count]


def run_ours(args, pairs, out: Path) -> dict:
    import pandas as pd

    from prefaudit.training import TrainConfig, train

    frame = pd.DataFrame(pairs, index=[f"p{i}" for i in range(len(pairs))])
    config = TrainConfig(
        model=args.model,
        batch_size=args.batch,
        max_steps=len(pairs) // args.batch,
        warmup_ratio=0.0,
        eval_every=0,
        save_every=0,
        log_every=10**6,
        group_by_length=True,
        device=args.device,
    )
    began = time.perf_counter()
    result = train(frame, config, out, eval_pairs=frame.iloc[:0])
    total = time.perf_counter() - began
    summary = result.summary
    return {
        "steps": summary["train_seconds"],
        "end to end": total,
        "peak": summary["peak_gpu_memory_gib"],
        "tokens": summary["train_tokens"],  # every pair once: one epoch, none left out
        "pairs": summary["train_pairs"],
    }


def run_trl(args, pairs, out: Path, *, precompute: bool) -> dict:
    import torch
    import trl
    from datasets import Dataset

    from prefaudit.models.reference import load_causal_lm

    cuda = args.device.startswith("cuda")
    model, tokenizer = load_causal_lm(args.model, dtype="bfloat16" if cuda else "float32")
    model.to(args.device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    config = trl.DPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch,
        max_steps=len(pairs) // args.batch,
        learning_rate=1e-6,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        gradient_checkpointing=False,
        precompute_ref_log_probs=precompute,
        precompute_ref_batch_size=args.batch,
        max_length=None,
        logging_steps=10**6,
        save_strategy="no",
        report_to=[],
        use_cpu=not cuda,
        bf16=cuda,
        fp16=False,
    )
    began = time.perf_counter()
    trainer = trl.DPOTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer
    )
    built = time.perf_counter()
    trainer.train()
    done = time.perf_counter()
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return {"steps": done - built, "end to end": done - began, "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-chars", type=int, default=400, help="shortest HH pairs only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="a folder or hub name (default: embedded)")
    parser.add_argument("--no-trl-precompute", action="store_true")
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    pairs = short_pairs(args.pairs, args.max_chars)
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        runs["prefaudit"] = run_ours(args, pairs, Path(scratch) / "ours")
        runs["TRL DPOTrainer"] = run_trl(args, pairs, Path(scratch) / "trl", precompute=False)
        if not args.no_trl_precompute:
            runs["TRL, precompute_ref_log_probs"] = run_trl(
                args, pairs, Path(scratch) / "trl2", precompute=True
            )
    ours = runs["prefaudit"]
    tokens = ours["tokens"]
    assert ours["pairs"] == len(pairs), "a pair was left out: the loops would differ"
    print(
        f"\n{len(pairs)} HH pairs, {tokens:,} tokens (prompt + chosen + rejected), "
        f"batch {args.batch}, {len(pairs) // args.batch} steps, device {args.device}, "
        f"model {args.model or 'embedded SmolLM2-135M-Instruct'}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        "\n| loop | steps s | tokens/s | end-to-end s | tokens/s | prefaudit speed-up | peak GiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, run in runs.items():
        speedup = (
            f"{run['steps'] / ours['steps']:.2f}x / {run['end to end'] / ours['end to end']:.2f}x"
        )
        peak = f"{run['peak']:.2f}" if run["peak"] is not None else "-"
        print(
            f"| {name} | {run['steps']:.2f} | {tokens / run['steps']:,.1f} | "
            f"{run['end to end']:.2f} | {tokens / run['end to end']:,.1f} | "
            f"{'-' if name == 'prefaudit' else speedup} | {peak} |"
        )
    print("\nspeed-up: TRL's time over prefaudit's (steps / end to end); target >= 1.0x on CPU")


if __name__ == "__main__":
    main()
