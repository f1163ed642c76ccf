import warnings

import pytest

pytest.importorskip("transformers")

from prefaudit.models.quiet import unactionable_warnings_filtered  # noqa: E402
from tests.helpers import tiny_causal_lm  # noqa: E402


def _messages(body) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        body()
    return [str(w.message) for w in caught]


def _filtered(body):
    def run():
        with unactionable_warnings_filtered():
            body()

    return run


def test_the_checkpointing_deprecation_is_filtered_and_nothing_else():
    model = tiny_causal_lm()

    def read_the_deprecated_property():  # as peft's get_peft_model does
        assert model.is_gradient_checkpointing is False

    if not any("is_gradient_checkpointing" in m for m in _messages(read_the_deprecated_property)):
        pytest.skip("this transformers does not warn about is_gradient_checkpointing")
    assert _messages(_filtered(read_the_deprecated_property)) == []

    def unrelated():  # the same category, from elsewhere, or the same words from another module
        warnings.warn("`something_else` is deprecated", FutureWarning, stacklevel=1)
        warnings.warn("`is_gradient_checkpointing` is deprecated", FutureWarning, stacklevel=1)
        warnings.warn("a model file is odd", UserWarning, stacklevel=1)

    assert len(_messages(_filtered(unrelated))) == 3
    # The filters are restored afterwards.
    assert any("is_gradient_checkpointing" in m for m in _messages(read_the_deprecated_property))
