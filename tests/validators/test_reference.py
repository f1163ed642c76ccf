import numpy as np
import pandas as pd
import pytest

from prefaudit.auditing import AuditContext, run_audit
from prefaudit.models.reference import SCORE_COLUMNS
from prefaudit.validators.reference import ReferenceValidator
from tests.helpers import pairs_frame


class StubScorer:
    """Returns given log-probs: the validator's logic, without a model."""

    identity = "stub"
    model_identity = "stub|float32"
    tokens_per_second = 123.0

    def __init__(self, logps: dict[str, tuple[float, float]], truncated=()):
        self.logps, self.truncated, self.calls = logps, set(truncated), []

    def score(self, prompts, chosen, rejected, messages=None, progress=False):
        self.calls.append(list(prompts))
        rows = []
        for prompt in prompts:
            good, bad = self.logps[prompt]
            cut = prompt in self.truncated
            rows.append(
                {
                    "chosen_logps": np.nan if cut else good,
                    "rejected_logps": np.nan if cut else bad,
                    "chosen_tokens": 10,
                    "rejected_tokens": 10,
                    "prompt_tokens": 5 if not cut else 5000,
                    "truncated": cut,
                    "boundary_mismatch": False,
                }
            )
        return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


LOGPS = {
    "neutral": (-20.0, -21.0),  # 0.1 nats/token: nothing to say
    "easy": (-5.0, -40.0),  # +3.5 nats/token: the reference already prefers chosen
    "flipped": (-45.0, -6.0),  # -3.9 nats/token: the reference strongly prefers rejected
    "long": (0.0, 0.0),
}


def _run(prompts, **params):
    pairs = pairs_frame([(p, "c", "r") for p in prompts])
    scorer = StubScorer(LOGPS, truncated={"long"})
    context = AuditContext(pairs, reference_scorer=scorer)
    return ReferenceValidator(**params).run(context), scorer


def test_flags_already_preferred_and_dispreferred_pairs():
    result, _ = _run(["neutral", "easy", "flipped", "long"])
    flags = result.flags
    assert flags["already_preferred"].tolist() == [False, True, False, False]
    assert flags["dispreferred"].tolist() == [False, False, True, False]
    assert flags["issue"].tolist() == [False, False, True, False]
    assert flags["truncated"].tolist() == [False, False, False, True]
    assert flags["margin"].iloc[:3].tolist() == [1.0, 35.0, -39.0]
    assert np.isnan(flags["margin"].iat[3])
    assert "strongly prefers the rejected" in flags["reason"].iat[2]
    assert "5010 tokens, over max_length" in flags["reason"].iat[3]
    m = result.metrics
    assert m["reference/scored_pairs"] == 3
    assert m["reference/mean_margin"] == pytest.approx((1 + 35 - 39) / 3)
    assert m["reference/reference_accuracy"] == pytest.approx(2 / 3)
    assert m["reference/already_preferred_rate"] == pytest.approx(1 / 3)
    assert m["reference/dispreferred_rate"] == pytest.approx(1 / 3)
    assert m["reference/truncated_pairs"] == 1
    assert result.info["most_dispreferred"][0]["pair_id"] == "p2"
    assert result.flags["score"].between(0, 1).all()


def test_a_sample_scores_only_the_sampled_pairs():
    prompts = ["neutral", "easy", "flipped"] * 4
    result, scorer = _run(prompts, sample=5, seed=1)
    assert len(scorer.calls[0]) == 5
    assert result.flags["scored"].sum() == 5
    assert result.metrics["reference/scored_pairs"] == 5
    assert result.info["sampled"] is True


def test_runs_only_when_asked_for():
    pairs = pairs_frame([("neutral", "c", "r")])
    plain = run_audit(pairs, embedder=None)
    assert "reference" not in plain.validators
    asked = run_audit(
        pairs, validators=["reference"], reference_scorer=StubScorer(LOGPS), embedder=None
    )
    assert asked.metrics["reference/scored_pairs"] == 1


def test_policy_rewards_are_beta_times_the_log_ratio_as_trl_names_them():
    pairs = pairs_frame([(p, "c", "r") for p in ["neutral", "easy", "flipped", "long"]])
    policy_logps = {  # the policy moved toward chosen on two pairs, away on one
        "neutral": (-18.0, -23.0),
        "easy": (-5.0, -40.0),
        "flipped": (-50.0, -4.0),
        "long": (0.0, 0.0),
    }
    scorers = {
        None: StubScorer(LOGPS, truncated={"long"}),
        "my-policy": StubScorer(policy_logps, truncated={"long"}),
    }
    context = AuditContext(pairs, reference_scorer=scorers)
    result = ReferenceValidator(policy="my-policy", beta=0.5).run(context)
    flags, metrics = result.flags, result.metrics
    # neutral: chosen +2 nats, rejected -2 nats -> rewards +1 and -1 at beta 0.5
    assert flags["reward_chosen"].iat[0] == pytest.approx(1.0)
    assert flags["reward_rejected"].iat[0] == pytest.approx(-1.0)
    assert flags["reward_margin"].tolist()[:3] == pytest.approx([2.0, 0.0, -3.5])
    assert np.isnan(flags["reward_margin"].iat[3])  # not scored: over max_length
    assert metrics["reference/rewards/margins"] == pytest.approx(-0.5)
    assert metrics["reference/rewards/accuracies"] == pytest.approx(1 / 3)
    assert metrics["reference/rewards/chosen"] == pytest.approx((1.0 + 0.0 - 2.5) / 3)
    without = ReferenceValidator().run(AuditContext(pairs, reference_scorer=scorers[None]))
    assert without.metrics["reference/rewards/margins"] is None
