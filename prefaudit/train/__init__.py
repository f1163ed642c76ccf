"""DPO training on (cleaned) preference pairs: config, losses, data, loop.

Names are imported lazily: the CLI reads ``TrainConfig`` for its flags without loading numpy,
pandas or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "prefaudit.train.config",
    "LOSSES": "prefaudit.train.losses",
    "METRICS": "prefaudit.train.loop",
    "TrainResult": "prefaudit.train.loop",
    "evaluate": "prefaudit.train.loop",
    "train": "prefaudit.train.loop",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'prefaudit.train' has no attribute {name!r}")
