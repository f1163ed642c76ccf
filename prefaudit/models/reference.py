"""Reference-model log-probabilities of each pair's responses: the scoring engine.

For a pair (prompt, chosen, rejected) it computes log pi_ref(chosen | prompt) and
log pi_ref(rejected | prompt), summed over the response tokens, with their token counts, the
way TRL's DPO trainer does (prompt and response tokenised separately and concatenated, an EOS
token after the response, prompt tokens not scored). What makes it fast on any device:

- the prompt is run once per pair and its key/value cache is shared by both responses;
- the language-model head runs only where a response token is predicted (``logits_to_keep``
  on the prompt pass), and log-softmax only over those positions;
- the two responses are padded only to the longer of the two; ``torch.inference_mode``.

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

from prefaudit.models.embedded import EMBEDDED_MODELS, embedded_model_path
from prefaudit.models.embeddings import default_cache_dir

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
    SmolLM2; or pass ``loaded=(model, tokenizer)`` to score with objects already in memory."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        max_length: int = 2048,
        device: str | None = None,
        loaded: tuple[Any, Any] | None = None,
        cache_dir: str | Path | None = None,
    ):
        self.model = model
        self.max_length = max_length
        self.device = device
        self.cache_dir = cache_dir
        self._loaded = loaded
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
        model, _ = self.loaded
        name = self.model or EMBEDDED_MODELS["reference"].name
        return f"{name}|{model.config.model_type}|max_length={self.max_length}"

    def tokenize(self, prompt: str, response: str, messages: Any = None) -> tuple[list, list, bool]:
        """(prompt ids, response ids + EOS, whether joint tokenisation differs at the boundary)."""
        _, tokenizer = self.loaded
        if _is_conversation(messages) and tokenizer.chat_template:
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
        pair is longer than ``max_length``), prompt tokens, and the truncated / boundary flags."""
        import torch

        model, tokenizer = self.loaded
        rows = []
        started = time.perf_counter()
        iterator = range(len(prompts))
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc="reference log-probs", unit="pair")
        with torch.inference_mode():
            for i in iterator:
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
                    logps = _pair_logps(model, prompt_ids, [chosen_ids, rejected_ids], tokenizer)
                    row["chosen_logps"], row["rejected_logps"] = logps
                    self.tokens_scored += longest + min(len(chosen_ids), len(rejected_ids))
                rows.append(row)
        self.seconds += time.perf_counter() - started
        return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens_scored / self.seconds if self.seconds else None


def _pair_logps(model, prompt_ids: list[int], responses: list[list[int]], tokenizer) -> list[float]:
    """Summed log-probs of each response after the shared prompt (one prompt pass, its cache
    repeated for the responses)."""
    import torch

    device = next(model.parameters()).device
    prompt = torch.tensor([prompt_ids], device=device)
    out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)[0]  # predicts response token 0
    cache.batch_repeat_interleave(len(responses))
    width = max(len(r) for r in responses)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(responses), width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((len(responses), width), dtype=torch.long, device=device)
    for k, response in enumerate(responses):
        ids[k, : len(response)] = torch.tensor(response, device=device)
        mask[k, : len(response)] = 1
    totals = [float(first[r[0]]) for r in responses]
    if width > 1:
        attention = torch.cat(
            [torch.ones((len(responses), len(prompt_ids)), dtype=torch.long, device=device), mask],
            dim=1,
        )
        positions = torch.arange(len(prompt_ids), len(prompt_ids) + width, device=device)
        out = model(
            input_ids=ids[:, :-1],
            attention_mask=attention[:, :-1],
            position_ids=positions[:-1].expand(len(responses), -1),
            past_key_values=cache,
            use_cache=False,
        )
        logits = out.logits.float()  # (responses, width - 1, vocab): predicts tokens 1..width-1
        targets = ids[:, 1:]
        picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        scores = picked - torch.logsumexp(logits, dim=-1)
        scores = (scores * mask[:, 1:]).sum(dim=1)
        totals = [t + float(s) for t, s in zip(totals, scores, strict=True)]
    return totals


def _is_conversation(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple, np.ndarray))
        and len(value) > 0
        and all(isinstance(m, dict) and "role" in m for m in value)
    )
