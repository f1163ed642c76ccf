"""``coverage``: what the prompts teach about, how evenly, and what they leave out."""

from __future__ import annotations

import logging
import math
import re
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from prefaudit.validators.base import CleaningAction, Validator, ValidatorResult

log = logging.getLogger(__name__)

_SNIPPET = 200
_MAP_POINTS = 2_000  # prompts drawn on the 2-D map (a seeded sample beyond that)
_SILHOUETTE_SAMPLE = 2_000  # prompts the choice of k is made on
_K_GRID = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)  # the k tried, up to max_clusters
_NAMING_SAMPLE = 20_000  # prompts the cluster names are computed from (seeded sample beyond)
_LANGUAGE_SAMPLE = 1_000  # prompts whose language is detected (a seeded sample beyond that)
# Prompts the TF-IDF space's LSA (100 directions) is fitted on, a seeded sample beyond that;
# every prompt is then projected. At a million prompts the fit on all took most of coverage's
# time and its peak memory.
_LSA_FIT_ROWS = 200_000
_LSA_BLOCK = 100_000  # prompts projected at a time
# From this many distinct prompts lingua's models (~0.6 GB resident, held process-wide) are
# given back after use: there the audit's memory matters, and reloading them (~4.5 s) in a
# later audit of the same process is small beside it; below, later audits reuse them.
_LANGUAGE_MODELS_FREED_FROM = 200_000


