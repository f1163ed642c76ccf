"""The HTML audit report: one self-contained file a person reads to decide whether to train.

``prefaudit audit --out DIR`` writes ``DIR/index.html``; ``prefaudit report DIR`` renders it
again from what ``DIR`` holds, without recomputing anything. See :mod:`prefaudit.report.sections`
for how a validator gets its section.
"""

from __future__ import annotations

from prefaudit.report.inputs import ReportInputs
from prefaudit.report.render import REPORT_FILE, render_report, write_report

__all__ = ["REPORT_FILE", "ReportInputs", "render_report", "write_report"]
