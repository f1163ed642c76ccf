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

TRL is also run with ``precompute_ref_log_probs=True`` (its reference pass before step 1). On
CUDA, TRL runs with the model's weights in bf16 (as prefaudit keeps them) and once more with
float32 weights under its bf16 autocast (``--no-trl-amp`` leaves that run out): prefaudit steps
bf16 weights through float32 masters, which that run also has.

``--random-weights`` builds the model from ``--model``'s config (or ``--shape``) with random
weights and saves it, with the tokenizer, into a temporary folder both loops load: for a machine
the weights cannot be copied to (speed does not depend on the weights' values). ``--rounds``
runs every loop that many times, alternating; the median counts (min and max printed too). On
CUDA each loop first runs once on two batches, untimed (``--no-warmup``: not).

MFU: the model FLOPs of the training the pairs need (each pair's prompt once and both
responses, forward + backward = 6 x parameters outside the embeddings x tokens, plus the
attention products and the head at response tokens: benchmarks/mfu.py), the same count for
every loop, over the median steps time, over the device's dense bf16 peak looked up from its
name ("n/a" on a CPU or an unknown device). TRL's reference forward passes are not counted:
they are work prefaudit does not need. Peak memory: ``torch.cuda.max_memory_allocated`` of the
run (CUDA only). ``--tiny``: a CPU rehearsal (a 2-layer model of random weights, 8 pairs);
``--json PATH``: the figures as JSON too.

    python benchmarks/bench_train.py [--pairs 16] [--batch 4] [--device cpu] [--model FOLDER]
    python benchmarks/bench_train.py --device cuda --pairs 512 --batch 16 --rounds 3 \
        --random-weights [--shape smollm2-135m|llama-1b] [--max-chars 2000]
    python benchmarks/bench_train.py --tiny          # the rehearsal
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mfu  # noqa: E402
from bench_reference import add_random_model_options, random_config  # noqa: E402
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
    _settle(args)
    began = time.perf_counter()
    result = train(frame, config, out, eval_pairs=frame.iloc[:0])  # resets the GPU's peak
    total = time.perf_counter() - began
    summary = result.summary
    return {
        "steps": summary["train_seconds"],
        "end to end": total,
        "peak": summary["peak_gpu_memory_gib"],
        "tokens": summary["train_tokens"],  # every pair once: one epoch, none left out
        "pairs": summary["train_pairs"],
    }


def run_trl(args, pairs, out: Path, *, precompute: bool, amp: bool = False) -> dict:
    """``amp``: float32 weights under TRL's bf16 autocast (else the weights in bf16 on CUDA)."""
    import torch
    import trl
    from datasets import Dataset

    from prefaudit.models.loading import load_causal_lm

    cuda = args.device.startswith("cuda")
    _settle(args)
    weights = "bfloat16" if cuda and not amp else "float32"
    model, tokenizer = load_causal_lm(args.model, dtype=weights)
    model.to(args.device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()  # the model counts: it is still allocated
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


def _settle(args) -> None:
    """The previous run's objects freed (and its GPU memory returned) before the next starts."""
    gc.collect()
    if args.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def random_model(args, folder: Path) -> str:
    """--model's config (or --shape) with random weights, saved with its tokenizer into
    ``folder`` in the dtype the loops train in; a description for the table."""
    import torch
    from transformers import AutoModelForCausalLM

    config, tokenizer = random_config(args)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(args.device):  # initialised where it runs (1B on CPU: a minute)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    del model
    _settle(args)
    return f"{args.shape} shape of {args.model}, random weights, {params / 1e6:,.0f}M parameters"


def loops(args) -> dict:
    """name -> run(pairs, out) for every loop compared."""
    runs = {
        "prefaudit": lambda pairs, out: run_ours(args, pairs, out),
        "TRL DPOTrainer": lambda pairs, out: run_trl(args, pairs, out, precompute=False),
    }
    if not args.no_trl_precompute:
        runs["TRL, precompute_ref_log_probs"] = lambda pairs, out: run_trl(
            args, pairs, out, precompute=True
        )
    if args.device.startswith("cuda") and not args.no_trl_amp:
        runs["TRL, fp32 weights + bf16 autocast"] = lambda pairs, out: run_trl(
            args, pairs, out, precompute=False, amp=True
        )
    return runs


def pair_flops(args, pairs: list[dict]) -> float:
    """Model FLOPs of one training pass over ``pairs`` (benchmarks/mfu.py), tokenised as the
    loop tokenises them; the model built on the meta device (no memory, no time)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from prefaudit.models.reference import tokenize_pairs

    if args.model is None:
        from prefaudit.models.loading import load_causal_lm

        model, tokenizer = load_causal_lm(None)
    else:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.model))
    prompt_ids, responses, _ = tokenize_pairs(
        tokenizer,
        [p["prompt"] for p in pairs],
        [[p["chosen"], p["rejected"]] for p in pairs],
        [None] * len(pairs),
    )
    counts = [(len(p), len(c), len(r)) for p, (c, r) in zip(prompt_ids, responses, strict=True)]
    return mfu.training_flops(model, counts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-chars", type=int, default=400, help="shortest HH pairs only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="a folder or hub name (default: embedded)")
    parser.add_argument("--no-trl-precompute", action="store_true")
    parser.add_argument(
        "--no-trl-amp", action="store_true", help="CUDA: skip TRL's fp32 + autocast"
    )
    add_random_model_options(parser)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each loop; median counts")
    parser.add_argument("--no-warmup", action="store_true", help="CUDA: no untimed first run")
    parser.add_argument("--tiny", action="store_true", help="a CPU rehearsal")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.tiny:
        args.random_weights, args.shape = True, "tiny"
        args.pairs, args.batch, args.rounds = min(args.pairs, 8), min(args.batch, 4), 1
    import torch

    cuda = args.device.startswith("cuda")
    torch.manual_seed(0)
    pairs = short_pairs(args.pairs, args.max_chars)
    described = args.model or "embedded SmolLM2-135M-Instruct"
    times: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        if args.random_weights:
            described = random_model(args, Path(scratch) / "model")
            args.model = str(Path(scratch) / "model")
        runs = loops(args)
        failed: dict[str, str] = {}  # a TRL loop that fails leaves prefaudit's figures
        if cuda and not args.no_warmup:  # CUDA context, kernels, allocator: out of the figures
            for k, (name, run) in enumerate(runs.items()):
                _attempt(name, run, pairs[: 2 * args.batch], Path(scratch) / f"warm{k}", failed)
                print(f"warm-up: {name}", flush=True)
        for round_ in range(args.rounds):  # rounds alternate the loops
            for k, (name, run) in enumerate(runs.items()):
                if name in failed:
                    continue
                result = _attempt(name, run, pairs, Path(scratch) / f"r{round_}-{k}", failed)
                if result is None:
                    continue
                times.setdefault(name, []).append(result)
                print(
                    f"round {round_ + 1} {name}: steps {result['steps']:.2f} s, "
                    f"end to end {result['end to end']:.2f} s",
                    flush=True,
                )
        flops = pair_flops(args, pairs)  # while --model's folder exists
    runs = {name: _median(results) for name, results in times.items() if name not in failed}
    ours = runs["prefaudit"]
    tokens = ours["tokens"]
    assert ours["pairs"] == len(pairs), "a pair was left out: the loops would differ"
    print(
        f"\n{len(pairs)} HH pairs, {tokens:,} tokens (prompt + chosen + rejected), "
        f"batch {args.batch}, {len(pairs) // args.batch} steps, device {args.device}, "
        f"model {described}, torch {torch.__version__}, {torch.get_num_threads()} threads"
        + (f", {torch.cuda.get_device_name()}" if cuda else "")
        + (f", median of {args.rounds} rounds" if args.rounds > 1 else "")
    )
    name = mfu.device_name(args.device)
    peak_tflops = mfu.peak_tflops(name)
    print(
        "\n| loop | steps s | tokens/s | end-to-end s | tokens/s | prefaudit speed-up "
        "| MFU (steps) | peak GiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    figures: dict = {
        "model": described,
        "device": args.device,
        "device_name": name,
        "peak_tflops": peak_tflops,
        "pairs": len(pairs),
        "tokens": tokens,
        "batch": args.batch,
        "rounds": args.rounds,
        "model_tflops": flops / 1e12,
        "loops": {},
    }
    for name, run in runs.items():
        speedup = (
            f"{run['steps'] / ours['steps']:.2f}x / {run['end to end'] / ours['end to end']:.2f}x"
        )
        peak = f"{run['peak']:.2f}" if run["peak"] is not None else "n/a"
        share = mfu.mfu(flops, run["steps"], peak_tflops)
        print(
            f"| {name} | {run['steps']:.2f} | {tokens / run['steps']:,.1f} | "
            f"{run['end to end']:.2f} | {tokens / run['end to end']:,.1f} | "
            f"{'-' if name == 'prefaudit' else speedup} | {mfu.shown(share)} | {peak} |"
        )
        steps = [r["steps"] for r in times[name]]
        figures["loops"][name] = {
            "steps_seconds_median": run["steps"],
            "steps_seconds_min": min(steps),
            "end_to_end_seconds_median": run["end to end"],
            "tokens_per_second": tokens / run["steps"],
            "mfu": share,
            "peak_gib": run["peak"],
        }
    print(
        "\nspeed-up: TRL's time over prefaudit's (steps / end to end); MFU: the model FLOPs the "
        f"pairs need ({flops / 1e12:.3f} TFLOP, the same for every loop) at the median steps "
        f"time over {peak_tflops or 'n/a'} TFLOP/s dense bf16"
    )
    if args.rounds > 1:
        for name, results in times.items():
            if name in failed:
                continue
            steps = [r["steps"] for r in results]
            ends = [r["end to end"] for r in results]
            print(
                f"{name}: steps {min(steps):.2f}-{max(steps):.2f} s, "
                f"end to end {min(ends):.2f}-{max(ends):.2f} s over {len(results)} rounds"
            )
    for name, why in failed.items():
        print(f"{name}: failed, not measured: {why}")
        figures["loops"][name] = {"failed": why}
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


def _attempt(name: str, run, pairs: list[dict], out: Path, failed: dict[str, str]):
    """``run(pairs, out)``; a TRL loop's error is recorded in ``failed`` (and None returned) so
    the other loops' figures are kept; prefaudit's own errors propagate."""
    try:
        return run(pairs, out)
    except Exception as err:
        if name == "prefaudit":
            raise
        failed[name] = f"{type(err).__name__}: {err}"[:500]
        print(f"{name} failed: {failed[name]}", flush=True)
        return None


def _median(results: list[dict]) -> dict:
    """Each figure's median over the rounds (peak memory: the largest)."""
    merged = dict(results[0])
    for key in ("steps", "end to end"):
        merged[key] = statistics.median(r[key] for r in results)
    if merged["peak"] is not None:
        merged["peak"] = max(r["peak"] for r in results)
    return merged


if __name__ == "__main__":
    main()
