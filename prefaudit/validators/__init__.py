"""Validators: one module per check, registered by name.

Importing this package registers the built-in validators; each module imports only what it
needs at import time (models are asked of the AuditContext, never loaded here).
"""

from prefaudit.validators.agreement import AgreementValidator
from prefaudit.validators.base import (
    FLAG_COLUMNS,
    VALIDATORS,
    MissingInputError,
    Validator,
    ValidatorResult,
    available_validators,
    create_validator,
    empty_flags,
    register,
)
from prefaudit.validators.content import ContentValidator
from prefaudit.validators.coverage import CoverageValidator
from prefaudit.validators.duplication import DuplicationValidator
from prefaudit.validators.label_noise import LabelNoiseValidator
from prefaudit.validators.reference import ReferenceValidator

__all__ = [
    "AgreementValidator",
    "FLAG_COLUMNS",
    "VALIDATORS",
    "ContentValidator",
    "CoverageValidator",
    "DuplicationValidator",
    "LabelNoiseValidator",
    "ReferenceValidator",
    "MissingInputError",
    "Validator",
    "ValidatorResult",
    "available_validators",
    "create_validator",
    "empty_flags",
    "register",
]
