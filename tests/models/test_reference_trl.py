"""The engine's log-probs against TRL's own reference precompute (TRL: a test-only dependency)."""

import numpy as np
import pytest

pytest.importorskip("torch")
trl = pytest.importorskip("trl")

from prefaudit.models.loading import load_causal_lm  # noqa: E402
from prefaudit.models.reference import ReferenceScorer  # noqa: E402
from tests.helpers import save_tiny_model  # noqa: E402

# Completions start with a space: TRL tokenises prompt + completion as one text and takes the
# completion from where it departs from the prompt's own tokens, so the two ways agree only on a
# clean token boundary (the engine reports pairs where they would not: boundary_mismatch).
PAIRS = [
    {"prompt": "what is two plus two", "chosen": " it is four", "rejected": " it is five or six"},
    {"prompt": "say hi to me please now", "chosen": " hi", "rejected": " no thanks"},
    {"prompt": "name a colour", "chosen": " blue is a colour", "rejected": " seven"},
]


def test_log_probs_equal_trl_dpo_reference_precompute(tmp_path):
    from datasets import Dataset

    words = " ".join(" ".join(p.values()) for p in PAIRS).split()
    folder = save_tiny_model(tmp_path / "tiny", words)
    model, tokenizer = load_causal_lm(folder)
    args = trl.DPOConfig(
        output_dir=str(tmp_path / "trl"),
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=2,
        per_device_train_batch_size=1,
        max_length=None,
        report_to=[],
        use_cpu=True,
        bf16=False,  # TRL would otherwise autocast to bf16 on a CPU that supports it
        fp16=False,
    )
    trainer = trl.DPOTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(PAIRS), processing_class=tokenizer
    )
    expected = trainer.train_dataset
    texts = (
        [p["prompt"] for p in PAIRS],
        [p["chosen"] for p in PAIRS],
        [p["rejected"] for p in PAIRS],
    )
    ours = ReferenceScorer(loaded=(model, tokenizer)).score(*texts)
    assert np.allclose(ours["chosen_logps"], expected["ref_chosen_logps"], atol=1e-4)
    assert np.allclose(ours["rejected_logps"], expected["ref_rejected_logps"], atol=1e-4)
    # The GPU path (length-grouped batches of pairs, two per batch here) agrees too.
    batched = ReferenceScorer(loaded=(model, tokenizer), batched=True, batch_tokens=40)
    assert len(batched._batches(*[np.array([5, 6, 3])] * 3)[1]) > 1
    again = batched.score(*texts)
    assert np.allclose(again["chosen_logps"], expected["ref_chosen_logps"], atol=1e-4)
    assert np.allclose(again["rejected_logps"], expected["ref_rejected_logps"], atol=1e-4)
    assert ours["chosen_tokens"].tolist() == [len(ids) for ids in expected["chosen_ids"]]
    assert ours["prompt_tokens"].tolist() == [len(ids) for ids in expected["prompt_ids"]]
    assert not ours["boundary_mismatch"].any()
    glued = ReferenceScorer(loaded=(model, tokenizer)).score(["say hi now"], ["hi"], ["no"])
    assert glued["boundary_mismatch"].tolist() == [True]  # "nowhi" is one unknown word


def test_pairs_trl_would_lay_out_in_other_text_are_flagged(tmp_path):
    """layout_mismatch: TRL renders a conversation's prompt + assistant turn with the chat
    template (it must be the generation prompt + response + EOS), and adds no EOS to a plain
    response that already ends with it."""
    from prefaudit.models.reference import render_prompts, trl_layout_mismatch

    turns = [{"role": "user", "content": "name a colour"}]
    ends_with_eos = (
        "{% for m in messages %}{{ '< ' + m['role'] + ' >' + m['content'] }}"
        "{% if m['role'] == 'assistant' %}{{ '[EOS]' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '< assistant >' }}{% endif %}"
    )
    cases = {
        ends_with_eos: [False, False],
        ends_with_eos.replace("'[EOS]'", "'[EOS] ; '"): [True, True],  # as ChatML's "\n"
        ends_with_eos.replace("m['content']", "m['content'] | trim"): [True, False],
        None: [True, True],  # turns TRL could not render
    }
    for number, (template, expected) in enumerate(cases.items()):
        folder = save_tiny_model(tmp_path / str(number), ["blue", "seven"], chat_template=template)
        _, tokenizer = load_causal_lm(folder)
        rendered = render_prompts(tokenizer, ["name a colour"], [turns])
        flags = trl_layout_mismatch(tokenizer, rendered, [[" blue", "seven"]], [turns])
        assert flags == [expected], template
    plain = render_prompts(tokenizer, ["name a colour"], [None])
    assert trl_layout_mismatch(tokenizer, plain, [[" blue", " seven[EOS]"]], [None]) == [
        [False, True]
    ]
