"""DPO training on (cleaned) preference pairs: config, losses, data, loop.

Names are imported lazily: the CLI reads ``TrainConfig`` for its flags without loading numpy,
pandas or torch.
"""

from __future__ import annotations

from prefaudit._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "prefaudit.training.config",
    "LOSSES": "prefaudit.training.losses",
    "METRICS": "prefaudit.training.loop",
    "TrainResult": "prefaudit.training.loop",
    "evaluate": "prefaudit.training.loop",
    "train": "prefaudit.training.loop",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
