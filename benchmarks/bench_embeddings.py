"""Embeddings on the CPU: prefaudit's default path against sentence-transformers fp32, and the
decisions they lead to, in one run.

1. Speed. Distinct real prompts and responses from ../shared/data (seeded order), embedded with
   the embedded all-MiniLM-L6-v2 by
   - baseline: ``SentenceTransformer.encode(texts, batch_size=64, normalize_embeddings=True)``
     in float32, the strongest plain route measured (ONNX Runtime fp32 ran at 0.67x of it);
   - prefaudit: ``Embedder(cache_dir=False).encode`` as an audit runs it (the bf16 BertEncoder
     on a CPU with AMX, else sentence-transformers fp32; the path is printed).
   Both loaded and warmed up first; arms alternate within each round; min and median of the
   rounds. Target: >= 3x on a CPU with AMX.

2. Decisions, float32 against prefaudit's default, on all the distinct real prompts (vectors
   cached in benchmarks/.cache, so only the first run embeds them in float32):
   - cosine of each prompt's two vectors (min / mean / median; target mean >= 0.98);
   - semantic-duplicate prompt groups, from the duplication validator's own grouping
     (``_group`` then ``_semantic_groups``) over one pair per distinct prompt: F1 of the
     "same group" prompt pairs (target >= 0.98), and of the pairs linked only through
     embeddings;
   - coverage, through the coverage validator: HH prompts as the data, the AlpacaEval
     instructions as the reference list; adjusted Rand index of the topic clusters (target
     >= 0.9) and the reference prompts whose gap decision differs (target: none).

    python benchmarks/bench_embeddings.py [--prompts 1000] [--responses 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realdata import SHARED, real_pairs  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"


def distinct_texts() -> tuple[list[str], list[str], list[str], list[str]]:
    """Distinct prompts, responses, HH prompts and AlpacaEval instructions, seeded order."""
    rows = real_pairs()
    prompts = list(dict.fromkeys(p for p, _, _, _ in rows if p.strip()))
    responses = list(dict.fromkeys(r for _, c, j, _ in rows for r in (c, j) if r.strip()))
    for texts in (prompts, responses):
        random.Random(0).shuffle(texts)
    hh = list(dict.fromkeys(p for p, _, _, d in rows if d == "hh" and p.strip()))
    alpaca = list(dict.fromkeys(p for p, _, _, d in rows if d == "alpaca" and p.strip()))
    return prompts, responses, hh, alpaca


def speed(prompts: list[str], responses: list[str], rounds: int) -> None:
    from sentence_transformers import SentenceTransformer

    from prefaudit.models.embedded import embedded_model_path
    from prefaudit.models.embeddings import DEFAULT_BATCH_SIZE, Embedder

    path = str(embedded_model_path("embeddings"))
    started = time.perf_counter()
    baseline = SentenceTransformer(path, device="cpu")
    st_load = time.perf_counter() - started
    started = time.perf_counter()
    embedder = Embedder(cache_dir=False, show_progress=False)
    assert embedder.loaded is not None  # loads the model
    load = time.perf_counter() - started
    print(f"prefaudit's default path: {embedder.runtime}")
    print(
        f"  load (after imports elsewhere): sentence-transformers {st_load:.2f} s, prefaudit {load:.2f} s"
    )
    arms = {
        "sentence-transformers fp32": lambda texts: baseline.encode(
            texts, batch_size=DEFAULT_BATCH_SIZE, normalize_embeddings=True
        ),
        "prefaudit default": embedder.encode,
    }
    for arm in arms.values():
        arm(prompts[:64])  # warm up
    for kind, texts in (("prompts", prompts), ("responses", responses)):
        seconds = {name: [] for name in arms}
        for _ in range(rounds):
            for name, arm in arms.items():
                started = time.perf_counter()
                arm(texts)
                seconds[name].append(time.perf_counter() - started)
        chars = int(np.mean([len(t) for t in texts]))
        print(f"\n{len(texts):,} distinct real {kind} (mean {chars} characters), {rounds} rounds")
        base = seconds["sentence-transformers fp32"]
        for name, times in seconds.items():
            low, mid = min(times), float(np.median(times))
            ratio = f"  {min(base) / low:.2f}x / {np.median(base) / mid:.2f}x (min / median)"
            print(
                f"  {name:28s} {len(texts) / low:7.1f} / {len(texts) / mid:7.1f} {kind}/s"
                + (ratio if times is not base else "  baseline")
            )


class _Served:
    """Serves precomputed vectors by text, as a warm cache would."""

    def __init__(self, texts: list[str], vectors: np.ndarray):
        self.index = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors

    def encode(self, texts):
        return self.vectors[[self.index[t] for t in texts]]


def vectors_both(texts: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    from prefaudit.models.embeddings import Embedder

    cache = CACHE / "embeddings-bench"
    exact = Embedder(cache_dir=cache, precision="fp32", show_progress=True)
    default = Embedder(cache_dir=cache, show_progress=True)
    fp32 = exact.encode(texts)
    fast = default.encode(texts)
    return fp32, fast, default.runtime or "?"


def semantic_groups(texts: list[str], vectors: np.ndarray) -> np.ndarray:
    """The duplication validator's prompt groups (exact, near and semantic links)."""
    import pandas as pd

    from prefaudit.auditing import AuditContext
    from prefaudit.validators import duplication

    pairs = pd.DataFrame(
        {"prompt": texts, "chosen": "a", "rejected": "b"},
        index=pd.Index([f"p{i}" for i in range(len(texts))], dtype="str"),
    )
    context = AuditContext(pairs, embedder=_Served(texts, vectors))
    validator = duplication.DuplicationValidator()
    prompt = validator._group(
        context, duplication._prompt_texts(pairs), context.normalized_hashes("prompt")
    )
    labels, status = validator._semantic_groups(context, prompt)
    assert status == "ran", status
    return labels, prompt.near