class CoverageValidator(Validator):
    """Topics of the prompts, how evenly the pairs spread over them, their shape, and the gap
    to a reference set of prompts that matter.

    >>> import pandas as pd
    >>> from prefaudit.auditing import AuditContext
    >>> prompts = ["bake bread at home", "bread to bake", "bake sourdough bread",
    ...            "car engine repair", "repair my car engine", "car engine noise"]
    >>> pairs = pd.DataFrame({"prompt": prompts, "chosen": ["a"] * 6, "rejected": ["b"] * 6})
    >>> result = CoverageValidator(languages=False).run(AuditContext(pairs, embedder=None))
    >>> result.metrics["coverage/clusters"], result.flags["cluster"].tolist()
    (2, [0, 0, 0, 1, 1, 1])
    >>> result.info["clusters"][0]["name"]
    'bake, bread, home, sourdough'
    """

    name = "coverage"
    # Runs after these (when they run) so each topic shows their issue rates.
    uses = ("content", "agreement", "duplication")
    description = (
        "Groups the prompts into topics (k-means on prompt embeddings, or TF-IDF when there are "
        "none; k by silhouette unless set), names each by its most distinctive terms and a "
        "representative prompt, and shows how evenly the pairs spread (entropy, effective "
        "number of topics, the largest and the smallest), where the other checks' problems sit "
        "by topic, the prompts' lengths, turns, languages and sources, and a 2-D map. With "
        "coverage_reference, how close the nearest training prompt comes to each reference "
        "prompt (an evaluation set, a list of use cases) and which reference topics the data "
        "does not cover. Data clean pair by pair can still teach only a sliver of what the "
        "model will face."
    )
    metric_names = (
        "coverage/prompts",
        "coverage/clusters",
        "coverage/effective_clusters",
        "coverage/entropy",
        "coverage/normalized_entropy",
        "coverage/largest_cluster_share",
        "coverage/smallest_cluster_share",
        "coverage/representation",
        "coverage/gap_rate",
        "coverage/reference_prompts",
        "coverage/mean_nearest_similarity",
        "coverage/uncovered_reference_clusters",
        "coverage/languages",
        "coverage/top_language",
        "coverage/top_language_share",
        "coverage/multi_turn_rate",
        "coverage/median_prompt_chars",
    )
    text_metric_names = ("coverage/representation", "coverage/top_language")
    cleaning = (CleaningAction("cluster", "cluster"),)
    headline_metrics = (
        "coverage/clusters",
        "coverage/effective_clusters",
        "coverage/largest_cluster_share",
        "coverage/gap_rate",
        "coverage/languages",
    )

    param_ranges = MappingProxyType(
        {
            "clusters": (1, None),
            "max_clusters": (2, None),
            "gap_threshold": (-1, 1),
            "seed": (0, None),
        }
    )

    def __init__(
        self,
        *,
        clusters: int | None = None,
        max_clusters: int = 30,
        reference: str | None = None,
        gap_threshold: float | None = None,
        languages: bool = True,
        seed: int = 0,
    ):
        # k for k-means; None = the k with the best silhouette on a sample, among 2, 3, 4, 5,
        # 6, 8, 10, 12, 15, 20, 25, 30 (40, 50) up to max_clusters.
        self.clusters = clusters
        # The largest k the silhouette search tries when clusters is None.
        self.max_clusters = max_clusters
        # Prompts that matter (a dataset, or a plain list): each gets its nearest training prompt.
        self.reference = reference
        # A reference prompt is uncovered when no training prompt is this similar (cosine);
        # None = 0.5 for embeddings, 0.2 for TF-IDF (whose similarities run lower).
        self.gap_threshold = gap_threshold
        # Detect the prompts' languages (lingua, on a sample of 1,000).
        self.languages = languages
        self.seed = seed  # k-means, the samples and the map

    def run(self, context) -> ValidatorResult:
        pairs = context.pairs
        self.silhouettes_: dict[int, float] = {}  # k -> silhouette, when k was chosen
        codes, uniques = pd.factorize(pairs["prompt"])
        texts = _arrow_texts(uniques)  # Python strings only where a few are read
        vectors, representation = self._vectors(context, texts, codes)
        labels, k = self._cluster(vectors)
        pair_labels = labels[codes] if len(codes) else np.zeros(0, dtype=int)
        names = _name_clusters(texts, labels, k, seed=self.seed)
        representatives = _representatives(vectors, labels, k, texts)
        counts = np.bincount(pair_labels, minlength=k) if k else np.zeros(0, dtype=int)
        balance = _balance(counts)

        clusters = [
            {
                "cluster": c,
                "name": names[c],
                "pairs": int(counts[c]),
                "share": float(counts[c] / counts.sum()) if counts.sum() else 0.0,
                "representative": representatives[c][:_SNIPPET],
                **_problem_rates(context, pair_labels, c),
            }
            for c in range(k)
        ]
        metrics: dict[str, Any] = {
            "coverage/prompts": len(texts),
            "coverage/clusters": k,
            "coverage/representation": representation,
            **{f"coverage/{key}": value for key, value in balance.items()},
        }
        info: dict[str, Any] = {
            "representation": representation,
            "lsa_fitted_prompts": self._space.fitted if self._space is not None else None,
            "clusters": sorted(clusters, key=lambda c: -c["pairs"]),
            "smallest_clusters": sorted(clusters, key=lambda c: c["pairs"])[:5],
            "map": _map(vectors, labels, self.seed),
            "k_selection": {
                "rule": "given" if self.clusters else "best silhouette (cosine) on a sample",
                "silhouettes": {str(k): v for k, v in self.silhouettes_.items()},
            },
        }
        shape_metrics, shape_info = self._shape(context, pairs, texts)
        metrics.update(shape_metrics)
        info.update(shape_info)
        gap_metrics, gap_info = self._reference_gap(context, vectors, representation, texts)
        metrics.update(gap_metrics)
        info.update(gap_info)
        if len(pairs) and "source" in pairs.columns:
            info["source_by_cluster"] = _crosstab(pairs["source"], pair_labels, names)
        flags = pd.DataFrame(
            {
                "score": np.zeros(len(pairs)),
                "issue": np.zeros(len(pairs), dtype=bool),
                "reason": [""] * len(pairs),
                "cluster": pair_labels.astype(np.int64),
                "cluster_name": [names[c] for c in pair_labels],
            },
            index=pairs.index,
        )
        return self.result(flags, metrics, info)

    # -- representation and clusters ----------------------------------------------------------

    def _vectors(self, context, distinct: pa.Array, codes) -> tuple[np.ndarray, str]:
        """Unit vectors of the distinct prompts: embeddings, or TF-IDF (LSA) without them."""
        from prefaudit.models.embeddings import EmbeddingsUnavailable

        self._space = None
        if not len(distinct):
            return np.zeros((0, 2), dtype=np.float32), "none"
        try:
            vectors = context.embeddings("prompt")
            first = np.unique(codes, return_index=True)[1]  # each distinct prompt's first row
            return vectors[first], "embeddings"
        except EmbeddingsUnavailable as err:
            note = f"coverage: no embeddings ({err}); topics come from TF-IDF word vectors"
        # Built past the handler: the error's traceback holds what the attempt made.
        if note not in context.notes:
            context.notes.append(note)
        self._space = _TfidfSpace(distinct)
        return self._space.vectors, "tfidf"

    def _cluster(self, vectors: np.ndarray) -> tuple[np.ndarray, int]:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        n = len(vectors)
        if n < 3:
            return np.zeros(n, dtype=np.int64), 1 if n else 0
        # Prompts that differ only by case or punctuation can share one vector: never ask for
        # more clusters than there are distinct points (k-means would leave some empty).
        distinct = len(np.unique(vectors, axis=0)) if n <= 20_000 else n
        k = self.clusters or (self._choose_k(vectors) if distinct > 2 else distinct)
        k = max(1, min(k, distinct))
        model = (
            MiniBatchKMeans(k, random_state=self.seed, n_init=3, batch_size=4096)
            if n > 20_000
            else KMeans(k, random_state=self.seed, n_init=4)
        )
        _, labels = np.unique(model.fit_predict(vectors), return_inverse=True)
        k = int(labels.max()) + 1  # a cluster k-means left empty is not one
        # Clusters numbered by size, largest first (ties: the one whose first prompt comes
        # first), so that numbers read the same across runs.
        sizes = np.bincount(labels, minlength=k)
        first = np.full(k, n)
        np.minimum.at(first, labels, np.arange(n))
        order = np.lexsort((first, -sizes))
        renumber = np.empty(k, dtype=np.int64)
        renumber[order] = np.arange(k)
        return renumber[labels], k

    def _choose_k(self, vectors: np.ndarray) -> int:
        """The k of _K_GRID (up to max_clusters) with the highest silhouette, on a seeded sample."""
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        rng = np.random.default_rng(self.seed)
        sample = vectors
        if len(vectors) > _SILHOUETTE_SAMPLE:
            sample = vectors[rng.choice(len(vectors), _SILHOUETTE_SAMPLE, replace=False)]
        best, best_score = 2, -1.0
        for k in [k for k in _K_GRID if k <= min(self.max_clusters, len(sample) - 1)]:
            labels = KMeans(k, random_state=self.seed, n_init=2).fit_predict(sample)
            if len(set(labels)) < 2:
                continue
            score = float(silhouette_score(sample, labels, metric="cosine"))
            self.silhouettes_[k] = round(score, 4)
            if score > best_score + 1e-9:
                best, best_score = k, score
        log.info("coverage: k = %d (silhouette %.3f)", best, best_score)
        return best

    # -- the prompts' shape -------------------------------------------------------------------

    def _shape(self, context, pairs, distinct: pa.Array) -> tuple[dict[str, Any], dict[str, Any]]:
        chars = context.lengths("prompt")
        turns = _turns(pairs)
        metrics: dict[str, Any] = {
            "coverage/median_prompt_chars": float(np.median(chars)) if len(chars) else None,
            "coverage/multi_turn_rate": float(np.mean(turns > 1)) if len(turns) else None,
            "coverage/languages": None,
            "coverage/top_language": None,
            "coverage/top_language_share": None,
        }
        info: dict[str, Any] = {
            "prompt_chars": _quantiles(chars),
            "turns": {
                str(k): int(v) for k, v in pd.Series(turns).value_counts().sort_index().items()
            },
        }
        if "source" in pairs.columns:
            info["sources"] = {
                str(k): int(v) for k, v in pairs["source"].fillna("(none)").value_counts().items()
            }
        if self.languages and len(pairs):
            found = _languages(distinct, self.seed)
            if found is None:
                context.notes.append(
                    "coverage: languages not detected (pip install lingua-language-detector)"
                )
            else:
                shares, sample = found
                known = {k: v for k, v in shares.items() if k != "unknown"}
                top = max(known, key=known.get) if known else None
                metrics["coverage/languages"] = sum(1 for v in known.values() if v >= 0.01)
                metrics["coverage/top_language"] = top
                metrics["coverage/top_language_share"] = known.get(top) if top else None
                info["languages"] = {"sample": sample, "shares": shares}
        return metrics, info

    # -- against what matters -----------------------------------------------------------------

    def _reference_gap(self, context, vectors, representation, distinct):
        metrics = {
            "coverage/gap_rate": None,
            "coverage/reference_prompts": None,
            "coverage/mean_nearest_similarity": None,
            "coverage/uncovered_reference_clusters": None,
        }
        if not self.reference:
            return metrics, {}

        reference = context.prompt_list(self.reference)
        if representation == "none":  # no training prompts: nothing is covered
            metrics["coverage/reference_prompts"] = len(reference)
            metrics["coverage/gap_rate"] = 1.0 if reference else None
            return metrics, {"reference": {"path": str(self.reference), "prompts": len(reference)}}
        if representation == "tfidf":
            reference_vectors = self._space.transform(reference)
        else:
            reference_vectors = context.embed(reference)
        threshold = self.gap_threshold
        if threshold is None:
            threshold = 0.2 if representation == "tfidf" else 0.5
        nearest, index = _nearest(reference_vectors, vectors)
        gap = nearest < threshold
        topics = self._reference_topics(reference, reference_vectors, gap, nearest)
        uncovered = [t for t in topics if t["gap_rate"] is not None and t["gap_rate"] >= 0.5]
        metrics.update(_gap_metrics(len(reference), gap, nearest, len(uncovered)))
        info = {
            "reference": {
                "path": str(self.reference),
                "prompts": len(reference),
                "gap_threshold": threshold,
                "least_covered": _least_covered(reference, nearest, index, distinct),
                "clusters": topics,
                # Positions of uncovered reference prompts.
                "gaps": np.flatnonzero(gap)[:1000].tolist(),
                "uncovered_clusters": [t["name"] for t in uncovered],
            }
        }
        return metrics, info

    def _reference_topics(self, reference, reference_vectors, gap, nearest) -> list[dict]:
        """Reference topics: the reference prompts clustered on their own (same k rule), each
        with the share of its prompts no training prompt covers."""
        topic_finder = CoverageValidator(max_clusters=self.max_clusters, seed=self.seed)
        topic_finder.silhouettes_ = {}
        labels, k = topic_finder._cluster(reference_vectors)
        names = _name_clusters(reference, labels, k, seed=self.seed)
        return [
            _reference_topic(c, names[c], np.flatnonzero(labels == c), reference, gap, nearest)
            for c in range(k)
        ]


