"""Every GPU measurement of issue 24 in one run of a few minutes, its figures in one folder.

    python benchmarks/gpu_suite.py --out DIR        # on a GPU machine (DIR default: $OUT or gpu-suite)
    python benchmarks/gpu_suite.py --tiny --out DIR # the rehearsal on a CPU, tiny shapes
    python benchmarks/gpu_suite.py --only reference-1b,fsdp --out DIR  # some steps, merged in

Steps, each a subprocess (so one's GPU memory is returned before the next, and one failure
leaves the others' figures), each writing DIR/<step>.json and its console output DIR/<step>.log:

- reference-135m, reference-1b: ``bench_reference.py`` (plain loop, padded batches, prefaudit,
  TRL's precompute) in the SmolLM2-135M and the Llama-3.2-1B shapes, random weights, bf16;
- train-135m, train-1b: ``bench_train.py`` (prefaudit's loop against TRL's DPOTrainer);
- fsdp: with more than one GPU, ``torchrun -m prefaudit train --parallel fsdp`` over all of them
  (and ``--parallel ddp`` beside it, the same pairs) in the 1B shape, or ``--fsdp-shape
  llama-8b`` (Llama-3.1-8B's: 161 GB at a full fine-tune's peak by docs/training.md's
  arithmetic, more than one H100 or H200 holds, so DDP is expected to fail there and FSDP
  across 4 or 8 GPUs to train; not measured): tokens/s, MFU across the GPUs, rank 0's peak
  memory; with one GPU it is recorded as not measured.

Then DIR/summary.json (every step's figures) and DIR/summary.md (the tables). With ``--tiny``
every step runs on the CPU with the 2-layer shape, and the FSDP step with 2 gloo processes.
The real pairs come from ../shared/data or $PREFAUDIT_SHARED_DATA (benchmarks/realdata.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import mfu  # noqa: E402


def steps(tiny: bool, model: str | None = None) -> dict[str, list[str]]:
    """step name -> the benchmark and its arguments; ``model``: a folder whose tokenizer (and
    config) the random-weight models take, instead of the embedded SmolLM2's."""
    chosen = ["--model", model] if model else []
    if tiny:
        common = ["--device", "cpu", "--tiny", *chosen]
        return {
            "reference-tiny": ["bench_reference.py", *common],
            "train-tiny": ["bench_train.py", *common],
        }
    gpu = ["--device", "cuda", "--random-weights", *chosen]
    # Rounds sized for a lent machine's 15 minutes (benchmarks/README.md): every method runs
    # once untimed first on CUDA (kernels, compilation, the allocator), so one timed round of
    # each training loop is its warm figure; raise them where time allows.
    return {
        "reference-135m": ["bench_reference.py", *gpu, "--shape", "smollm2-135m"]
        + ["--pairs", "512", "--batch", "16", "--plain", "128", "--trl", "128", "--rounds", "2"],
        "reference-1b": ["bench_reference.py", *gpu, "--shape", "llama-1b"]
        + ["--pairs", "512", "--batch", "16", "--plain", "64", "--trl", "64", "--rounds", "2"],
        "train-135m": ["bench_train.py", *gpu, "--shape", "smollm2-135m"]
        + ["--pairs", "256", "--batch", "16", "--max-chars", "2000", "--rounds", "1"],
        "train-1b": ["bench_train.py", *gpu, "--shape", "llama-1b"]
        + ["--pairs", "256", "--batch", "16", "--max-chars", "2000", "--rounds", "1"],
    }


