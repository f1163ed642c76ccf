"""Cleaning: an audit and a policy in, a cleaned dataset and a quarantine out, nothing lost.

:mod:`prefaudit.cleaning.policy` is the policy (a rule file's ``clean:`` section, or a dict);
:mod:`prefaudit.cleaning.apply` applies it to an audit's flags, reading only the cleaning
actions each validator declares (``Validator.cleaning``).
"""

from prefaudit.cleaning.apply import Cleaned, clean
from prefaudit.cleaning.policy import WEIGHTS, CleaningPolicy, load_policy, policy_from_mapping

__all__ = ["WEIGHTS", "Cleaned", "CleaningPolicy", "clean", "load_policy", "policy_from_mapping"]
