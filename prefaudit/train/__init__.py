"""DPO training on (cleaned) preference pairs: config, losses, data, loop.

Names are imported lazily: the CLI reads ``TrainConfig`` for its flags without loading numpy,
pandas or torch.
"""

from __future__ import annotations

from prefaudit._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "prefaudit.train.config",
    "LOSSES": "prefaudit.train.losses",
    "METRICS": "prefaudit.train.loop",
    "TrainResult": "prefaudit.train.loop",
    "evaluate": "prefaudit.train.loop",
    "train": "prefaudit.train.loop",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
