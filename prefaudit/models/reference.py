"""Reference-model log-probabilities of each pair's responses: the scoring engine.

For a pair (prompt, chosen, rejected) it computes log pi_ref(chosen | prompt) and
log pi_ref(rejected | prompt), summed over the response tokens, with their token counts, the
way TRL's DPO trainer does (prompt and response tokenised separately and concatenated, an EOS
token after the response, prompt tokens not scored). What makes it fast on any device:

- the prompt is run once per pair and its key/value cache is shared by both responses (one
  padded batch on CUDA; one after the other, cropping the cache back, elsewhere);
- the language-model head runs only where a response token is predicted (``logits_to_keep``
  on the prompt pass), and log-softmax only over those positions;
- ``torch.inference_mode``; under ``torchrun`` or ``accelerate launch`` the pairs are shared
  out across the processes and every process gets all results back in input order;
- the log-softmax over the vocabulary is taken in float64 (only at response positions), so
  sums over long responses stay exact to about 1e-6.

Pairs longer than ``max_length`` tokens are not cut: they are reported (with their lengths)
and left unscored. Pairs TRL would tokenise into other ids are reported too (per pair:
``boundary_mismatch``, ``layout_mismatch``), so that the log-probs are handed to TRL only where
they are the ones it would compute.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from prefaudit.chat import is_conversation
from prefaudit.models.budget import Budget, plan_batches, plan_packed
from prefaudit.models.cache import VectorCache, default_cache_dir, text_keys
from prefaudit.models.distributed import process_group
from prefaudit.models.loading import (
    load_causal_lm,
    model_identity,
)
from prefaudit.models.packing import token_logps

SCORE_COLUMNS = (
    "chosen_logps",
    "rejected_logps",
    "chosen_tokens",
    "rejected_tokens",
    "prompt_tokens",
    "truncated",
    "boundary_mismatch",
    "layout_mismatch",
)
_COLUMN = {name: k for k, name in enumerate(SCORE_COLUMNS)}

log = logging.getLogger(__name__)


class ReferenceScorer:
    """Scores pairs under a causal LM. ``model``: a name or folder, or None for the embedded
    SmolLM2; or pass ``loaded=(model, tokenizer)`` to score with objects already in memory (not
    cached on disk: they have no identity to key the cache by). ``cache_dir=False`` turns the
    disk cache off.

    ``device``: None picks CUDA when there is a GPU. ``dtype``: None picks bfloat16 on a GPU
    that has it, float32 elsewhere. ``batched``: pairs scored in length-grouped batches (None:
    on CUDA, where batches pay; on CPU one pair at a time does less work). ``batch_tokens``:
    padded tokens per batch; None sizes batches from the GPU's free memory (8192 on CPU).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        max_length: int = 2048,
        device: str | None = None,
        loaded: tuple[Any, Any] | None = None,
        cache_dir: str | Path | None = None,
        batched: bool | None = None,
        batch_tokens: int | None = None,
        dtype: str | None = None,
    ):
        self.model = model
        self.batched = batched
        self.batch_tokens = batch_tokens
        self.max_length = max_length
        self.device = device
        self.dtype = dtype
        self._memory: Budget | None = None
        self.cache_dir = cache_dir
        self._loaded = loaded
        self._given = loaded is not None
        self.tokens_scored = 0  # prompt + chosen + rejected tokens of the pairs scored
        self.padded_tokens = 0  # positions run in batches, padding included (batched path)
        self.attention: str | None = None  # batched path: "flex-compiled", "flex-eager", "dense"
        self.tokenize_seconds = 0.0  # of which tokenising (overlaps the model from chunk 2 on)
        self.seconds = 0.0

    @property
    def loaded(self):
        if self._loaded is None:
            device, dtype = self._placement()
            model, tokenizer = load_causal_lm(self.model, cache_dir=self.cache_dir, dtype=dtype)
            self._loaded = (model.to(device), tokenizer)
        return self._loaded

    @property
    def identity(self) -> str:
        """The model and settings the results depend on (without loading the model)."""
        if self._given:
            return f"in-memory {type(self._loaded[0]).__name__}|max_length={self.max_length}"
        return self.cache_identity

    @property
    def model_identity(self) -> str | None:
        """:func:`model_identity` of this scorer's model; None for objects passed in memory."""
        return None if self._given else model_identity(self.model, self._placement()[1])

    def tokenize(self, prompt: str, response: str, messages: Any = None) -> tuple[list, list, bool]:
        """(prompt ids, response ids + EOS, whether joint tokenisation differs at the boundary)."""
        prompt_ids, responses, mismatch = self.tokenize_many([prompt], [[response]], [messages])
        return prompt_ids[0], responses[0][0], mismatch[0][0]

    def tokenize_many(
        self, prompts: Sequence[str], responses: Sequence[Sequence[str]], messages: Sequence[Any]
    ) -> tuple[list[list[int]], list[list[list[int]]], list[list[bool]]]:
        """:func:`tokenize_pairs` with this scorer's tokenizer."""
        return tokenize_pairs(self.loaded[1], prompts, responses, messages)

    def score(
        self,
        prompts: Sequence[str],
        chosen: Sequence[str],
        rejected: Sequence[str],
        messages: Sequence[Any] | None = None,
        progress: bool = False,
    ) -> pd.DataFrame:
        """One row per pair: summed log-probs and token counts of both responses (NaN when the
        pair is longer than ``max_length``), prompt tokens, and the truncated / boundary /
        layout flags (:func:`trl_layout_mismatch`).

        With a disk cache (the default unless ``cache_dir=False``), pairs scored before under
        the same model and settings are read back, and new results are saved every
        ``_FLUSH`` pairs, so an interrupted run resumes where it stopped.
        """
        n = len(prompts)
        table = np.full((n, len(SCORE_COLUMNS)), np.nan)
        cache = self._disk_cache()
        keys = _pair_keys(prompts, chosen, rejected, messages)
        found = np.zeros(n, dtype=bool)
        if cache is not None and n:
            found, values = cache.lookup(keys)
            if values is not None:
                table[found] = values
        todo = np.flatnonzero(~found)
        group = process_group()
        if group is not None:  # under torchrun / accelerate: rank 0's view of what is left
            todo = group.broadcast(todo)
            mine = todo[group.rank :: group.world]
        else:
            mine = todo
        pending = []
        for rows, values in self._scored(prompts, chosen, rejected, messages, mine, progress):
            table[rows] = values
            pending.append(rows)
            if cache is not None and sum(map(len, pending)) >= _FLUSH:
                done = np.concatenate(pending)
                cache.add(keys[done], table[done])
                pending = []
        if cache is not None and pending:
            done = np.concatenate(pending)
            cache.add(keys[done], table[done])
        if group is not None:  # every rank ends with every row, in input order
            for rows, values in group.gather((mine, table[mine])):
                table[rows] = values
        frame = pd.DataFrame(table, columns=list(SCORE_COLUMNS))
        for column in ("chosen_tokens", "rejected_tokens", "prompt_tokens"):
            frame[column] = frame[column].astype(np.int64)
        for column in ("truncated", "boundary_mismatch", "layout_mismatch"):
            frame[column] = frame[column].astype(bool)
        return frame

    def _disk_cache(self):
        if self.cache_dir is False or self._given:
            return None  # objects passed in memory have no stable identity to cache under
        root = default_cache_dir() if self.cache_dir in (None, True) else Path(self.cache_dir)
        return VectorCache(root, self.cache_identity, kind="reference", dtype=np.float64)

    @property
    def cache_identity(self) -> str:
        """What the results depend on, known without loading the model."""
        _, dtype = self._placement()
        source = model_identity(self.model, dtype)
        return f"{source}|max_length={self.max_length}|float64-log-softmax|eos|v3"

    def _placement(self) -> tuple[str, str]:
        """(device, weight dtype) the model is loaded with, resolved without loading it."""
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self.dtype
        if dtype is None:
            on_gpu = device.startswith("cuda") and torch.cuda.is_bf16_supported()
            dtype = "bfloat16" if on_gpu else "float32"
        return device, dtype

    def _scored(self, prompts, chosen, rejected, messages, rows, progress: bool):
        """Yields (input rows, their SCORE_COLUMNS values) as pairs are scored: tokenised
        ``_CHUNK`` pairs at a time (the next chunk in a background thread while the model runs
        on this one), then one by one (CPU) or in length-grouped batches planned over the whole
        chunk (GPU)."""
        if not len(rows):
            return  # everything came from the cache: no model is loaded, no bar drawn
        # Loaded before the bar opens: transformers draws bars of its own while it loads (and
        # dequantises a GGUF), which would be drawn nested under ours, and the wait would
        # count in our rate.
        model, tokenizer = self.loaded
        with _progress(progress) as bar:
            yield from self._chunks(
                model, tokenizer, (prompts, chosen, rejected, messages), rows, bar
            )

    def _chunks(self, model, tokenizer, texts, rows, bar):
        """:meth:`_scored`'s work, chunk by chunk, with the model loaded and the bar open."""
        from concurrent.futures import ThreadPoolExecutor

        chunks = [rows[start : start + _CHUNK] for start in range(0, len(rows), _CHUNK)]
        background = ThreadPoolExecutor(1)
        ahead = background.submit(self._tokenized, texts, chunks[0])
        for number, chunk in enumerate(chunks):
            began = time.perf_counter()
            prompt_ids, responses, mismatch, layout = ahead.result()
            if number + 1 < len(chunks):
                ahead = background.submit(self._tokenized, texts, chunks[number + 1])
            out, lengths, fits = self._chunk_table(prompt_ids, responses, mismatch, layout)
            skipped = np.setdiff1d(np.arange(len(chunk)), fits)
            if len(skipped):
                yield chunk[skipped], out[skipped]
            work = sum(lengths)  # tokens of each pair
            bar.total = (bar.total or 0) + int(work[fits].sum())
            bar.refresh()
            for members in self._groups(lengths, fits):
                logps = self._logps(model, tokenizer, prompt_ids, responses, members)
                out[members, _COLUMN["chosen_logps"]] = logps[:, 0]
                out[members, _COLUMN["rejected_logps"]] = logps[:, 1]
                bar.update(int(work[members].sum()))
                self.tokens_scored += int(work[members].sum())
                self.seconds += time.perf_counter() - began
                began = time.perf_counter()
                yield chunk[members], out[members]
        background.shutdown()

    def _tokenized(self, texts, chunk):
        """:meth:`tokenize_many` of the pairs at ``chunk`` and their :func:`trl_layout_mismatch`
        (run in the background thread), timed into ``tokenize_seconds``."""
        prompts, chosen, rejected, messages = texts
        began = time.perf_counter()
        tokenizer = self.loaded[1]
        turns = [messages[i] if messages is not None else None for i in chunk]
        responses = [[chosen[i], rejected[i]] for i in chunk]
        rendered = render_prompts(tokenizer, [prompts[i] for i in chunk], turns)
        done = tokenize_rendered(tokenizer, rendered, responses)
        layout = trl_layout_mismatch(tokenizer, rendered, responses, turns)
        self.tokenize_seconds += time.perf_counter() - began
        return (*done, layout)

    def _chunk_table(self, prompt_ids, responses, mismatch, layout):
        """A chunk's SCORE_COLUMNS rows with all but the log-probs filled in, its token counts
        (prompt, chosen, rejected), and the positions of the pairs the model is to score."""
        prompt_len = np.array([len(ids) for ids in prompt_ids])
        chosen_len = np.array([len(r[0]) for r in responses])
        rejected_len = np.array([len(r[1]) for r in responses])
        out = np.full((len(prompt_ids), len(SCORE_COLUMNS)), np.nan)
        out[:, _COLUMN["chosen_tokens"]] = chosen_len
        out[:, _COLUMN["rejected_tokens"]] = rejected_len
        out[:, _COLUMN["prompt_tokens"]] = prompt_len
        truncated = prompt_len + np.maximum(chosen_len, rejected_len) > self.max_length
        out[:, _COLUMN["truncated"]] = truncated
        out[:, _COLUMN["boundary_mismatch"]] = [any(m) for m in mismatch]
        out[:, _COLUMN["layout_mismatch"]] = [any(m) for m in layout]
        # A prompt of no tokens (an empty prompt, a tokenizer without BOS) predicts nothing.
        fits = np.flatnonzero(~truncated & (prompt_len > 0))
        return out, (prompt_len, chosen_len, rejected_len), fits

    def _groups(self, lengths, fits) -> list[np.ndarray]:
        """The pairs at ``fits`` as the model will run them: length-grouped batches (counting
        their padded tokens), or one pair at a time."""
        if not self._batched():
            return [fits[k : k + 1] for k in range(len(fits))]
        prompt_len, chosen_len, rejected_len = lengths
        if self._packed():  # FlexAttention: rows filled to a token budget, no mask
            from prefaudit.models.flex import ROW_TOKENS, first_fit, padded_size

            row = (prompt_len + np.maximum(chosen_len - 1, 0) + np.maximum(rejected_len - 1, 0))[
                fits
            ]
            batches = plan_packed(row, self._budget().fits_tokens, ROW_TOKENS)
            self.padded_tokens += sum(
                padded_size(row[b], first_fit(row[b], ROW_TOKENS)) for b in batches
            )
            return [fits[b] for b in batches]
        rows_len, batches = self._batches(prompt_len[fits], chosen_len[fits], rejected_len[fits])
        self.padded_tokens += sum(len(b) * int(rows_len[b].max()) for b in batches)
        return [fits[b] for b in batches]

    def _packed(self) -> bool:
        """Whether batches run as packed rows through FlexAttention (``attention``: the path
        taken, logged once)."""
        from prefaudit.models.flex import attention_path

        path = attention_path(self.loaded[0])
        if path != self.attention:
            log.info("reference pass: %s attention", path)
            self.attention = path
        return path != "dense"

    def _logps(self, model, tokenizer, prompt_ids, responses, members) -> np.ndarray:
        """(pairs, 2) summed log-probs of chosen and rejected of the pairs at ``members``."""
        import torch

        with torch.inference_mode():
            if self._batched():
                return self._run_batch(
                    model,
                    [prompt_ids[k] for k in members],
                    [responses[k] for k in members],
                    tokenizer,
                )
            k = members[0]
            return np.array([_pair_logps(model, prompt_ids[k], responses[k])])

    def _batches(self, prompt_len, chosen_len, rejected_len) -> tuple[np.ndarray, list]:
        """(each pair's row length, the batches): a pair's row is prompt, chosen and rejected
        (each response less its last token); logits are kept from the prompt's last token on."""
        length = prompt_len + np.maximum(chosen_len - 1, 0) + np.maximum(rejected_len - 1, 0)
        kept = length - prompt_len + 1
        return length, plan_batches(length, kept, self._budget().fits)

    def _budget(self) -> Budget:
        if self._memory is None:
            model, _ = self.loaded
            self._memory = Budget.for_model(model, self.batch_tokens)
        return self._memory

    def _run_batch(self, model, prompt_ids, responses, tokenizer) -> np.ndarray:
        """One planned batch; on running out of GPU memory, the budget halves and the batch is
        split in two (and so on), so the next batches are planned smaller too."""
        import torch

        try:
            return _batch_logps(model, prompt_ids, responses, tokenizer)
        except torch.OutOfMemoryError:
            if len(prompt_ids) == 1:
                raise
            torch.cuda.empty_cache()
            rows = [
                len(p) + sum(max(len(r) - 1, 0) for r in pair)
                for p, pair in zip(prompt_ids, responses, strict=True)
            ]
            kept = [row - len(p) + 1 for row, p in zip(rows, prompt_ids, strict=True)]
            if self.attention not in (None, "dense"):
                self._budget().shrink_tokens(sum(rows))
            else:
                self._budget().shrink(len(prompt_ids), max(rows), max(kept))
            half = len(prompt_ids) // 2
            return np.concatenate(
                [
                    self._run_batch(model, prompt_ids[:half], responses[:half], tokenizer),
                    self._run_batch(model, prompt_ids[half:], responses[half:], tokenizer),
                ]
            )

    def _batched(self) -> bool:
        if self.batched is not None:
            return self.batched
        model, _ = self.loaded
        return next(model.parameters()).device.type == "cuda"

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens_scored / self.seconds if self.seconds else None


