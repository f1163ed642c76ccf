"""What the commands print: the audit summary, rule results, cleaning counts, training runs.

Only the CLI prints (library code logs); these functions turn what :mod:`prefaudit.api`
returns into the lines a person reads in a terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# -- printing ---------------------------------------------------------------------------------


def print_summary(result, out: Path) -> None:
    from prefaudit.validators import VALIDATORS

    report = result.load
    print(f"load       {report.summary()} ({report.shape})")
    for issue in report.rejected[:5]:
        print(f"  rejected {issue}")
    if len(report.rejected) > 5:
        print(f"  ... {len(report.rejected) - 5} more in {out / 'rejected.jsonl'}")
    for note in report.notes:
        print(f"  note     {note}")
    for note in result.notes:
        print(f"note       {note}")
    n = len(result.pair_ids)
    for name, validator in result.validators.items():
        flagged = int(validator.flags["issue"].sum())
        share = f" ({flagged / n:.1%})" if n else ""
        print(f"{name:<10} {flagged} of {n} pairs flagged{share}")
        for key in getattr(VALIDATORS.get(name), "headline_metrics", ()):
            if key in validator.metrics:
                print(f"  {key:<40} {_fmt(validator.metrics[key])}")
    print(f"results in {out}/ (audit.json, flags.parquet, rejected.jsonl)")


def print_check(done, out: Path) -> None:
    results = done.results
    width = max([len(r.rule.name) for r in results] + [4])
    print(f"\nrules: {done.rules}")
    print(f"  {'status':<8} {'severity':<8} {'rule':<{width}}  value")
    for r in results:
        value = "-" if r.value is None else _fmt(r.value)
        detail = f"  ({r.detail})" if r.detail else ""
        print(
            f"  {r.status.upper():<8} {r.rule.severity:<8} {r.rule.name:<{width}}  {value}{detail}"
        )
    errors = sum(r.fails_check for r in results)
    warnings = sum(r.status == "failed" and not r.fails_check for r in results)
    passed = sum(r.status == "passed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    print(f"{passed} passed, {errors} failed, {warnings} warnings, {skipped} skipped")
    print("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in done.timings.items()))
    print(f"check result in {out / 'check.json'}: {'FAILED' if errors else 'PASSED'}")


def print_cleaned(cleaned, out: Path) -> None:
    counts = cleaned.counts
    print(
        f"{counts['input']} pairs: {counts['cleaned']} cleaned ({len(cleaned.flips)} flipped), "
        f"{counts['quarantined']} quarantined"
    )
    for reason, count in counts.items():
        if reason not in ("input", "cleaned", "quarantined"):
            print(f"  {reason:<40} {count}")
    print(f"results in {out}/ (cleaned.jsonl, quarantine.jsonl, manifest.json)")


def print_training(result) -> None:
    summary = result.summary
    print(
        f"trained {result.steps} steps on {summary['train_pairs']} pairs "
        f"({summary['train_tokens']:,} tokens, {_fmt(summary['tokens_per_second'])} tokens/s); "
        f"reference log-probs: {summary['reference_logps']['train']}"
    )
    if result.eval_metrics:
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in result.eval_metrics.items())
        print(f"held-out ({summary['eval_pairs']} pairs): {shown}")
    print(f"model, metrics.jsonl and summary.json in {result.out}/")


def print_comparison(comparison: dict[str, Any], out: Path) -> None:
    from prefaudit.training.compare import COMPARED

    print(
        f"\nheld-out pairs: {comparison['eval_pairs']} (cleaned labels); "
        f"{comparison['steps']} steps each"
    )
    print(f"  {'metric':<22} {'raw':>10} {'cleaned':>10}")
    for name in COMPARED:
        raw, cleaned = comparison["raw"][name], comparison["cleaned"][name]
        print(f"  {name:<22} {_fmt(raw):>10} {_fmt(cleaned):>10}")
    print(f"comparison in {out / 'comparison.json'}")


def print_demo(done) -> None:
    from prefaudit.models import EMBEDDED_MODELS, embedded_model_path

    print("\nembedded default models:")
    for role, model in EMBEDDED_MODELS.items():
        path = embedded_model_path(role)
        print(f"  {role:<11} {model.name}: {path if path else 'not installed (' + model.pip + ')'}")
    print("\nplanted defects found (the demo data is synthetic; these are its known defects):")
    print(f"  {'validator':<12} {'defect':<24} {'planted':>7} {'found':>6}")
    for row in done.planted:
        line = f"  {row['validator']:<12} {row['defect']:<24} {_fmt(row['planted']):>7}"
        if row.get("ran") is False:
            print(f"{line} {'-':>6}  (no '{row['validator']}' check in this version)")
        else:
            print(f"{line} {_fmt(row['found']):>6}")
    print(f"\nthe audit report: open {done.out / 'index.html'} in a browser")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
