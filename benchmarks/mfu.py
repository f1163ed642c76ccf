"""Model FLOPs utilisation for the GPU benchmarks: the model FLOPs a piece of work needs
(padding excluded), over the time it took, over the device's dense bf16 peak, looked up from
the name torch gives the device. Shared by bench_reference.py, bench_train.py and gpu_suite.py.

The FLOP counts (per token, N = parameters outside the embedding table; the head counts where
logits are taken):

- forward (the reference pass): 2 N per token, plus the attention products, 4 x layers x
  attention width x keys attended per query token (QK^T and AV, 2 FLOPs a multiply-add);
- training (a forward and a backward, the backward twice the forward): 6 N per token plus
  3x the forward's attention term. Recomputation (activation checkpointing, the blockwise head)
  is not counted: it is overhead, as in PaLM's definition of MFU.
"""

from __future__ import annotations

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, by a substring of the device name,
# most specific first. Sources: the vendors' data sheets.
PEAK_BF16_TFLOPS: tuple[tuple[str, float | None], ...] = (
    ("GH200", 989.4),  # NVIDIA GH200 data sheet (H100 SXM compute)
    ("H200", 989.4),  # NVIDIA H200 data sheet: 1,979 TFLOPS with sparsity
    ("H100 PCIe", 756.0),  # NVIDIA H100 data sheet, PCIe: 1,513 with sparsity
    ("H100 NVL", 835.0),  # NVIDIA H100 NVL data sheet: 1,671 with sparsity
    ("H100", 989.4),  # NVIDIA H100 data sheet, SXM5 ("H100 80GB HBM3"): 1,979 with sparsity
    ("H800", 989.4),  # NVIDIA H800 SXM (H100 compute)
    ("B200", 2250.0),  # NVIDIA DGX B200 / HGX B200 data sheet: 4.5 PFLOPS sparse per GPU
    ("A100", 312.0),  # NVIDIA A100 data sheet (SXM and PCIe): 624 with sparsity
    ("A800", 312.0),  # A100 compute
    ("L40S", 362.05),  # NVIDIA L40S data sheet: 733 with sparsity
    ("L40", 181.05),  # NVIDIA L40 data sheet: 362.1 with sparsity
    ("L4", 121.0),  # NVIDIA L4 data sheet: 242 with sparsity
    ("A10G", None),  # AWS's A10G: no published bf16 figure (not the A10's below)
    ("A10", 125.0),  # NVIDIA A10 data sheet: 250 with sparsity
    ("RTX 4090", 165.2),  # Ada whitepaper, GeForce RTX 4090 (FP32 accumulate: 165.2)
    ("MI300X", 1307.4),  # AMD Instinct MI300X data sheet
    ("MI250X", 383.0),  # AMD Instinct MI250X data sheet
)


def peak_tflops(device_name: str | None) -> float | None:
    """The dense bf16 peak of a device from its name (``torch.cuda.get_device_name()``);
    None when unknown (then MFU is "n/a", never a guess)."""
    if not device_name:
        return None
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return peak  # None for a device listed as unknown
    return None


def device_name(device: str) -> str | None:
    """The accelerator's name for a torch device string ("cuda", "cuda:1"); None on a CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def mfu(flops: float, seconds: float, peak: float | None) -> float | None:
    """Achieved FLOP/s over the peak (a fraction), or None without a known peak."""
    if peak is None or seconds <= 0:
        return None
    return flops / seconds / (peak * 1e12)


def shown(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction:.1%}"


def shape(config) -> tuple[int, int, int]:
    """(layers, attention width, vocabulary x hidden) of a transformers config."""
    heads = config.num_attention_heads
    width = heads * (getattr(config, "head_dim", None) or config.hidden_size // heads)
    return config.num_hidden_layers, width, config.vocab_size * config.hidden_size


def body_params(model) -> int:
    """Parameters outside the embedding table and the head (they cost no FLOPs per token)."""
    _, _, head = shape(model.config)
    embed = 0 if model.config.tie_word_embeddings else head
    return sum(p.numel() for p in model.parameters()) - head - embed


def attention_flops(layers: int, width: int, start: int, stop: int) -> float:
    """Forward attention FLOPs of causal queries at positions start..stop-1 (each sees itself
    and what comes before it)."""
    return 4 * layers * width * (stop * (stop + 1) - start * (start + 1)) / 2


def training_flops(model, pairs: list[tuple[int, int, int]]) -> float:
    """Model FLOPs of one DPO training pass over ``pairs`` of (prompt, chosen, rejected)
    token counts: each pair's prompt once, each response after it (attending to the prompt
    and itself), the head at every response token; forward + backward = 3x the forward.
    The same for every loop compared: it counts what the step needs, not what a loop does."""
    layers, width, head = shape(model.config)
    body = body_params(model)
    total = 0.0
    for p, c, r in pairs:
        forward = 2 * body * (p + c + r) + 2 * head * (c + r) + attention_flops(layers, width, 0, p)
        forward += attention_flops(layers, width, p, p + c) + attention_flops(
            layers, width, p, p + r
        )
        total += 3 * forward
    return total
