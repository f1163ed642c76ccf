"""The contract every registered validator keeps (scikit-learn style: one test over all)."""

import json

import numpy as np
import pandas as pd
import pytest

from prefaudit.auditing import AuditContext, run_audit
from prefaudit.validators import (
    VALIDATORS,
    MissingInputError,
    Validator,
    ValidatorResult,
    create_validator,
    empty_flags,
    register,
    validator_parameters,
)
from prefaudit.validators.base import FLAG_COLUMNS
from tests.helpers import pairs_frame

ROWS = [
    (
        "How do I boil an egg?",
        "Simmer it for seven minutes, then cool it in cold water.",
        "Look it up.",
    ),
    ("Tell me a joke", "Why did the chicken cross the road? To get to the other side.", "No."),
    ("Same?", "identical answer", "Identical   answer"),
    ("Empty?", "", "Something useful to say here."),
    ("Cut?", "You should first preheat the oven and then carefully mix the flour and", "Fine."),
]


def _context():
    pairs = pairs_frame(
        ROWS,
        ids=["a", "b", "c", "d", "e"],
        score_chosen=[9.0, 8.0, 5.0, 2.0, 6.0],
        score_rejected=[2.0, 3.0, 5.0, 7.0, 4.0],
    )
    annotations = pd.DataFrame(
        {
            "pair_id": ["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"],
            "annotator": ["r1", "r2"] * 5,
            "label": [
                "chosen",
                "chosen",
                "chosen",
                "rejected",
                "tie",
                "tie",
                "rejected",
                "rejected",
                "chosen",
                "chosen",
            ],
            "value": [1.0, 1.0, 1.0, 0.0, 0.5, 0.5, 0.0, 0.0, 1.0, 1.0],
        }
    )
    return AuditContext(pairs, annotations, reference_scorer=_tiny_scorer())


def _tiny_scorer():
    """The reference check scores with a tiny model built in code, not the embedded one."""
    from prefaudit.models.reference import ReferenceScorer
    from tests.helpers import CharTokenizer, tiny_causal_lm

    return ReferenceScorer(loaded=(tiny_causal_lm(), CharTokenizer()))


@pytest.fixture(params=sorted(VALIDATORS))
def validator(request):
    return create_validator(request.param)


def test_declared_cleaning_columns_are_in_the_flags(validator):
    """`clean` reads only what validators declare: each declared column must exist (a renamed
    column would otherwise switch a cleaning step off without a sound)."""
    from prefaudit.validators.base import CLEANING_KINDS

    flags = validator.run(_context()).flags
    for action in validator.cleaning:
        assert action.kind in CLEANING_KINDS
        assert action.column in flags.columns, (validator.name, action)
        if action.kind == "reorient":
            assert flags[action.column].dtype == bool
        elif action.kind == "margin":  # a log-prob margin: any finite number (NaN: not scored)
            assert np.isfinite(flags[action.column].astype(float).dropna()).all()
        elif action.kind == "cluster":  # a label per pair, none missing
            assert flags[action.column].notna().all()
        elif action.kind == "strength":  # for chosen (1) to for rejected (-1); NaN: unknown
            assert flags[action.column].astype(float).dropna().between(-1, 1).all()
        elif action.kind != "dedupe":  # scores and probabilities in [0, 1] (NaN: unknown)
            values = flags[action.column].astype(float).dropna()
            assert values.between(0, 1).all(), (validator.name, action)


def test_the_built_in_validators_offer_the_cleaning_steps_of_the_default_policy():
    offered = {a.kind for cls in VALIDATORS.values() for a in cls.cleaning}
    assert {
        "dedupe",
        "reorient",
        "flip",
        "confidence",
        "soft_label",
        "margin",
        "cluster",
    } <= offered


def test_flags_cover_every_pair_with_scores_in_range(validator):
    context = _context()
    result = validator.run(context)
    assert isinstance(result, ValidatorResult)
    assert result.flags.index.equals(context.pairs.index)
    assert set(FLAG_COLUMNS) <= set(result.flags.columns)
    scores = result.flags["score"].to_numpy(dtype=float)
    assert np.all((scores >= 0) & (scores <= 1))
    assert result.flags["issue"].dtype == bool
    reasons = result.flags["reason"]
    assert (reasons[result.flags["issue"]] != "").all()  # every flag says why
    assert all(key.startswith(f"{validator.name}/") for key in result.metrics)
    # Rule files may name only declared metrics: the declaration must match what runs.
    assert set(result.metrics) == set(validator.metric_names)


def test_results_are_json_ready_and_deterministic(validator):
    first, second = validator.run(_context()), validator.run(_context())
    pd.testing.assert_frame_equal(first.flags, second.flags)
    timing = set(validator.timing_metric_names)
    assert {k: v for k, v in first.metrics.items() if k not in timing} == {
        k: v for k, v in second.metrics.items() if k not in timing
    }
    json.dumps(first.to_dict(include_flags=True), allow_nan=False)


def test_empty_input(validator):
    context = _context()
    empty = AuditContext(
        context.pairs.iloc[:0], context.annotations.iloc[:0], reference_scorer=_tiny_scorer()
    )
    result = validator.run(empty)
    assert len(result.flags) == 0


def test_missing_required_input_is_a_clear_error(validator):
    context = _context()
    for need in validator.requires:
        if need == "annotations":
            lacking = AuditContext(context.pairs, None)
        else:
            lacking = AuditContext(context.pairs.drop(columns=[need]), context.annotations)
        with pytest.raises(MissingInputError, match=need):
            lacking.require(validator)


def test_parameters_are_keyword_only_and_stored_unchanged(validator):
    params = validator.get_params()
    rebuilt = type(validator)(**params)
    assert rebuilt.get_params() == params
    with pytest.raises(TypeError, match="parameters are"):
        create_validator(validator.name, no_such_parameter=1)


def test_every_parameter_has_a_help_text(validator):
    """`prefaudit validators` shows each parameter's comment in __init__ as its help."""
    parameters = validator_parameters(type(validator))
    assert [p.name for p in parameters] == list(validator.get_params())
    undocumented = [p.name for p in parameters if not p.help]
    assert not undocumented, f"{validator.name}: no comment where __init__ stores {undocumented}"


def test_a_parameters_help_is_the_comment_above_or_beside_it():
    class Commented(Validator):
        name = "commented"

        def __init__(self, *, above: int = 1, beside: str = "x", bare: bool = True):
            # Two lines of why,
            # joined into one.
            self.above = above
            self.beside = beside  # said at the end of the line
            self.bare = bare

    assert [(p.name, p.default, p.help) for p in validator_parameters(Commented)] == [
        ("above", 1, "Two lines of why, joined into one."),
        ("beside", "x", "said at the end of the line"),
        ("bare", True, ""),
    ]


def test_a_validator_needing_annotations_is_skipped_by_default_and_refused_by_name():
    @register
    class NeedsRaters(Validator):
        name = "needs_raters_test"
        description = "test only"
        requires = ("annotations",)

        def run(self, context):
            return self.result(
                empty_flags(context.pairs.index), {"needs_raters_test/n": len(context.annotations)}
            )

    try:
        pairs = _context().pairs
        assert "needs_raters_test" not in run_audit(pairs).validators
        with pytest.raises(MissingInputError, match="needs annotations"):
            run_audit(pairs, validators=["needs_raters_test"])
        result = run_audit(
            pairs, validators=["needs_raters_test"], annotations=_context().annotations
        )
        assert result.metrics == {"needs_raters_test/n": 10}
    finally:
        del VALIDATORS["needs_raters_test"]