def run_step(name: str, command: list[str], out: Path, timeout: int) -> dict:
    """Run one benchmark into out/<name>.json and .log; its figures, or why there are none."""
    target = out / f"{name}.json"
    began = time.perf_counter()
    with open(out / f"{name}.log", "w") as log:
        try:
            done = subprocess.run(
                [sys.executable, str(HERE / command[0]), *command[1:], "--json", str(target)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=HERE,
                env=_env(),
                timeout=timeout,
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = round(time.perf_counter() - began, 1)
    print(f"{name}: exit {code} in {seconds} s", flush=True)
    if code == 0 and target.exists():
        return {"status": "measured", "seconds": seconds, **json.loads(target.read_text())}
    return {"status": f"failed (exit {code}; see {name}.log)", "seconds": seconds}


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


# long: one measurement end to end (model, pairs, two launches, figures), kept in one place
def fsdp_step(
    out: Path, tiny: bool, timeout: int, model: str | None = None, shape: str = "llama-1b"
) -> dict:
    """FSDP2 against DDP across every GPU (2 gloo processes on a CPU with --tiny): the same
    pairs and steps through ``torchrun -m prefaudit train``; figures from each summary.json."""
    import torch

    gpus = torch.cuda.device_count()
    if not tiny and gpus < 2:
        return {"status": f"not measured: {gpus} GPU(s) here, FSDP needs 2 or more"}
    processes = 2 if tiny else gpus
    device = "cpu" if tiny else "cuda"
    work = out / "fsdp-work"
    work.mkdir(exist_ok=True)
    folder, parameters, pairs_file, pairs = _fsdp_inputs(
        work, "tiny" if tiny else shape, device, model
    )
    batch = 4 if tiny else 8 * processes
    figures: dict = {"status": "measured", "processes": processes, "runs": {}}
    name = mfu.device_name(device)
    peak = mfu.peak_tflops(name)
    from bench_train import pair_flops

    flops = pair_flops(argparse.Namespace(model=str(folder)), pairs)
    for parallel in ("fsdp", "ddp"):
        run_out = work / parallel
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node"]
        command += [str(processes), "-m", "prefaudit", "train", str(pairs_file)]
        command += ["--model", str(folder), "--parallel", parallel, "--device", device]
        command += ["--batch-size", str(batch), "--max-steps", str(len(pairs) // batch)]
        command += ["--eval-fraction", "0", "--save-every", "0", "--warmup-ratio", "0"]
        command += ["--out", str(run_out)]
        began = time.perf_counter()
        with open(out / f"fsdp-{parallel}.log", "w") as log:
            try:
                code = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, env=_env(), timeout=timeout
                ).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        seconds = round(time.perf_counter() - began, 1)
        print(f"fsdp ({parallel}, {processes} processes): exit {code} in {seconds} s", flush=True)
        if code != 0:
            figures["runs"][parallel] = {"status": f"failed (exit {code}; see fsdp-{parallel}.log)"}
            continue
        summary = json.loads((run_out / "summary.json").read_text())
        train_seconds = summary["train_seconds"]
        figures["runs"][parallel] = {
            "status": "measured",
            "tokens_per_second": summary["tokens_per_second"],
            "train_seconds": train_seconds,
            # Across the processes: the FLOPs over the time over every device's peak.
            "mfu": mfu.mfu(flops, train_seconds, peak * processes if peak else None),
            "peak_gib_rank0": summary["peak_gpu_memory_gib"],
        }
    figures.update(device_name=name, peak_tflops=peak, pairs=len(pairs), batch=batch)
    figures.update(shape="tiny" if tiny else shape, parameters=parameters)
    return figures


def _fsdp_inputs(work: Path, shape: str, device: str, source: str | None):
    """(model folder of random weights in ``shape``, with ``source``'s tokenizer; its
    parameter count; the pairs file; the pairs)."""
    import pandas as pd
    import torch
    from bench_reference import random_config
    from bench_train import short_pairs
    from transformers import AutoModelForCausalLM

    args = argparse.Namespace(model=source, shape=shape)
    config, tokenizer = random_config(args)
    torch.manual_seed(0)
    tiny = shape == "tiny"
    dtype = torch.float32 if tiny else torch.bfloat16
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    folder = work / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    if device == "cuda":  # this process stays alive while the runs use every GPU
        torch.cuda.empty_cache()
    pairs = short_pairs(8 if tiny else 256, 400 if tiny else 2000)
    pairs_file = work / "pairs.jsonl"
    frame = pd.DataFrame(pairs)
    frame.insert(0, "pair_id", [f"p{i}" for i in range(len(pairs))])
    frame.to_json(pairs_file, orient="records", lines=True)
    return folder, parameters, pairs_file, pairs


def summary_markdown(figures: dict) -> str:
    """The suite's tables in markdown: every step, "not measured" where a step did not run."""
    lines = [f"# GPU suite ({figures['when']}, {figures['device']})", ""]
    for name, step in figures["steps"].items():
        lines.append(f"## {name}: {step.get('status')}")
        lines.append("")
        if name.startswith("reference") and "methods" in step:
            lines += [
                "| method | median s | tokens/s | vs plain | MFU | peak GiB | max abs diff vs plain |",
                "|---|---|---|---|---|---|---|",
            ]
            for method, row in step["methods"].items():
                spread = row.get("max_abs_diff_vs_plain")
                lines.append(
                    f"| {method} | {row['seconds_median']:.2f} | {row['tokens_per_second']:,.0f} | "
                    f"{row['vs_plain_loop']:.2f}x | {mfu.shown(row['mfu'])} | "
                    f"{_gib(row['peak_gib'])} | {'-' if spread is None else f'{spread:.2e}'} |"
                )
            trl = step.get("trl") or {}
            if "TRL" in trl:
                for who in ("TRL", "prefaudit"):
                    row = trl[who]
                    lines.append(
                        f"| {who} (TRL's pairs) | {row['seconds_median']:.2f} | "
                        f"{row['tokens_per_second']:,.0f} | - | {mfu.shown(row['mfu'])} | "
                        f"{_gib(row['peak_gib'])} | - |"
                    )
            elif "error" in trl:
                lines.append(f"| TRL | failed: {trl['error']} | | | | | |")
        elif name.startswith("train") and "loops" in step:
            lines += [
                "| loop | steps s (median) | tokens/s | MFU | peak GiB |",
                "|---|---|---|---|---|",
            ]
            for loop, row in step["loops"].items():
                if "failed" in row:
                    lines.append(f"| {loop} | failed: {row['failed']} | | | |")
                    continue
                lines.append(
                    f"| {loop} | {row['steps_seconds_median']:.2f} | {row['tokens_per_second']:,.0f} | "
                    f"{mfu.shown(row['mfu'])} | {_gib(row['peak_gib'])} |"
                )
        elif name == "fsdp" and "runs" in step:
            lines.append(
                f"{step.get('shape')} shape, {step.get('parameters', 0) / 1e9:.2f}B parameters, "
                f"{step['processes']} processes, batch {step.get('batch')}"
            )
            lines.append("")
            lines += [
                "| parallel | tokens/s | MFU (all devices) | rank 0 peak GiB |",
                "|---|---|---|---|",
            ]
            for parallel, row in step["runs"].items():
                if row.get("status") != "measured":
                    lines.append(f"| {parallel} | {row['status']} | | |")
                    continue
                lines.append(
                    f"| {parallel} | {row['tokens_per_second']:,.0f} | {mfu.shown(row['mfu'])} | "
                    f"{_gib(row['peak_gib_rank0'])} |"
                )
        lines.append("")
    return "\n".join(lines)


def write_summary(out: Path, figures: dict, pack: str | None = None) -> None:
    """OUT/summary.json and summary.md; with ``pack``, OUT packed into that .tgz (written
    whole or not at all) and summary.md copied beside it."""
    (out / "summary.json").write_text(json.dumps(figures, indent=2))
    (out / "summary.md").write_text(summary_markdown(figures))
    if pack is not None:
        pack_folder(out, Path(pack))


def pack_folder(out: Path, target: Path) -> None:
    """``out`` (without fsdp-work/, the FSDP step's model) packed into the .tgz ``target``,
    written whole or not at all, and its summary.md, if any, copied beside it (gpu_run.sh
    packs with this too)."""
    import shutil
    import tarfile

    partial = target.with_name(target.name + ".partial")
    with tarfile.open(partial, "w:gz") as packed:
        packed.add(out, arcname=".", filter=lambda item: None if "fsdp-work" in item.name else item)
    partial.replace(target)
    if (out / "summary.md").exists():
        shutil.copyfile(out / "summary.md", target.with_name("summary.md"))


def merge(folders: list[Path], out: Path) -> int:
    """The steps of several runs' summary.json (each call of a machine that limits one
    command's time, unpacked into its own folder) into one OUT/summary.json and summary.md."""
    figures: dict = {"steps": {}}
    for folder in folders:
        found = json.loads((folder / "summary.json").read_text())
        figures.update({k: v for k, v in found.items() if k != "steps"})
        figures["steps"].update(found["steps"])
    figures["merged_from"] = [str(folder) for folder in folders]
    write_summary(out, figures)
    print(f"{len(figures['steps'])} steps from {len(folders)} folders in {out}/summary.md")
    return 0


def _gib(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-suite")
    parser.add_argument("--tiny", action="store_true", help="rehearse on the CPU, tiny shapes")
    parser.add_argument("--timeout", type=int, default=900, help="seconds at most per step")
    parser.add_argument(
        "--model",
        default=None,
        help="a folder with a tokenizer (and config) for the random-weight models; default: the "
        "embedded SmolLM2's (benchmarks/gpu_carry.py writes one for machines without it)",
    )
    parser.add_argument(
        "--fsdp-shape",
        default="llama-1b",
        choices=["llama-1b", "llama-8b"],
        help="the fsdp step's model: llama-8b needs 4 or more GPUs of 80 GB (and 16 GB of disk)",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated steps to run (the others' figures already in OUT are kept): "
        "for machines that limit one command's time",
    )
    parser.add_argument(
        "--pack",
        default=None,
        help="after every step, OUT (without fsdp-work/) packed into this .tgz and summary.md "
        "copied beside it: what a machine that brings back few files returns, even if cut off",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="DIR",
        help="run nothing: the steps of these folders' summary.json (later ones win) into OUT",
    )
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        return merge([Path(folder) for folder in args.merge], out)
    import torch

    planned = {**steps(args.tiny, args.model), "fsdp": None}
    wanted = args.only.split(",") if args.only else list(planned)
    unknown = sorted(set(wanted) - set(planned))
    if unknown:
        parser.error(f"--only: unknown step(s) {', '.join(unknown)}; known: {', '.join(planned)}")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    figures: dict = {"when": when, "device": device, "torch": torch.__version__, "steps": {}}
    if args.only and (out / "summary.json").exists():  # earlier steps' figures stay
        figures["steps"] = json.loads((out / "summary.json").read_text()).get("steps", {})
    for name in wanted:
        if name != "fsdp":
            figures["steps"][name] = run_step(name, planned[name], out, args.timeout)
        else:
            try:
                figures["steps"]["fsdp"] = fsdp_step(
                    out, args.tiny, args.timeout, args.model, args.fsdp_shape
                )
            except Exception as err:  # the other figures are still written
                figures["steps"]["fsdp"] = {"status": f"failed: {type(err).__name__}: {err}"}
        write_summary(out, figures, args.pack)  # after every step: a cut-off run keeps these
    print(f"figures in {out}/summary.json and summary.md")
    failed = [n for n, s in figures["steps"].items() if str(s.get("status")).startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
