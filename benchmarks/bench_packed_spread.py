"""How far bf16 moves the packed layout's log-probs, on the CPU, with real weights.

    python benchmarks/bench_packed_spread.py [--pairs 32]

Issue 24 asks the packed FlexAttention layout to give the plain loop's log-probs: within 1e-4
in float32 (tests/models/test_flex.py, tiny models), with the spread reported in bf16. This
script reports it with the embedded SmolLM2-135M-Instruct's real weights on the first --pairs
HH-RLHF harmless pairs, tokenised as the reference engine tokenises them (chat template).

Each method gives every pair's summed chosen and rejected log-probs:

- plain loop: one forward per sequence (prompt + response), the head at the response
  positions, log-softmax in float64 (benchmarks/bench_reference.py's baseline);
- packed, FlexAttention: ``prefaudit.models.flex.pair_logps`` with PREFAUDIT_ATTENTION=
  flex-eager, several pairs a row, the prompt once per pair (on a GPU the compiled kernel);
- dense: the same entry with PREFAUDIT_ATTENTION=dense, one pair a row under an additive mask.

The baseline is the plain loop in float32. Each method is run in float32 and in bf16 weights;
the table gives max and median |difference| per sequence, against float32's plain loop and
against bf16's plain loop (the rounding that bf16 costs any layout). Sums run to several
hundred nats, so the relative figure is given too. On a GPU, gpu_suite.py's reference steps
report the same spread for the compiled kernel (bf16 only, random weights).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_reference import plain_loop, sequences  # noqa: E402
from realdata import SHARED  # noqa: E402

# (name, PREFAUDIT_ATTENTION for flex.pair_logps; None: the plain loop)
METHODS = (("plain loop", None), ("packed, FlexAttention", "flex-eager"), ("dense", "dense"))


def packed(model, seqs, pad: int, attention: str) -> np.ndarray:
    """Per-sequence log-probs (chosen, rejected, ...) from ``flex.pair_logps`` on one path."""
    import torch

    from prefaudit.models import flex

    os.environ["PREFAUDIT_ATTENTION"] = attention
    prompts = [prompt for prompt, _ in seqs[0::2]]
    responses = [[c, r] for (_, c), (_, r) in zip(seqs[0::2], seqs[1::2], strict=True)]
    assert flex.attention_path(model) == attention, "the model did not take that path"
    with torch.inference_mode():
        return flex.pair_logps(model, prompts, responses, pad=pad).double().numpy().reshape(-1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=32)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
    import prefaudit
    from prefaudit.models.loading import load_causal_lm
    from prefaudit.models.reference import ReferenceScorer

    data = prefaudit.load(str(SHARED / "hh-rlhf-harmless-test.jsonl.gz")).pairs.head(args.pairs)
    pairs = list(
        zip(data["prompt"], data["chosen"], data["rejected"], data["prompt_messages"], strict=True)
    )
    results: dict[str, np.ndarray] = {}
    for dtype in ("float32", "bfloat16"):
        model, tokenizer = load_causal_lm(None, dtype=dtype)
        seqs = sequences(ReferenceScorer(loaded=(model, tokenizer), max_length=8192), pairs)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        for name, attention in METHODS:
            began = time.perf_counter()
            results[f"{name}, {dtype}"] = (
                np.array(plain_loop(model, seqs, "cpu"))
                if attention is None
                else packed(model, seqs, pad, attention)
            )
            print(f"{name}, {dtype}: {time.perf_counter() - began:.1f} s", flush=True)
    tokens = sum(len(p) + len(r) for p, r in seqs)
    baseline = results["plain loop, float32"]
    rounded = results["plain loop, bfloat16"]
    print(
        f"\n{len(pairs)} HH pairs, {len(seqs)} sequences, {tokens:,} tokens (each prompt counted "
        f"twice); |log-prob sum| median {np.median(np.abs(baseline)):.1f}, "
        f"max {np.abs(baseline).max():.1f} nats (plain loop, float32)\n"
    )
    print(
        "| method | vs float32 plain loop: max | median | max relative | vs bf16 plain loop: max |"
    )
    print("| --- | --- | --- | --- | --- |")
    figures = {"pairs": len(pairs), "sequences": len(seqs), "tokens": tokens, "methods": {}}
    for name, values in results.items():
        gap = np.abs(values - baseline)
        to_rounded = np.abs(values - rounded).max()
        relative = (gap / np.abs(baseline)).max()
        print(
            f"| {name} | {gap.max():.2e} | {np.median(gap):.2e} | {relative:.2e} | "
            f"{to_rounded:.2e} |"
        )
        figures["methods"][name] = {
            "max_abs_vs_fp32_plain": float(gap.max()),
            "median_abs_vs_fp32_plain": float(np.median(gap)),
            "max_relative_vs_fp32_plain": float(relative),
            "max_abs_vs_bf16_plain": float(to_rounded),
        }
    return figures


if __name__ == "__main__":
    main()