def same_group_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    out = set()
    for members in pd_groups(labels):
        out.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
    return out


def pd_groups(labels: np.ndarray) -> list[list[int]]:
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    return [g.tolist() for g in np.split(order, cuts) if len(g) > 1]


def f1(a: set, b: set) -> float:
    return 1.0 if not a and not b else 2 * len(a & b) / (len(a) + len(b))


def coverage(train: list[str], reference: list[str], vectors: dict[str, np.ndarray]):
    import pandas as pd

    from prefaudit.auditing import AuditContext
    from prefaudit.validators.coverage import CoverageValidator

    texts = list(vectors)
    served = _Served(texts, np.stack([vectors[t] for t in texts]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reference.txt"
        path.write_text("\n".join(reference))
        pairs = pd.DataFrame(
            {"prompt": train, "chosen": "a", "rejected": "b"},
            index=pd.Index([f"p{i}" for i in range(len(train))], dtype="str"),
        )
        result = CoverageValidator(reference=str(path), languages=False).run(
            AuditContext(pairs, embedder=served)
        )
    gaps = set(result.info["reference"]["gaps"])
    return result.flags["cluster"].to_numpy(), gaps, result.metrics


def decisions(prompts: list[str], hh: list[str], alpaca: list[str]) -> None:
    from sklearn.metrics import adjusted_rand_score

    reference = list(dict.fromkeys(" ".join(t.split()) for t in alpaca))
    everything = list(dict.fromkeys(prompts + hh + reference))
    fp32, fast, runtime = vectors_both(everything)
    print(f"\ndecisions: float32 (sentence-transformers) vs prefaudit's default ({runtime})")
    cosine = np.sum(fp32 * fast, axis=1)
    print(
        f"  cosine over {len(everything):,} distinct prompts: min {cosine.min():.5f}, "
        f"mean {cosine.mean():.5f}, median {np.median(cosine):.5f} (target mean >= 0.98)"
    )
    row = {t: i for i, t in enumerate(everything)}
    take = [row[t] for t in prompts]
    # Every prompt pair's similarity: how far bf16 moves it, and how many sit near the
    # duplication validator's 0.95 cut (the decisions that could flip).
    sim32, sim16 = fp32[take] @ fp32[take].T, fast[take] @ fast[take].T
    upper = np.triu_indices(len(take), 1)
    sim32, sim16 = sim32[upper], sim16[upper]
    close = np.abs(sim32 - 0.95) < 0.005
    print(
        f"  prompt-pair cosines ({len(sim32):,} pairs): largest change "
        f"{np.abs(sim32 - sim16).max():.5f}; {int(close.sum())} pairs within 0.005 of the 0.95 "
        f"cut, {int(((sim32 >= 0.95) != (sim16 >= 0.95)).sum())} cross it"
    )
    groups32, near = semantic_groups(prompts, fp32[take])
    groups16, near16 = semantic_groups(prompts, fast[take])
    assert np.array_equal(near, near16)  # MinHash groups do not depend on the vectors
    pairs32, pairs16 = same_group_pairs(groups32), same_group_pairs(groups16)
    near_pairs = same_group_pairs(near)
    sem32, sem16 = pairs32 - near_pairs, pairs16 - near_pairs
    print(
        f"  duplication groups over {len(prompts):,} distinct prompts: {len(pd_groups(groups32))} "
        f"vs {len(pd_groups(groups16))} groups of 2+; same-group prompt pairs F1 "
        f"{f1(pairs32, pairs16):.4f} ({len(pairs32)} vs {len(pairs16)}; target >= 0.98); "
        f"linked only by embeddings F1 {f1(sem32, sem16):.4f} ({len(sem32)} vs {len(sem16)})"
    )
    results = {}
    for name, vectors in (("fp32", fp32), ("default", fast)):
        results[name] = coverage(hh, reference, {t: vectors[row[t]] for t in hh + reference})
    (labels32, gaps32, m32), (labels16, gaps16, m16) = results["fp32"], results["default"]
    print(
        f"  coverage of {len(hh):,} HH prompts: k {m32['coverage/clusters']} vs "
        f"{m16['coverage/clusters']}, adjusted Rand index {adjusted_rand_score(labels32, labels16):.4f} "
        f"(target >= 0.9)"
    )
    print(
        f"  gaps among {len(reference):,} AlpacaEval instructions: {len(gaps32)} vs {len(gaps16)}, "
        f"{len(gaps32 ^ gaps16)} decisions differ (target 0)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--responses", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true", help="only the decisions")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    prompts, responses, hh, alpaca = distinct_texts()
    if not args.skip_speed:
        speed(prompts[: args.prompts], responses[: args.responses], args.rounds)
    decisions(prompts, hh, alpaca)


if __name__ == "__main__":
    main()
