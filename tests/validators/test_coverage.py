import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from prefaudit.auditing import AuditContext, run_audit
from prefaudit.validators.coverage import CoverageValidator
from tests.helpers import WordEmbedder, pairs_frame

BREAD = [
    "how do I bake bread at home",
    "bread baking tips for a soft loaf",
    "why did my sourdough bread not rise",
    "bake bread without yeast",
]
CARS = [
    "my car engine makes a noise",
    "how do I change a car tyre",
    "car engine oil change interval",
    "why does my car engine overheat",
]


def _pairs(prompts, **columns):
    return pairs_frame([(p, "good answer", "bad answer") for p in prompts], **columns)


def _run(prompts, embedder=None, **params):
    params.setdefault("languages", False)
    context = AuditContext(_pairs(prompts, **params.pop("columns", {})), embedder=embedder)
    return CoverageValidator(**params).run(context)


@pytest.mark.parametrize("embedder", [None, WordEmbedder()], ids=["tfidf", "embeddings"])
def test_two_topics_form_two_clusters_with_the_right_members(embedder):
    result = _run(BREAD + CARS, embedder=embedder)
    assert result.metrics["coverage/clusters"] == 2
    assert result.flags["cluster"].tolist() == [0] * 4 + [1] * 4
    names = [c["name"] for c in result.info["clusters"]]
    assert "bread" in names[0] and "car" in names[1]
    assert result.metrics["coverage/representation"] == (
        "tfidf" if embedder is None else "embeddings"
    )
    assert result.info["k_selection"]["silhouettes"]["2"] > 0


@pytest.mark.parametrize("embedder", [None, WordEmbedder()], ids=["tfidf", "embeddings"])
@pytest.mark.parametrize("clusters", [None, 3])
def test_prompts_that_differ_only_by_case_or_punctuation_form_one_cluster(embedder, clusters):
    """Three prompts with one vector: k-means used to leave empty clusters (issue 21: the
    whole audit failed with "argmax of an empty sequence")."""
    result = _run(["Hi", "hi!", "HI."], embedder=embedder, clusters=clusters)
    assert result.metrics["coverage/clusters"] == 1
    assert result.flags["cluster"].tolist() == [0, 0, 0]


def test_same_input_and_seed_give_the_same_clusters():
    first = _run(BREAD + CARS + ["bread and cars"], seed=3)
    second = _run(BREAD + CARS + ["bread and cars"], seed=3)
    assert first.flags.equals(second.flags)
    assert first.info["map"] == second.info["map"]


def test_balance_figures():
    result = _run(BREAD + CARS[:2], embedder=WordEmbedder(), clusters=2)
    shares = np.array([4, 2]) / 6
    entropy = float(-(shares * np.log(shares)).sum())
    assert result.metrics["coverage/entropy"] == pytest.approx(entropy)
    assert result.metrics["coverage/effective_clusters"] == pytest.approx(math.exp(entropy))
    assert result.metrics["coverage/largest_cluster_share"] == pytest.approx(4 / 6)
    assert result.metrics["coverage/smallest_cluster_share"] == pytest.approx(2 / 6)
    assert result.info["smallest_clusters"][0]["pairs"] == 2


def test_a_reference_topic_absent_from_training_is_uncovered(tmp_path):
    reference = [
        "how do I bake bread at home quickly",
        "car engine noise when cold",
        "small claims court filing deadline",
        "power of attorney lawyer fees",
        "landlord deposit dispute in court",
    ]
    path = tmp_path / "reference.txt"
    path.write_text("\n".join(reference))
    embedder = WordEmbedder()
    result = _run(BREAD + CARS, embedder=embedder, reference=str(path), gap_threshold=0.3)
    # By hand: each reference prompt's best cosine against the training prompts.
    train = embedder.encode(BREAD + CARS)
    nearest = (embedder.encode(reference) @ train.T).max(axis=1)
    assert (nearest < 0.3).tolist() == [False, False, True, True, True]
    assert result.metrics["coverage/gap_rate"] == pytest.approx(3 / 5)
    assert result.metrics["coverage/reference_prompts"] == 5
    assert result.info["reference"]["gaps"] == [2, 3, 4]
    least = result.info["reference"]["least_covered"][0]
    assert least["reference_prompt"] in reference[2:]
    uncovered = result.info["reference"]["clusters"]
    assert any(t["gap_rate"] == 1.0 and "court" in " ".join(t["examples"]) for t in uncovered)
    assert result.metrics["coverage/uncovered_reference_clusters"] >= 1


def test_topics_show_where_other_checks_found_problems():
    prompts = BREAD + CARS
    pairs = _pairs(prompts)
    pairs.loc["p5", "rejected"] = "good answer"  # a degenerate pair among the car prompts
    result = run_audit(
        pairs,
        validators=["duplication", "coverage"],
        params={"coverage": {"languages": False}},
        embedder=None,
    )
    clusters = {c["cluster"]: c for c in result.validators["coverage"].info["clusters"]}
    assert clusters[0]["duplication_issue_rate"] == 0.0
    assert clusters[1]["duplication_issue_rate"] == pytest.approx(1 / 4)


def test_language_sample_is_pandas_sample_of_the_distinct_prompts():
    """The prompts whose language is detected are those the code before took: pandas'
    seeded sample of the prompts with repeats dropped (first ones kept)."""
    from prefaudit.validators.coverage import _LANGUAGE_SAMPLE, _language_sample

    prompts = pd.Series([f"prompt {i % 1500}" for i in range(2400)], dtype="str")
    _, uniques = pd.factorize(prompts)
    distinct = pa.array(uniques, type=pa.large_string())
    for seed in (0, 7):
        expected = prompts.drop_duplicates().sample(_LANGUAGE_SAMPLE, random_state=seed)
        assert _language_sample(distinct, seed) == expected.tolist()
    few = distinct.slice(0, 20)
    assert _language_sample(few, 0) == few.to_pylist()


