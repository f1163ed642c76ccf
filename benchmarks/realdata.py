"""The real pairs in ../shared/data, read the same way by every benchmark."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; PREFAUDIT_SHARED_DATA points elsewhere (a lent GPU machine
# gets a copy in a carried folder: the shared folder does not travel with the checkout).
SHARED = Path(os.environ.get("PREFAUDIT_SHARED_DATA") or ROOT.parent / "shared" / "data")


def real_pairs() -> list[tuple[str, str, str, str]]:
    """(prompt, chosen, rejected, dataset) from HH-RLHF harmless and AlpacaEval, in file order.

    AlpacaEval rows are (instruction, output_1, output_2): not oriented by the label, which the
    benchmarks do not need.
    """
    import orjson

    sys.path.insert(0, str(ROOT))
    from prefaudit.io.shapes import split_hh

    rows = []
    with gzip.open(SHARED / "hh-rlhf-harmless-test.jsonl.gz") as handle:
        for line in handle:
            record = orjson.loads(line)
            try:
                prompt, chosen, rejected, _ = split_hh(record["chosen"], record["rejected"])
            except Exception:
                continue
            rows.append((prompt, chosen, rejected, "hh"))
    with gzip.open(SHARED / "alpacaeval-judges.jsonl.gz") as handle:
        for line in handle:
            record = orjson.loads(line)
            rows.append((record["instruction"], record["output_1"], record["output_2"], "alpaca"))
    return rows