_FLUSH = 64  # pairs scored between two writes to the disk cache
_CHUNK = 1024  # pairs tokenised (and, on a GPU, planned into batches) at a time


def tokenize_pairs(
    tokenizer, prompts: Sequence[str], responses: Sequence[Sequence[str]], messages: Sequence[Any]
) -> tuple[list[list[int]], list[list[list[int]]], list[list[bool]]]:
    """Token ids the way TRL's DPO trainer builds them, in a few batched tokenizer calls.

    For each prompt (a conversation is rendered with the chat template, special tokens
    included, then tokenised; plain text gets the tokenizer's own special tokens) and each
    list of responses: prompt ids, per response list its response ids + EOS, and per
    response list whether tokenising prompt text + response jointly gives other ids at the
    boundary (TRL takes the response from where the joint ids depart from the prompt's, so
    there it would score other tokens; a mismatch is reported, not fixed).
    """
    return tokenize_rendered(tokenizer, render_prompts(tokenizer, prompts, messages), responses)


class Rendered(NamedTuple):
    """Prompts as the tokenizer sees them: ``texts`` (a conversation rendered by the chat
    template, with the generation prompt), and whether each one was (``templated``)."""

    texts: list[str]
    templated: list[bool]


def render_prompts(tokenizer, prompts: Sequence[str], messages: Sequence[Any]) -> Rendered:
    """Each prompt's text: its turns through the chat template when it is a conversation and
    the tokenizer has one, else the prompt as it is."""
    texts, templated = [], []
    for prompt, turns in zip(prompts, messages, strict=True):
        if is_conversation(turns) and tokenizer.chat_template:
            texts.append(
                tokenizer.apply_chat_template(
                    [dict(m) for m in turns], add_generation_prompt=True, tokenize=False
                )
            )
            templated.append(True)
        else:
            texts.append(prompt)
            templated.append(False)
    return Rendered(texts, templated)


