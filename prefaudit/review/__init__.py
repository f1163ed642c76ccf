"""The human review loop: the pairs an audit doubts go to people, their verdicts come back.

:func:`export_review` writes the flagged pairs (or a check's top suspects, see
:func:`select_pairs`) with the evidence a reviewer needs into a labelling tool's own import
format (``TOOLS``: a CSV for a spreadsheet, a Label Studio project, an Argilla dataset);
:func:`import_review` reads the verdicts back from the same formats into the audit folder's
``review.jsonl``, which cleaning applies before its other steps (see
:mod:`prefaudit.cleaning.apply`). The file formats are in ``csv_io``, ``label_studio_io`` and
``argilla_io``, one module each.
"""

from prefaudit.review.exporting import TOOLS, ReviewExport, check_tool, export_review
from prefaudit.review.importing import ReviewImport, import_review
from prefaudit.review.items import ReviewItem, select_pairs

__all__ = [
    "TOOLS",
    "ReviewExport",
    "ReviewImport",
    "ReviewItem",
    "check_tool",
    "export_review",
    "import_review",
    "select_pairs",
]
