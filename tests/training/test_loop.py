"""The training loop on tiny models: it learns, accumulation is exact, weights count,
the audit's reference log-probs are reused, and a killed run resumes to the same result."""

import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import orjson
import pytest

torch = pytest.importorskip("torch")

from prefaudit.training import TrainConfig, train  # noqa: E402
from tests.helpers import preference_task, task_model  # noqa: E402

# On the CPU in float32 even on a GPU machine: these tests compare weights exactly (the GPU
# path, bf16, is tests/training/test_cuda.py's).
QUICK = dict(eval_every=0, save_every=0, warmup_ratio=0.0, log_every=1, device="cpu")


def _weights(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model" / "model.safetensors"))


def _same_weights(a: dict, b: dict, atol: float = 1e-6) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol) for k in a)


def test_learns_a_preference_task_and_writes_trl_metrics(tmp_path):
    folder = task_model(tmp_path / "tiny")
    held = preference_task(100, seed=1, prefix="e")
    config = TrainConfig(
        model=str(folder), learning_rate=1e-3, batch_size=16, max_steps=20, eval_max_pairs=0
    )
    result = train(preference_task(300), config, tmp_path / "run", eval_pairs=held)
    assert result.eval_metrics["rewards/accuracies"] > 0.9
    assert result.eval_metrics["loss"] < 0.6  # below log 2, where it starts
    lines = [orjson.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_bytes().split()]
    evals = [x for x in lines if x["split"] == "eval"]
    assert [x["step"] for x in evals] == [20]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "loss"):
        assert key in evals[0] and np.isfinite(evals[0][key])
    assert {x["split"] for x in lines} == {"train", "eval"}
    summary = orjson.loads((tmp_path / "run" / "summary.json").read_bytes())
    assert summary["train_pairs"] == 300 and summary["eval_pairs"] == 100
    assert summary["reference_logps"]["train"] == {"audit": 0, "computed": 300}
    # The saved model is a plain from_pretrained folder.
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model") is not None


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    folder = task_model(tmp_path / "tiny")
    pairs, runs = preference_task(32), []
    for batch, accumulate in ((8, 1), (4, 2)):
        config = TrainConfig(
            model=str(folder),
            learning_rate=1e-3,
            batch_size=batch,
            grad_accumulation=accumulate,
            max_steps=3,
            group_by_length=False,  # then batches of 4 are the halves of batches of 8
            eval_fraction=0.0,
            **QUICK,
        )
        train(pairs, config, tmp_path / f"run{batch}")
        runs.append(_weights(tmp_path / f"run{batch}"))
    assert _same_weights(*runs, atol=1e-5)


def test_gradient_checkpointing_trains_to_the_same_weights(tmp_path, monkeypatch):
    """With checkpointing, each layer runs again in the backward pass (counted), and the
    weights come out the same."""
    from transformers.models.llama import modeling_llama

    calls = []  # the MLP inside each layer: the layer's own forward is what checkpointing wraps
    forward = modeling_llama.LlamaMLP.forward
    monkeypatch.setattr(
        modeling_llama.LlamaMLP, "forward", lambda self, x: calls.append(1) or forward(self, x)
    )
    folder = task_model(tmp_path / "tiny")
    pairs, runs, layer_calls = preference_task(16), [], []
    for checkpointing in (False, True):
        config = TrainConfig(
            model=str(folder),
            learning_rate=1e-3,
            batch_size=8,
            max_steps=2,
            eval_fraction=0.0,
            gradient_checkpointing=checkpointing,
            **QUICK,
        )
        calls.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(pairs, config, tmp_path / f"run{checkpointing}")
        runs.append(_weights(tmp_path / f"run{checkpointing}"))
        layer_calls.append(len(calls))
    # 2 steps x 2 layers run again in the backward pass (the reference pass has no backward).
    assert layer_calls[1] == layer_calls[0] + 4
    # Turned on by the name this transformers keeps (it deprecates the old one).
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []
    assert _same_weights(*runs, atol=1e-5)


