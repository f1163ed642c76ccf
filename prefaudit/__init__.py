"""prefaudit: audit preference data (prompt, chosen, rejected) for DPO before training on it.

Public names are imported lazily so that ``prefaudit --help`` and CPU-only audits start fast.
"""

from __future__ import annotations

from prefaudit._lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _EXPORTS)
