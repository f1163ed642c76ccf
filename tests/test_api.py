"""The Python API: the CLI's commands as functions on files, DataFrames and datasets."""

from __future__ import annotations

import pandas as pd
import pytest

import prefaudit
from tests.helpers import pair, write_lines

ROWS = [pair(f"Question {i}?", f"A fine answer {i}.", f"Wrong {i}.") for i in range(6)] + [
    pair("Same?", "Identical.", "identical.")
]


def test_audit_accepts_a_path_a_dataframe_and_a_dataset_alike(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = write_lines(tmp_path / "pairs.jsonl", ROWS)
    frame = pd.DataFrame(ROWS)
    results = [
        prefaudit.audit(source, validators=["content"])
        for source in (path, str(path), frame, datasets.Dataset.from_pandas(frame))
    ]
    for result in results:
        assert result.metrics["content/identical_pairs"] == 1
        assert isinstance(result.flags, pd.DataFrame) and int(result.flags["any_issue"].sum()) == 1
    # The same rows give the same pair ids whatever they came in.
    assert all(r.pair_ids == results[0].pair_ids for r in results)
    assert results[2].load.files == ["<DataFrame>"] and results[3].load.files == ["<Dataset>"]


def test_a_bad_row_in_a_dataframe_is_rejected_with_its_row_and_field():
    frame = pd.DataFrame([*ROWS, {"prompt": "Q", "chosen": 7, "rejected": "x"}])
    result = prefaudit.audit(frame, validators=["content"])
    (issue,) = result.load.rejected
    assert (issue.line, issue.field) == (8, "chosen") and len(result.pair_ids) == 7


def test_audit_writes_the_cli_outputs_and_the_report(tmp_path):
    out = tmp_path / "out"
    result = prefaudit.audit(pd.DataFrame(ROWS), validators=["content"], out=out)
    for name in ("audit.json", "flags.parquet", "index.html", "flagged_texts.parquet"):
        assert (out / name).exists(), name
    html = prefaudit.to_html(result, tmp_path / "again.html").read_text("utf-8")
    assert 'id="content"' in html and "Identical." not in html.split('id="pairs-data"')[0]


def test_check_evaluates_a_rule_file(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nmetrics:\n  content/identical_pairs: {max: 0, severity: error}\n")
    result = prefaudit.audit(pd.DataFrame(ROWS), validators=["content"])
    done = prefaudit.check(result, rules)
    (only,) = done.results
    assert only.status == "failed" and only.fails_check and only.value == 1
    assert done.passed is False and done.audit is result
    # Given the data, check audits it first (and writes check.json with an out folder).
    again = prefaudit.check(pd.DataFrame(ROWS), rules, validators=["content"], out=tmp_path / "c")
    assert [r.to_dict() for r in again.results] == [r.to_dict() for r in done.results]
    assert (tmp_path / "c" / "check.json").exists() and (tmp_path / "c" / "index.html").exists()


def test_clean_gives_back_the_kind_of_table_it_was_given_and_loses_nothing(tmp_path):
    datasets = pytest.importorskip("datasets")
    frame = pd.DataFrame(ROWS)
    for data in (frame, datasets.Dataset.from_pandas(frame)):
        cleaned = prefaudit.clean(data, {"drop": ["content"]}, validators=["content"])
        assert type(cleaned.pairs) is type(data) and type(cleaned.quarantine) is type(data)
        assert len(cleaned.pairs) + len(cleaned.quarantine) == len(ROWS)
        assert cleaned.counts == {"drop: content": 1, "input": 7, "cleaned": 6, "quarantined": 1}
    out = tmp_path / "clean"
    cleaned = prefaudit.clean(frame, "default", validators=["content"], out=out)
    assert (out / "cleaned.jsonl").exists() and (out / "manifest.json").exists()
    with pytest.raises(ValueError, match="no clean: section"):
        rules = tmp_path / "no_clean.yaml"
        rules.write_text("version: 1\nmetrics:\n  content/identical_pairs: {max: 0}\n")
        prefaudit.clean(frame, rules)


def test_the_functions_keep_their_names_beside_the_modules():
    import prefaudit.auditing
    import prefaudit.cleaning
    import prefaudit.training  # noqa: F401  (importing the modules must not shadow the functions)

    assert callable(prefaudit.audit) and callable(prefaudit.clean) and callable(prefaudit.train)
    assert prefaudit.train.__module__ == "prefaudit.api"


@pytest.mark.models
def test_train_takes_a_clean_result_and_overrides(tmp_path):
    from tests.helpers import preference_task, task_model

    folder = task_model(tmp_path / "tiny")
    pairs = preference_task(40, flip=0.2, seed=0).drop(columns=["flipped"])
    cleaned = prefaudit.clean(pairs.reset_index(drop=True), {"drop": []}, validators=["content"])
    result = prefaudit.train(
        cleaned, model=str(folder), out=tmp_path / "run", max_steps=3, batch_size=8
    )
    assert result.steps == 3 and (tmp_path / "run" / "summary.json").exists()
    assert result.summary["train_pairs"] + result.summary["eval_pairs"] == 40


def test_clean_then_train_writes_the_cli_files_and_compares_with_raw(tmp_path):
    pytest.importorskip("torch")
    from tests.helpers import preference_task, task_model

    folder = task_model(tmp_path / "tiny")
    pairs = preference_task(24, flip=0.25).drop(columns="flipped")
    out = tmp_path / "run"
    done = prefaudit.clean_then_train(
        pairs,
        {"drop": ["content"]},
        out=out,
        compare_raw=True,
        validators=["content", "label_noise"],
        embedding_model="off",
        model=str(folder),
        max_steps=2,
        batch_size=4,
        eval_fraction=0.25,
    )
    counts = done.cleaned.counts
    assert counts["cleaned"] + counts["quarantined"] == 24
    assert set(done.runs) == {"cleaned", "raw"} and done.runs["raw"].steps == 2
    assert done.comparison["eval_pairs"] == done.runs["cleaned"].summary["eval_pairs"] > 0
    for name in ("cleaned.jsonl", "manifest.json", "train/summary.json", "comparison.json"):
        assert (out / name).exists(), name
    html = (out / "index.html").read_text("utf-8")
    assert 'id="training"' in html and 'id="cleaning"' in html
    low, high = done.comparison["cleaned"]["accuracy_interval"]
    assert low <= done.comparison["cleaned"]["rewards/accuracies"] <= high
    assert "accuracy, 95% interval (Wilson)" in html and "bench_proof.py" in html
    # Each run says how many pairs its steps saw, and its accuracy's interval.
    summary = done.runs["cleaned"].summary
    assert 0 < summary["pairs_seen"] < summary["train_pairs"]
    assert f"2, which saw {summary['pairs_seen']} of {summary['train_pairs']} training" in html
    assert "accuracy 95% interval (Wilson)" in html


def test_the_comparison_counts_the_held_out_pairs_it_evaluated(tmp_path):
    """More held-out pairs than eval_max_pairs: both runs evaluate the same bounded sample,
    and the comparison says how many (it said how many were held out)."""
    pytest.importorskip("torch")
    from tests.helpers import preference_task, task_model

    folder = task_model(tmp_path / "tiny")
    pairs = preference_task(40).drop(columns="flipped")
    done = prefaudit.clean_then_train(
        pairs,
        {"drop": []},
        out=tmp_path / "run",
        compare_raw=True,
        validators=["content"],
        model=str(folder),
        max_steps=1,
        batch_size=4,
        eval_fraction=0.5,
        eval_max_pairs=5,
    )
    assert done.comparison["eval_pairs"] == 5 < done.comparison["eval_pairs_available"]
    assert done.runs["raw"].summary["eval_pairs"] == 5


def test_check_and_clean_take_reuse_like_audit(tmp_path):
    data = write_lines(tmp_path / "pairs.jsonl", [pair(), pair("Q2", "Same.", "same.")])
    out = tmp_path / "out"
    rules = "default"
    assert prefaudit.check(data, rules, out=out, validators=["content"], reuse=False) is not None
    done = prefaudit.clean(
        data, {"drop": ["content"]}, out=out, validators=["content"], reuse=False
    )
    assert done.counts["quarantined"] == 1


def test_a_given_audit_must_be_of_the_data_and_fixes_the_settings(tmp_path):
    from prefaudit.errors import BadParameterError, SettingError

    pairs = pd.DataFrame([pair(), pair("Q2", "Same.", "same.")])
    result = prefaudit.audit(pairs, validators=["content"])
    other = pd.DataFrame([pair("Other?", "Yes.", "No.")])
    with pytest.raises(SettingError, match="of other data"):
        prefaudit.clean(other, {"drop": ["content"]}, audit=result)
    assert prefaudit.clean(pairs, {"drop": ["content"]}, audit=result).counts["cleaned"] == 1
    with pytest.raises(BadParameterError, match="validators would be ignored"):
        prefaudit.check(result, "default", validators=["duplication"])


def test_clean_then_train_takes_max_length_from_the_config_unless_given(tmp_path, monkeypatch):
    import prefaudit.training.compare as compare
    from prefaudit.training import TrainConfig

    seen = []

    def record(pairs, raw, config, out, **kwargs):
        seen.append(config.max_length)
        raise RuntimeError("stop before training")

    monkeypatch.setattr(compare, "train_cleaned", record)
    data = write_lines(tmp_path / "pairs.jsonl", [pair(), pair("Q2", "Same.", "same.")])
    policy, options = {"drop": ["content"]}, {"validators": ["content"], "out": tmp_path / "o"}
    for config, given in (
        (TrainConfig(max_length=300), {}),
        (None, {}),
        (None, {"max_length": 99}),
    ):
        with pytest.raises(RuntimeError, match="stop before training"):
            prefaudit.clean_then_train(data, policy, config, **options, **given)
    assert seen == [300, 2048, 99]


@pytest.mark.models
def test_clean_selects_from_a_real_audit_and_the_report_says_what_it_kept(tmp_path):
    """The select step end to end: a tiny reference model's margins, label_noise's trust and
    coverage's prompt clusters, from an audit of the trainer's planted task (60 pairs: label_noise
    calibrates the reference's margin on 50 or more)."""
    import orjson

    from tests.helpers import preference_task, task_model

    folder = task_model(tmp_path / "tiny")
    pairs = preference_task(60, flip=0.2, seed=0).drop(columns=["flipped"])
    policy = {"select": {"keep": 0.5, "per_cluster_min": 1}}
    out = tmp_path / "clean"
    cleaned = prefaudit.clean(
        pairs.reset_index(drop=True),
        policy,
        validators=["content", "label_noise", "reference", "coverage"],
        reference_model=str(folder),
        embedding_model="off",
        out=out,
    )
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    selection = manifest["selection"]
    assert selection["signals"] == ["trust", "margin"] and selection["pool"] == 60
    assert selection["kept"] == len(cleaned.pairs) >= 30
    assert selection["clusters_after"] == selection["clusters_before"]
    left = cleaned.quarantine
    assert len(cleaned.pairs) + len(left) == 60 and set(left["action"]) == {"select"}
    assert all("each prompt cluster kept its best 1" in r["select"] for r in left["reasons"])
    html = (out / "index.html").read_text("utf-8")
    assert f"the best {selection['kept']} of 60 pairs by value (trust x margin" in html
