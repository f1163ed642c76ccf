"""Small builders shared by the tests: datasets are made in code, a few rows each."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HH_FILE = SHARED_DATA / "hh-rlhf-harmless-test.jsonl.gz"
ALPACA_FILE = SHARED_DATA / "alpacaeval-judges.jsonl.gz"
ALPACA_DEV_FILE = SHARED_DATA / "alpacaeval-gpt4-dev.jsonl.gz"  # 28,175 GPT-4 judgements


def real_texts(hh_path: Path, alpaca_path: Path, hh_records: int, alpaca_records: int) -> list:
    """The chosen and rejected texts of the first ``hh_records`` HH-RLHF records, then the
    instruction and both outputs of the first ``alpaca_records`` AlpacaEval records."""
    import gzip
    from itertools import islice

    texts = []
    for path, count, fields in (
        (hh_path, hh_records, ("chosen", "rejected")),
        (alpaca_path, alpaca_records, ("instruction", "output_1", "output_2")),
    ):
        with gzip.open(path) as handle:
            for line in islice(handle, count):
                record = json.loads(line)
                texts += [record[field] for field in fields]
    return texts


def write_lines(path: Path, records: list) -> Path:
    """One JSON value per line; strings are written as they are (for broken lines)."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def pair(
    prompt: str = "What is 2+2?", chosen: str = "It is 4.", rejected: str = "It is 5.", **extra
) -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **extra}


def pairs_frame(
    rows: list[tuple[str, str, str]], ids: list[str] | None = None, **columns
) -> pd.DataFrame:
    """A PairSet from (prompt, chosen, rejected) tuples, indexed by pair id."""
    ids = ids or [f"p{i}" for i in range(len(rows))]
    frame = pd.DataFrame(
        rows, columns=["prompt", "chosen", "rejected"], index=pd.Index(ids, dtype="str")
    )
    frame.insert(0, "pair_id", ids)
    for name, values in columns.items():
        frame[name] = values
    return frame


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the reliability data
# matrix: 4 coders (rows) x 12 units, values 1..5, None = not coded. Published alpha:
# nominal 0.743, ordinal 0.815, interval 0.849, ratio 0.797.
KRIPPENDORFF_2011 = (
    (1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None),
    (1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3),
    (None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None),
    (1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None),
)


def long_table(matrix, shift: int = 0, **extra) -> list[dict]:
    """A long annotation table (one row per rating) from a coders x units matrix, each
    value plus ``shift``; every coder sees the same response first."""
    return [
        {
            "pair_id": f"u{unit + 1}",
            "prompt": f"Question {unit + 1}",
            "response_a": f"first answer {unit + 1}",
            "response_b": f"second answer {unit + 1}",
            "annotator": f"coder_{'ABCD'[coder]}",
            "label": value + shift,
            **extra,
        }
        for coder, row in enumerate(matrix)
        for unit, value in enumerate(row)
        if value is not None
    ]


class WordEmbedder:
    """A deterministic stand-in for a sentence-transformers model: hashed bag-of-words vectors
    (scikit-learn's HashingVectorizer), unit length. Same words in any order embed the same;
    used where the point is the validator's logic, not the model's quality."""

    def __init__(self) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectorizer = HashingVectorizer(n_features=512, alternate_sign=False, norm="l2")
        self.calls: list[int] = []

    def encode(self, texts):
        self.calls.append(len(texts))
        return self.vectorizer.transform(list(texts)).toarray().astype("float32")


class CharTokenizer:
    """A character-level tokenizer with the parts of the Hugging Face interface the reference
    scorer uses: tiny models in tests need no downloaded vocabulary."""

    chat_template = None
    eos_token = "</s>"  # its text; no response in the tests ends with it
    eos_token_id = 1
    pad_token_id = 0
    bos_token_id = 2

    def __init__(self, vocab_size: int = 64):
        self.vocab_size = vocab_size

    def __call__(self, text: str | list[str], add_special_tokens: bool = True):
        from types import SimpleNamespace

        def encode(one: str) -> list[int]:
            ids = [3 + ord(c) % (self.vocab_size - 3) for c in one]
            return ([self.bos_token_id] if add_special_tokens else []) + ids

        if isinstance(text, list):
            return SimpleNamespace(input_ids=[encode(t) for t in text])
        return SimpleNamespace(input_ids=encode(text))

    def decode(self, ids) -> str:
        raise NotImplementedError("not invertible")