def tokenize_rendered(
    tokenizer, rendered: Rendered, responses: Sequence[Sequence[str]]
) -> tuple[list[list[int]], list[list[list[int]]], list[list[bool]]]:
    """:func:`tokenize_pairs` of prompts already rendered."""
    texts, templated = rendered
    bare = _ids(tokenizer, texts, special=False)  # what joins a response in TRL's layout
    with_specials = _ids(
        tokenizer, [t for t, c in zip(texts, templated, strict=True) if not c], special=True
    )
    plain = iter(with_specials)
    prompt_ids = [ids if c else next(plain) for ids, c in zip(bare, templated, strict=True)]
    flat = [(k, r) for k, group in enumerate(responses) for r in group]
    response_ids = _ids(tokenizer, [r for _, r in flat], special=False)
    joint = _ids(tokenizer, [texts[k] + r for k, r in flat], special=False)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out_ids: list[list[list[int]]] = [[] for _ in responses]
    mismatch: list[list[bool]] = [[] for _ in responses]
    for (k, _), ids, both in zip(flat, response_ids, joint, strict=True):
        out_ids[k].append(ids + eos)
        mismatch[k].append(both != bare[k] + ids)
    return prompt_ids, out_ids, mismatch


def trl_layout_mismatch(
    tokenizer, rendered: Rendered, responses: Sequence[Sequence[str]], messages: Sequence[Any]
) -> list[list[bool]]:
    """Per response: whether TRL (1.x) would lay the pair out in other text than the one
    scored, prompt + response + EOS, before any boundary question arises.

    A conversation reaches TRL as turns (as ``cleaned.jsonl`` writes it) and TRL renders
    prompt + assistant turn with the chat template: that text must be the rendered prompt +
    the response + the EOS text, and it is not where the template ends an assistant turn
    with more than EOS (ChatML's ``<|im_end|>\n``: TRL scores the newline too), changes the
    response (a ``trim``), or where there is no chat template (TRL cannot render the turns).
    Plain text: TRL adds no EOS to a response that already ends with the EOS text, the
    scorer would add a second one.
    """
    eos = tokenizer.eos_token
    out: list[list[bool]] = []
    for text, templated, group, turns in zip(
        rendered.texts, rendered.templated, responses, messages, strict=True
    ):
        if eos is None or (is_conversation(turns) and not templated):
            out.append([True] * len(group))
        elif templated:
            prompt = [dict(m) for m in turns]
            out.append(
                [
                    tokenizer.apply_chat_template(
                        [*prompt, {"role": "assistant", "content": r}], tokenize=False
                    )
                    != text + r + eos
                    for r in group
                ]
            )
        else:
            out.append([r.endswith(eos) for r in group])
    return out


