"""Loading: files, folders and hub datasets -> PairSet (+ Annotations) and a LoadReport."""

from prefaudit.io.load import DEFAULT_MAX_CHARS, ON_BAD_ROW, LoadedData, load
from prefaudit.io.schema import (
    ANNOTATION_COLUMNS,
    PAIR_COLUMNS,
    SHAPES,
    LoadError,
    LoadIssue,
    LoadReport,
)

__all__ = [
    "ANNOTATION_COLUMNS",
    "DEFAULT_MAX_CHARS",
    "ON_BAD_ROW",
    "PAIR_COLUMNS",
    "SHAPES",
    "LoadError",
    "LoadIssue",
    "LoadReport",
    "LoadedData",
    "load",
]
