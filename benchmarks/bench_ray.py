"""The audit on Ray against the same audit in one process, in the same run.

Real HH-RLHF harmless pairs from ../shared/data, audited with the reference pass (the per-pair
model work Ray shares out) under a small Llama built here (random weights, a word-level
tokenizer from the pairs' words: the point is the engine, not the model), embeddings off:

- baseline: ``prefaudit.audit(path, reference_model=FOLDER)`` in this process;
- ray, N workers: the same audit with ``engine="ray"`` on a local cluster of
  ``ray.init(num_cpus=2)``, the reference pass on an actor pool of N actors of one CPU each
  (what ``api.audit`` does, with the pool size chosen here); the shards are removed before
  each repeat, so every run scores every pair.

Each run's audit.json (timings aside) and flags.parquet are checked against the baseline's:
equal, except that the reference log-probs may move by float32 reduction order (Ray's actors
run torch on one thread each, the baseline on every core): floats are compared to 1e-5
(absolute, and relative to their size) and the largest absolute difference is printed. Prints min and median seconds of --repeat runs per
configuration and the ratio to the baseline.

    python benchmarks/bench_ray.py [--pairs 1000] [--repeat 3] [--block-rows 250]

On a multi-GPU Ray cluster (one actor per GPU, a real reference model):

    ray start --head                       # on the head node; `ray start --address HEAD:6379` on the others
    PREFAUDIT_CACHE_DIR=/shared/prefaudit \\
    prefaudit audit pairs/ --engine ray --ray-address HEAD:6379 \\
        --ref-model meta-llama/Llama-3.2-1B --ray-block-rows 10000
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realdata import SHARED  # noqa: E402

HH = SHARED / "hh-rlhf-harmless-test.jsonl.gz"
TOLERANCE = 1e-5  # float32 reduction order; log-probs here are sums of hundreds of terms


def tiny_model(folder: Path, texts: list[str], vocab: int = 4000) -> Path:
    """A 2-layer Llama (hidden 128) and a word-level tokenizer of the texts' commonest words."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = Counter(w for t in texts for w in t.split())
    specials = ["[PAD]", "[EOS]", "[BOS]", "[UNK]"]
    names = specials + [w for w, _ in words.most_common(vocab - len(specials))]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(names)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        eos_token="[EOS]",
        bos_token="[BOS]",
        unk_token="[UNK]",
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(names),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def comparable(folder: Path) -> tuple[dict, object]:
    import pandas as pd

    saved = json.loads((folder / "audit.json").read_text())
    for key in ("timings", "created", "versions"):
        saved.pop(key)
    saved["validators"]["reference"]["metrics"]["reference/tokens_per_second"] = None
    return saved, pd.read_parquet(folder / "flags.parquet")


def differs(a, b, where: str) -> float:
    """The largest absolute difference between two JSON values of the same structure (floats
    to 1e-5 absolute plus relative; anything else must be equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: other keys"
        return max([differs(a[k], b[k], f"{where}/{k}") for k in a] or [0.0])
    if isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: other lengths"
        return max([differs(x, y, where) for x, y in zip(a, b, strict=True)] or [0.0])
    if isinstance(a, float) and isinstance(b, float):
        gap = abs(a - b)
        assert gap <= TOLERANCE * (1 + max(abs(a), abs(b))), f"{where}: {a} vs {b}"
        return gap
    assert a == b, f"{where}: {a!r} vs {b!r}"
    return 0.0


def differs_flags(flags, expected) -> float:
    """flags.parquet: the same columns, index and non-float values; floats to 1e-5."""
    import numpy as np
    import pandas as pd

    pd.testing.assert_frame_equal(
        flags, expected, check_exact=False, rtol=TOLERANCE, atol=TOLERANCE
    )
    floats = flags.select_dtypes("float")
    gaps = np.abs(floats.to_numpy() - expected[floats.columns].to_numpy())
    return float(np.nanmax(gaps)) if gaps.size and not np.isnan(gaps).all() else 0.0


def run_local(path: Path, out: Path, model: Path) -> float:
    import prefaudit

    began = time.perf_counter()
    prefaudit.audit(str(path), out=out, reference_model=str(model), report=False)
    return time.perf_counter() - began


def run_ray(path: Path, out: Path, model: Path, actors: int, block_rows: int) -> float:
    """api.audit's Ray path with the pool size set (the api sizes it from the cluster)."""
    from prefaudit import api, outputs
    from prefaudit.auditing import default_validators, run_audit
    from prefaudit.engines import ray as engine

    began = time.perf_counter()
    loaded = engine.load_blocks(str(path), block_rows=block_rows)
    names, params = api._plan(loaded, reference_model=str(model))
    names = names or default_validators(loaded)
    artefacts = engine.artefacts(loaded, names, params, None, block_rows=block_rows, actors=actors)
    result = run_audit(loaded, validators=names, params=params, embedder=None, artefacts=artefacts)
    with outputs.staged(out) as stage:
        outputs.save_audit(stage, result, loaded, texts=False)
    return time.perf_counter() - began


def main() -> None:  # long: one benchmark, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--block-rows", type=int, default=50)
    args = parser.parse_args()
    os.environ["PREFAUDIT_EMBEDDING_MODEL"] = "off"
    work = Path(tempfile.mkdtemp(prefix="bench_ray-"))
    with gzip.open(HH, "rt") as handle:
        lines = list(itertools.islice(handle, args.pairs))
    path = work / "hh.jsonl"
    path.write_text("".join(lines))
    texts = [v for line in lines for v in json.loads(line).values()]
    model = tiny_model(work / "model", texts)

    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    runs: dict[str, list[float]] = {"single process": [], "ray, 1 worker": [], "ray, 2 workers": []}
    expected, worst = None, 0.0
    for repeat in range(args.repeat):
        for name in runs:
            cache = work / f"cache-{repeat}-{name.replace(' ', '_').replace(',', '')}"
            os.environ["PREFAUDIT_CACHE_DIR"] = str(cache)  # nothing kept from another run
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            if name == "single process":
                seconds = run_local(path, out, model)
            else:
                seconds = run_ray(path, out, model, int(name.split()[1]), args.block_rows)
            runs[name].append(seconds)
            audit, flags = comparable(out)
            if expected is None:
                expected = (audit, flags)
            worst = max(worst, differs(audit, expected[0], name), differs_flags(flags, expected[1]))
            print(f"  repeat {repeat + 1}, {name}: {seconds:.1f} s", flush=True)
    ray.shutdown()
    tokens = audit["validators"]["reference"]["metrics"]["reference/scored_pairs"]
    base = statistics.median(runs["single process"])
    print(f"\n{args.pairs} HH pairs ({tokens} scored), reference pass on a 2-layer Llama, CPU")
    print("| run | min | median | ratio to single process (median) |")
    print("| --- | --- | --- | --- |")
    for name, seconds in runs.items():
        median = statistics.median(seconds)
        print(f"| {name} | {min(seconds):.1f} s | {median:.1f} s | {median / base:.2f} |")
    print(
        "audit.json (timings aside) and flags.parquet: equal in every run but for floats, whose "
        f"largest absolute difference to the baseline was {worst:.1e}"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
