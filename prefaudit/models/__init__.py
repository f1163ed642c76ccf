"""Models: embedded defaults (and, in later work, the embedding and reference-model services)."""

from prefaudit.models.embedded import EMBEDDED_MODELS, EmbeddedModel, embedded_model_path

__all__ = ["EMBEDDED_MODELS", "EmbeddedModel", "embedded_model_path"]
