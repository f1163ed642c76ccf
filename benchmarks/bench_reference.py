"""Reference log-probs: prefaudit's engine against a plain loop and a padded batch loop.

Real HH-RLHF harmless pairs from ../shared/data (multi-turn prompts rendered with the model's
chat template), the embedded SmolLM2-135M-Instruct, fp32 on CPU (or bf16 on CUDA with
--device cuda). Every method scores exactly the same token sequences (prompt + response + EOS,
prompt tokens not scored), in the same run:

- plain loop: one forward per sequence (prompt + response), the head and a float64
  log-softmax (as the engine's, so that the log-probs compare to 1e-4) only at the positions
  that predict a response token (``logits_to_keep``) — the fair simple baseline;
- padded batches: sequences sorted by length, right-padded batches of --batch, one forward
  each, the head from the batch's first response position on;
- prefaudit: ``ReferenceScorer.score`` (prompt once per pair with its cache shared by both
  responses, the LM head only on response positions).

Throughput counts the tokens of every (prompt + response) sequence, the work a plain loop does,
so the ratios are ratios of time. The log-probs of all methods are compared.

- TRL: ``DPOTrainer`` with ``precompute_ref_log_probs`` on the first --trl pairs (plain-text
  prompts, its "standard" format; fp32 on CPU, bf16 on CUDA).

Every method runs --rounds times, alternating; the table gives the min and the median time
(ratios of medians). It also prints each method's model FLOPs utilisation (the FLOPs each method
needs, padding excluded, over the device's dense bf16 peak looked up from its name in
benchmarks/mfu.py: "n/a" on a CPU or an unknown device) and, on CUDA, its peak memory
(``torch.cuda.max_memory_allocated`` from a reset before the method). ``--tiny``: a rehearsal
on a CPU (a 2-layer model of the tokenizer's vocabulary, 4 pairs); ``--json PATH``:
the figures as JSON too (benchmarks/gpu_suite.py collects them).

    python benchmarks/bench_reference.py [--pairs 16] [--batch 4] [--rounds 3] [--trl 8] [--device cpu]
    python benchmarks/bench_reference.py --device cuda --pairs 512 --batch 16 --trl 256 \
        [--model FOLDER --random-weights [--shape smollm2-135m|llama-1b]]
    python benchmarks/bench_reference.py --tiny     # the rehearsal
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mfu  # noqa: E402
from realdata import SHARED  # noqa: E402


def sequences(scorer, pairs):
    """(prompt ids, response ids) for chosen and rejected of each pair, as the engine builds them."""
    out = []
    for prompt, chosen, rejected, messages in pairs:
        prompt_ids, chosen_ids, _ = scorer.tokenize(prompt, chosen, messages)
        _, rejected_ids, _ = scorer.tokenize(prompt, rejected, messages)
        out += [(prompt_ids, chosen_ids), (prompt_ids, rejected_ids)]
    return out


def plain_loop(model, seqs, device):
    import torch

    totals = []
    with torch.inference_mode():
        for prompt_ids, response_ids in seqs:
            ids = torch.tensor([prompt_ids + response_ids], device=device)
            r = len(response_ids)
            # The r positions that predict a response token (from the prompt's last on).
            logits = model(ids, logits_to_keep=r + 1).logits[0, :-1]
            logp = torch.log_softmax(logits.double(), dim=-1)
            totals.append(float(logp.gather(-1, ids[0, -r:, None]).sum()))
    return totals


def padded_batches(model, seqs, batch, pad, device):
    import torch

    order = np.argsort([len(p) + len(r) for p, r in seqs], kind="stable")
    totals = [0.0] * len(seqs)
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            members = order[start : start + batch]
            width = max(len(seqs[i][0]) + len(seqs[i][1]) for i in members)
            ids = torch.full((len(members), width), pad, dtype=torch.long, device=device)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(members):
                tokens = seqs[i][0] + seqs[i][1]
                ids[row, : len(tokens)] = torch.tensor(tokens, device=device)
                mask[row, : len(tokens)] = 1
            # The head from the batch's first position that predicts a response token on.
            first = min(len(seqs[i][0]) for i in members) - 1
            logits = model(ids, attention_mask=mask, logits_to_keep=width - first).logits
            logp = torch.log_softmax(logits[:, :-1].double(), -1)
            picked = logp.gather(-1, ids[:, first + 1 :].unsqueeze(-1)).squeeze(-1)
            for row, i in enumerate(members):
                prompt_len, response_len = len(seqs[i][0]), len(seqs[i][1])
                span = slice(prompt_len - 1 - first, prompt_len + response_len - 1 - first)
                totals[i] = float(picked[row, span].sum())
    return totals


def trl_precompute(model, tokenizer, pairs, batch: int) -> list[float]:
    """TRL's DPOTrainer reference precompute in the model's own precision (on CPU it would
    otherwise autocast to bf16, 4.5x slower there)."""
    import tempfile

    import torch
    import trl
    from datasets import Dataset

    rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r, _ in pairs]
    with tempfile.TemporaryDirectory() as out:
        args = trl.DPOConfig(
            output_dir=out,
            precompute_ref_log_probs=True,
            precompute_ref_batch_size=batch,
            per_device_train_batch_size=1,
            max_length=None,
            report_to=[],
            use_cpu=next(model.parameters()).device.type == "cpu",
            bf16=next(model.parameters()).dtype == torch.bfloat16,  # TRL's default on a GPU
            fp16=False,
        )
        trainer = trl.DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )
        done = trainer.train_dataset
    return list(np.column_stack([done["ref_chosen_logps"], done["ref_rejected_logps"]]).ravel())


def _engine(scorer, pairs) -> list[float]:
    frame = scorer.score(*map(list, zip(*pairs, strict=True)))
    return list(np.column_stack([frame["chosen_logps"], frame["rejected_logps"]]).ravel())


def _trl():
    try:
        import trl

        return trl
    except ImportError:
        return None


# Model shapes for --random-weights, each with the tokenizer's vocabulary: SmolLM2-135M's (the
# embedded model's, from its config.json), a 1B-parameter Llama (the shape of Llama-3.2-1B) and
# a 2-layer one for --tiny rehearsals.
SHAPES = {
    "smollm2-135m": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        rope_theta=100000.0,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    ),
    "llama-1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        tie_word_embeddings=True,
    ),
    # Llama-3.1-8B's shape, its vocabulary too (8.03B parameters: the rows past the tokenizer's
    # are never looked up, but they are trained and sharded like the rest): for the FSDP step
    # on machines of several GPUs, a full fine-tune that no single GPU holds (docs/training.md).
    "llama-8b": dict(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        rope_theta=500000.0,
        tie_word_embeddings=False,
    ),
}


def random_config(args):
    """(config, tokenizer) of a model to build with random weights: --model's config, or the
    --shape with --model's tokenizer (shared with bench_train.py)."""
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig

    if args.model in (None, "embedded"):  # the embedded model's tokenizer (and config)
        from prefaudit.models.loading import load_causal_lm

        model, tokenizer = load_causal_lm(None)
        config = model.config
        del model
    else:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    if args.shape == "model":
        if args.model not in (None, "embedded"):
            config = AutoConfig.from_pretrained(args.model)
    else:
        config = LlamaConfig(**{"vocab_size": len(tokenizer), **SHAPES[args.shape]})
        config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    return config, tokenizer


