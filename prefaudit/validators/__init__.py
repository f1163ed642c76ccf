"""Validators: one module per check, one explicit registry.

``BUILT_IN`` lists the built-in validators in the order they are registered (and listed by
``prefaudit validators``); a validator of your own is added with :func:`register`. Each module
imports only what it needs at import time (models are asked of the AuditContext, never loaded
here).
"""

from prefaudit.validators.agreement import AgreementValidator
from prefaudit.validators.base import (
    FLAG_COLUMNS,
    VALIDATORS,
    CleaningAction,
    MissingInputError,
    Parameter,
    Validator,
    ValidatorResult,
    available_validators,
    create_validator,
    empty_flags,
    register,
    validator_parameters,
)
from prefaudit.validators.content import ContentValidator
from prefaudit.validators.coverage import CoverageValidator
from prefaudit.validators.duplication import DuplicationValidator
from prefaudit.validators.label_noise import LabelNoiseValidator
from prefaudit.validators.reference import ReferenceValidator

BUILT_IN = (
    AgreementValidator,
    ContentValidator,
    CoverageValidator,
    DuplicationValidator,
    LabelNoiseValidator,
    ReferenceValidator,
)
for _validator in BUILT_IN:
    register(_validator)

__all__ = [
    "AgreementValidator",
    "BUILT_IN",
    "CleaningAction",
    "FLAG_COLUMNS",
    "VALIDATORS",
    "ContentValidator",
    "CoverageValidator",
    "DuplicationValidator",
    "LabelNoiseValidator",
    "ReferenceValidator",
    "MissingInputError",
    "Parameter",
    "Validator",
    "ValidatorResult",
    "available_validators",
    "create_validator",
    "empty_flags",
    "register",
    "validator_parameters",
]
