"""A BERT sentence encoder for CPUs with AMX: the embedded all-MiniLM-L6-v2 in bfloat16.

sentence-transformers runs MiniLM in float32 at about 90 prompts a second on a 2-core Xeon. The
same model's linear layers run ~6x faster in bfloat16 on Intel's AMX tiles (oneDNN), but
``model.to(torch.bfloat16)`` gains only ~2.3x: its bias additions, GELU and residual additions
each make a separate pass over the activations in bfloat16, which costs as much as the matrix
products. This forward pass is the same BERT with oneDNN's fused kernels (matrix product, bias
and GELU in one call; matrix product, bias and residual in one call), PyTorch's flash attention,
and length-sorted batches of a fixed token budget (little padding, few batches).

It reads a sentence-transformers folder itself (``model.safetensors``, ``tokenizer.json`` and
the sentence-transformers configs: no transformers import) and supports what the embedded model
is: a BERT with absolute positions and exact GELU, then mean or CLS pooling, then optional
normalisation. :func:`unsupported` says why another folder is not (the caller then uses
sentence-transformers). In float32 it reproduces sentence-transformers to ~1e-6; in bfloat16
the vectors have a cosine of ~0.9999 to the float32 ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Padded tokens per batch. Texts are sorted by length, so padding stays small (4.5% of the
# tokens over the shared data's 3,115 distinct prompts, 1.7% over its 7,709 responses). Fewer,
# larger batches matter on a busy machine: every operation waits for all threads, and a
# sleeping thread costs a scheduler slice (smaller budgets with fewer padded tokens ran 2.5x
# slower there).
BATCH_TOKENS = 8192
_CONFIGS = ("config.json", "tokenizer.json", "modules.json")


def amx_bf16_available() -> bool:
    """Whether this CPU multiplies bfloat16 matrices on AMX tiles through PyTorch's oneDNN
    (Intel Xeon 4th generation "Sapphire Rapids" and later; the OS must allow the tiles).
    Without AMX, bfloat16 gains too little over float32 to change the vectors for."""
    try:
        import torch
    except ImportError:
        return False

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    if not torch.backends.mkldnn.is_available():
        return False
    return all(getattr(torch.cpu, name, lambda: False)() for name in checks)


def unsupported(folder: str | Path) -> str | None:
    """Why :class:`BertEncoder` cannot run the sentence-transformers model in ``folder``, or None
    when it can (the embedded all-MiniLM-L6-v2 can)."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} is not a local folder"
    missing = [name for name in _CONFIGS if not (folder / name).is_file()]
    if missing:
        return f"{folder} has no {', '.join(missing)}"
    modules = json.loads((folder / "modules.json").read_text())
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"modules {kinds} (only Transformer, Pooling, Normalize)"
    if modules[0].get("path", "") not in ("", "."):
        return "the transformer is in a subfolder"
    if not (folder / "model.safetensors").is_file():
        return "no model.safetensors"
    config = json.loads((folder / "config.json").read_text())
    shape = (
        config.get("model_type"),
        config.get("hidden_act"),
        config.get("position_embedding_type", "absolute"),
    )
    if shape != ("bert", "gelu", "absolute"):
        return f"model_type/hidden_act/position_embedding_type {shape} (only bert/gelu/absolute)"
    if _pooling(folder) is None:
        return "pooling other than mean or CLS"
    return None


