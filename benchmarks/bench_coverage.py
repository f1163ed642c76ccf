"""Coverage: embedding throughput against SentenceTransformer.encode, and the analysis at scale.

1. Embeddings. N distinct real prompts from ../shared/data (default 1,000), embedded with the
   embedded all-MiniLM-L6-v2 three ways, alternating within each of R rounds (min / median),
   each model loaded and warmed up first:
   - baseline: ``SentenceTransformer.encode(texts, batch_size=64, normalize_embeddings=True)``
     in float32
   - prefaudit cold: ``Embedder.encode`` with an empty disk cache (hashing, embedding, writing),
     on its default path (bf16 BertEncoder on a CPU with AMX; see bench_embeddings.py for the
     speed and the decisions in detail)
   - prefaudit warm: a new ``Embedder`` on the same cache (a re-run of the audit)
   Targets: cold throughput >= 0.9 of the baseline; warm under 5% of cold.

2. The analysis after embeddings, for 100,000 prompts (default): the real prompts' embeddings,
   each repeated with small Gaussian noise (sigma 0.02 per dimension, re-normalised) under a
   distinct text, so that the vectors keep the real topic structure; 1,000 reference prompts
   likewise. The whole ``coverage`` validator runs on them with those vectors served from
   memory: choosing k (silhouette on a 3,000 sample), k-means, naming, balance, the 2-D map,
   languages (on a 2,000 sample), and the reference gap. Target: under 60 s.

    python benchmarks/bench_coverage.py [--texts 1000] [--prompts 100000] [--reference 1000]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realdata import SHARED, real_pairs  # noqa: E402


def distinct_prompts() -> list[str]:
    """The distinct real prompts (HH and AlpacaEval) in a seeded random order."""
    import random

    prompts = list(dict.fromkeys(p for p, _, _, _ in real_pairs() if p.strip()))
    random.Random(0).shuffle(prompts)
    return prompts


def embedding_throughput(count: int, rounds: int) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    from prefaudit.models.embedded import embedded_model_path
    from prefaudit.models.embeddings import DEFAULT_BATCH_SIZE, Embedder

    path = str(embedded_model_path("embeddings"))
    texts = distinct_prompts()[:count]
    baseline_model = SentenceTransformer(path)
    model = Embedder(path, cache_dir=False).loaded  # loaded once per process either way
    baseline_model.encode(["warm up"], normalize_embeddings=True)
    seconds: dict[str, list[float]] = {"baseline": [], "cold": [], "warm": []}
    for _ in range(rounds):  # the arms alternate within each round
        started = time.perf_counter()
        reference = baseline_model.encode(
            texts, batch_size=DEFAULT_BATCH_SIZE, normalize_embeddings=True
        )
        seconds["baseline"].append(time.perf_counter() - started)
        cache = Path(tempfile.mkdtemp(prefix="prefaudit-bench-"))
        try:
            embedder = Embedder(path, cache_dir=cache, show_progress=False)
            embedder._model = model
            started = time.perf_counter()
            cold_vectors = embedder.encode(texts)
            seconds["cold"].append(time.perf_counter() - started)
            rerun = Embedder(path, cache_dir=cache, show_progress=False)
            rerun._model = model
            started = time.perf_counter()
            warm_vectors = rerun.encode(texts)
            seconds["warm"].append(time.perf_counter() - started)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    low = {k: min(v) for k, v in seconds.items()}
    mid = {k: float(np.median(v)) for k, v in seconds.items()}
    chars = int(np.mean([len(t) for t in texts]))
    print(
        f"embeddings: {len(texts):,} real prompts (mean {chars} characters), all-MiniLM-L6-v2, "
        f"CPU, {rounds} alternating rounds, min / median"
    )
    print(f"  prefaudit's path: {type(model).__name__} {getattr(model, 'dtype', 'fp32')}")
    n = len(texts)
    print(
        f"  SentenceTransformer.encode fp32  {low['baseline']:7.2f} / {mid['baseline']:7.2f} s"
        f"  {n / low['baseline']:7.1f} / {n / mid['baseline']:7.1f} texts/s"
    )
    print(
        f"  prefaudit, cold cache           {low['cold']:7.2f} / {mid['cold']:7.2f} s"
        f"  {n / low['cold']:7.1f} / {n / mid['cold']:7.1f} texts/s  throughput ratio "
        f"{low['baseline'] / low['cold']:.2f} / {mid['baseline'] / mid['cold']:.2f} (target >= 0.9)"
    )
    print(
        f"  prefaudit, warm cache           {low['warm']:7.2f} / {mid['warm']:7.2f} s"
        f"  {100 * low['warm'] / low['cold']:.2f}% of cold (target < 5%)"
    )
    cosine = np.sum(cold_vectors * reference, axis=1)
    print(
        f"  cosine to the baseline's vectors: min {cosine.min():.5f}, mean {cosine.mean():.5f}; "
        f"warm vs cold max difference {np.abs(warm_vectors - cold_vectors).max():.2e}"
    )
    return cold_vectors


class _Served:
    """Serves precomputed vectors by text, as a warm cache would."""

    def __init__(self, texts: list[str], vectors: np.ndarray):
        self.index = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors

    def encode(self, texts):
        return self.vectors[[self.index[t] for t in texts]]


def analysis(base_vectors: np.ndarray, base_texts: list[str], prompts: int, reference: int) -> None:
    import pandas as pd

    from prefaudit.auditing import AuditContext
    from prefaudit.validators.coverage import CoverageValidator

    rng = np.random.default_rng(0)

    def variants(count: int, tag: str):
        source = rng.integers(0, len(base_texts), count)
        vectors = base_vectors[source] + rng.normal(0, 0.02, (count, base_vectors.shape[1]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        texts = [f"{base_texts[s]} ({tag} {i})" for i, s in enumerate(source)]
        return texts, vectors.astype(np.float32)

    train_texts, train_vectors = variants(prompts, "variant")
    ref_texts, ref_vectors = variants(reference, "reference")
    served = _Served(train_texts + ref_texts, np.concatenate([train_vectors, ref_vectors]))
    folder = Path(tempfile.mkdtemp(prefix="prefaudit-bench-"))
    try:
        (folder / "reference.txt").write_text("\n".join(t.replace("\n", " ") for t in ref_texts))
        served.index.update({t.replace("\n", " ").strip(): served.index[t] for t in ref_texts})
        pairs = pd.DataFrame(
            {"prompt": train_texts, "chosen": "a", "rejected": "b"},
            index=pd.Index([f"p{i}" for i in range(prompts)], dtype="str"),
        )
        context = AuditContext(pairs, embedder=served)
        validator = CoverageValidator(reference=str(folder / "reference.txt"))
        started = time.perf_counter()
        result = validator.run(context)
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    m = result.metrics
    print(
        f"\nanalysis after embeddings: {prompts:,} prompts (real embeddings of {len(base_texts):,} "
        f"prompts with noise), {reference:,} reference prompts"
    )
    print(
        f"  coverage validator: {elapsed:.2f} s (target < 60 s); k = {m['coverage/clusters']} "
        f"(silhouette), effective {m['coverage/effective_clusters']:.1f}, largest share "
        f"{m['coverage/largest_cluster_share']:.3f}, gap rate {m['coverage/gap_rate']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    vectors = embedding_throughput(args.texts, args.rounds)
    texts = distinct_prompts()[: args.texts]
    analysis(vectors, texts, args.prompts, args.reference)


if __name__ == "__main__":
    main()