# The shape of the tiny test models (any architecture's config takes these names).
TINY_SHAPE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)


def tiny_causal_lm(vocab_size: int = 64, seed: int = 0):
    """A randomly initialised two-layer Llama: real architecture, seconds to build."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, max_position_embeddings=512, **TINY_SHAPE)
    return LlamaForCausalLM(config).eval()


def save_tiny_model(folder, words: list[str], chat_template: str | None = None):
    """A tiny Llama and a word-level tokenizer saved like a hub checkpoint (from_pretrained-able),
    with ``chat_template`` when given."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[EOS]", "[BOS]", "[UNK]"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(words)))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        eos_token="[EOS]",
        bos_token="[BOS]",
        unk_token="[UNK]",
    )
    tokenizer.chat_template = chat_template
    tiny_causal_lm(vocab_size=64).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# A learnable preference task for the trainer: chosen responses use "good" words, rejected ones
# "bad" words; a share of the labels can be flipped (the truth is kept in `flipped`). Each bad
# word is as long as its good one: the task is learnt from the words, not from their length
# (which label_noise's preference model is made blind to).
GOOD_WORDS = ["good", "fine", "great", "nice", "kind", "glad", "calm"]
BAD_WORDS = ["ugly", "poor", "awful", "rude", "mean", "grim", "cold"]
FILLER_WORDS = [
    "tell",
    "me",
    "about",
    "the",
    "weather",
    "today",
    "please",
    "what",
    "is",
    "how",
    "do",
    "you",
    "think",
    "a",
    "cat",
    "dog",
]


def preference_task(n: int, *, flip: float = 0.0, seed: int = 0, prefix: str = "p"):
    """A PairSet (indexed by pair_id) of the task, with a boolean `flipped` column."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        chosen = " " + " ".join(rng.choice(GOOD_WORDS, 3))
        rejected = " " + " ".join(rng.choice(BAD_WORDS, 3))
        flipped = bool(rng.random() < flip)
        if flipped:
            chosen, rejected = rejected, chosen
        rows.append(
            {
                "pair_id": f"{prefix}{i}",
                "prompt": " ".join(rng.choice(FILLER_WORDS, 5)),
                "chosen": chosen,
                "rejected": rejected,
                "flipped": flipped,
            }
        )
    return pd.DataFrame(rows).set_index("pair_id", drop=False).rename_axis(None)


def task_model(folder):
    """A tiny Llama whose word-level tokenizer knows the task's words."""
    return save_tiny_model(folder, GOOD_WORDS + BAD_WORDS + FILLER_WORDS)


def task_training(tmp_path: Path, pairs: int) -> list[str]:
    """The ``train`` command line of a tiny task model on ``pairs`` of its preference task
    (4 steps of 8 pairs on the CPU, a fifth held out), the files made under ``tmp_path``."""
    folder = task_model(tmp_path / "tiny")
    path = tmp_path / "pairs.jsonl"
    preference_task(pairs).drop(columns="flipped").to_json(path, orient="records", lines=True)
    flags = ["train", str(path), "--model", str(folder), "--max-steps", "4", "--batch-size", "8"]
    return flags + ["--learning-rate", "1e-3", "--eval-fraction", "0.2", "--device", "cpu"]


# Launchers of 2 processes (gloo on the CPU): torchrun, and accelerate's multi-GPU launcher
# (which starts torchrun's processes).
TORCHRUN = ["-m", "torch.distributed.run", "--nproc_per_node", "2"]
ACCELERATE = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
ACCELERATE += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def torchrun(
    flags: list[str],
    *,
    module: str = "prefaudit",
    env: dict | None = None,
    launcher: list[str] = TORCHRUN,
):
    """``prefaudit FLAGS`` (or ``python -m MODULE FLAGS``) under ``launcher`` with 2 processes
    (gloo on the CPU), ``env`` added to the environment; it must succeed. Returns the finished
    process (its stdout)."""
    import os
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, *launcher, "-m", module, *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
            **(env or {}),
        },
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def trained_weights(folder: Path) -> dict:
    """The tensors of the model a training run saved into ``folder``."""
    from safetensors.torch import load_file

    return load_file(str(folder / "model" / "model.safetensors"))


