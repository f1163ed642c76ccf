"""TRL's ``DPOTrainer``, taking the reference log-probs from the data when it has them.

``prefaudit clean`` writes ``ref_chosen_logps`` / ``ref_rejected_logps`` into ``cleaned.jsonl``
(in TRL's columns, for TRL's tokenisation: docs/cleaning.md, "TRL's reference log-probs"). TRL 1.x
computes those columns again when ``precompute_ref_log_probs=True``, then fails on the duplicate
columns; this subclass keeps them, so training runs no reference forward. It overrides one
private method of TRL (``_precompute_ref_logps``, TRL 1.x); tests/models/test_trl_columns.py
trains with it on the real TRL and counts the reference forwards (0).

    from prefaudit.training.trl import DPOTrainerWithRefLogps   # needs trl

Importing this module imports TRL (not a dependency of prefaudit: ``pip install trl``).
"""

from __future__ import annotations

try:
    import trl
except ModuleNotFoundError as err:  # pragma: no cover - the message is the point
    raise ModuleNotFoundError(
        "prefaudit.training.trl needs TRL: pip install trl", name=err.name
    ) from err

REF_COLUMNS = {"ref_chosen_logps", "ref_rejected_logps"}


class DPOTrainerWithRefLogps(trl.DPOTrainer):
    """TRL's DPOTrainer, taking the reference log-probs from the data when it has them."""

    def _precompute_ref_logps(self, dataset, name, batch_size):
        if set(dataset.column_names) >= REF_COLUMNS:
            return dataset  # TRL 1.x would compute them again, then fail on the duplicates
        return super()._precompute_ref_logps(dataset, name, batch_size)