def _pair_keys(prompts, chosen, rejected, messages) -> np.ndarray:
    """A 128-bit key per pair from its texts (and prompt turns, when given)."""
    import orjson

    turns = messages if messages is not None else [None] * len(prompts)
    texts = [
        orjson.dumps([p, c, r, t], option=orjson.OPT_SERIALIZE_NUMPY, default=_plain).decode()
        for p, c, r, t in zip(prompts, chosen, rejected, turns, strict=True)
    ]
    return text_keys(texts)


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def _pair_logps(model, prompt_ids: list[int], responses: list[list[int]]) -> list[float]:
    """Summed log-probs of each response after the shared prompt, one pair at a time (the CPU
    path): prompt + first response in one pass (the head only on the response positions), then
    the cache cropped back to the prompt for each further response. That does exactly
    prompt + chosen + rejected tokens of work in two calls (padding a 9-token response to a
    260-token one would nearly double it).
    """
    import torch

    device = next(model.parameters()).device
    head, *others = responses
    ids = torch.tensor([prompt_ids + head[:-1]], device=device)
    out = model(input_ids=ids, use_cache=True, logits_to_keep=len(head))
    # The kept logits predict head[0] (from the last prompt position) .. head[-1].
    target = torch.tensor([head], device=device)
    totals = [float(token_logps(out.logits, target).sum())]
    first = torch.log_softmax(out.logits[0, 0].double(), dim=-1)  # after the prompt
    cache = out[_cache_name(type(model))]
    for response in others:
        _crop(cache, len(prompt_ids))
        rest = _continuation(model, cache, len(prompt_ids), response)
        totals.append(float(first[response[0]]) + rest)
    return totals


