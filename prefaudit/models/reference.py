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
and left unscored.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prefaudit.io.shapes import is_conversation
from prefaudit.models.cache import VectorCache, default_cache_dir, text_keys
from prefaudit.models.embedded import EMBEDDED_MODELS, embedded_model_path

log = logging.getLogger(__name__)

SCORE_COLUMNS = (
    "chosen_logps",
    "rejected_logps",
    "chosen_tokens",
    "rejected_tokens",
    "prompt_tokens",
    "truncated",
    "boundary_mismatch",
)


class ReferenceModelUnavailable(RuntimeError):
    """The reference model (or torch/transformers) cannot be loaded."""


def load_causal_lm(
    model: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    dtype: str = "float32",
):
    """(model, tokenizer) for a Hugging Face causal LM name or folder; None = the embedded
    SmolLM2-135M-Instruct GGUF. ``dtype``: the weights' type in memory ("float32",
    "bfloat16", "float16").

    A GGUF checkpoint is dequantised once (about 40 s for SmolLM2 on 2 CPU cores) into a plain
    model, without the quantisation mark that stops trainers from using it, and saved under the
    cache folder, so later loads take under a second.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise ReferenceModelUnavailable(
            "torch and transformers are needed: pip install 'prefaudit[models]'"
        ) from err
    if model is not None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model))
            loaded = AutoModelForCausalLM.from_pretrained(str(model), dtype=getattr(torch, dtype))
        except (OSError, ValueError) as err:
            raise ReferenceModelUnavailable(f"cannot load the model {model}: {err}") from err
        return loaded.eval(), tokenizer
    gguf = embedded_model_path("reference")
    if gguf is None:
        raise ReferenceModelUnavailable(
            f"the embedded reference model is not installed: {EMBEDDED_MODELS['reference'].pip}"
        )
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    digest = hashlib.sha256(f"{gguf}:{gguf.stat().st_size}".encode()).hexdigest()[:16]
    plain = root / "models" / f"{gguf.stem}-{digest}"
    if not (plain / "config.json").exists():
        log.info("dequantising %s once into %s", gguf.name, plain)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = copy.deepcopy(quantized.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        dequantized = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        dequantized.load_state_dict(quantized.state_dict())
        tmp = plain.with_name(plain.name + ".tmp")
        dequantized.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.replace(plain)  # a complete folder or none: an interrupted run starts over
    tokenizer = AutoTokenizer.from_pretrained(plain)
    return AutoModelForCausalLM.from_pretrained(
        plain, dtype=getattr(torch, dtype)
    ).eval(), tokenizer


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
        self._memory: _Budget | None = None
        self.cache_dir = cache_dir
        self._loaded = loaded
        self._given = loaded is not None
        self.tokens_scored = 0  # prompt + chosen + rejected tokens of the pairs scored
        self.padded_tokens = 0  # positions run in batches, padding included (batched path)
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
        pair is longer than ``max_length``), prompt tokens, and the truncated / boundary flags.

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
        group = _process_group()
        if group is not None:  # under torchrun / accelerate: rank 0's view of what is left
            todo = group.broadcast(todo)
            mine = todo[group.rank :: group.world]
        else:
            mine = todo
        bar, pending = _progress(progress), []
        for rows, values in self._scored(prompts, chosen, rejected, messages, mine, bar):
            table[rows] = values
            pending.append(rows)
            if cache is not None and sum(map(len, pending)) >= _FLUSH:
                done = np.concatenate(pending)
                cache.add(keys[done], table[done])
                pending = []
        if cache is not None and pending:
            done = np.concatenate(pending)
            cache.add(keys[done], table[done])
        bar.close()
        if group is not None:  # every rank ends with every row, in input order
            for rows, values in group.gather((mine, table[mine])):
                table[rows] = values
        frame = pd.DataFrame(table, columns=list(SCORE_COLUMNS))
        for column in ("chosen_tokens", "rejected_tokens", "prompt_tokens"):
            frame[column] = frame[column].astype(np.int64)
        for column in ("truncated", "boundary_mismatch"):
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
        return f"{source}|max_length={self.max_length}|float64-log-softmax|eos|v2"

    def _placement(self) -> tuple[str, str]:
        """(device, weight dtype) the model is loaded with, resolved without loading it."""
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self.dtype
        if dtype is None:
            on_gpu = device.startswith("cuda") and torch.cuda.is_bf16_supported()
            dtype = "bfloat16" if on_gpu else "float32"
        return device, dtype

    def _scored(self, prompts, chosen, rejected, messages, rows, bar):
        """Yields (input rows, their SCORE_COLUMNS values) as pairs are scored: tokenised
        ``_CHUNK`` pairs at a time (the next chunk in a background thread while the model runs
        on this one), then one by one (CPU) or in length-grouped batches planned over the whole
        chunk (GPU)."""
        from concurrent.futures import ThreadPoolExecutor

        import torch

        if not len(rows):
            return  # everything came from the cache: no model is loaded
        model, tokenizer = self.loaded
        column = {name: k for k, name in enumerate(SCORE_COLUMNS)}
        chunks = [rows[start : start + _CHUNK] for start in range(0, len(rows), _CHUNK)]

        def tokenized(chunk):
            began = time.perf_counter()
            turns = [messages[i] if messages is not None else None for i in chunk]
            done = self.tokenize_many(
                [prompts[i] for i in chunk], [[chosen[i], rejected[i]] for i in chunk], turns
            )
            self.tokenize_seconds += time.perf_counter() - began
            return done

        background = ThreadPoolExecutor(1)
        ahead = background.submit(tokenized, chunks[0])
        for number, chunk in enumerate(chunks):
            began = time.perf_counter()
            prompt_ids, responses, mismatch = ahead.result()
            if number + 1 < len(chunks):
                ahead = background.submit(tokenized, chunks[number + 1])
            prompt_len = np.array([len(ids) for ids in prompt_ids])
            chosen_len = np.array([len(r[0]) for r in responses])
            rejected_len = np.array([len(r[1]) for r in responses])
            out = np.full((len(chunk), len(SCORE_COLUMNS)), np.nan)
            out[:, column["chosen_tokens"]] = chosen_len
            out[:, column["rejected_tokens"]] = rejected_len
            out[:, column["prompt_tokens"]] = prompt_len
            truncated = prompt_len + np.maximum(chosen_len, rejected_len) > self.max_length
            out[:, column["truncated"]] = truncated
            out[:, column["boundary_mismatch"]] = [any(m) for m in mismatch]
            # A prompt of no tokens (an empty prompt, a tokenizer without BOS) predicts nothing.
            fits = np.flatnonzero(~truncated & (prompt_len > 0))
            skipped = np.setdiff1d(np.arange(len(chunk)), fits)
            if len(skipped):
                yield chunk[skipped], out[skipped]
            work = prompt_len + chosen_len + rejected_len  # tokens of each pair
            bar.total = (bar.total or 0) + int(work[fits].sum())
            bar.refresh()
            if self._batched():
                rows_len, batches = self._batches(
                    prompt_len[fits], chosen_len[fits], rejected_len[fits]
                )
                groups = [fits[b] for b in batches]
                self.padded_tokens += sum(len(b) * int(rows_len[b].max()) for b in batches)
            else:
                groups = [fits[k : k + 1] for k in range(len(fits))]
            for members in groups:
                with torch.inference_mode():
                    if self._batched():
                        logps = self._run_batch(
                            model,
                            [prompt_ids[k] for k in members],
                            [responses[k] for k in members],
                            tokenizer,
                        )
                    else:
                        k = members[0]
                        logps = np.array([_pair_logps(model, prompt_ids[k], responses[k])])
                out[members, column["chosen_logps"]] = logps[:, 0]
                out[members, column["rejected_logps"]] = logps[:, 1]
                bar.update(int(work[members].sum()))
                self.tokens_scored += int(work[members].sum())
                self.seconds += time.perf_counter() - began
                began = time.perf_counter()
                yield chunk[members], out[members]
        background.shutdown()

    def _batches(self, prompt_len, chosen_len, rejected_len) -> tuple[np.ndarray, list]:
        """(each pair's row length, the batches): a pair's row is prompt, chosen and rejected
        (each response less its last token); logits are kept from the prompt's last token on."""
        length = prompt_len + np.maximum(chosen_len - 1, 0) + np.maximum(rejected_len - 1, 0)
        kept = length - prompt_len + 1
        return length, _plan_batches(length, kept, self._budget().fits)

    def _budget(self) -> _Budget:
        if self._memory is None:
            model, _ = self.loaded
            self._memory = _Budget.for_model(model, self.batch_tokens)
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


class _Group:
    """The torch.distributed process group this process belongs to (torchrun, accelerate)."""

    def __init__(self, dist):
        self.dist = dist
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def broadcast(self, value):
        box = [value]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value) -> list:
        out = [None] * self.world
        self.dist.all_gather_object(out, value)
        return out