class _TfidfSpace:
    """TF-IDF word vectors reduced by LSA (truncated SVD) and normalised: the fallback space."""

    def __init__(self, texts: pa.Array | list[str]):
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer

        from prefaudit.words import word_counts

        try:
            # TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(texts),
            # with the words counted by a compiled loop (the same counts and vocabulary).
            counts, vocabulary = word_counts(texts, stop_words="english", dtype=np.float64)
        except ValueError:  # only stop words, or no words at all (emoji, punctuation, "")
            self.vectorizer = TfidfVectorizer(sublinear_tf=True, analyzer=_pieces)
            matrix = self.vectorizer.fit_transform(_at(texts, range(len(texts))))
        else:
            weights = TfidfTransformer(sublinear_tf=True).fit(counts)
            matrix = weights.transform(counts, copy=False)
            self.vectorizer = TfidfVectorizer(
                stop_words="english", sublinear_tf=True, vocabulary=vocabulary
            )
            self.vectorizer.idf_ = weights.idf_  # fitted: transform() weighs as fit did
        # LSA only where it helps: small sets cluster better on the raw (sparse) words.
        large = matrix.shape[0] > 500 and matrix.shape[1] > 200
        self.svd = TruncatedSVD(100, random_state=0) if large else None
        # Prompts the LSA is fitted on (0: none, the raw words are the space): a fixed sample
        # (seed 0, as the SVD's own) past the budget.
        self.fitted = matrix.shape[0] if self.svd is not None else 0
        if self.svd is not None and matrix.shape[0] > _LSA_FIT_ROWS:
            rows = np.random.default_rng(0).choice(matrix.shape[0], _LSA_FIT_ROWS, replace=False)
            self.svd.fit(matrix[np.sort(rows)])
            self.fitted = _LSA_FIT_ROWS
            self.vectors = self._reduce(matrix, fit=False)
        else:
            self.vectors = self._reduce(matrix, fit=True)

    def transform(self, texts: list[str]) -> np.ndarray:
        return self._reduce(self.vectorizer.transform(texts), fit=False)

    def _reduce(self, matrix, fit: bool) -> np.ndarray:
        if self.svd is None:
            return _unit(matrix.toarray())
        if fit:
            return _unit(self.svd.fit_transform(matrix))
        return np.concatenate(
            [
                _unit(self.svd.transform(matrix[lo : lo + _LSA_BLOCK]))
                for lo in range(0, matrix.shape[0], _LSA_BLOCK)
            ]
            or [np.zeros((0, self.svd.n_components), dtype=np.float32)]
        )


