"""``prefaudit.text.shape_counts`` (one compiled pass over each text's UTF-8 bytes) against the
code it replaced (Arrow's RE2 on ASCII texts, pandas/Python ``re`` on the others), on the
distinct responses of the audit benchmark's pairs.

    python benchmarks/bench_shape_counts.py [--data benchmarks/.cache/audit_pairs_100000.parquet]
                                            [--repeat 3] [--threads N]

The texts are label_noise's: ``pd.factorize`` of chosen then rejected (200,000 distinct
responses at 100,000 pairs, ~1,000 characters each, 19% not ASCII). The pairs file is built by
``benchmarks/bench_audit.py --build-only --sizes 100000``. The two arms run alternately,
``--repeat`` times (the compiled one warmed first: numba compiles it into its cache once); the
script prints min and median seconds of each and asserts that every count of every text is
the same in every round.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prefaudit.text import SHAPE_PATTERNS, default_threads, shape_counts

DATA = Path(__file__).resolve().parent / ".cache" / "audit_pairs_100000.parquet"

# The baseline's patterns: Python's re, and the same on ASCII text for RE2 (spelled with
# Python's ASCII whitespace, \t \n \v \f \r, \x1c-\x1f and the space).
_ASCII_SPACE = r"\t-\r\x1c-\x20"
_RE2 = {
    "words": f"[^{_ASCII_SPACE}]+",
    "list items": f"(?m)^[{_ASCII_SPACE}]*(?:[-*•]|[0-9]+[.)])[{_ASCII_SPACE}]",
    "digits": "[0-9]",
    "upper": "[A-Z]",
}


def re2_and_python_re(texts) -> dict[str, np.ndarray]:
    """The shape counts as prefaudit computed them before (commit 217bc10's text.py)."""
    array = pc.fill_null(pa.array(texts, type=pa.large_string()), "")
    ascii_ = pc.fill_null(pc.string_is_ascii(array), True).to_numpy(zero_copy_only=False)
    out = {
        "chars": pc.utf8_length(array).to_numpy(zero_copy_only=False).astype(float),
        "lines": pc.count_substring(array, "\n").to_numpy(zero_copy_only=False).astype(float),
        "questions": pc.count_substring(array, "?").to_numpy(zero_copy_only=False).astype(float),
    }
    plain = array.filter(pa.array(ascii_))
    other = pd.Series(array.filter(pa.array(~ascii_)).to_pylist(), dtype=object)
    for name, python in SHAPE_PATTERNS.items():
        re2 = _RE2[name]
        counts = np.empty(len(array), dtype=float)
        if name == "list items":
            some = pc.match_substring_regex(plain, re2).to_numpy(zero_copy_only=False)
            listed = pd.Series(plain.filter(pa.array(some)).to_pylist(), dtype=object)
            within = np.zeros(len(plain))
            within[some] = listed.str.count(python).to_numpy(dtype=float)
            counts[ascii_] = within
        else:
            counts[ascii_] = pc.count_substring_regex(plain, re2).to_numpy(zero_copy_only=False)
        counts[~ascii_] = other.str.count(python).to_numpy(dtype=float)
        out[name] = counts
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=default_threads())
    args = parser.parse_args()
    pairs = pd.read_parquet(args.data, columns=["chosen", "rejected"])
    texts = pd.factorize(pd.concat([pairs["chosen"], pairs["rejected"]]))[1]
    non_ascii = 1 - np.mean([text.isascii() for text in texts])
    mean_chars = np.mean(texts.str.len())
    print(
        f"{len(texts):,} distinct responses, {mean_chars:.0f} chars on average, "
        f"{non_ascii:.0%} not ASCII; compiled arm on {args.threads} threads"
    )
    shape_counts(texts[:100], args.threads)  # compile (or load numba's cache) before timing
    arms = {
        "RE2 + Python re (before)": re2_and_python_re,
        "compiled (shape_counts)": lambda t: shape_counts(t, args.threads),
    }
    seconds = {name: [] for name in arms}
    for _ in range(args.repeat):
        results = {}
        for name, arm in arms.items():
            started = time.perf_counter()
            results[name] = arm(texts)
            seconds[name].append(time.perf_counter() - started)
        before, after = results.values()
        assert list(before) == list(after)
        for key in before:
            assert np.array_equal(before[key], after[key]), key
    for name, times in seconds.items():
        print(f"{name:26} min {min(times):6.3f} s  median {statistics.median(times):6.3f} s")
    ratio = min(seconds["RE2 + Python re (before)"]) / min(seconds["compiled (shape_counts)"])
    print(f"speed-up (min): {ratio:.1f}x; every count equal in every round")


if __name__ == "__main__":
    main()
