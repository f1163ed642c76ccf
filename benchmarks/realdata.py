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

    rows = [(*pair, "hh") for pair in hh_pairs()]
    with gzip.open(SHARED / "alpacaeval-judges.jsonl.gz") as handle:
        for line in handle:
            record = orjson.loads(line)
            rows.append((record["instruction"], record["output_1"], record["output_2"], "alpaca"))
    return rows


def hh_pairs() -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) of HH-RLHF harmless, in file order; transcripts that do not
    split into a prompt and two responses left out."""
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
            rows.append((prompt, chosen, rejected))
    return rows


def judged_pairs() -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) of AlpacaEval's GPT-4 judgements (alpacaeval-gpt4-dev), in
    file order, oriented by the judge's preference; ties, unparsed (0) and null preferences and
    pairs with an empty response left out."""
    import orjson

    rows = []
    with gzip.open(SHARED / "alpacaeval-gpt4-dev.jsonl.gz") as handle:
        for line in handle:
            record = orjson.loads(line)
            first, second = record["output_1"] or "", record["output_2"] or ""
            if record["preference"] in (1, 2) and first.strip() and second.strip():
                chosen, rejected = (first, second) if record["preference"] == 1 else (second, first)
                rows.append((record["instruction"], chosen, rejected))
    return rows