def test_zero_weights_leave_the_model_unchanged(tmp_path):
    folder = task_model(tmp_path / "tiny")
    pairs = preference_task(16).assign(weight=0.0)
    config = TrainConfig(model=str(folder), learning_rate=1e-2, max_steps=2, **QUICK)
    train(pairs, config, tmp_path / "zero", eval_pairs=pairs.iloc[:0])
    from safetensors.torch import load_file

    assert _same_weights(_weights(tmp_path / "zero"), load_file(str(folder / "model.safetensors")))
    unweighted = TrainConfig(**{**config.to_dict(), "use_weights": False})
    train(pairs, unweighted, tmp_path / "used", eval_pairs=pairs.iloc[:0])
    assert not _same_weights(_weights(tmp_path / "used"), _weights(tmp_path / "zero"))


def test_loss_is_trls_plain_mean_and_the_weighted_one_has_its_own_name(tmp_path):
    """Held-out pairs carrying cleaning weights: "loss" used to be the weighted mean (0.5243
    reported where the TRL-comparable loss was 0.681)."""
    folder = task_model(tmp_path / "tiny")
    pairs = preference_task(8).assign(weight=0.25)
    config = TrainConfig(model=str(folder), max_steps=1, batch_size=4, **QUICK)
    result = train(pairs, config, tmp_path / "run", eval_pairs=pairs)
    metrics = result.eval_metrics
    assert metrics["loss"] == pytest.approx(np.log(2), abs=0.05)  # one tiny step from the start
    assert metrics["loss/weighted"] == pytest.approx(0.25 * metrics["loss"], rel=1e-6)
    assert metrics["loss/sigmoid"] == pytest.approx(metrics["loss"], rel=1e-6)  # sigmoid is DPO's
    assert result.summary["pairs_seen"] == 4 and result.summary["train_pairs"] == 8
    # Trained with another loss, "loss" is that loss; "loss/sigmoid" stays plain DPO's, the
    # same figure for the same model whatever trained it.
    moved = {**config.to_dict(), "learning_rate": 1e-2, "max_steps": 4}
    runs = {
        loss: train(
            pairs,
            TrainConfig(**{**moved, "loss": loss, "label_smoothing": 0.2}),
            tmp_path / loss,
            eval_pairs=pairs,
        ).eval_metrics
        for loss in ("robust", "cdpo")
    }
    for other in runs.values():
        assert other["loss/sigmoid"] < np.log(2) - 0.05  # the policy moved
        assert other["loss"] != pytest.approx(other["loss/sigmoid"], abs=0.01)


def test_a_large_held_out_set_is_evaluated_on_a_stable_bounded_sample(tmp_path, capsys):
    """3,000 real pairs held out 300 and scored every one's reference log-probs before 4
    steps (over an hour on a CPU): evaluation now takes a stable sample of eval_max_pairs."""
    from prefaudit.console import print_training

    folder = task_model(tmp_path / "tiny")
    held = preference_task(40, seed=1, prefix="e")
    config = TrainConfig(model=str(folder), max_steps=1, batch_size=4, eval_max_pairs=16, **QUICK)
    first = train(preference_task(8), config, tmp_path / "a", eval_pairs=held)
    second = train(preference_task(8, seed=3), config, tmp_path / "b", eval_pairs=held)
    assert (first.summary["eval_pairs"], first.summary["eval_pairs_available"]) == (16, 40)
    assert first.summary["reference_logps"]["eval"]["computed"] == 16  # only those scored
    # The same 16 held-out pairs for both runs (trained on other pairs, one step at 1e-6: the
    # models barely differ, so their log-probs of the same pairs agree).
    assert first.eval_metrics["logps/chosen"] == pytest.approx(
        second.eval_metrics["logps/chosen"], rel=1e-4
    )
    first.loads = []
    print_training(first)
    shown = capsys.readouterr().out
    assert "held-out (16 of 40 pairs): loss " in shown and "accuracy 95% CI [" in shown
    # Left to decide: 16 on a CPU (about 0.6 s a pair and pass on 135M-class models: the
    # tour's step 5 on 3,000 AlpacaEval pairs took 100-117 s with 32), 200 on a GPU.
    default = TrainConfig(model=str(folder), max_steps=1, batch_size=4, **QUICK)
    assert default.eval_max_pairs is None and default.eval_limit("cuda:0") == 200
    third = train(preference_task(8), default, tmp_path / "c", eval_pairs=held)
    assert (third.summary["eval_pairs"], third.summary["eval_pairs_available"]) == (16, 40)