def _unit(dense: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return (dense / np.where(norms > 0, norms, 1)).astype(np.float32)


def _pieces(text: str) -> list[str]:
    """Words of any length, else the characters, else one token for an empty text: a vocabulary
    for any prompts."""
    words = re.findall(r"\w+", text.lower())
    return words or list(text.strip()) or ["<empty>"]


def _reference_topic(cluster, name, members, reference, gap, nearest) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "name": name,
        "prompts": len(members),
        "gap_rate": float(gap[members].mean()) if len(members) else None,
        "mean_nearest_similarity": float(nearest[members].mean()) if len(members) else None,
        "examples": [reference[i][:_SNIPPET] for i in members[:3]],
    }


def _gap_metrics(prompts: int, gap, nearest, uncovered: int) -> dict[str, Any]:
    return {
        "coverage/gap_rate": float(gap.mean()) if prompts else None,
        "coverage/reference_prompts": prompts,
        "coverage/mean_nearest_similarity": float(nearest.mean()) if prompts else None,
        "coverage/uncovered_reference_clusters": uncovered,
    }


def _arrow_texts(texts) -> pa.Array:
    """``texts`` as one Arrow string array: a million prompts as Python strings (a list of
    them, as coverage held before) took 1.10 GiB beside the pairs' own column."""
    from prefaudit.kernels import large_strings

    return large_strings(texts)