def _process_group() -> _Group | None:
    """The process group when launched with several processes (initialised here if the
    launcher set the environment but nobody called ``init_process_group``), else None."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return None
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _Group(dist) if dist.get_world_size() > 1 else None


def model_identity(model: str | Path | None, dtype: str) -> str:
    """The model and weight dtype log-probs depend on: a name or folder as given, or the
    embedded SmolLM2 with its file size. The trainer compares it with an audit's."""
    if model is not None:
        return f"{model}|{dtype}"
    gguf = embedded_model_path("reference")
    return f"{EMBEDDED_MODELS['reference'].name}|{gguf.stat().st_size if gguf else 0}|{dtype}"


def tokenize_pairs(
    tokenizer, prompts: Sequence[str], responses: Sequence[Sequence[str]], messages: Sequence[Any]
) -> tuple[list[list[int]], list[list[list[int]]], list[list[bool]]]:
    """Token ids the way TRL's DPO trainer builds them, in a few batched tokenizer calls.

    For each prompt (a conversation is rendered with the chat template, special tokens
    included, then tokenised; plain text gets the tokenizer's own special tokens) and each
    list of responses: prompt ids, per response list its response ids + EOS, and per
    response list whether tokenising prompt text + response jointly gives other ids at the
    boundary (TRL tokenises them separately, as here; a mismatch is reported, not fixed).
    """
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
    totals = [float(_token_logps(out.logits, target).sum())]
    first = torch.log_softmax(out.logits[0, 0].double(), dim=-1)  # after the prompt
    cache = out.past_key_values
    for response in others:
        _crop(cache, len(prompt_ids))
        rest = _continuation(model, cache, len(prompt_ids), response)
        totals.append(float(first[response[0]]) + rest)
    return totals


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
        past_key_values=cache,
        use_cache=True,
    )
    # out.logits: (1, len - 1, vocab), predicting tokens 1..len-1.
    return float(_token_logps(out.logits, ids[:, 1:]).sum())