def _pooling(folder: Path) -> str | None:
    path = folder / "1_Pooling" / "config.json"
    config = json.loads(path.read_text()) if path.is_file() else {"pooling_mode_mean_tokens": True}
    modes = [key for key, on in config.items() if key.startswith("pooling_mode_") and on]
    return {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(
        modes[0] if len(modes) == 1 else ""
    )


class BertEncoder:
    """Unit-length sentence embeddings from a BERT sentence-transformers folder.

    ``dtype`` "bf16" is the fast path (fused oneDNN kernels: use it where
    :func:`amx_bf16_available`); "fp32" is the same computation in float32, which matches
    sentence-transformers (tests check the forward pass against it).
    """

    def __init__(self, folder: str | Path, *, dtype: str = "bf16"):
        reason = unsupported(folder)
        if reason is not None:
            raise ValueError(f"BertEncoder cannot run {folder}: {reason}")
        if dtype not in ("bf16", "fp32"):
            raise ValueError(f"dtype must be 'bf16' or 'fp32', got {dtype!r}")
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.dtype = dtype
        self._torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
        config = json.loads((self.folder / "config.json").read_text())
        settings_file = self.folder / "sentence_bert_config.json"
        settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
        self.max_seq_length = int(
            min(settings.get("max_seq_length") or 512, config["max_position_embeddings"])
        )
        self.lower_case = bool(settings.get("do_lower_case", False))
        self.pooling = _pooling(self.folder)
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.tokenizer.no_padding()
        self._load_weights(load_file(str(self.folder / "model.safetensors")))
        self.fused = dtype == "bf16" and _fused_kernels_work(self._torch_dtype)

    @property
    def dimension(self) -> int:
        return int(self.word.shape[1])

    def _load_weights(self, weights: dict) -> None:
        # Saved as BertModel ("embeddings....") or inside a task model ("bert.embeddings....").
        prefix = next(
            k[: -len("embeddings.word_embeddings.weight")]
            for k in weights
            if k.endswith("embeddings.word_embeddings.weight")
        )

        def get(name: str):
            return weights[prefix + name].to(self._torch_dtype).contiguous()

        import torch

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")[0]
        self.norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(sum(k.endswith(".attention.self.query.weight") for k in weights)):
            p = f"encoder.layer.{i}."
            qkv = [f"{p}attention.self.{n}" for n in ("query", "key", "value")]
            self.layers.append(
                {
                    # Q, K and V in one matrix product.
                    "qkv": (
                        torch.cat([get(f"{n}.weight") for n in qkv]),
                        torch.cat([get(f"{n}.bias") for n in qkv]),
                    ),
                    "attention_out": (
                        get(p + "attention.output.dense.weight"),
                        get(p + "attention.output.dense.bias"),
                    ),
                    "norm1": (
                        get(p + "attention.output.LayerNorm.weight"),
                        get(p + "attention.output.LayerNorm.bias"),
                    ),
                    "intermediate": (
                        get(p + "intermediate.dense.weight"),
                        get(p + "intermediate.dense.bias"),
                    ),
                    "out": (get(p + "output.dense.weight"), get(p + "output.dense.bias")),
                    "norm2": (get(p + "output.LayerNorm.weight"), get(p + "output.LayerNorm.bias")),
                }
            )

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text as sentence-transformers makes them (stripped, truncated to
        ``max_seq_length`` with [CLS] and [SEP] kept)."""
        texts = [str(t).strip() for t in texts]
        if self.lower_case:
            texts = [t.lower() for t in texts]
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=True)]

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in the order given."""
        import torch

        ids = self.tokenize(texts)
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        batches = list(length_batches([len(i) for i in ids]))
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="embedding", unit="batch", leave=False)
        with torch.inference_mode():
            for rows in batches:
                lengths = torch.tensor([len(ids[r]) for r in rows])
                padded = torch.zeros((len(rows), int(lengths.max())), dtype=torch.long)
                for k, r in enumerate(rows):
                    padded[k, : len(ids[r])] = torch.tensor(ids[r])
                out[rows] = self._forward(padded, lengths).numpy()
        return out

    def _forward(self, ids, lengths):
        import torch
        import torch.nn.functional as F

        batch, length = ids.shape
        width = self.dimension
        mask = torch.arange(length)[None, :] < lengths[:, None]
        x = self.word[ids] + self.position[:length] + self.token_type
        x = F.layer_norm(x, (width,), *self.norm, self.eps).view(batch * length, width)
        # Without padding in the batch, no mask (the kernel is faster without one).
        attention_mask = None if bool(mask.all()) else mask[:, None, None, :]
        shape = (batch, length, 3, self.heads, width // self.heads)
        for layer in self.layers:
            q, k, v = self._linear(x, layer["qkv"]).view(shape).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
            a = a.transpose(1, 2).reshape(batch * length, width)
            x = F.layer_norm(
                self._linear(a, layer["attention_out"], add=x), (width,), *layer["norm1"], self.eps
            )
            h = self._linear(x, layer["intermediate"], gelu=True)
            x = F.layer_norm(
                self._linear(h, layer["out"], add=x), (width,), *layer["norm2"], self.eps
            )
        x = x.view(batch, length, width).float()
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            pooled = (x * mask[..., None]).sum(1) / lengths[:, None]
        return F.normalize(pooled, dim=1)

    def _linear(self, x, weights, *, gelu: bool = False, add=None):
        """``x @ W.T + b``, then GELU or plus ``add``: one oneDNN call when fused."""
        import torch
        import torch.nn.functional as F

        weight, bias = weights
        if self.fused:
            kernels = torch.ops.mkldnn._linear_pointwise
            if add is not None:
                return kernels.binary(x, add, weight, bias, "add")
            return kernels(x, weight, bias, "gelu" if gelu else "none", [], "none" if gelu else "")
        y = F.linear(x, weight, bias)
        if gelu:
            return F.gelu(y)
        return y if add is None else y + add

    def __repr__(self) -> str:
        return f"BertEncoder({str(self.folder)!r}, dtype={self.dtype!r}, fused={self.fused})"


def length_batches(lengths: Sequence[int], budget: int = BATCH_TOKENS) -> Iterator[np.ndarray]:
    """Positions of texts in batches of similar token counts, longest first: a batch holds at
    most ``budget`` tokens once padded (always at least one text).

    >>> [b.tolist() for b in length_batches([3, 10, 9, 2], budget=20)]
    [[1, 2], [0, 3]]
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < len(order):
        count = max(1, budget // max(int(lengths[order[start]]), 1))
        yield order[start : start + count]
        start += count


def _fused_kernels_work(dtype) -> bool:
    """Whether this PyTorch has oneDNN's fused linear kernels (private operators that Inductor
    uses; checked on a tiny input, so a PyTorch without them falls back to plain calls)."""
    import torch

    try:
        x = torch.ones((2, 4), dtype=dtype)
        w = torch.ones((3, 4), dtype=dtype)
        kernels = torch.ops.mkldnn._linear_pointwise
        y = kernels(x, w, None, "gelu", [], "none")
        z = kernels.binary(x, torch.ones((2, 3), dtype=dtype), w, None, "add")
    except (AttributeError, RuntimeError, NotImplementedError) as err:
        log.info("oneDNN fused linear kernels unavailable (%s): plain PyTorch calls", err)
        return False
    expected = torch.full((2, 3), 4.0)
    return bool(torch.allclose(y.float(), expected, atol=0.01) and (z.float() == 5).all())
