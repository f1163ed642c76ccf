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
from prefaudit.report.sections import (
    SEVERITIES,
    Problem,
    Stated,
    build_section,
    counted,
    label_noise,
    num,
    pct,
)
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
        "tiles": _tiles(result, flagged),
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
    env.filters["counted"] = _filter(counted, "–")
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
    """Every section's problems, the most severe first, plus the load report's and the rule
    file's; a problem about the very pairs a more severe one is about is left to its section."""
    problems = [p for s in sections for p in s.problems]
    load = inputs.result.load
    if load.rows_rejected:
        said = Stated({"load/rows_rejected": load.rows_rejected, "load/rows_read": load.rows_read})
        problems.append(
            said.problem(
                "medium" if load.rows_rejected / max(load.rows_read, 1) >= 0.01 else "low",
                f"{said.num('load/rows_rejected')} of {said.count('load/rows_read', 'input row')} "
                f"could not be loaded and {'is' if load.rows_rejected == 1 else 'are'} not in "
                "the audit (each listed with its line and reason).",
                section="overview",
            )
        )
    if inputs.check and not inputs.check.get("passed", True):
        said = Stated({})
        failed = [r["rule"] for r in inputs.check["results"] if r["status"] == "failed"]
        problems.append(
            said.problem(
                "high",
                f"The rule file fails: {said.text(', '.join(failed[:6]))}.",
                section="scorecard",
            )
        )
    problems.sort(key=lambda p: SEVERITIES.index(p.severity))
    return _one_per_pairs(problems, inputs.result.flags)


def _one_per_pairs(problems: list[Problem], flags) -> list[Problem]:
    """``problems`` (most severe first) without those about the same pairs as an earlier one:
    the content and duplication checks both report identical responses, and the same three
    pairs were listed twice, once high and once medium. (Only the same set: an empty chosen
    response among the label-noise suspects is another finding about some of them.)"""
    kept, seen = [], []
    for problem in problems:
        columns = [c for c in problem.covers if c in flags.columns]
        if columns:
            pairs = set(flags.index[flags[columns].fillna(False).astype(bool).any(axis=1)])
            if pairs and pairs in seen:
                continue
            seen.append(pairs)
        kept.append(problem)
    return kept


def _tiles(result, flagged: int) -> list[dict[str, Any]]:
    """The scorecard's headline figures: pairs, flags and rejected rows, then those of the
    checks that ran (the noise rate only where signals besides the preference model support
    it, naming them). Each tile carries the figures it states (see Stated)."""
    load, n = result.load, len(result.pair_ids)
    said = Stated(
        {
            **result.metrics,
            "pairs": n,
            "flagged": flagged,
            "flagged/share": flagged / n if n else None,
            "load/rows_rejected": load.rows_rejected,
            "load/rows_read": load.rows_read,
        }
    )
    tiles = []

    def tile(value: str, label: str) -> None:
        tiles.append({"value": value, "label": label, "figures": said.take()})

    tile(said.num("pairs"), "pairs audited")
    tile(said.num("flagged"), f"pairs with an issue ({said.pct('flagged/share')})")
    tile(said.num("load/rows_rejected"), f"input rows rejected of {said.num('load/rows_read')}")
    metrics, noise = result.metrics, result.validators.get("label_noise")
    if metrics.get("agreement/krippendorff_alpha") is not None:
        tile(said.num("agreement/krippendorff_alpha"), "Krippendorff's alpha")
    firm = noise is not None and label_noise.supported(noise.info)
    if metrics.get("label_noise/estimated_rate") is not None and firm:
        signals = ", ".join(noise.info.get("signals_used") or [])
        tile(said.pct("label_noise/estimated_rate"), f"labels estimated flipped ({signals})")
    if metrics.get("duplication/exact_rate") is not None:
        repeated = said.pct_sum("duplication/exact_rate", "duplication/near_duplicate_rate")
        tile(repeated, "pairs repeated (exact or near)")
    if metrics.get("reference/reference_accuracy") is not None:
        tile(said.pct("reference/reference_accuracy"), "reference prefers chosen")
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
