"""Models: the embedded defaults, text embeddings and the reference model.

The reference model, by concern: ``loading`` (a causal LM and its identity), ``reference``
(the scorer), ``packing`` (pairs packed for one forward call), ``budget`` (GPU batch sizes),
``distributed`` (torchrun / accelerate processes) and ``logps_file`` (reference_logps.parquet);
``quiet`` filters the libraries' warnings users cannot act on while prefaudit calls them.
"""

from prefaudit.models.embedded import EMBEDDED_MODELS, EmbeddedModel, embedded_model_path

__all__ = ["EMBEDDED_MODELS", "EmbeddedModel", "embedded_model_path"]