def _token_logps(logits, targets, rows: int | None = None):
    """log p(target) at each position (any leading shape; the vocabulary last), the log-softmax
    taken in float64 over blocks of positions: in float32 the normaliser over a ~50k
    vocabulary alone is off by about 1e-6 per token, which adds up to 1e-4 over a few hundred
    tokens."""
    import torch

    flat, wanted = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    rows = rows or max(1, 2**24 // logits.shape[-1])  # 128 MiB of float64 per block
    parts = []
    for start in range(0, flat.shape[0], rows):
        block = flat[start : start + rows].double()
        picked = block.gather(-1, wanted[start : start + rows, None]).squeeze(-1)
        parts.append(picked - torch.logsumexp(block, dim=-1))
    if not parts:
        return torch.zeros(targets.shape, dtype=torch.float64, device=logits.device)
    return torch.cat(parts).view(targets.shape)


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


class _Budget:
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
    def for_model(cls, model, batch_tokens: int | None) -> _Budget:
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

    def shrink(self, n: int, length: int, kept: int) -> None:
        """A batch of this shape ran out of memory: from now on, at most half its size."""
        if self.tokens is not None:
            self.tokens = min(self.tokens, max(1, n * length // 2))
            size = f"{self.tokens} padded tokens"
        else:
            self.limit = min(self.limit, self.bytes(n, length, kept) / 2)
            size = f"{self.limit / 2**30:.1f} GiB"
        log.warning("a batch of %d pairs ran out of memory: batches now take at most %s", n, size)


_MOST_TOKENS = 65536  # padded tokens in one batch on a GPU


def _plan_batches(length: np.ndarray, kept: np.ndarray, fits) -> list[np.ndarray]:
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


def _batch_logps(model, prompts: list[list[int]], responses: list[list[list[int]]], tokenizer):
    """Summed log-probs of both responses of each pair in a batch of pairs: (pairs, 2) array."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return packed_logps(model, pack_pairs(prompts, responses, pad)).cpu().numpy()


def pack_pairs(prompts: list[list[int]], responses: list[list[list[int]]], pad: int) -> dict:
    """A batch of pairs laid out for one forward call, the prompt run once per pair.

    Each pair is one row, prompt + chosen + rejected (each response less its last token, which
    predicts nothing), left-padded; ``segment`` (0 prompt, 1 chosen, 2 rejected, -1 padding)
    drives an attention mask that lets the rejected tokens see the prompt and themselves but
    not the chosen ones; position ids restart both responses where the prompt ends. The
    language-model head is needed from the prompt's last position on (``kept`` positions),
    whose logits predict the first token of both responses. ``rows``/``columns``/``targets``
    locate every scored token; ``owner`` is 2 * pair (+1 for rejected).
    """
    n = len(prompts)
    sizes = np.array(
        [
            (len(p), max(len(c) - 1, 0), max(len(r) - 1, 0))
            for p, (c, r) in zip(prompts, responses, strict=True)
        ]
    ).reshape(n, 3)
    lengths = sizes.sum(axis=1)
    width = int(lengths.max())
    kept = int((lengths - sizes[:, 0]).max()) + 1
    ids = np.full((n, width), pad, dtype=np.int64)
    segment = np.full((n, width), -1, dtype=np.int64)
    position = np.zeros((n, width), dtype=np.int64)
    where, targets, owner = [], [], []
    for k, (prompt, (chosen, rejected)) in enumerate(zip(prompts, responses, strict=True)):
        p, c, r = sizes[k]
        offset = width - lengths[k]
        ids[k, offset:] = prompt + chosen[:-1] + rejected[:-1]
        segment[k, offset:] = np.repeat([0, 1, 2], (p, c, r))
        position[k, offset:] = np.concatenate(
            [np.arange(p), np.arange(p, p + c), np.arange(p, p + r)]
        )
        last = offset + p - 1  # the prompt's last token predicts the first token of both
        where += [
            last + np.arange(len(chosen)),
            np.r_[last, last + c + np.arange(1, len(rejected))],
        ]
        targets += [chosen, rejected]
        owner += [np.full(len(chosen), 2 * k), np.full(len(rejected), 2 * k + 1)]
    owner_all = np.concatenate(owner)
    return {
        "ids": ids,
        "segment": segment,
        "position": position,
        "kept": kept,
        "owner": owner_all,
        "rows": owner_all // 2,
        "columns": np.concatenate(where) - (width - kept),
        "targets": np.concatenate(targets).astype(np.int64),
    }


def packed_logps(model, packed: dict, *, precise: bool = True):
    """(pairs, 2) tensor of summed response log-probs for a :func:`pack_pairs` batch; keeps
    the autograd graph when gradients are on (the DPO trainer's forward). ``precise``: the
    log-softmax in float64 (the reference pass); float32 otherwise (training)."""
    import torch

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    sees = _attention(torch.from_numpy(packed["segment"]).to(device))
    mask = torch.zeros(sees.shape, dtype=dtype, device=device)
    mask.masked_fill_(~sees, torch.finfo(dtype).min)
    out = model(
        input_ids=torch.from_numpy(packed["ids"]).to(device),
        attention_mask=mask[:, None],
        position_ids=torch.from_numpy(packed["position"]).to(device),
        use_cache=False,
        logits_to_keep=packed["kept"],
    )
    owner = torch.from_numpy(packed["owner"]).to(device)
    logits = out.logits[
        torch.from_numpy(packed["rows"]).to(device), torch.from_numpy(packed["columns"]).to(device)
    ]
    targets = torch.from_numpy(packed["targets"]).to(device)
    if precise:
        picked = _token_logps(logits, targets)
    else:
        picked = logits.float().log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    n = len(packed["ids"])
    totals = torch.zeros(2 * n, dtype=picked.dtype, device=device).index_add(0, owner, picked)
    return totals.view(n, 2)


def _attention(segment):
    """(rows, queries, keys) bool: who each token may attend to. Causal; the prompt (segment 0)
    is seen by all; a response (1 or 2) sees only itself besides; padding (-1) sees only itself
    (so no row of the mask is empty) and is seen by nobody."""
    import torch

    width = segment.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segment.device).tril()
    query, key = segment[:, :, None], segment[:, None, :]
    sees = causal & (key >= 0) & ((key == 0) | (key == query))
    return sees | torch.eye(width, dtype=torch.bool, device=segment.device)