def load_model(args):
    """(model, tokenizer, description) as --model, --random-weights and --shape ask."""
    import torch
    from transformers import AutoModelForCausalLM

    from prefaudit.models.loading import load_causal_lm

    dtype = getattr(torch, args.dtype)
    if not args.random_weights:
        model, tokenizer = load_causal_lm(
            None if args.model == "embedded" else args.model, dtype=args.dtype
        )
        return model.to(args.device), tokenizer, args.model
    config, tokenizer = random_config(args)
    torch.manual_seed(0)
    with torch.device(args.device):  # initialised where it runs (1B on CPU: a minute)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    return model, tokenizer, f"{args.shape} shape of {args.model}, random weights"


def forward_flops(model, seqs, *, prompt_once: bool) -> float:
    """Model FLOPs of the forward passes a method needs for these sequences, padding excluded:
    2 per weight per token in the layers, 2 per head weight per token where logits are taken,
    and the attention products (4 x layers x attention width x keys attended, per token).
    ``prompt_once``: the engine's way (each pair's prompt once, logits at response positions
    only); otherwise the plain way (every sequence whole, its prompt included)."""
    config = model.config
    head = config.vocab_size * config.hidden_size
    embed = head if not config.tie_word_embeddings else 0
    body = sum(p.numel() for p in model.parameters()) - head - embed
    width = config.num_attention_heads * (
        getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    )

    def attention(start: int, stop: int) -> float:  # queries at positions start..stop-1
        return 4 * config.num_hidden_layers * width * (stop * (stop + 1) - start * (start + 1)) / 2

    total = 0.0
    for k, (prompt_ids, response_ids) in enumerate(seqs):
        p, r = len(prompt_ids), len(response_ids)
        if prompt_once:
            if k % 2 == 0:  # the pair's prompt, once
                total += 2 * body * p + attention(0, p)
            total += 2 * body * r + 2 * head * r + attention(p, p + r)
        else:  # the whole sequence, the head where a response token is predicted
            total += 2 * body * (p + r) + 2 * head * r + attention(0, p + r)
    return total


