"""How many pairs a batch of the reference pass may hold: a GPU memory budget estimated from
the model's shape, and length-grouped batches planned under it."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

_MOST_TOKENS = 65536  # padded tokens in one batch on a GPU


class Budget:
    """How large a batch may be: a number of padded tokens when given (``batch_tokens``), else
    the bytes a batch is expected to take on the GPU, estimated from the model's shape and kept
    under the free memory (and under ``_MOST_TOKENS``: beyond that a batch is no faster per
    token, only harder to fill without padding); on running out of memory anyway, at most half
    the batch that failed."""

    def __init__(self, *, tokens: int | None = None, limit: float = 0.0, shape=(0, 0, 0)):
        self.tokens = tokens
        self.limit = limit
        self.act, self.logit, self.mask = shape

    @classmethod
    def for_model(cls, model, batch_tokens: int | None) -> Budget:
        import torch

        device = next(model.parameters()).device
        if batch_tokens or device.type != "cuda":
            return cls(tokens=batch_tokens or 8192)
        config = model.config
        if hasattr(config, "get_text_config"):
            config = config.get_text_config()
        size = next(model.parameters()).element_size()
        inter = getattr(config, "intermediate_size", None) or 4 * config.hidden_size
        shape = (
            (6 * config.hidden_size + 3 * inter) * size,  # one layer's live activations, per token
            3 * config.vocab_size * size,  # logits at kept positions, their copy, softmax blocks
            (size + 1) * config.num_attention_heads,  # the attention mask and its scores, per key
        )
        free, _ = torch.cuda.mem_get_info(device)
        return cls(tokens=None, limit=0.8 * free - 2**30, shape=shape)

    def bytes(self, n: int, length: int, kept: int) -> float:
        return n * (self.act * length + self.logit * kept + self.mask * length * length) + 2**28

    def fits(self, n: int, length: int, kept: int) -> bool:
        if self.tokens is not None:
            return n * length <= self.tokens
        return n * length <= _MOST_TOKENS and self.bytes(n, length, kept) <= self.limit

    def fits_tokens(self, tokens: int) -> bool:
        """Whether a packed batch of ``tokens`` fits: pairs end to end in rows through
        FlexAttention (no mask, rows filled first-fit, the head a block at a time), so its
        tokens count; :func:`plan_packed` keeps a pair longer than a row out of other pairs'
        batches, which would otherwise be padded to its width."""
        if self.tokens is not None:
            return tokens <= self.tokens
        return tokens <= _MOST_TOKENS and self.act * tokens + 2**28 <= self.limit

    def shrink_tokens(self, tokens: int) -> None:
        """A packed batch of ``tokens`` ran out of memory: from now on, at most half of it."""
        self.tokens = min(self.tokens or _MOST_TOKENS, max(1, tokens // 2))
        log.warning(
            "a packed batch ran out of memory: batches now take at most %d tokens", self.tokens
        )

    def shrink(self, n: int, length: int, kept: int) -> None:
        """A batch of this shape ran out of memory: from now on, at most half its size."""
        if self.tokens is not None:
            self.tokens = min(self.tokens, max(1, n * length // 2))
            size = f"{self.tokens} padded tokens"
        else:
            self.limit = min(self.limit, self.bytes(n, length, kept) / 2)
            size = f"{self.limit / 2**30:.1f} GiB"
        log.warning("a batch of %d pairs ran out of memory: batches now take at most %s", n, size)


def plan_batches(length: np.ndarray, kept: np.ndarray, fits) -> list[np.ndarray]:
    """Indexes of each batch: pairs sorted by row length, longest first (so a batch too large
    for memory shows up at once), each batch filled while ``fits(n, longest row, most logits
    kept)``; a pair too large on its own gets a batch of its own."""
    order = np.lexsort((-kept, -length))
    batches, current, longest, most = [], [], 0, 0
    for i in order:
        row, keep = max(longest, int(length[i])), max(most, int(kept[i]))
        if current and not fits(len(current) + 1, row, keep):
            batches.append(np.array(current))
            current, row, keep = [], int(length[i]), int(kept[i])
        current.append(i)
        longest, most = row, keep
    if current:
        batches.append(np.array(current))
    return batches


def plan_packed(length: np.ndarray, fits_tokens, row_tokens: int) -> list[np.ndarray]:
    """Indexes of each packed batch: pairs longest first, each batch filled while
    ``fits_tokens(its tokens)`` (their sum: rows are filled first-fit, so their padding is a
    few percent). A pair longer than ``row_tokens`` is a batch of its own: its row sets the
    width every other row of its batch would be padded to."""
    batches, current, tokens = [], [], 0
    for i in np.argsort(-np.asarray(length), kind="stable"):
        if int(length[i]) > row_tokens:
            batches.append(np.array([i]))
            continue
        if current and not fits_tokens(tokens + int(length[i])):
            batches.append(np.array(current))
            current, tokens = [], 0
        current.append(i)
        tokens += int(length[i])
    if current:
        batches.append(np.array(current))
    return batches
