"""TRL's DPOTrainer trains on cleaned.jsonl's ref_chosen_logps / ref_rejected_logps without a
reference forward, and they are TRL's own values; where TRL would compute other values (or the
audit scored only a sample) the columns are left out and the manifest and console say why.
TRL is a test-only dependency; the model is a tiny Llama built in code."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
trl = pytest.importorskip("trl")

import prefaudit  # noqa: E402
from prefaudit.cli import main  # noqa: E402
from prefaudit.models.loading import load_causal_lm  # noqa: E402
from prefaudit.outputs import read_audit, read_jsonl  # noqa: E402
from prefaudit.training.trl import DPOTrainerWithRefLogps  # noqa: E402
from tests.helpers import save_tiny_model  # noqa: E402

README = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")


# Responses start with a space (a clean token boundary for the word-level tokenizer). Pair c's
# raters prefer its rejected response: cleaning flips it, so its two values must swap too.
PAIRS = [
    {
        "pair_id": "a",
        "prompt": "what is two plus two",
        "chosen": " it is four",
        "rejected": " five",
    },
    {"pair_id": "b", "prompt": "say hi to me please", "chosen": " hi", "rejected": " no thanks"},
    {"pair_id": "c", "prompt": "name a colour", "chosen": " seven", "rejected": " blue is one"},
    {"pair_id": "d", "prompt": "name a number", "chosen": " seven", "rejected": " blue"},
]
# A chat template whose assistant turn is the generation prompt + the response + EOS (as TRL
# needs), and one that ends the turn with more than EOS (as ChatML's "<|im_end|>\n" does).
ENDS_WITH_EOS = (
    "{% for m in messages %}{{ '< ' + m['role'] + ' >' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ '[EOS]' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '< assistant >' }}{% endif %}"
)
ENDS_WITH_MORE = ENDS_WITH_EOS.replace("'[EOS]'", "'[EOS] ; '")


def _audit_and_clean(tmp_path, *, chat: bool, template=None, **options):
    """The pairs (as chat turns with ``chat``) audited under a tiny model saved in a folder and
    cleaned with the raters' flip; returns the output folder and the model folder."""
    records = [
        {
            **p,
            "prompt": [{"role": "user", "content": p["prompt"]}] if chat else p["prompt"],
            "chosen": [{"role": "assistant", "content": p["chosen"]}] if chat else p["chosen"],
            "rejected": [{"role": "assistant", "content": p["rejected"]}]
            if chat
            else p["rejected"],
        }
        for p in PAIRS
    ]
    words = " ".join(" ".join(p.values()) for p in PAIRS).split() + ["<", ">", "user", ";"]
    model = save_tiny_model(tmp_path / "model", words, chat_template=template)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"pair_id": p["pair_id"], "annotator": f"r{k}", "label": label}) + "\n"
            for p in PAIRS
            for k in range(3)
            for label in ["rejected" if p["pair_id"] == "c" else "chosen"]
        )
    )
    out = tmp_path / "out"
    prefaudit.clean(
        data,
        {"reorient_by_raters": True},
        out=out,
        annotations=labels,
        validators=["reference", "agreement"],
        reference_model=str(model),
        embedding_model="off",
        report=False,
        **options,
    )
    return out, model


def _trainer(tmp_path, model_folder, dataset, counts: list[bool]):
    """The README's trainer (prefaudit.training.trl's) on ``dataset``: two steps of two pairs on the CPU. Every forward
    of the model is noted in ``counts``: without gradients (a reference forward: TRL computes
    reference log-probs under no_grad) or with (a training step)."""
    model, tokenizer = load_causal_lm(model_folder)
    model.register_forward_pre_hook(lambda module, args: counts.append(torch_grad_enabled()))
    args = trl.DPOConfig(
        output_dir=str(tmp_path / "trl"),
        precompute_ref_log_probs=True,
        max_length=None,  # TRL's truncation (default 1024 tokens) would change the log-probs
        per_device_train_batch_size=2,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,  # TRL would otherwise autocast to bf16 on a CPU that supports it
        fp16=False,
    )
    return DPOTrainerWithRefLogps(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer
    )


def torch_grad_enabled() -> bool:
    import torch

    return torch.is_grad_enabled()


