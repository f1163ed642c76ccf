import orjson
import pandas as pd
import pytest

from prefaudit.auditing import AuditContext, AuditResult, run_audit
from prefaudit.io import load
from prefaudit.outputs import read_audit, save_audit
from prefaudit.validators import VALIDATORS, Validator, empty_flags, register
from tests.helpers import pair, pairs_frame, write_lines

ROWS = [
    ("Q1", "Same answer.", "same   ANSWER."),
    ("Q2", "A helpful answer.", ""),
    ("Q3", "Fine.", "Also fine, more words."),
]


def test_result_round_trips_through_json_without_loss():
    result = run_audit(pairs_frame(ROWS))
    again = AuditResult.from_json(result.to_json())
    assert again.to_dict(include_flags=True) == result.to_dict(include_flags=True)
    pd.testing.assert_frame_equal(again.flags, result.flags)


def test_result_round_trips_through_its_folder(tmp_path):
    data = load(str(write_lines(tmp_path / "in.jsonl", [pair(), "{bad", pair("Q2", "x", "x")])))
    result = run_audit(data)
    save_audit(tmp_path / "out", result, data, texts=False)
    saved = orjson.loads((tmp_path / "out" / "audit.json").read_bytes())
    assert (
        saved["load"]["rows_read"] == 3
        and saved["load"]["rejected_rows"] == 1
        and saved["load"]["pairs"] == 2
    )
    assert saved["validators"]["content"]["metrics"]["content/identical_pairs"] == 1
    assert (
        "record" not in saved["load"]["rejected"][0]
    )  # raw rows go to rejected.jsonl, not audit.json
    again = read_audit(tmp_path / "out")
    assert again.to_dict() == result.to_dict()
    pd.testing.assert_frame_equal(again.flags, result.flags)
    assert again.flags["any_issue"].tolist() == [False, True]


def test_context_computes_each_artefact_once():
    context = AuditContext(pairs_frame(ROWS))
    calls = []
    assert context.artefact(("x",), lambda: calls.append(1) or 41) == 41
    assert context.artefact(("x",), lambda: calls.append(1) or 42) == 41
    assert calls == [1]
    assert context.normalized_hashes("chosen") is context.normalized_hashes("chosen")


def test_validators_run_after_those_they_use():
    order = []

    def make(name, uses=()):
        class Step(Validator):
            description = "test only"
            requires = ()

            def run(self, context):
                order.append(self.name)
                assert set(self.uses) <= set(context.results)
                return self.result(empty_flags(context.pairs.index), {})

        Step.name, Step.uses = name, uses
        return register(Step)

    make("t_late", uses=("t_early",))
    make("t_early")
    try:
        run_audit(pairs_frame(ROWS), validators=["t_late", "t_early"])
        assert order == ["t_early", "t_late"]
    finally:
        del VALIDATORS["t_late"], VALIDATORS["t_early"]


def test_unknown_validator_and_parameters_are_errors():
    with pytest.raises(KeyError, match="unknown validator 'nope'"):
        run_audit(pairs_frame(ROWS), validators=["nope"])
    with pytest.raises(KeyError, match="validators that do not run: duplication"):
        run_audit(pairs_frame(ROWS), validators=["content"], params={"duplication": {}})
    with pytest.raises(TypeError, match="its parameters are"):
        run_audit(pairs_frame(ROWS), params={"content": {"max_chars": 3}})


def test_parameters_reach_the_validator():
    result = run_audit(pairs_frame(ROWS), params={"content": {"max_response_chars": 15}})
    assert result.validators["content"].params["max_response_chars"] == 15
    assert result.validators["content"].flags["extreme_length"].tolist() == [False, True, True]