def add_random_model_options(parser: argparse.ArgumentParser) -> None:
    """--random-weights and --shape, shared with bench_train.py."""
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="build the model from --model's config (or --shape) with random weights: speed "
        "does not depend on the weights (for machines the weights cannot be copied to)",
    )
    parser.add_argument("--shape", default="model", choices=["model", *SHAPES])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument(
        "--batch", type=int, default=4, help="sequences per padded batch (baselines)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, else float32")
    parser.add_argument("--model", default="embedded", help="embedded, or a folder or hub name")
    add_random_model_options(parser)
    parser.add_argument("--rounds", type=int, default=3, help="alternating; min and median")
    parser.add_argument("--trl", type=int, default=8, help="pairs for TRL's precompute (0: skip)")
    parser.add_argument(
        "--plain", type=int, default=None, help="pairs for the plain loop (default all)"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's dense bf16 peak (default: looked up from its name in mfu.py)",
    )
    parser.add_argument("--tiny", action="store_true", help="a CPU rehearsal in seconds")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.tiny:  # a 2-layer model of random weights, a few pairs
        args.random_weights, args.shape = True, "tiny"
        args.pairs, args.trl, args.rounds = min(args.pairs, 4), min(args.trl, 2), 2
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    cuda = args.device.startswith("cuda")
    args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
    import torch

    import prefaudit
    from prefaudit.models.reference import ReferenceScorer

    data = prefaudit.load(str(SHARED / "hh-rlhf-harmless-test.jsonl.gz")).pairs.head(args.pairs)
    pairs = list(
        zip(data["prompt"], data["chosen"], data["rejected"], data["prompt_messages"], strict=True)
    )
    started = time.perf_counter()
    model, tokenizer, described = load_model(args)
    params = sum(p.numel() for p in model.parameters())
    name = mfu.device_name(args.device)
    peak = args.peak_tflops or mfu.peak_tflops(name)
    print(
        f"model: {described}, {params / 1e6:.0f}M parameters, {args.dtype} on {args.device}, "
        f"attention {model.config._attn_implementation}; loaded in {time.perf_counter() - started:.1f} s"
    )
    if cuda:
        print(f"GPU: {name}, torch {torch.__version__}, bf16 peak {peak or 'unknown'} TFLOP/s")
    scorer = ReferenceScorer(loaded=(model, tokenizer), max_length=8192)
    started = time.perf_counter()
    seqs = sequences(scorer, pairs)
    tokenising = time.perf_counter() - started
    tokens = sum(len(p) + len(r) for p, r in seqs)
    prompt_share = sum(len(p) for p, _ in seqs) / tokens
    print(
        f"{len(pairs)} HH pairs, {len(seqs)} sequences, {tokens:,} tokens "
        f"({prompt_share:.0%} of them prompt tokens, each prompt counted twice); "
        f"tokenising them took {tokenising:.2f} s"
    )
    with torch.inference_mode():  # warm-up
        model(torch.tensor([seqs[0][0][:16]], device=args.device))

    plain_seqs = seqs[: 2 * args.plain] if args.plain else seqs
    plain_tokens = sum(len(p) + len(r) for p, r in plain_seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    padded = f"padded batches of {args.batch}"
    methods = {
        "plain loop": lambda: plain_loop(model, plain_seqs, args.device),
        padded: lambda: padded_batches(model, seqs, args.batch, pad, args.device),
        "prefaudit": lambda: _engine(scorer, pairs),
    }
    counted = {"plain loop": plain_tokens, padded: tokens, "prefaudit": tokens}
    flops = {
        "plain loop": forward_flops(model, plain_seqs, prompt_once=False),
        padded: forward_flops(model, seqs, prompt_once=False),
        "prefaudit": forward_flops(model, seqs, prompt_once=True),
    }
    results, times, peaks = {}, {}, {}
    for _ in range(args.rounds):  # rounds alternate the methods
        for label, method in methods.items():
            elapsed, results[label], used = timed(method, cuda)
            times.setdefault(label, []).append(elapsed)
            peaks[label] = max(peaks.get(label) or 0.0, used) if used is not None else None

    if scorer.padded_tokens:
        rows = sum(
            len(p) + len(c) - 1 + len(r) - 1
            for (p, c), (_, r) in zip(seqs[0::2], seqs[1::2], strict=True)
        )
        runs = args.rounds
        print(
            f"prefaudit's rows (prompt once, then both responses) hold {rows:,} tokens; its "
            f"length-grouped batches ran {scorer.padded_tokens / runs:,.0f} positions "
            f"({scorer.padded_tokens / runs / rows - 1:.1%} padding); tokenising took "
            f"{scorer.tokenize_seconds / runs:.2f} s of its {min(times['prefaudit']):.2f} s "
            "(in a thread, overlapping the model after the first chunk of 1,024 pairs)"
        )
    figures = table(args, times, counted, flops, peaks, peak, results)
    figures.update(
        model=described, parameters=params, dtype=args.dtype, device=args.device,
        device_name=name, peak_tflops=peak, pairs=len(pairs), tokens=tokens,
        rounds=args.rounds, torch=torch.__version__,
    )  # fmt: skip
    if args.trl:
        try:
            figures["trl"] = trl_comparison(args, model, tokenizer, scorer, pairs, peak)
        except Exception as err:  # the figures above still print
            print(f"TRL comparison failed: {type(err).__name__}: {err}")
            figures["trl"] = {"error": f"{type(err).__name__}: {err}"}
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


def timed(method, cuda: bool):
    """(seconds, what ``method`` returned, peak GiB allocated on CUDA from a reset, or None)."""
    import torch

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    value = method()
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return elapsed, value, (torch.cuda.max_memory_allocated() / 2**30 if cuda else None)


def trl_comparison(args, model, tokenizer, scorer, pairs, peak) -> dict:
    # Plain-text prompts on both sides (TRL's "standard" format): the same token sequences
    # when the prompt/response boundary is clean. Alternated, --rounds times each.
    cuda = args.device.startswith("cuda")
    plain = [(p, c, r, None) for p, c, r, _ in pairs[: args.trl]]
    seqs = sequences(scorer, plain)
    work = forward_flops(model, seqs, prompt_once=False)
    times: dict[str, list[float]] = {"TRL": [], "prefaudit": []}
    peaks: dict[str, float | None] = {}
    for _ in range(args.rounds):
        seconds, theirs, used = timed(
            lambda: trl_precompute(model, tokenizer, plain, args.batch), cuda
        )
        times["TRL"].append(seconds)
        peaks["TRL"] = max(peaks.get("TRL") or 0.0, used) if used is not None else None
        seconds, frame, used = timed(
            lambda: scorer.score(*map(list, zip(*plain, strict=True))), cuda
        )
        times["prefaudit"].append(seconds)
        peaks["prefaudit"] = max(peaks.get("prefaudit") or 0.0, used) if used is not None else None
    ours = list(np.column_stack([frame["chosen_logps"], frame["rejected_logps"]]).ravel())
    clean = np.repeat(~frame["boundary_mismatch"].to_numpy(), 2)
    trl_tokens = sum(len(p) + len(r) for p, r in seqs)
    version = getattr(_trl(), "__version__", "?")
    print(
        f"TRL {version} DPOTrainer precompute ({args.dtype}, batch {args.batch}) on {len(plain)} "
        f"pairs as plain text, {trl_tokens:,} tokens (includes its tokenisation and dataset "
        f"caching), {args.rounds} rounds alternating with prefaudit:"
    )
    out = {}
    for name, spent in times.items():
        low, mid = min(spent), statistics.median(spent)
        out[name] = {
            "seconds_min": low,
            "seconds_median": mid,
            "tokens_per_second": trl_tokens / mid,
            "mfu": mfu.mfu(forward_flops(model, seqs, prompt_once=name == "prefaudit"), mid, peak),
            "peak_gib": peaks[name],
        }
        print(
            f"  {name:<10} min {low:.2f} s, median {mid:.2f} s ({trl_tokens / mid:,.1f} tokens/s), "
            f"MFU {mfu.shown(out[name]['mfu'])}, peak memory {_gib(peaks[name])}"
        )
    ratio = out["TRL"]["seconds_median"] / out["prefaudit"]["seconds_median"]
    out["speedup_median"] = ratio
    print(f"  prefaudit {ratio:.2f}x TRL (medians); TRL's FLOPs counted as {work / 1e12:.3f} TFLOP")
    diff = np.abs(np.array(theirs) - np.array(ours))[clean].max()
    out["max_abs_diff"] = float(diff)
    print(
        f"  max |log-prob difference| prefaudit vs TRL: {diff:.2e} over the "
        f"{clean.sum() // 2} pairs with a clean prompt/response token boundary "
        f"({(~clean).sum() // 2} pairs where TRL's joint tokenisation differs are reported "
        "by the engine as boundary_mismatch)"
    )
    return out


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} GiB"