@pytest.mark.models
@pytest.mark.parametrize("chat, file", [(False, "jsonl"), (True, "parquet")], ids=["plain", "chat"])
def test_trl_trains_on_the_cleaned_pairs_without_a_reference_forward(tmp_path, chat, file):
    from datasets import load_dataset

    template = ENDS_WITH_EOS if chat else None
    out, model = _audit_and_clean(tmp_path, chat=chat, template=template, parquet=True)
    rows = read_jsonl(out / "cleaned.jsonl")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ref_logps"]["written"] and manifest["ref_logps"]["model"] == str(model)
    assert [r["pair_id"] for r in rows] == ["a", "b", "c", "d"]
    assert rows[2]["chosen"] == (
        [{"role": "assistant", "content": " blue is one"}] if chat else " blue is one"
    )
    pairs = load_dataset(
        "json" if file == "jsonl" else "parquet",
        data_files=str(out / f"cleaned.{file}"),
        split="train",
        cache_dir=str(tmp_path / "datasets"),
    )

    # The control: without the columns TRL runs the reference model over every pair, and what
    # it computes is what cleaned.jsonl carries (the flipped pair c included).
    counts: list[bool] = []
    bare = pairs.remove_columns(["ref_chosen_logps", "ref_rejected_logps"])
    computed = _trainer(tmp_path, model, bare, counts).train_dataset
    assert counts.count(False) == 2  # 4 pairs, 2 a batch
    for column in ("ref_chosen_logps", "ref_rejected_logps"):
        assert np.allclose(computed[column], [r[column] for r in rows], atol=1e-4), column

    counts.clear()
    trainer = _trainer(tmp_path, model, pairs, counts)
    trainer.train()
    assert counts.count(False) == 0  # no reference forward
    assert counts.count(True) == 2  # one per training step
    first = trainer.state.log_history[0]
    # At step 1 the policy is the reference: with its own log-probs, every reward is 0.
    assert first["step"] == 1 and abs(first["rewards/margins"]) < 1e-4
    assert first["loss"] == pytest.approx(np.log(2), abs=1e-4)


@pytest.mark.models
def test_the_readme_trains_with_the_trainer_the_test_trains_with():
    assert "from prefaudit.training.trl import DPOTrainerWithRefLogps" in README


@pytest.mark.models
def test_a_sample_leaves_the_columns_out_and_the_manifest_and_console_say_why(tmp_path, capsys):
    words = " ".join(" ".join(p.values()) for p in PAIRS).split()
    model = save_tiny_model(tmp_path / "model", words)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    policy = tmp_path / "policy.yaml"
    policy.write_text("clean:\n  dedupe: false\n")
    out = tmp_path / "out"
    args = ["clean", str(data), "--policy", str(policy), "--out", str(out), "--no-report"]
    args += ["--validators", "reference", "--ref-model", str(model), "--ref-sample", "2"]
    assert main([*args, "--parquet"]) == 0
    reason = "2 of the 4 cleaned pairs were not scored (--ref-sample 2)"
    assert f"ref log-probs not written: {reason}" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ref_logps"] == {"written": False, "reason": reason}
    rows = read_jsonl(out / "cleaned.jsonl")
    assert len(rows) == 4 and not any("ref_chosen_logps" in r for r in rows)
    assert pd.read_parquet(out / "cleaned.parquet").to_dict("records") == rows
    # Scored in full, the columns are there; a clean without --parquet removes the old parquet.
    assert main([*args[:-2], "--ref-sample", "4"]) == 0
    assert "ref log-probs written (ref_chosen_logps" in capsys.readouterr().out
    assert all("ref_chosen_logps" in r for r in read_jsonl(out / "cleaned.jsonl"))
    assert not (out / "cleaned.parquet").exists()


@pytest.mark.models
def test_a_chat_template_that_ends_the_turn_with_more_than_eos_leaves_the_columns_out(tmp_path):
    """TRL scores the template's end of turn after the response; the audit scored the response
    and EOS: the two differ, so nothing is written."""
    from datasets import Dataset

    out, model = _audit_and_clean(tmp_path, chat=True, template=ENDS_WITH_MORE)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["ref_logps"]["written"]
    assert manifest["ref_logps"]["reason"].startswith(
        "4 of the 4 cleaned pairs were laid out otherwise by TRL (a chat template"
    )
    rows = read_jsonl(out / "cleaned.jsonl")
    assert not any("ref_chosen_logps" in r for r in rows)
    computed = _trainer(tmp_path, model, Dataset.from_list(rows), []).train_dataset
    audited = read_audit(out).validators["reference"].flags
    # Each pair as cleaning left it (c flipped), as TRL scored it.
    ours = np.where(
        [r["pair_id"] == "c" for r in rows],
        audited["rejected_logps"].to_numpy(),
        audited["chosen_logps"].to_numpy(),
    )
    assert np.abs(np.array(computed["ref_chosen_logps"]) - ours).min() > 1e-3  # they would be wrong
