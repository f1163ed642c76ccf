"""Loading: files, folders and hub datasets -> PairSet (+ Annotations) and a LoadReport.

Names are resolved lazily so that the CLI can read the constants in ``schema`` without
importing numpy and the readers.
"""

from __future__ import annotations

from prefaudit._lazy import lazy_exports

_EXPORTS = {
    "load": "prefaudit.io.loader",
    "LoadedData": "prefaudit.io.loader",
    "ANNOTATION_COLUMNS": "prefaudit.io.schema",
    "DEFAULT_MAX_CHARS": "prefaudit.io.schema",
    "ON_BAD_ROW": "prefaudit.io.schema",
    "PAIR_COLUMNS": "prefaudit.io.schema",
    "SHAPES": "prefaudit.io.schema",
    "LoadError": "prefaudit.io.schema",
    "LoadIssue": "prefaudit.io.schema",
    "LoadReport": "prefaudit.io.schema",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