def test_reuses_the_audits_reference_logps_also_for_flipped_pairs(tmp_path):
    from prefaudit.auditing import run_audit
    from prefaudit.io import load
    from prefaudit.models.logps_file import write_reference_logps

    folder = task_model(tmp_path / "tiny")
    source = preference_task(24).drop(columns="flipped")
    path = tmp_path / "pairs.jsonl"
    source.to_json(path, orient="records", lines=True)
    data = load(str(path))
    audit = run_audit(data, validators=["reference"], params={"reference": {"model": str(folder)}})
    reference = audit.validators["reference"]
    write_reference_logps(
        tmp_path / "reference_logps.parquet",
        reference.flags,
        data.pairs,
        reference.info.get("model_identity"),
    )
    cleaned = data.pairs.copy()
    swap = cleaned.index[:5]  # as cleaning flips them
    cleaned.loc[swap, ["chosen", "rejected"]] = cleaned.loc[swap, ["rejected", "chosen"]].values
    # Where the audit scored (a GPU, in bf16, when there is one): the log-probs are reused only
    # under the same model and dtype.
    config = TrainConfig(
        model=str(folder), max_steps=1, eval_fraction=0.0, **{**QUICK, "device": None}
    )
    reused = train(
        cleaned, config, tmp_path / "a", reference_logps=tmp_path / "reference_logps.parquet"
    )
    assert reused.summary["reference_logps"]["train"] == {"audit": 24, "computed": 0}
    fresh = train(cleaned, config, tmp_path / "b")
    # One step of 8: only the pairs it trains on are scored.
    assert fresh.summary["reference_logps"]["train"] == {
        "audit": 0,
        "computed": 8,
        "not_needed": 16,
    }
    assert _same_weights(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    # Scored under another model: nothing is reused.
    other = TrainConfig(**{**config.to_dict(), "model": str(task_model(tmp_path / "other"))})
    again = train(
        cleaned, other, tmp_path / "c", reference_logps=tmp_path / "reference_logps.parquet"
    )
    assert again.summary["reference_logps"]["train"]["audit"] == 0


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    folder = task_model(tmp_path / "tiny")
    path = tmp_path / "pairs.jsonl"
    preference_task(96).drop(columns="flipped").to_json(path, orient="records", lines=True)
    flags = ["--model", str(folder), "--max-steps", "120", "--batch-size", "8", "--device", "cpu"]
    flags += ["--learning-rate", "1e-3", "--save-every", "10", "--eval-every", "40"]
    flags += ["--log-every", "4"]  # not a divisor of --save-every: a window spans the kill
    from prefaudit.cli import main

    assert main(["train", str(path), *flags, "--out", str(tmp_path / "whole")]) == 0

    kill_after = int(np.random.default_rng().integers(2, 8)) * 10  # a random checkpoint
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "prefaudit", "train", str(path), *flags]
    process = subprocess.Popen(
        [*command, "--out", str(tmp_path / "killed")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while not (checkpoints / f"step-{kill_after:07d}").exists():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    time.sleep(float(np.random.default_rng().uniform(0, 0.05)))  # somewhere in the next steps
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "model").exists()

    resumed = main(["train", str(path), *flags, "--out", str(tmp_path / "killed"), "--resume"])
    assert resumed == 0
    assert _same_weights(_weights(tmp_path / "whole"), _weights(tmp_path / "killed"))
    metrics = [
        orjson.loads(x) for x in (tmp_path / "killed" / "metrics.jsonl").read_bytes().split()
    ]
    whole = [orjson.loads(x) for x in (tmp_path / "whole" / "metrics.jsonl").read_bytes().split()]
    assert [(m["step"], m["split"]) for m in metrics] == [(m["step"], m["split"]) for m in whole]
    for resumed_line, whole_line in zip(metrics, whole, strict=True):  # every line, not the last
        assert resumed_line.get("tokens") == whole_line.get("tokens")
        assert resumed_line["loss"] == pytest.approx(whole_line["loss"], abs=1e-6)


def test_resume_refuses_other_settings(tmp_path):
    folder = task_model(tmp_path / "tiny")
    config = TrainConfig(model=str(folder), max_steps=4, save_every=2, eval_every=0)
    train(preference_task(16), config, tmp_path / "run")
    changed = TrainConfig(**{**config.to_dict(), "learning_rate": 1.0})
    with pytest.raises(ValueError, match="learning_rate"):
        train(preference_task(16), changed, tmp_path / "run", resume=True)


class _Payload:
    """What a crafted checkpoint would carry: unpickling it runs code (writes a file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_resume_never_unpickles_a_crafted_checkpoint(tmp_path):
    import torch

    folder = task_model(tmp_path / "tiny")
    config = TrainConfig(model=str(folder), max_steps=4, save_every=2, eval_every=0)
    step = tmp_path / "run" / "checkpoints" / "step-0000002"
    step.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"step": 2, "payload": _Payload(marker)}, step / "state.pt")
    with pytest.raises(ValueError, match="cannot be read as a checkpoint"):
        train(preference_task(16), config, tmp_path / "run", resume=True)
    assert not marker.exists()


def test_the_saved_model_is_swapped_in_whole(tmp_path, monkeypatch):
    """A second run replaces model/ in one step: no moment without a model (issue 21)."""
    import prefaudit.fileio as fileio

    folder = task_model(tmp_path / "tiny")
    config = TrainConfig(model=str(folder), max_steps=1, eval_every=0)
    train(preference_task(8), config, tmp_path / "run")
    seen = []
    exchange = fileio._exchange

    def spy(a, b):
        seen.append(sorted(p.name for p in b.iterdir()))  # the old model is still whole here
        return exchange(a, b)

    monkeypatch.setattr(fileio, "_exchange", spy)
    train(preference_task(8), config, tmp_path / "run")
    assert seen and "config.json" in seen[0]
    assert (tmp_path / "run" / "model" / "config.json").exists()
    assert not list((tmp_path / "run").glob(".model*"))


def test_config_file_errors_name_the_file_and_setting(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("beta: 0.2\nlearnin_rate: 1e-3\n")
    with pytest.raises(ValueError, match="train.yaml: unknown setting.*learnin_rate"):
        TrainConfig.from_yaml(path)
    path.write_text("beta: 0.2\nloss: dpo\n")
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig.from_yaml(path)
    path.write_text("beta: 0.2\nbatch_size: 4\n")
    assert TrainConfig.from_yaml(path, batch_size=2).batch_size == 2  # flags win
    assert TrainConfig.from_yaml(path).beta == 0.2


def test_lora_trains_adapters_and_saves_a_merged_model(tmp_path):
    pytest.importorskip("peft")
    folder = task_model(tmp_path / "tiny")
    config = TrainConfig(
        model=str(folder), lora_r=4, learning_rate=1e-2, max_steps=10, batch_size=16, **QUICK
    )
    held = preference_task(50, seed=1, prefix="e")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(preference_task(200), config, tmp_path / "run", eval_pairs=held)
    assert result.eval_metrics["rewards/margins"] > 0
    # Neither peft's read of a deprecated property nor our own deprecated keywords warn.
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []
    from safetensors.torch import load_file

    merged, base = _weights(tmp_path / "run"), load_file(str(folder / "model.safetensors"))
    assert merged.keys() == base.keys()  # a plain model, adapters merged in
    assert not _same_weights(merged, base)


def test_packed_flex_rows_train_to_the_dense_paths_weights(tmp_path, monkeypatch):
    """The loop on the packed FlexAttention path (several pairs a row; the kernel replaced by
    SDPA over the block mask's rule, as the CPU has no FlexAttention backward) ends at the
    dense path's weights, and summary.json says which path ran."""
    from prefaudit.models import flex
    from tests.helpers import dense_flex_kernel

    folder = task_model(tmp_path / "tiny")
    pairs, runs = preference_task(24), {}
    monkeypatch.setattr(flex, "kernel", dense_flex_kernel)
    monkeypatch.setattr(flex, "ROW_TOKENS", 64)  # a micro-batch of 8 pairs in several rows
    for mode in ("dense", "flex-eager"):
        monkeypatch.setenv("PREFAUDIT_ATTENTION", mode)
        config = TrainConfig(
            model=str(folder),
            learning_rate=1e-3,
            batch_size=8,
            max_steps=3,
            eval_fraction=0.0,
            **QUICK,
        )
        result = train(pairs, config, tmp_path / mode)
        assert result.summary["attention"] == mode
        runs[mode] = _weights(tmp_path / mode)
    assert _same_weights(runs["dense"], runs["flex-eager"], atol=1e-5)
