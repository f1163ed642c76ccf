"""Coverage: embedding throughput against SentenceTransformer.encode, and the analysis at scale.

1. Embeddings. N distinct real prompts from ../shared/data (default 1,000), embedded with the
   embedded all-MiniLM-L6-v2 three ways in the same run, each model loaded and warmed up first:
   - baseline: ``SentenceTransformer.encode(texts, batch_size=64, normalize_embeddings=True)``
   - prefaudit cold: ``Embedder.encode`` with an empty disk cache (hashing, embedding, writing)
   - prefaudit warm: a new ``Embedder`` on the same cache (a re-run of the audit)
   Targets: cold throughput >= 0.9 of the baseline; warm under 5% of cold.

2. The analysis after embeddings, for 100,000 prompts (default): the real prompts' embeddings,
   each repeated with small Gaussian noise (sigma 0.02 per dimension, re-normalised) under a
   distinct text, so that the vectors keep the real topic structure; 1,000 reference prompts
   likewise. The whole ``coverage`` validator runs on them with those vectors served from
   memory: choosing k (silhouette on a 3,000 sample), k-means, naming, balance, the 2-D map,
   languages (on a 2,000 sample), and the reference gap. Target: under 60 s.

    python benchmarks/bench_coverage.py [--texts 1000] [--prompts 100000] [--reference 1000]
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


def embedding_throughput(count: int) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    from prefaudit.models.embedded import embedded_model_path
    from prefaudit.models.embeddings import DEFAULT_BATCH_SIZE, Embedder

    path = str(embedded_model_path("embeddings"))
    texts = distinct_prompts()[:count]
    cache = Path(tempfile.mkdtemp(prefix="prefaudit-bench-"))
    try:
        baseline_model = SentenceTransformer(path)
        embedder = Embedder(path, cache_dir=cache, show_progress=False)
        baseline_model.encode(["warm up"], normalize_embeddings=True)
        embedder.loaded.encode(["warm up"], normalize_embeddings=True)

        started = time.perf_counter()
        reference = baseline_model.encode(
            texts, batch_size=DEFAULT_BATCH_SIZE, normalize_embeddings=True
        )
        baseline = time.perf_counter() - started
        started = time.perf_counter()
        cold_vectors = embedder.encode(texts)
        cold = time.perf_counter() - started
        rerun = Embedder(path, cache_dir=cache, show_progress=False)
        rerun._model = embedder.loaded  # the model is loaded once per process either way
        started = time.perf_counter()
        warm_vectors = rerun.encode(texts)
        warm = time.perf_counter() - started
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    chars = int(np.mean([len(t) for t in texts]))
    print(
        f"embeddings: {len(texts):,} real prompts (mean {chars} characters), all-MiniLM-L6-v2, CPU"
    )
    print(f"  SentenceTransformer.encode   {baseline:8.2f} s  {len(texts) / baseline:7.1f} texts/s")
    print(
        f"  prefaudit, cold cache        {cold:8.2f} s  {len(texts) / cold:7.1f} texts/s"
        f"  throughput ratio {baseline / cold:.3f} (target >= 0.9)"
    )
    print(
        f"  prefaudit, warm cache        {warm:8.2f} s  {len(texts) / warm:7.1f} texts/s"
        f"  {100 * warm / cold:.2f}% of cold (target < 5%)"
    )
    same = np.abs(cold_vectors - reference).max(), np.abs(warm_vectors - cold_vectors).max()
    print(f"  max difference to the baseline {same[0]:.2e}; warm vs cold {same[1]:.2e}")
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
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    vectors = embedding_throughput(args.texts)
    texts = distinct_prompts()[: args.texts]
    analysis(vectors, texts, args.prompts, args.reference)


if __name__ == "__main__":
    main()
