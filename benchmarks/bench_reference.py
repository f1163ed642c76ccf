"""Reference log-probs: prefaudit's engine against a plain loop and a padded batch loop.

Real HH-RLHF harmless pairs from ../shared/data (multi-turn prompts rendered with the model's
chat template), the embedded SmolLM2-135M-Instruct, fp32 on CPU (or bf16 on CUDA with
--device cuda). Every method scores exactly the same token sequences (prompt + response + EOS,
prompt tokens not scored), in the same run:

- plain loop: one forward per sequence (prompt + response), log-softmax over all positions —
  the fastest simple baseline on CPU (log-softmax in float64 everywhere, as the engine does,
  so that the log-probs can be compared to 1e-4);
- padded batches: sequences sorted by length, right-padded batches of --batch, one forward each;
- prefaudit: ``ReferenceScorer.score`` (prompt once per pair with its cache shared by both
  responses, the LM head only on response positions).

Throughput counts the tokens of every (prompt + response) sequence, the work a plain loop does,
so the ratios are ratios of time. The log-probs of all methods are compared.

- TRL: ``DPOTrainer`` with ``precompute_ref_log_probs`` on the first --trl pairs (plain-text
  prompts, its "standard" format; fp32).

    python benchmarks/bench_reference.py [--pairs 16] [--batch 4] [--rounds 2] [--trl 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
            logp = torch.log_softmax(model(ids).logits[0, :-1].double(), dim=-1)
            targets = ids[0, 1:]
            picked = logp[torch.arange(len(targets), device=device), targets]
            totals.append(float(picked[len(prompt_ids) - 1 :].sum()))
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
            logp = torch.log_softmax(model(ids, attention_mask=mask).logits[:, :-1].double(), -1)
            picked = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            for row, i in enumerate(members):
                prompt_len, response_len = len(seqs[i][0]), len(seqs[i][1])
                span = slice(prompt_len - 1, prompt_len + response_len - 1)
                totals[i] = float(picked[row, span].sum())
    return totals


def trl_precompute(model, tokenizer, pairs, batch: int) -> list[float]:
    """TRL's DPOTrainer reference precompute (fp32: TRL would autocast to bf16 on this CPU)."""
    import tempfile

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
            bf16=False,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trl", type=int, default=8, help="pairs for TRL's precompute (0: skip)")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    import torch

    import prefaudit
    from prefaudit.models.reference import ReferenceScorer, load_causal_lm

    data = prefaudit.load(str(SHARED / "hh-rlhf-harmless-test.jsonl.gz")).pairs.head(args.pairs)
    pairs = list(
        zip(data["prompt"], data["chosen"], data["rejected"], data["prompt_messages"], strict=True)
    )
    started = time.perf_counter()
    model, tokenizer = load_causal_lm()
    model = model.to(args.device)
    if args.device.startswith("cuda"):
        model = model.to(torch.bfloat16)
    print(
        f"model loaded in {time.perf_counter() - started:.1f} s (cached plain weights after the first run)"
    )
    scorer = ReferenceScorer(loaded=(model, tokenizer), max_length=8192)
    seqs = sequences(scorer, pairs)
    tokens = sum(len(p) + len(r) for p, r in seqs)
    prompt_share = sum(len(p) for p, _ in seqs) / tokens
    print(
        f"{len(pairs)} HH pairs, {len(seqs)} sequences, {tokens:,} tokens "
        f"({prompt_share:.0%} of them prompt tokens, each prompt counted twice), {args.device}"
    )
    with torch.inference_mode():  # warm-up
        model(torch.tensor([seqs[0][0][:16]], device=args.device))

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    padded = f"padded batches of {args.batch}"
    methods = {
        "plain loop": lambda: plain_loop(model, seqs, args.device),
        padded: lambda: padded_batches(model, seqs, args.batch, pad, args.device),
        "prefaudit": lambda: _engine(scorer, pairs),
    }
    results, times = {}, {}
    for _ in range(args.rounds):  # rounds alternate the methods; the best time of each counts
        for name, method in methods.items():
            started = time.perf_counter()
            results[name] = method()
            elapsed = time.perf_counter() - started
            times[name] = min(times.get(name, elapsed), elapsed)

    if args.trl:
        # Plain-text prompts on both sides (TRL's "standard" format): the same token sequences
        # when the prompt/response boundary is clean.
        plain = [(p, c, r, None) for p, c, r, _ in pairs[: args.trl]]
        started = time.perf_counter()
        theirs = trl_precompute(model, tokenizer, plain, args.batch)
        trl_time = time.perf_counter() - started
        started = time.perf_counter()
        ours = _engine(scorer, plain)
        ours_time = time.perf_counter() - started
        trl_tokens = sum(
            len(scorer.tokenize(p, x, None)[0]) + len(scorer.tokenize(p, x, None)[1])
            for p, c, r, _ in plain
            for x in (c, r)
        )
        version = getattr(_trl(), "__version__", "?")
        print(
            f"TRL {version} DPOTrainer precompute (fp32, batch {args.batch}) on {len(plain)} pairs "
            f"as plain text, {trl_tokens:,} tokens (includes its tokenisation and dataset caching):"
        )
        print(
            f"  TRL {trl_time:.2f} s ({trl_tokens / trl_time:.1f} tokens/s); prefaudit "
            f"{ours_time:.2f} s ({trl_tokens / ours_time:.1f} tokens/s): {trl_time / ours_time:.2f}x"
        )
        diff = np.abs(np.array(theirs) - np.array(ours)).max()
        print(f"  max |log-prob difference| prefaudit vs TRL: {diff:.2e}")

    base = times["plain loop"]
    print(f"  {'method':<24} {'seconds':>8} {'tokens/s':>9} {'vs plain loop':>14}")
    for name, seconds in times.items():
        print(f"  {name:<24} {seconds:>8.2f} {tokens / seconds:>9.1f} {base / seconds:>13.2f}x")
    reference = np.array(results["plain loop"])
    for name, values in results.items():
        if name != "plain loop":
            diff = np.abs(np.array(values) - reference).max()
            print(f"  max |log-prob difference| {name} vs plain loop: {diff:.2e}")


if __name__ == "__main__":
    main()
