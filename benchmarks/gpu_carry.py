"""One folder that a GPU machine with no network needs to run benchmarks/gpu_run.sh.

    python benchmarks/gpu_carry.py [--out .gpu] [--python-version 3.12] [--no-wheels]

The GPU machines lent here have PyTorch, transformers and most of the scientific stack, but no
network, and at most 64 MiB travel with the working tree. The embedded SmolLM2 GGUF (98 MB)
does not fit, and the suite's models have random weights anyway. So the folder holds (12.9 MiB
in all):

- ``model/``: the embedded SmolLM2-135M-Instruct's tokenizer and config, no weights. The suite's
  random-weight models take their vocabulary and chat template from it (``gpu_suite.py --model``);
- ``data/``: the real pairs that the benchmarks read (``PREFAUDIT_SHARED_DATA``), copied from
  ../shared/data. The folder is ignored by git, so the data never enters the repository;
- ``wheels/``: the packages that the machine's image lacks (or holds at a version datasets
  refuses: fsspec), at the versions installed here, downloaded for its Python
  (``--python-version``). The image's package list is in the device tool's KINDS.md.
  ``--no-wheels`` leaves them out (a machine that has them).

Then, on the GPU machine, from the repository root (the folder named in the call's ``carry``):

    bash benchmarks/gpu_run.sh tests suite
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from realdata import SHARED  # noqa: E402

# Imported by the suite or by the CUDA tests, and missing from the GPU image (read 2026-11-17);
# fsspec is in the image, but datasets 5.2 wants one no newer than 2026.9.0, so it travels too.
WHEELS = ("orjson", "ijson", "krippendorff", "trl", "datasets", "dill", "multiprocess", "fsspec")
DATA = ("hh-rlhf-harmless-test.jsonl.gz", "alpacaeval-judges.jsonl.gz")
# The device tool's limit on what travels: the working tree and the carried folders together.
CARRY_LIMIT = 64 * 2**20
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def write_model(folder: Path) -> None:
    """The embedded SmolLM2's tokenizer and config into ``folder`` (no weights)."""
    from prefaudit.models.loading import load_causal_lm

    model, tokenizer = load_causal_lm(None)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.config.save_pretrained(folder)


def write_data(folder: Path) -> None:
    """The real pairs the benchmarks read, copied from ../shared/data."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in DATA:
        source = SHARED / name
        if not source.exists():
            raise SystemExit(f"{source}: not found (set PREFAUDIT_SHARED_DATA to the data folder)")
        shutil.copyfile(source, folder / name)


def write_wheels(folder: Path, python_version: str) -> None:
    """Each package of WHEELS, at the version installed here, as a wheel for the machine."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.whl"):
        stale.unlink()
    pinned = [f"{name}=={metadata.version(name)}" for name in WHEELS]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(folder)]
    command += ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + pinned, check=True)


def tree_bytes(untracked: bool = True) -> int:
    """Bytes of the files that travel with the working tree: tracked, and with ``untracked``
    the untracked ones git does not ignore."""
    others = ["--others", "--exclude-standard"] if untracked else []
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", *others],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = [ROOT / name.decode() for name in listed if name]
    return sum(path.stat().st_size for path in paths if path.is_file())


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / ".gpu"), help="the folder to carry")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    parser.add_argument("--no-wheels", action="store_true", help="the machine has the packages")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    write_model(out / "model")
    write_data(out / "data")
    if not args.no_wheels:
        write_wheels(out / "wheels", args.python_version)
    carried, tree = folder_bytes(out), tree_bytes()
    total = (carried + tree) / 2**20
    print(f"{out}: {carried / 2**20:.1f} MiB; with the working tree {total:.1f} MiB")
    if carried + tree > CARRY_LIMIT:
        print(f"over the {CARRY_LIMIT // 2**20} MiB that can travel", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
