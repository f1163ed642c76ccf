"""prefaudit: audit preference data (prompt, chosen, rejected) for DPO before training on it.

Public names are imported lazily so that ``prefaudit --help`` and CPU-only audits start fast.
"""

from __future__ import annotations

from prefaudit._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "audit": "prefaudit.api",
    "check": "prefaudit.api",
    "clean": "prefaudit.api",
    "train": "prefaudit.api",
    "clean_then_train": "prefaudit.api",
    "review_export": "prefaudit.api",
    "review_import": "prefaudit.api",
    "write_report": "prefaudit.api",
    "to_html": "prefaudit.api",
    "demo": "prefaudit.api",
    "CheckResult": "prefaudit.api",
    "CleanResult": "prefaudit.api",
    "CleanThenTrainResult": "prefaudit.api",
    "DemoResult": "prefaudit.api",
    "InputError": "prefaudit.errors",
    "SettingError": "prefaudit.errors",
    "load": "prefaudit.io",
    "LoadError": "prefaudit.io",
    "LoadReport": "prefaudit.io",
    "LoadedData": "prefaudit.io",
    "AuditContext": "prefaudit.auditing",
    "AuditResult": "prefaudit.auditing",
    "run_audit": "prefaudit.auditing",
    "Validator": "prefaudit.validators",
    "CleaningAction": "prefaudit.validators",
    "register": "prefaudit.validators",
    "ValidatorResult": "prefaudit.validators",
    "ContentValidator": "prefaudit.validators",
    "available_validators": "prefaudit.validators",
    "CleaningPolicy": "prefaudit.cleaning",
    "TrainConfig": "prefaudit.training",
    "RuleResult": "prefaudit.rules",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__ = lazy_exports(__name__, _EXPORTS)
