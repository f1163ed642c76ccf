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


def load_causal_lm(model: str | Path | None = None, *, cache_dir: str | Path | None = None):
    """(model, tokenizer) for a Hugging Face causal LM name or folder; None = the embedded
    SmolLM2-135M-Instruct GGUF.

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
            loaded = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32)
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
    return AutoModelForCausalLM.from_pretrained(plain, dtype=torch.float32).eval(), tokenizer


class ReferenceScorer:
    """Scores pairs under a causal LM. ``model``: a name or folder, or None for the embedded
    SmolLM2; or pass ``loaded=(model, tokenizer)`` to score with objects already in memory (not
    cached on disk: they have no identity to key the cache by). ``cache_dir=False`` turns the
    disk cache off."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        max_length: int = 2048,
        device: str | None = None,
        loaded: tuple[Any, Any] | None = None,
        cache_dir: str | Path | None = None,
        batched: bool | None = None,
    ):
        self.model = model
        # Both responses of a pair in one padded batch (None: on CUDA, where batches pay).
        self.batched = batched
        self.max_length = max_length
        self.device = device
        self.cache_dir = cache_dir
        self._loaded = loaded
        self._given = loaded is not None
        self.tokens_scored = 0
        self.seconds = 0.0

    @property
    def loaded(self):
        if self._loaded is None:
            model, tokenizer = load_causal_lm(self.model, cache_dir=self.cache_dir)
            if self.device:
                model = model.to(self.device)
            self._loaded = (model, tokenizer)
        return self._loaded

    @property
    def identity(self) -> str:
        """The model and settings the results depend on (without loading the model)."""
        if self._given:
            return f"in-memory {type(self._loaded[0]).__name__}|max_length={self.max_length}"
        return self.cache_identity

    def tokenize(self, prompt: str, response: str, messages: Any = None) -> tuple[list, list, bool]:
        """(prompt ids, response ids + EOS, whether joint tokenisation differs at the boundary)."""
        _, tokenizer = self.loaded
        if is_conversation(messages) and tokenizer.chat_template:
            # As TRL does: the template renders text (special tokens included), then tokenise.
            prompt_text = tokenizer.apply_chat_template(
                [dict(m) for m in messages], add_generation_prompt=True, tokenize=False
            )
            prompt_ids = tokenizer(prompt_text, add_special_tokens=False).input_ids
        else:
            prompt_ids = tokenizer(prompt).input_ids
            prompt_text = prompt
        response_ids = tokenizer(response, add_special_tokens=False).input_ids
        joint = tokenizer(prompt_text + response, add_special_tokens=False).input_ids
        separate = tokenizer(prompt_text, add_special_tokens=False).input_ids + response_ids
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        return prompt_ids, response_ids + eos, joint != separate

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
        for start in range(0, len(mine), _FLUSH):
            part = mine[start : start + _FLUSH]
            scored = self._score_rows(prompts, chosen, rejected, messages, part, progress)
            table[part] = scored
            if cache is not None:
                cache.add(keys[part], scored)
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
        if self.model is not None:
            source = str(self.model)
        else:
            gguf = embedded_model_path("reference")
            source = f"{EMBEDDED_MODELS['reference'].name}|{gguf.stat().st_size if gguf else 0}"
        return f"{source}|max_length={self.max_length}|float64-log-softmax|eos|v1"

    def _score_rows(self, prompts, chosen, rejected, messages, rows, progress) -> np.ndarray:
        import torch

        model, tokenizer = self.loaded
        out = np.zeros((len(rows), len(SCORE_COLUMNS)))
        started = time.perf_counter()
        iterator = enumerate(rows)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(rows), desc="reference log-probs", unit="pair")
        with torch.inference_mode():
            for k, i in iterator:
                turns = messages[i] if messages is not None else None
                prompt_ids, chosen_ids, mismatch_c = self.tokenize(prompts[i], chosen[i], turns)
                _, rejected_ids, mismatch_r = self.tokenize(prompts[i], rejected[i], turns)
                longest = len(prompt_ids) + max(len(chosen_ids), len(rejected_ids))
                row = {
                    "chosen_tokens": len(chosen_ids),
                    "rejected_tokens": len(rejected_ids),
                    "prompt_tokens": len(prompt_ids),
                    "truncated": longest > self.max_length,
                    "boundary_mismatch": mismatch_c or mismatch_r,
                }
                if row["truncated"]:
                    row["chosen_logps"] = row["rejected_logps"] = float("nan")
                else:
                    logps = _pair_logps(
                        model, prompt_ids, [chosen_ids, rejected_ids], tokenizer, self._batched()
                    )
                    row["chosen_logps"], row["rejected_logps"] = logps
                    self.tokens_scored += longest + min(len(chosen_ids), len(rejected_ids))
                out[k] = [float(row[c]) for c in SCORE_COLUMNS]
        self.seconds += time.perf_counter() - started
        return out

    def _batched(self) -> bool:
        if self.batched is not None:
            return self.batched
        model, _ = self.loaded
        return next(model.parameters()).device.type == "cuda"

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens_scored / self.seconds if self.seconds else None


