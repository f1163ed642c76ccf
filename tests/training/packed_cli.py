"""``python -m tests.training.packed_cli ARGS``: the prefaudit command line on the packed path
on a CPU, for the tests that run it under torchrun. FlexAttention's kernel is replaced by SDPA
over the block mask's rule (the CPU kernel has no backward pass), and rows hold 64 tokens, so
that a micro-batch fills several. Set PREFAUDIT_ATTENTION=flex-eager to take the path. With
PACKED_CALLS=FOLDER, each process writes FOLDER/rank-N: how many packed forwards it ran with
gradients on (the training steps' forwards, not the probe's)."""

import os
import sys
import warnings
from pathlib import Path

from prefaudit.cli import main
from prefaudit.models import flex
from tests.helpers import counted, dense_flex_kernel

if __name__ == "__main__":
    calls: list = []
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
    flex.kernel = dense_flex_kernel
    flex.ROW_TOKENS = 64
    flex.flex_logps = counted(flex.flex_logps, calls)
    code = main(sys.argv[1:])
    if os.environ.get("PACKED_CALLS"):
        rank = os.environ.get("RANK", "0")
        (Path(os.environ["PACKED_CALLS"]) / f"rank-{rank}").write_text(str(len(calls)))
    sys.exit(code)
