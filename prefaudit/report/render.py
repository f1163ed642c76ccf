"""Render an audit folder into one self-contained, offline HTML file."""

from __future__ import annotations

import base64
import hashlib
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from prefaudit import __version__
from prefaudit.fileio import write_bytes
from prefaudit.outputs import REPORT_FILE
from prefaudit.report import charts, review, table, verdict
from prefaudit.report.inputs import ReportInputs
from prefaudit.report.sections import SEVERITIES, Problem, build_section, label_noise, num, pct
from prefaudit.report.text import LongTexts, clamped, shown, visible

log = logging.getLogger(__name__)

LISTED = 200  # load-report rows listed in the page (all of them are in rejected.jsonl)
COMPARED = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


def write_report(folder: str | Path, *, shown_as: str | Path | None = None) -> Path:
    """Render ``folder/index.html`` from the audit saved in ``folder`` (nothing is recomputed).

    The report also shows what else the folder holds: rule results (``check.json``), the
    cleaning manifest and training runs. ``shown_as``: the folder's name for the page when
    ``folder`` is a stage that will take its place.
    """
    folder = Path(folder)
    inputs = ReportInputs.read(folder)
    if shown_as is not None:
        inputs.folder = Path(shown_as)
    html = render_report(inputs)
    path = write_bytes(folder / REPORT_FILE, html.encode("utf-8", "replace"))
    log.info("report written to %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def render_report(inputs: ReportInputs) -> str:
    """The report's HTML for ``inputs``."""
    long_texts = LongTexts()
    env = _environment(long_texts)
    result = inputs.result
    flags = result.flags
    css, js = _asset("report.css"), _asset("report.js")
    sections = [build_section(name, r, inputs) for name, r in result.validators.items()]
    data = table.table_data(flags, list(result.validators), inputs.texts)
    flagged = int(flags["any_issue"].sum()) if len(flags) else 0
    problems = _problems(inputs, sections)
    load = result.load
    context: dict[str, Any] = {
        "title": _title(inputs),
        "version": __version__,
        "result": result,
        "load": load,
        "pairs": len(result.pair_ids),
        "flagged": flagged,
        "flagged_share": flagged / len(result.pair_ids) if result.pair_ids else None,
        "sections": sections,
        "problems": problems,
        "verdict": verdict.decide(problems, inputs.check, inputs.manifest),
        "tiles": _tiles(result.metrics, result.validators.get("label_noise")),
        "notes": [*load.notes, *result.notes],
        "rejected": load.rejected[:LISTED],
        "warnings": load.warnings[:LISTED],
        "warnings_total": len(load.warnings),
        "check": inputs.check,
        "manifest": inputs.manifest,
        "review": review.review_groups(inputs),
        "runs": inputs.runs,
        "run_charts": {run.name: _run_charts(run) for run in inputs.runs},
        "run_intervals": {run.name: _accuracy_interval(run.summary) for run in inputs.runs},
        "comparison": inputs.comparison,
        "comparison_runs": [n for n in ("raw", "cleaned") if n in (inputs.comparison or {})],
        "comparison_metrics": COMPARED,
        "table_blob": table.encode(data),
        "table_texts": data["texts"],
        "text_cap": data["text_cap"],
        "texts_cut": data["texts_cut"],
        # Called last in the page: by then every clamped cell has stored its text.
        "long_texts": long_texts.blob,
        "css": css,
        "js": js,
        "csp": _csp(css, js),
    }
    return env.get_template("report.html").render(context)


def _environment(long_texts: LongTexts | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("prefaudit.report", "templates"),
        autoescape=True,  # every value from the data is escaped unless marked safe
        undefined=jinja2.ChainableUndefined,  # a figure an older audit lacks renders as "–"
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_filter(num), pct=_filter(pct), shown=_filter(shown, ""))
    env.filters["visible"] = _filter(lambda value: visible(str(value)), "")
    store = long_texts if long_texts is not None else LongTexts()
    env.filters["clamped"] = _filter(lambda value: clamped(value, store), "")
    return env


def _filter(function, missing: Any = None):
    def apply(value, *args):
        if isinstance(value, jinja2.Undefined) or value is None:
            return function(None, *args) if missing is None else missing
        return function(value, *args)

    return apply


def _asset(name: str) -> str:
    text = resources.files("prefaudit.report").joinpath("templates", name).read_text("utf-8")
    if "</" in text:  # inlined verbatim inside <style>/<script>: must not close its element
        raise ValueError(f"report asset {name} contains '</', which would end its element")
    return text


def _csp(css: str, js: str) -> str:
    """A Content-Security-Policy that allows exactly the report's own style and script (by
    hash), images only as data: URIs, and nothing else: no network, no forms, no frames."""

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()

    return (
        "default-src 'none'; "
        f"style-src 'sha256-{digest(css)}'; "
        f"script-src 'sha256-{digest(js)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )


def _problems(inputs: ReportInputs, sections) -> list[Problem]:
    """Every section's problems, the most severe first, plus the load report's."""
    problems = [p for s in sections for p in s.problems]
    load = inputs.result.load
    if load.rows_rejected:
        problems.append(
            Problem(
                "medium" if load.rows_rejected / max(load.rows_read, 1) >= 0.01 else "low",
                f"{num(load.rows_rejected)} of {num(load.rows_read)} input rows could not be loaded "
                "and are not in the audit (each listed with its line and reason).",
                "overview",
            )
        )
    if inputs.check and not inputs.check.get("passed", True):
        failed = [r["rule"] for r in inputs.check["results"] if r["status"] == "failed"]
        problems.append(
            Problem("high", f"The rule file fails: {', '.join(failed[:6])}.", "scorecard")
        )
    return sorted(problems, key=lambda p: SEVERITIES.index(p.severity))


def _tiles(metrics: dict[str, Any], noise=None) -> list[dict[str, str]]:
    """Headline figures of the checks that ran (the noise rate only where signals besides the
    preference model support it, naming them)."""
    tiles = []
    if metrics.get("agreement/krippendorff_alpha") is not None:
        tiles.append(
            {"value": num(metrics["agreement/krippendorff_alpha"]), "label": "Krippendorff's alpha"}
        )
    signals = list(noise.info.get("signals_used") or []) if noise is not None else []
    firm = noise is not None and label_noise.supported(noise.info)
    if metrics.get("label_noise/estimated_rate") is not None and firm:
        tiles.append(
            {
                "value": pct(metrics["label_noise/estimated_rate"]),
                "label": f"labels estimated flipped ({', '.join(signals)})",
            }
        )
    if metrics.get("duplication/exact_rate") is not None:
        repeated = metrics["duplication/exact_rate"] + (
            metrics.get("duplication/near_duplicate_rate") or 0
        )
        tiles.append({"value": pct(repeated), "label": "pairs repeated (exact or near)"})
    if metrics.get("reference/reference_accuracy") is not None:
        tiles.append(
            {
                "value": pct(metrics["reference/reference_accuracy"]),
                "label": "reference prefers chosen",
            }
        )
    return tiles


def _accuracy_interval(summary: dict[str, Any]) -> tuple[float, float] | None:
    """The 95% interval (Wilson) of a run's last held-out accuracy, as the console prints it."""
    from prefaudit.stats import wilson

    accuracy = (summary.get("eval") or {}).get("rewards/accuracies")
    n = summary.get("eval_pairs") or 0
    if accuracy is None or accuracy != accuracy or not n:
        return None
    return wilson(round(accuracy * n), n)


def _run_charts(run) -> list[charts.Chart]:
    """Loss and reward accuracy over the steps, training and held-out lines."""
    out = []
    for metric in ("loss", "rewards/accuracies", "rewards/margins"):
        series = {}
        for split in ("train", "eval"):
            points = [
                (r["step"], r[metric])
                for r in run.metrics
                if r.get("split") == split and r.get(metric) is not None
            ]
            if points:
                series["held out" if split == "eval" else "training"] = tuple(
                    zip(*points, strict=True)
                )
        if series:
            out.append(
                charts.lines(
                    series,
                    xlabel="step",
                    ylabel=metric,
                    alt=f"{metric} over the training steps of {run.name}",
                )
            )
    return out


def _title(inputs: ReportInputs) -> str:
    files = inputs.result.load.files
    return Path(files[0]).name if files else inputs.folder.name
