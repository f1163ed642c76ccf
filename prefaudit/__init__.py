"""prefaudit: audit preference data (prompt, chosen, rejected) for DPO before training on it.

Public names are imported lazily so that ``prefaudit --help`` and CPU-only audits start fast.
"""

from __future__ import annotations

from prefaudit._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "audit": "prefaudit.api",
    "clean": "prefaudit.api",
    "train": "prefaudit.api",
    "clean_then_train": "prefaudit.api",
    "CleanResult": "prefaudit.api",
    "CleanThenTrainResult": "prefaudit.api",
    "load": "prefaudit.io",
    "LoadError": "prefaudit.io",
    "LoadReport": "prefaudit.io",
    "LoadedData": "prefaudit.io",
    "AuditContext": "prefaudit.auditing",
    "save_outputs": "prefaudit.auditing",
    "AuditResult": "prefaudit.auditing",
    "run_audit": "prefaudit.auditing",
    "Validator": "prefaudit.validators",
    "ValidatorResult": "prefaudit.validators",
    "ContentValidator": "prefaudit.validators",
    "available_validators": "prefaudit.validators",
    "CleaningPolicy": "prefaudit.cleaning",
    "TrainConfig": "prefaudit.training",
    "RuleResult": "prefaudit.rules",
    "write_report": "prefaudit.report",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__ = lazy_exports(__name__, _EXPORTS)