@functools.cache
def _cache_name(kind: type) -> str:
    """What a model's forward and outputs call the key/value cache: ``cache`` in transformers
    versions that renamed it (they warn that ``past_key_values`` is going, in 5.40),
    ``past_key_values`` in those before."""
    return "cache" if "cache" in inspect.signature(kind.forward).parameters else "past_key_values"


def _crop(cache, length: int) -> None:
    """Drop what a continuation added to the cache (transformers 5 takes the number to remove,
    as a negative count; earlier versions take the length to keep)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        try:
            cache.crop(-extra)
        except ValueError:
            cache.crop(length)


def _continuation(model, cache, prompt_length: int, response: list[int]) -> float:
    """Summed log-probs of tokens 1.. of a response, run on the prompt's cache."""
    import torch

    if len(response) < 2:
        return 0.0
    device = next(model.parameters()).device
    ids = torch.tensor([response], device=device)
    positions = torch.arange(prompt_length, prompt_length + len(response) - 1, device=device)
    out = model(
        input_ids=ids[:, :-1],
        position_ids=positions[None],
        use_cache=True,
        **{_cache_name(type(model)): cache},
    )
    # out.logits: (1, len - 1, vocab), predicting tokens 1..len-1.
    return float(token_logps(out.logits, ids[:, 1:]).sum())


def _ids(tokenizer, texts: list[str], *, special: bool) -> list[list[int]]:
    """Token ids of many texts in one tokenizer call (fast tokenizers batch them natively)."""
    if not texts:
        return []
    return list(tokenizer(list(texts), add_special_tokens=special).input_ids)


def _progress(show: bool):
    """A bar counting tokens (its rate: tokens/s); its total grows as chunks are tokenised."""
    from tqdm import tqdm

    return tqdm(
        total=0,
        unit="tok",
        unit_scale=True,
        desc="reference log-probs",
        disable=not show,
    )


def _batch_logps(model, prompts: list[list[int]], responses: list[list[list[int]]], tokenizer):
    """Summed log-probs of both responses of each pair in a batch of pairs: (pairs, 2) array."""
    from prefaudit.models.flex import pair_logps

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return pair_logps(model, prompts, responses, pad).cpu().numpy()
