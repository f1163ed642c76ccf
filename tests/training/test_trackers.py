"""`--report-to`: TensorBoard, W&B (offline) and trackio get metrics.jsonl's lines, read back
with each library's own reader (TensorBoard's EventAccumulator, `wandb leet inspect`,
`trackio get`), also across a resume; none writes nothing; a missing package or an unknown
name is exit 2 before any work."""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import orjson
import pytest

pytest.importorskip("torch")

from prefaudit.cli import main  # noqa: E402
from prefaudit.training import TrainConfig, train  # noqa: E402
from prefaudit.training.trackers import tracker_names  # noqa: E402
from tests.helpers import preference_task, task_model  # noqa: E402

pytestmark = pytest.mark.models

# Four steps, a line each, an evaluation every second step, a checkpoint at step 2.
FLAGS = {
    "max_steps": 4,
    "batch_size": 4,
    "log_every": 1,
    "eval_every": 2,
    "save_every": 2,
    "eval_max_pairs": 0,
    "warmup_ratio": 0.0,
    "learning_rate": 1e-3,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return task_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    """A machine without W&B credentials or settings (whatever the one running the tests has)."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no.netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-settings"))


def _run(tiny, out, resume=False, **settings):
    config = TrainConfig(model=str(tiny), **{**FLAGS, **settings})
    held_out = preference_task(4, seed=1, prefix="e")
    return train(preference_task(24), config, out, eval_pairs=held_out, resume=resume)


def _lines(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "metrics.jsonl").read_bytes().splitlines()]


def _expected(out: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as a tracker should hold it: {"train/loss": [(step, value), ...]}."""
    series: dict[str, list[tuple[int, float]]] = {}
    for line in _lines(out):
        for key, value in line.items():
            if key not in ("step", "split"):
                series.setdefault(f"{line['split']}/{key}", []).append((line["step"], value))
    return series


def _assert_same(logged: dict, expected: dict, rel: float) -> None:
    """The same series: the same steps, in order, and the same values within ``rel``."""
    assert set(logged) == set(expected)
    for key, points in expected.items():
        assert [step for step, _ in logged[key]] == [step for step, _ in points], key
        values = [value for _, value in logged[key]]
        assert values == pytest.approx([v for _, v in points], rel=rel, nan_ok=True), key


def _write(frame, path) -> str:
    frame.drop(columns="flipped").to_json(path, orient="records", lines=True)
    return str(path)


def test_tensorboard_holds_the_metrics_lines_also_after_a_resume(tiny, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    _run(tiny, out, report_to="tensorboard")
    # From the checkpoint at step 2: steps 3 and 4 are logged again, into a second event file;
    # a reader shows each step once (purge_step), as metrics.jsonl holds it.
    resumed = _run(tiny, out, resume=True, report_to="tensorboard")
    assert resumed.summary["resumed_at"] == 2
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 2

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    expected = _expected(out)
    assert "eval/rewards/accuracies" in expected and "train/grad_norm" in expected
    logged = {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }
    _assert_same(logged, expected, rel=1e-6)  # TensorBoard keeps float32
    assert "config/text_summary" in events.Tags()["tensors"]  # the settings, as a table


def _wandb_records(run_dir: Path) -> list[dict]:
    """The records of an offline run's .wandb log, as W&B's own reader prints them."""
    done = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _wandb_history(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        if record["type"] == "history":
            item = record["history"]["item"]
            for key, value in item.items():
                if not key.startswith("_") and key != "train/global_step":
                    series.setdefault(key, []).append((item["train/global_step"], value))
    return series


def test_wandb_without_a_login_runs_offline_in_the_run_folder_and_resumes_the_same_run(
    tiny, tmp_path, no_wandb_login
):
    out = tmp_path / "run"
    run = _run(tiny, out, report_to="wandb", run_name="tiny")
    (first,) = (out / "wandb").glob("offline-run-*")
    assert str(first) in run.summary["trackers"]["wandb"]  # with the `wandb sync` to upload it
    records = _wandb_records(first)
    (started,) = [r["run"] for r in records if r["type"] == "run"]
    assert started["display_name"] == "tiny" and started["project"] == "prefaudit"
    assert started["config"]["update"]["beta"] == 0.1  # the settings as the run's config
    assert started["config"]["update"]["report_to"] == ["wandb"]
    _assert_same(_wandb_history(records), _expected(out), rel=1e-12)

    _run(tiny, out, resume=True, report_to="wandb", run_name="tiny")
    second = next(d for d in (out / "wandb").glob("offline-run-*") if d != first)
    records = _wandb_records(second)
    (resumed,) = [r["run"] for r in records if r["type"] == "run"]
    assert resumed["run_id"] == started["run_id"]  # the same W&B run, continued
    assert orjson.loads((out / "trackers.json").read_bytes())["wandb"] == started["run_id"]
    steps = sorted({step for points in _wandb_history(records).values() for step, _ in points})
    assert steps == [3, 4]  # after the checkpoint, on the step axis it shares with the first


def test_trackio_logs_the_metrics_lines_into_its_local_store(tiny, tmp_path):
    # trackio reads TRACKIO_DIR when it is imported: the run and the reader get their own
    # processes, both pointed at tmp_path.
    env = {
        **os.environ,
        "TRACKIO_DIR": str(tmp_path / "trackio"),
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    data = _write(preference_task(24), tmp_path / "pairs.jsonl")
    held_out = _write(preference_task(4, seed=1, prefix="e"), tmp_path / "eval.jsonl")
    out = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in FLAGS.items()]
    command = [sys.executable, "-m", "prefaudit", "train", data, "--model", str(tiny)]
    command += ["--out", str(out), "--eval-data", held_out, *flags]
    command += ["--report-to", "trackio", "--run-name", "tiny"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trackio show --project prefaudit" in done.stdout

    trackio = Path(sys.executable).parent / "trackio"
    read = [str(trackio), "get", "snapshot", "--project", "prefaudit", "--run", "tiny"]
    read += ["--around", "1", "--window", "1000", "--json"]  # every step
    snapshot = subprocess.run(read, env=env, capture_output=True, text=True, timeout=120)
    assert snapshot.returncode == 0, snapshot.stderr
    metrics = json.loads(snapshot.stdout)["metrics"]
    logged = {key: [(p["step"], p["value"]) for p in points] for key, points in metrics.items()}
    _assert_same(logged, _expected(out), rel=1e-12)


@pytest.mark.parametrize("flag", [[], ["--report-to", "none"]])
def test_none_the_default_writes_nothing_but_the_run(tiny, tmp_path, flag):
    data = _write(preference_task(12), tmp_path / "pairs.jsonl")
    out = tmp_path / "run"
    args = ["train", data, "--model", str(tiny), "--out", str(out), "--max-steps", "1"]
    assert main([*args, "--device", "cpu", *flag]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "model", "summary.json"]
    assert orjson.loads((out / "summary.json").read_bytes())["trackers"] == {}


@pytest.mark.parametrize("command", ["train", "clean-then-train"])
def test_a_missing_tracker_package_is_exit_2_naming_the_install_before_any_work(
    tiny, tmp_path, capsys, monkeypatch, command
):
    real = metadata.version

    def without_wandb(package):
        if package == "wandb":
            raise metadata.PackageNotFoundError(package)
        return real(package)

    monkeypatch.setattr(metadata, "version", without_wandb)
    data = _write(preference_task(12), tmp_path / "pairs.jsonl")
    policy = tmp_path / "policy.yaml"
    policy.write_text("clean:\n  drop: []\n")
    extra = ["--policy", str(policy)] if command == "clean-then-train" else []
    out = tmp_path / "run"
    args = [command, data, *extra, "--model", str(tiny), "--out", str(out)]
    assert main([*args, "--report-to", "tensorboard,wandb"]) == 2
    error = capsys.readouterr().err
    assert "report_to wandb: the wandb package is not installed: pip install" in error
    assert "prefaudit[trackers]" in error and "(option --report-to)" in error
    assert not out.exists()  # no audit, no model loaded


def test_an_unknown_tracker_is_exit_2(tiny, tmp_path, capsys):
    data = _write(preference_task(12), tmp_path / "pairs.jsonl")
    args = ["train", data, "--model", str(tiny), "--out", str(tmp_path / "run")]
    assert main([*args, "--report-to", "tensorbored"]) == 2
    assert "report_to must be tensorboard, wandb, trackio, all or none, got 'tensorbored'" in (
        capsys.readouterr().err
    )


def test_an_online_wandb_run_without_a_login_is_exit_2_saying_why(
    tiny, tmp_path, capsys, monkeypatch, no_wandb_login
):
    monkeypatch.setenv("WANDB_MODE", "online")  # asked for, but no key: W&B refuses at once
    data = _write(preference_task(12), tmp_path / "pairs.jsonl")
    args = ["train", data, "--model", str(tiny), "--out", str(tmp_path / "run")]
    assert main([*args, "--max-steps", "1", "--device", "cpu", "--report-to", "wandb"]) == 2
    error = capsys.readouterr().err
    assert "report_to wandb: could not start a run (UsageError: No API key configured" in error
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_report_to_reads_as_transformers_reads_it():
    assert TrainConfig().report_to == []  # "none", TRL's and transformers' default
    assert TrainConfig(report_to=["wandb", "tensorboard,wandb"]).report_to == [
        "wandb",
        "tensorboard",
    ]
    installed = [name for name in ("tensorboard", "wandb", "trackio") if _installed(name)]
    assert tracker_names("all") == installed
    with pytest.raises(ValueError, match="report_to must be tracker names, got 3"):
        TrainConfig(report_to=3)


def _installed(package: str) -> bool:
    try:
        return bool(metadata.version(package))
    except metadata.PackageNotFoundError:
        return False


@pytest.mark.slow
def test_clean_then_train_names_the_cleaned_and_the_raw_run_in_one_group(
    tiny, tmp_path, no_wandb_login
):
    data = _write(preference_task(40), tmp_path / "pairs.jsonl")
    policy = tmp_path / "policy.yaml"
    policy.write_text("clean:\n  drop: []\n")
    out = tmp_path / "out"
    args = ["clean-then-train", data, "--policy", str(policy), "--model", str(tiny)]
    args += ["--out", str(out), "--embedding-model", "off", "--compare-raw", "--device", "cpu"]
    args += ["--max-steps", "2", "--batch-size", "4", "--report-to", "tensorboard,wandb"]
    assert main(args) == 0
    # `tensorboard --logdir OUT` shows both as runs train/tensorboard and train-raw/tensorboard.
    for run in ("train", "train-raw"):
        assert list((out / run / "tensorboard").glob("events.out.tfevents.*"))
    names = {}
    for run in ("train", "train-raw"):
        (folder,) = (out / run / "wandb").glob("offline-run-*")
        (started,) = [r["run"] for r in _wandb_records(folder) if r["type"] == "run"]
        names[started["display_name"]] = started["run_group"]
    assert names == {f"{out}/cleaned": str(out), f"{out}/raw": str(out)}
