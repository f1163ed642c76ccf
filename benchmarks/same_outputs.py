"""Do two versions of prefaudit write the same files? A refactoring check, not a benchmark.

    python benchmarks/same_outputs.py snapshot DIR   # audit + clean the HH file and the demo
    python benchmarks/same_outputs.py compare A B [--allow /JSON/PATH ...]
                                                     # exit 1 when any file differs

``snapshot`` runs the commands a user runs (``prefaudit audit``, ``prefaudit clean`` and
``prefaudit demo``, in-process) and keeps, per run, audit.json without what changes between
runs of the same input (timings, creation time, versions, timing metrics), flags.parquet,
cleaned.jsonl, quarantine.jsonl, manifest.json and reference_logps.parquet. ``compare`` then
checks each file of A against B: JSON and JSONL by value, Parquet tables with
``DataFrame.equals``. Run ``snapshot`` once on the old commit (``git worktree``) and once on
the new one, then ``compare``. ``--allow`` names JSON paths (prefixes, as printed, e.g.
``/settings`` or ``/notes``) where a change is intended: those are printed, not counted.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
from pathlib import Path

import orjson
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-test.jsonl.gz"
POLICY = "default"  # the built-in rule set
KEPT = ("flags.parquet", "cleaned.jsonl", "quarantine.jsonl", "manifest.json")
OPTIONAL = ("reference_logps.parquet",)


def snapshot(folder: Path) -> None:
    from prefaudit.cli import main

    work = folder / "work"
    shutil.rmtree(work, ignore_errors=True)
    runs = {
        "hh": ["clean", str(HH), "--policy", str(POLICY), "--out", str(work / "hh")],
    }
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        code = main(["demo", "--out", str(work / "demo"), "--ref-sample", "12"])
    assert code == 0, quiet.getvalue()
    data = work / "demo" / "data"
    runs["demo"] = [
        "clean",
        str(data / "pairs.jsonl"),
        "--annotations",
        str(data / "annotations.jsonl"),
        "--against",
        str(data / "eval_prompts.txt"),
        "--coverage-reference",
        str(data / "eval_prompts.txt"),
        "--policy",
        str(POLICY),
        "--out",
        str(work / "demo-clean"),
    ]
    for name, argv in runs.items():
        with contextlib.redirect_stdout(quiet):
            code = main(argv)
        assert code == 0, f"{name}: exit {code}\n{quiet.getvalue()}"
    for name in ("hh", "demo", "demo-clean"):
        _keep(work / name, folder / name)
    shutil.rmtree(work)
    print(f"snapshot in {folder}")


def _keep(run: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    text = (run / "audit.json").read_text("utf-8")
    # Where the snapshot ran is not part of the result.
    text = text.replace(str(run.parent), "<work>").replace(str(HH.resolve().parent), "<data>")
    text = text.replace(str(HH.parent), "<data>")
    audit = orjson.loads(text)
    for key in ("timings", "created", "versions"):
        audit.pop(key, None)
    for entry in audit["validators"].values():
        for key in list(entry["metrics"]):
            if "per_second" in key or key.endswith("_seconds"):
                entry["metrics"].pop(key)
    (into / "audit.json").write_bytes(orjson.dumps(audit, option=orjson.OPT_SORT_KEYS))
    for name in KEPT + OPTIONAL:
        if (run / name).exists():
            shutil.copy(run / name, into / name)


def compare(a: Path, b: Path, allowed: tuple[str, ...] = ()) -> int:
    differ = 0
    for run in sorted(p.name for p in a.iterdir() if p.is_dir()):
        for path in sorted((a / run).iterdir()):
            other = b / run / path.name
            same = other.exists() and _same(path, other, allowed)
            differ += not same
            print(f"{'same  ' if same else 'DIFFER'} {run}/{path.name}")
    print(f"{differ} file(s) differ")
    return 1 if differ else 0


def _same(a: Path, b: Path, allowed: tuple[str, ...] = ()) -> bool:
    if a.suffix == ".parquet":
        return pd.read_parquet(a).equals(pd.read_parquet(b))
    if a.suffix == ".jsonl":
        lines = [[orjson.loads(x) for x in p.read_bytes().splitlines() if x] for p in (a, b)]
        return lines[0] == lines[1]
    if a.name == "manifest.json":  # versions of pandas and prefaudit aside
        first, second = (orjson.loads(p.read_bytes()) for p in (a, b))
        first.pop("versions", None), second.pop("versions", None)
        return first == second
    first, second = (orjson.loads(p.read_bytes()) for p in (a, b))
    counted = 0
    for where, old, new in _differences(first, second):
        intended = where.startswith(allowed) if allowed else False
        counted += not intended
        mark = " (allowed)" if intended else ""
        print(f"       {a.parent.name}/{a.name}{where}: {old!r} -> {new!r}{mark}")
    return counted == 0


def _differences(a, b, where: str = ""):
    """(JSON path, old value, new value) of every leaf that differs."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _differences(a.get(key), b.get(key), f"{where}/{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _differences(x, y, f"{where}[{i}]")
    elif a != b:
        yield where, a, b


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "snapshot":
        snapshot(Path(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "compare" and len(sys.argv) % 2 == 0:
        flags, paths = sys.argv[4::2], tuple(sys.argv[5::2])
        if any(flag != "--allow" for flag in flags):
            sys.exit(__doc__)
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3]), paths))
    else:
        sys.exit(__doc__)
