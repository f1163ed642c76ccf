"""Small builders shared by the tests: datasets are made in code, a few rows each."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HH_FILE = SHARED_DATA / "hh-rlhf-harmless-test.jsonl.gz"
ALPACA_FILE = SHARED_DATA / "alpacaeval-judges.jsonl.gz"


def write_lines(path: Path, records: list) -> Path:
    """One JSON value per line; strings are written as they are (for broken lines)."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def pair(
    prompt: str = "What is 2+2?", chosen: str = "It is 4.", rejected: str = "It is 5.", **extra
) -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **extra}


def pairs_frame(
    rows: list[tuple[str, str, str]], ids: list[str] | None = None, **columns
) -> pd.DataFrame:
    """A PairSet from (prompt, chosen, rejected) tuples, indexed by pair id."""
    ids = ids or [f"p{i}" for i in range(len(rows))]
    frame = pd.DataFrame(
        rows, columns=["prompt", "chosen", "rejected"], index=pd.Index(ids, dtype="str")
    )
    frame.insert(0, "pair_id", ids)
    for name, values in columns.items():
        frame[name] = values
    return frame


class WordEmbedder:
    """A deterministic stand-in for a sentence-transformers model: hashed bag-of-words vectors
    (scikit-learn's HashingVectorizer), unit length. Same words in any order embed the same;
    used where the point is the validator's logic, not the model's quality."""

    def __init__(self) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectorizer = HashingVectorizer(n_features=512, alternate_sign=False, norm="l2")
        self.calls: list[int] = []

    def encode(self, texts):
        self.calls.append(len(texts))
        return self.vectorizer.transform(list(texts)).toarray().astype("float32")
