"""``python -m tests.training.packed_cli ARGS``: the prefaudit command line on the packed path
on a CPU, for the tests that run it under torchrun. FlexAttention's kernel is replaced by SDPA
over the block mask's rule (the CPU kernel has no backward pass), and rows hold 64 tokens, so
that a micro-batch fills several. Set PREFAUDIT_ATTENTION=flex-eager to take the path."""

import sys
import warnings

from prefaudit.cli import main
from prefaudit.models import flex
from tests.models.test_flex import _dense_kernel

if __name__ == "__main__":
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
    flex.kernel = _dense_kernel
    flex.ROW_TOKENS = 64
    sys.exit(main(sys.argv[1:]))