def token_pairs(seed: int = 0):
    """Six pairs of random token ids (vocabulary 64) of mixed lengths, one-token responses
    among them: (prompts, [[chosen, rejected], ...])."""
    rng = np.random.default_rng(seed)
    draw = lambda n: rng.integers(3, 64, n).tolist()  # noqa: E731
    prompts = [draw(5), draw(9), draw(3), draw(30), draw(1), draw(12)]
    responses = [
        [draw(7), draw(4)],
        [draw(2), draw(11)],
        [draw(6), draw(6)],
        [draw(1), draw(20)],  # a one-token response: only the prompt's last position scores it
        [draw(9), draw(1)],
        [draw(3), draw(15)],
    ]
    return prompts, responses


def dense_flex_kernel(compiled: bool):
    """The block mask's rule evaluated at every (query, key) into SDPA: what FlexAttention
    computes, runnable backwards on the CPU (whose FlexAttention kernel has no backward)."""
    import torch
    import torch.nn.functional as F

    def run(query, key, value, *, block_mask, scale, enable_gqa):
        rows, _, width, _ = query.shape
        b = torch.arange(rows)[:, None, None, None]
        q, k = torch.arange(width)[None, None, :, None], torch.arange(width)[None, None, None, :]
        mask = block_mask.mask_mod(b, torch.zeros(1, dtype=torch.long), q, k)
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, scale=scale, enable_gqa=enable_gqa
        )

    return run


def counted(function, calls: list):
    """``function`` wrapped to append to ``calls`` at each call made with gradients on (a
    training forward, not a probe or a reference pass)."""
    import torch

    def run(*args, **kwargs):
        if torch.is_grad_enabled():
            calls.append(function.__name__)
        return function(*args, **kwargs)

    return run


def grad_calls(monkeypatch, module, name: str) -> list:
    """``module.name`` replaced by :func:`counted`; the list of its calls with gradients on."""
    calls: list = []
    monkeypatch.setattr(module, name, counted(getattr(module, name), calls))
    return calls


@contextmanager
def one_process_group(folder: Path, backend: str = "gloo"):
    """A torch.distributed group of this process alone (world size 1), for DDP and FSDP in a
    test; destroyed on leaving."""
    import torch.distributed as dist

    dist.init_process_group(backend, init_method=f"file://{folder / 'group'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


# The distributed packed-path tests' devices: the CPU (gloo, the kernel's stand-in) and CUDA
# (NCCL, the compiled kernel) where there is one.
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif("not __import__('torch').cuda.is_available()")),
]


def logps_and_grads(wrapped, named, prompts, responses):
    """Log-probs of ``wrapped`` (a causal LM, or DDP or FSDP around its pair module) and the
    gradients (whole tensors) of ``named``, the causal LM's parameters, from zero."""
    from prefaudit.models.flex import pair_logps

    for _, p in named:
        p.grad = None
    logps = pair_logps(wrapped, prompts, responses, pad=0, precise=False)
    (logps * 0.1).sum().backward()
    grads = {}
    for name, p in named:
        grads[name] = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad.clone()
    return logps.detach(), grads


def packed_on(device: str, monkeypatch) -> tuple[list, list, str]:
    """The packed path on ``device`` counted: on a CPU the eager kernel's SDPA stand-in (no
    FlexAttention backward there), on CUDA the default (the compiled kernel, for real). The
    lists count the packed forwards and the blockwise heads run with gradients on; the path
    is what :func:`prefaudit.models.flex.attention_path` should say."""
    from prefaudit.models import flex, packing

    if device == "cpu":
        import warnings

        monkeypatch.setenv("PREFAUDIT_ATTENTION", "flex-eager")
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
        monkeypatch.setattr(flex, "kernel", dense_flex_kernel)
    else:
        monkeypatch.delenv("PREFAUDIT_ATTENTION", raising=False)
    packed = grad_calls(monkeypatch, flex, "flex_logps")
    head = grad_calls(monkeypatch, packing, "_blockwise")
    return packed, head, ("flex-eager" if device == "cpu" else "flex-compiled")


def dense_twin(model, monkeypatch):
    """``model``'s log-probs and gradients on the dense path, with a copy of its weights."""
    import copy

    twin = copy.deepcopy(model)
    monkeypatch.setenv("PREFAUDIT_ATTENTION", "dense")
    try:
        return logps_and_grads(twin, list(twin.named_parameters()), *token_pairs(4))
    finally:
        monkeypatch.delenv("PREFAUDIT_ATTENTION")