def test_shape_turns_sources_and_languages():
    prompts = [
        "Comment faire du pain à la maison sans levure ?",
        "Quelle est la meilleure façon de cuire une baguette croustillante ?",
        "Pourquoi mon pain au levain ne lève-t-il pas correctement ?",
        "How do I bake bread at home without any yeast at all?",
    ]
    messages = [
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
        None,
        None,
        None,
    ]
    result = _run(
        prompts,
        languages=True,
        columns={"prompt_messages": messages, "source": ["fr", "fr", "fr", "en"]},
    )
    assert result.metrics["coverage/top_language"] == "fr"
    assert result.metrics["coverage/top_language_share"] == pytest.approx(0.75)
    assert result.metrics["coverage/languages"] == 2
    assert result.metrics["coverage/multi_turn_rate"] == pytest.approx(0.25)
    assert result.info["sources"] == {"fr": 3, "en": 1}
    assert result.info["turns"] == {"1": 3, "2": 1}


def test_tiny_inputs(tmp_path):
    assert _run([]).metrics["coverage/clusters"] == 0
    reference = tmp_path / "reference.txt"
    reference.write_text("anything at all\n")
    nothing = _run([], reference=str(reference))
    assert nothing.metrics["coverage/gap_rate"] == 1.0
    one = _run(["just one prompt"])
    assert one.metrics["coverage/clusters"] == 1
    assert one.flags["cluster"].tolist() == [0]


def test_prompts_without_words_still_cluster():
    """Emoji, punctuation and empty prompts give TF-IDF no words (issue 21's fuzzing: "empty
    vocabulary" failed the audit)."""
    result = _run(["🧪🧪", "?!", "", "🧪", "..."])
    assert result.metrics["coverage/clusters"] >= 1
    assert result.flags["cluster"].notna().all()


def test_tfidf_space_equals_scikit_learns_vectorizer_bit_for_bit(hh_file, alpaca_file):
    """The fallback space counts words with a compiled loop (words.word_counts): its vectors
    and its transform of other prompts are exactly those of TfidfVectorizer(stop_words=
    "english", sublinear_tf=True) followed by the same LSA."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from prefaudit.validators.coverage import _TfidfSpace
    from tests.helpers import real_texts

    texts = real_texts(hh_file, alpaca_file, 400, 300)
    prompts, reference = texts[:1500], texts[1500:]
    space = _TfidfSpace(prompts)
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    svd = TruncatedSVD(100, random_state=0)
    for found, dense in (
        (space.vectors, svd.fit_transform(vectorizer.fit_transform(prompts))),
        (space.transform(reference), svd.transform(vectorizer.transform(reference))),
    ):
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        expected = (dense / np.where(norms > 0, norms, 1)).astype(np.float32)
        assert np.array_equal(found, expected)


def test_past_the_lsa_budget_the_space_is_fitted_on_a_sample_and_topics_still_separate(
    monkeypatch,
):
    from sklearn.decomposition import TruncatedSVD

    from prefaudit.validators import coverage

    rng = np.random.default_rng(0)
    topics = [[f"{name}{i}" for i in range(80)] for name in ("bake", "engine", "garden", "tax")]
    shared = ["how", "do", "i", "best", "help", "today", "question", "please"]
    prompts = [
        " ".join([*rng.choice(topics[t], 6), *rng.choice(shared, 4)]) + f" {k}"
        for k in range(300)
        for t in range(4)
    ]
    fitted_rows = []
    fit = TruncatedSVD.fit

    def recorded(self, matrix, *args, **kwargs):
        fitted_rows.append(matrix.shape[0])
        return fit(self, matrix, *args, **kwargs)

    monkeypatch.setattr(TruncatedSVD, "fit", recorded)
    monkeypatch.setattr(coverage, "_LSA_FIT_ROWS", 400)
    whole = coverage._TfidfSpace(prompts).vectors  # projected in one block
    monkeypatch.setattr(coverage, "_LSA_BLOCK", 250)
    assert np.array_equal(coverage._TfidfSpace(prompts).vectors, whole)  # blocks change nothing
    fitted_rows.clear()
    result = _run(prompts, clusters=4)
    assert fitted_rows == [400]  # 400 of the 1,200 prompts
    assert result.info["lsa_fitted_prompts"] == 400
    labels = result.flags["cluster"].to_numpy()
    # every topic is one cluster, and no cluster holds two topics
    assert all(len(set(labels[t::4])) == 1 for t in range(4))
    assert len(set(labels)) == 4


@pytest.mark.parametrize("freed_from", [4, 5])
def test_lingua_models_are_given_back_only_for_large_prompt_sets(monkeypatch, freed_from):
    import lingua

    from prefaudit.validators import coverage

    unloaded = []
    detector = type(lingua.LanguageDetectorBuilder.from_all_languages().build())
    monkeypatch.setattr(detector, "unload_language_models", lambda self: unloaded.append(1))
    monkeypatch.setattr(coverage, "_LANGUAGE_MODELS_FREED_FROM", freed_from)
    result = _run([*BREAD[:2], *CARS[:2]], languages=True)  # 4 distinct prompts
    assert result.metrics["coverage/top_language"] == "en"
    assert unloaded == ([1] if freed_from <= 4 else [])
