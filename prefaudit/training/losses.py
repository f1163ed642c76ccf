"""DPO losses as small pure functions: per-pair loss from the policy's log-ratios.

Every loss takes ``chosen`` and ``rejected``: log pi(y|x) - log pi_ref(y|x) for each pair
(summed over the response tokens), and returns one loss per pair. The formulas are TRL's
(``DPOTrainer._compute_loss``) for the names TRL has; ``cdpo`` is the conservative DPO of
Mitchell (2023), which TRL's ``sigmoid`` no longer smooths.

>>> import torch
>>> zero = torch.zeros(2)
>>> [round(v, 4) for v in LOSSES["sigmoid"](zero, zero, beta=0.1).tolist()]  # log 2
[0.6931, 0.6931]
"""

from __future__ import annotations


def sigmoid(chosen, rejected, *, beta: float, **_):
    """DPO (Rafailov et al., 2023): -log sigmoid(beta * (chosen - rejected))."""
    import torch.nn.functional as F

    return -F.logsigmoid(beta * (chosen - rejected))


def cdpo(chosen, rejected, *, beta: float, smoothing=0.0, **_):
    """Conservative DPO: the label is right with probability 1 - smoothing (a number, or one
    per pair from the raters' soft labels)."""
    import torch.nn.functional as F

    logits = beta * (chosen - rejected)
    return -(1 - smoothing) * F.logsigmoid(logits) - smoothing * F.logsigmoid(-logits)


def robust(chosen, rejected, *, beta: float, smoothing=0.0, **_):
    """Robust DPO (Chowdhury et al., 2024): an unbiased loss when labels flip with
    probability ``smoothing`` (< 0.5)."""
    import torch.nn.functional as F

    logits = beta * (chosen - rejected)
    clean = -(1 - smoothing) * F.logsigmoid(logits)
    flipped = -smoothing * F.logsigmoid(-logits)
    return (clean - flipped) / (1 - 2 * smoothing)


def ipo(chosen, rejected, *, beta: float, chosen_tokens, rejected_tokens, **_):
    """IPO (Azar et al., 2023) on per-token log-ratios, as TRL normalises it:
    (chosen / |chosen| - rejected / |rejected| - 1 / (2 beta))^2."""
    delta = chosen / chosen_tokens.clamp(min=1) - rejected / rejected_tokens.clamp(min=1)
    return (delta - 1 / (2 * beta)) ** 2


# The names TrainConfig.loss accepts (in the order its help and errors list them).
LOSSES = {"sigmoid": sigmoid, "ipo": ipo, "cdpo": cdpo, "robust": robust}


def reduce(per_pair, weights=None, count: int | None = None):
    """Sum of the (weighted) per-pair losses over ``count`` pairs: the mean when the batch is
    the whole step; micro-batches of one step each divide by the step's pair count, so
    accumulated gradients equal one big batch's."""
    total = per_pair if weights is None else per_pair * weights
    return total.sum() / (count if count is not None else len(per_pair))