_FLUSH = 64  # pairs scored between two writes to the disk cache


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


def _pair_logps(
    model, prompt_ids: list[int], responses: list[list[int]], tokenizer, batched: bool
) -> list[float]:
    """Summed log-probs of each response after the shared prompt, which is run once.

    Batched (the default on CUDA): the prompt pass, then both responses as one padded batch on
    its repeated cache. Otherwise: prompt + first response in one pass (the head only on the response positions),
    then the cache cropped back to the prompt for each further response. That does exactly
    prompt + chosen + rejected tokens of work in two calls (padding a 9-token response to a
    260-token one would nearly double it).
    """
    import torch

    device = next(model.parameters()).device
    if batched:
        out = model(
            input_ids=torch.tensor([prompt_ids], device=device), use_cache=True, logits_to_keep=1
        )
        first = torch.log_softmax(out.logits[:, -1].double(), dim=-1)[0]
        scores = _continuations(model, out.past_key_values, len(prompt_ids), responses, tokenizer)
        return [float(first[r[0]]) + s for r, s in zip(responses, scores, strict=True)]
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
        rest = _continuations(model, cache, len(prompt_ids), [response], tokenizer)[0]
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


def _continuations(model, cache, prompt_length: int, responses, tokenizer) -> list[float]:
    """Summed log-probs of tokens 1.. of each response, run as one right-padded batch on the
    prompt's cache (repeated to the batch size when there are several)."""
    import torch

    device = next(model.parameters()).device
    width = max(len(r) for r in responses)
    if width < 2:
        return [0.0] * len(responses)
    if len(responses) > 1:
        cache.batch_repeat_interleave(len(responses))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(responses), width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((len(responses), width), dtype=torch.long, device=device)
    for k, response in enumerate(responses):
        ids[k, : len(response)] = torch.tensor(response, device=device)
        mask[k, : len(response)] = 1
    prompt_mask = torch.ones((len(responses), prompt_length), dtype=torch.long, device=device)
    attention = torch.cat([prompt_mask, mask], dim=1)
    positions = torch.arange(prompt_length, prompt_length + width - 1, device=device)
    out = model(
        input_ids=ids[:, :-1],
        attention_mask=attention[:, :-1],
        position_ids=positions.expand(len(responses), -1),
        past_key_values=cache,
        use_cache=True,
    )
    # out.logits: (responses, width - 1, vocab), predicting tokens 1..width-1.
    scores = (_token_logps(out.logits, ids[:, 1:]) * mask[:, 1:]).sum(dim=1)
    return [float(v) for v in scores]


def _token_logps(logits, targets, chunk: int = 128):
    """log p(target) at each position, the log-softmax taken in float64 over chunks of positions:
    in float32 the normaliser over a ~50k vocabulary alone is off by about 1e-6 per token,
    which adds up to 1e-4 over a few hundred tokens."""
    import torch

    parts = []
    for start in range(0, logits.shape[1], chunk):
        block = logits[:, start : start + chunk].double()
        picked = block.gather(-1, targets[:, start : start + chunk].unsqueeze(-1)).squeeze(-1)
        parts.append(picked - torch.logsumexp(block, dim=-1))
    return torch.cat(parts, dim=1)