def _at(texts: pa.Array | list[str], rows) -> list[str]:
    """The texts at ``rows`` as Python strings, of an Arrow array or a list."""
    if isinstance(texts, pa.Array):
        return texts.take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()
    return [texts[i] for i in rows]


def _least_covered(reference, nearest, index, distinct) -> list[dict[str, Any]]:
    """The 20 reference prompts farthest from any training prompt, each with its nearest."""
    order = np.argsort(nearest, kind="stable")[:20]
    return [
        {
            "reference_prompt": reference[i][:_SNIPPET],
            "nearest_similarity": float(nearest[i]),
            "nearest_training_prompt": _at(distinct, [index[i]])[0][:_SNIPPET]
            if len(distinct)
            else None,
        }
        for i in order
    ]


def _nearest(queries: np.ndarray, corpus: np.ndarray, block: int = 2048):
    """For each query, the highest cosine similarity to the corpus and where it is (blocked)."""
    best = np.full(len(queries), -1.0)
    where = np.zeros(len(queries), dtype=np.int64)
    if not len(corpus):
        return best, where
    corpus = np.ascontiguousarray(corpus, dtype=np.float32)
    for start in range(0, len(queries), block):
        part = np.asarray(queries[start : start + block], dtype=np.float32)
        for cs in range(0, len(corpus), block):
            tile = part @ corpus[cs : cs + block].T
            arg = tile.argmax(axis=1)
            value = tile[np.arange(len(part)), arg]
            better = value > best[start : start + len(part)]
            best[start : start + len(part)][better] = value[better]
            where[start : start + len(part)][better] = arg[better] + cs
    return np.minimum(best, 1.0), where


