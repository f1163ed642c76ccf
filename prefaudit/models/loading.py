"""Loading a causal LM for the reference pass and for training: a Hugging Face name or folder,
or the embedded SmolLM2 GGUF (dequantised once into a plain model), and the identity the
log-probs computed under it depend on."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from pathlib import Path

from prefaudit.errors import SettingError
from prefaudit.models.cache import default_cache_dir, source_identity
from prefaudit.models.embedded import EMBEDDED_MODELS, embedded_model_path

log = logging.getLogger(__name__)


class ReferenceModelUnavailable(RuntimeError):
    """The reference model (or torch/transformers) cannot be loaded."""


def check_model_source(model: str | Path | None, setting: str) -> None:
    """Raise :class:`SettingError` when ``model`` cannot name a causal LM: an existing file (a
    rule file given to the wrong option), or a path-like name that does not exist. Checked
    before any work starts; hub names (``org/name``) are left to the loader."""
    if model is None or str(model) == "embedded":
        return
    path = Path(model)
    if path.is_file():
        hint = (
            " (a rule file is the cleaning policy of `clean`)"
            if path.suffix in (".yaml", ".yml")
            else ""
        )
        raise SettingError(
            f"{setting}: {model} is a file; a model is a Hugging Face name, a folder saved "
            f"with save_pretrained, or 'embedded'{hint}",
            setting=setting,
        )
    looks_local = str(model).startswith((".", "/", "~")) or str(model).count("/") > 1
    if looks_local and not path.is_dir():
        raise SettingError(f"{setting}: no model folder {model}", setting=setting)
    if not path.is_dir() and _offline() and not _cached(str(model)):
        raise SettingError(
            f"{setting}: no model folder {model} here, and the Hugging Face hub is offline "
            "(HF_HUB_OFFLINE) with no copy of it in the cache",
            setting=setting,
        )


def _offline() -> bool:
    flags = (os.environ.get(k, "").lower() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag in ("1", "true", "yes", "on") for flag in flags)


def _cached(name: str) -> bool:
    """Whether the hub cache holds ``name``'s config.json (so an offline load can work)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repository name
        return False


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
            where = "" if Path(model).is_dir() else f" (there is no folder {model} here)"
            raise ReferenceModelUnavailable(f"cannot load the model {model}{where}: {err}") from err
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


def model_identity(model: str | Path | None, dtype: str) -> str:
    """The model and weight dtype log-probs depend on: a hub name as given, a folder with a
    signature of its files (:func:`~prefaudit.models.cache.source_identity`), or the embedded
    SmolLM2 with its file size. The trainer compares it with an audit's."""
    if model is not None:
        return f"{source_identity(model)}|{dtype}"
    gguf = embedded_model_path("reference")
    return f"{EMBEDDED_MODELS['reference'].name}|{gguf.stat().st_size if gguf else 0}|{dtype}"
