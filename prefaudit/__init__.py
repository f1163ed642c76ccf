"""prefaudit: audit preference data (prompt, chosen, rejected) for DPO before training on it.

Public names are imported lazily so that ``prefaudit --help`` and CPU-only audits start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "prefaudit.io",
    "LoadError": "prefaudit.io",
    "LoadReport": "prefaudit.io",
    "LoadedData": "prefaudit.io",
    "AuditContext": "prefaudit.audit",
    "AuditResult": "prefaudit.audit",
    "run_audit": "prefaudit.audit",
    "Validator": "prefaudit.validators",
    "ValidatorResult": "prefaudit.validators",
    "ContentValidator": "prefaudit.validators",
    "available_validators": "prefaudit.validators",
    "CleaningPolicy": "prefaudit.clean",
    "TrainConfig": "prefaudit.train",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'prefaudit' has no attribute {name!r}")