def _name_clusters(
    texts: pa.Array | list[str], labels: np.ndarray, k: int, top: int = 4, seed: int = 0
) -> list[str]:
    """Each cluster's most distinctive words by class-based TF-IDF (c-TF-IDF, as BERTopic):
    a word's frequency in the cluster times log(1 + average words per cluster / its frequency
    over all clusters). Large sets are named from a seeded sample of 20,000 prompts, each cut
    to 2,000 characters."""
    from prefaudit.words import word_counts

    if not k:
        return []
    if len(texts) > _NAMING_SAMPLE:
        keep = np.sort(
            np.random.default_rng(seed).choice(len(texts), _NAMING_SAMPLE, replace=False)
        )
        texts, labels = _at(texts, keep), labels[keep]
    texts = [t[:2000] for t in _at(texts, range(len(texts)))]  # as Python strings
    try:
        # CountVectorizer(stop_words="english", ngram_range=(1, 2))'s counts and vocabulary.
        counts, columns = word_counts(texts, stop_words="english", bigrams=True)
    except ValueError:
        return [f"cluster {c}" for c in range(k)]
    from scipy.sparse import csr_matrix

    membership = csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(k, len(labels))
    )
    per_class = np.asarray((membership @ counts).todense(), dtype=float)
    words_per_class = per_class.sum(axis=1, keepdims=True)
    tf = per_class / np.where(words_per_class > 0, words_per_class, 1)
    idf = np.log1p(words_per_class.mean() / np.maximum(per_class.sum(axis=0), 1))
    scores = tf * idf
    vocabulary = sorted(columns, key=columns.__getitem__)
    names = []
    for c in range(k):
        best = np.argsort(-scores[c], kind="stable")
        words: list[str] = []
        for j in best:
            if scores[c, j] <= 0 or len(words) == top:
                break
            if not any(vocabulary[j] in w or w in vocabulary[j] for w in words):
                words.append(str(vocabulary[j]))
        names.append(", ".join(words) or f"cluster {c}")
    return names


def _representatives(vectors, labels, k, texts) -> list[str]:
    """The prompt closest to each cluster's centre."""
    out = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        centre = vectors[members].mean(axis=0)
        out.append(_at(texts, [members[int(np.argmax(vectors[members] @ centre))]])[0])
    return out


def _balance(counts: np.ndarray) -> dict[str, Any]:
    total = counts.sum()
    if not total:
        keys = ("effective_clusters", "entropy", "normalized_entropy")
        return {
            **dict.fromkeys(keys),
            "largest_cluster_share": None,
            "smallest_cluster_share": None,
        }
    shares = counts[counts > 0] / total
    entropy = float(-(shares * np.log(shares)).sum())
    return {
        "entropy": entropy,
        "normalized_entropy": entropy / math.log(len(counts)) if len(counts) > 1 else 1.0,
        "effective_clusters": math.exp(entropy),
        "largest_cluster_share": float(shares.max()),
        "smallest_cluster_share": float(counts.min() / total),
    }


