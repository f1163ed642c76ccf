#!/usr/bin/env bash
# Issue 24's GPU checks on a lent GPU machine with no network. Run it from anywhere in the
# checkout, with the folder from benchmarks/gpu_carry.py carried (.gpu, or CARRY=FOLDER):
#
#   bash benchmarks/gpu_run.sh suite [gpu_suite options]   # e.g. --only reference-1b,train-1b
#   bash benchmarks/gpu_run.sh tests                       # the CUDA tests (at most 4 minutes)
#   bash benchmarks/gpu_run.sh tests suite --only ...      # both in one call; "suite" comes last
#
# CARRY, RESULTS and OUT are read from where it is called; the commands run from the
# repository root. Figures go to $RESULTS (default /tmp/gpu-suite). When $OUT is set, that
# folder is packed into $OUT/gpu-suite.tgz, with summary.md beside it, after every step and at
# the end: the device tool brings back at most 8 files a call (the suite writes two per step),
# and what is under $OUT comes back even from a call cut off at its limit.
set -uo pipefail
python=${PYTHON:-python3}
results=${RESULTS:-/tmp/gpu-suite}
mkdir -p "$results" && results=$(cd "$results" && pwd) || exit 2  # as given, from here
if [ -n "${CARRY:-}" ]; then carry=$CARRY; else carry=$(dirname "$0")/../.gpu; fi
if [ ! -d "$carry/model" ]; then
    echo "gpu_run.sh: no $carry/model: run benchmarks/gpu_carry.py and carry its folder" >&2
    exit 2
fi
carry=$(cd "$carry" && pwd)
if [ -n "${OUT:-}" ]; then OUT=$(cd "$OUT" && pwd) || exit 2; fi
cd "$(dirname "$0")/.."
if compgen -G "$carry/wheels/*.whl" >/dev/null; then
    "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site "$carry"/wheels/*.whl || exit 2
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# No network there: the hub is never asked (the models are built from the carried config).
export PREFAUDIT_SHARED_DATA=$carry/data PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
"$python" - <<'EOF' | tee "$results/versions.txt"
import sys
from importlib import metadata

import torch

names = (
    "torch", "transformers", "trl", "datasets", "accelerate", "pyarrow", "fsspec", "pandas",
    "numpy", "huggingface_hub", "tokenizers",
)
found = {}
for name in names:
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        found[name] = "missing"
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"python {sys.version.split()[0]}, {device}, {torch.cuda.device_count()} GPU(s)")
print(", ".join(f"{name} {version}" for name, version in found.items()))
EOF
if [ "${PIPESTATUS[0]}" -ne 0 ]; then
    echo "gpu_run.sh: $python could not import torch (see above)" >&2
    exit 2
fi
pack() {  # the suite's own packing (gpu_suite.pack_folder)
    if [ -n "${OUT:-}" ]; then
        "$python" -c 'import sys; sys.path.insert(0, "benchmarks"); from pathlib import Path
from gpu_suite import pack_folder; pack_folder(Path(sys.argv[1]), Path(sys.argv[2]))' \
            "$results" "$OUT/gpu-suite.tgz" || status=1
    fi
}
status=0
while [ $# -gt 0 ]; do
    case $1 in
        tests)
            shift
            timeout 240 "$python" -m pytest -q -p no:cacheprovider tests/training/test_cuda.py \
                tests/models/test_flex.py tests/models/test_reference.py \
                tests/training/test_fsdp.py::test_the_sharded_root_runs_packed_rows_and_the_blockwise_head \
                2>&1 | tee "$results/tests.log" || status=1
            pack
            ;;
        suite)
            shift
            "$python" benchmarks/gpu_suite.py --model "$carry/model" --out "$results" \
                ${OUT:+--pack "$OUT/gpu-suite.tgz"} "$@" || status=1
            break
            ;;
        *)
            echo "gpu_run.sh: unknown word '$1' (tests, or suite followed by its options)" >&2
            exit 2
            ;;
    esac
done
pack
exit $status
