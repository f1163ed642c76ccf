"""Warnings from the libraries prefaudit runs models with that its users cannot act on.

Each is filtered by its category, the start of its message and the module that warns, and
only while prefaudit's own call into the library runs: any other warning (another
deprecation, one about the user's model or data) still shows.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# (category, message regex matched at its start, module regex): why each cannot be acted on.
UNACTIONABLE = (
    # peft's get_peft_model reads model.is_gradient_checkpointing, which transformers deprecates
    # for is_activation_checkpointing (gone in v6): peft's to change; no setting avoids it.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated", r"transformers\.modeling_utils"),
)


@contextmanager
def unactionable_warnings_filtered() -> Iterator[None]:
    """Run the body with :data:`UNACTIONABLE` warnings ignored; the filters are restored
    after it (``warnings.catch_warnings``: call it from the main thread)."""
    with warnings.catch_warnings():
        for category, message, module in UNACTIONABLE:
            warnings.filterwarnings("ignore", message, category, module)
        yield