def _problem_rates(context, pair_labels: np.ndarray, cluster: int) -> dict[str, float]:
    """The share of the cluster's pairs each other validator flagged."""
    members = pair_labels == cluster
    rates = {}
    for name, result in context.results.items():
        if name == "coverage" or not members.any():
            continue
        rates[f"{name}_issue_rate"] = float(
            result.flags["issue"].to_numpy(dtype=bool)[members].mean()
        )
    return rates


def _turns(pairs: pd.DataFrame) -> np.ndarray:
    """User turns per prompt: from prompt_messages when present, else 1."""
    if "prompt_messages" not in pairs.columns:
        return np.ones(len(pairs), dtype=np.int64)
    return np.array(
        [
            sum(1 for m in turns if isinstance(m, dict) and m.get("role") == "user") or 1
            if isinstance(turns, (list, tuple, np.ndarray))
            else 1
            for turns in pairs["prompt_messages"]
        ],
        dtype=np.int64,
    )


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    qs = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
    return {f"p{int(q * 100)}": float(v) for q, v in zip(qs, np.quantile(values, qs), strict=True)}


def _languages(distinct: pa.Array, seed: int):
    """(share per ISO 639-1 code, sample size) on a seeded sample of the ``distinct`` prompts,
    or None without lingua."""
    try:
        from lingua import LanguageDetectorBuilder
    except ImportError:
        return None
    free = len(distinct) >= _LANGUAGE_MODELS_FREED_FROM
    texts = _language_sample(distinct, seed)
    detector = (
        LanguageDetectorBuilder.from_all_languages().with_minimum_relative_distance(0.1).build()
    )
    try:
        found = detector.detect_languages_in_parallel_of([t[:1000] for t in texts])
    finally:
        unload = getattr(detector, "unload_language_models", None)  # any lingua 2.x: guarded
        if free and unload is not None:
            unload()
    codes = pd.Series([f.iso_code_639_1.name.lower() if f else "unknown" for f in found])
    shares = codes.value_counts(normalize=True)
    return {str(k): float(v) for k, v in shares.items()}, len(texts)


def _language_sample(distinct: pa.Array, seed: int) -> list[str]:
    """The distinct prompts whose language is detected: all up to ``_LANGUAGE_SAMPLE``, else
    the seeded sample pandas' ``Series.sample`` takes of them (its positions depend only on
    how many there are), read as Python strings alone."""
    rows = np.arange(len(distinct))
    if len(rows) > _LANGUAGE_SAMPLE:
        rows = pd.Series(rows).sample(_LANGUAGE_SAMPLE, random_state=seed).to_numpy()
    return _at(distinct, rows)


def _map(vectors: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, Any]:
    """A 2-D PCA projection of (a sample of) the prompts, for the report."""
    from sklearn.decomposition import PCA

    if len(vectors) < 3 or vectors.shape[1] < 2:  # no plane to draw them in
        return {"x": [], "y": [], "cluster": [], "index": []}
    rng = np.random.default_rng(seed)
    index = np.arange(len(vectors))
    if len(index) > _MAP_POINTS:
        index = np.sort(rng.choice(len(index), _MAP_POINTS, replace=False))
    points = PCA(2, random_state=seed).fit_transform(vectors[index])
    return {
        "method": "pca",
        "x": np.round(points[:, 0], 4).tolist(),
        "y": np.round(points[:, 1], 4).tolist(),
        "cluster": labels[index].astype(int).tolist(),
        "index": index.tolist(),  # position among the distinct prompts
    }


def _crosstab(source: pd.Series, labels: np.ndarray, names: list[str]) -> dict[str, dict[str, int]]:
    table = pd.crosstab(source.fillna("(none)").astype(str).to_numpy(), labels)
    return {
        names[int(c)]: {str(s): int(table.at[s, c]) for s in table.index if table.at[s, c]}
        for c in table.columns
    }