def table(args, times, counted, flops, peaks, peak, results) -> dict:
    """Print the methods' min / median times, speed against the plain loop (medians), MFU
    (at the median) and peak memory; returns them."""
    base = counted["plain loop"] / statistics.median(times["plain loop"])
    print(
        f"  {'method':<24} {'min s':>8} {'median s':>9} {'tokens/s':>10} {'vs plain':>9} "
        f"{'TFLOP/s':>8} {'MFU':>6} {'peak GiB':>9}"
    )
    figures: dict = {"methods": {}}
    for name, spent in times.items():
        low, mid = min(spent), statistics.median(spent)
        rate = counted[name] / mid
        achieved = flops[name] / mid / 1e12
        share = mfu.mfu(flops[name], mid, peak)
        used = "n/a" if peaks[name] is None else f"{peaks[name]:.2f}"
        print(
            f"  {name:<24} {low:>8.2f} {mid:>9.2f} {rate:>10.1f} {rate / base:>8.2f}x "
            f"{achieved:>8.3f} {mfu.shown(share):>6} {used:>9}"
        )
        figures["methods"][name] = {
            "seconds_min": low,
            "seconds_median": mid,
            "tokens_per_second": rate,
            "vs_plain_loop": rate / base,
            "tflops": achieved,
            "mfu": share,
            "peak_gib": peaks[name],
        }
    print(
        f"  (median of {args.rounds} alternating rounds; MFU: the model FLOPs each method needs, "
        f"padding excluded, at the median time, over {peak or 'n/a'} TFLOP/s dense bf16)"
    )
    reference = np.array(results["plain loop"])
    for name, values in results.items():
        if name != "plain loop":
            diff = np.abs(np.array(values)[: len(reference)] - reference).max()
            figures["methods"][name]["max_abs_diff_vs_plain"] = float(diff)
            print(f"  max |log-prob difference| {name} vs plain loop: {diff:.2e}")
    return figures


if __name__ == "__main__":
    main()
