"""Near-duplicate detection: accuracy per edit type, and speed against datasketch.MinHashLSH.

Accuracy: distinct real texts from ../shared/data (HH-RLHF harmless prompts and replies,
AlpacaEval instructions and outputs; at least 10 words each, and none within Jaccard 0.45 of
another) get edited copies planted with the edits people actually make. For each edit type it
prints recall (copies grouped with their original) and precision (grouped pairs that really are
an original and its copy), with prefaudit's defaults (character 5-grams of the normalised text
without punctuation, Jaccard >= 0.6, 128 permutations). It also counts false groups among texts
of one topic: the different models' answers to each AlpacaEval instruction.

Speed: 25k, 50k, 100k and 200k prompts (the real prompts, then new ones made of 1-3 real
sentences with a quarter of their words replaced, so that the set stays mostly distinct as it
grows; 5% are copies with 5% of their words changed), timed for
prefaudit's pipeline (normalise, shingle, MinHash, LSH, exact verification, grouping) and for
datasketch's MinHash.bulk + MinHashLSH (same shingles, threshold and permutations; insert all,
query all), in the same run.

    python benchmarks/bench_duplication.py [--sizes 25000,50000,100000,200000] [--no-datasketch]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from prefaudit import dedup  # noqa: E402

THRESHOLD, SHINGLE, PERMS = 0.6, 5, 128


# -- real texts -------------------------------------------------------------------------------


def real_texts():
    """Distinct prompts and responses, plus AlpacaEval's outputs grouped by instruction."""
    from realdata import real_pairs

    prompts, responses, by_instruction = [], [], {}
    for prompt, first, second, dataset in real_pairs():
        prompts.append(prompt)
        responses += [first, second]
        if dataset == "alpaca":
            by_instruction.setdefault(prompt, set()).update([first, second])

    def distinct(texts):
        return list(dict.fromkeys(t for t in texts if t and t.strip()))

    return distinct(prompts), distinct(responses), by_instruction


# -- the edits people make ---------------------------------------------------------------------


def _words(text, share, rng, vocab, how):
    words = text.split(" ")
    k = max(1, round(share * len(words)))
    if how == "substitute":
        for i in rng.sample(range(len(words)), min(k, len(words))):
            words[i] = rng.choice(vocab)
    elif how == "delete":
        drop = set(rng.sample(range(len(words)), min(k, len(words) - 1)))
        words = [w for i, w in enumerate(words) if i not in drop]
    else:
        for _ in range(k):
            words.insert(rng.randrange(len(words) + 1), rng.choice(vocab))
    return " ".join(words)


def _reorder(text, rng):
    sentences = re.split(r"(?<=[.!?])\s+", text)
    if len(sentences) < 2:
        return None
    for _ in range(10):
        shuffled = sentences[:]
        rng.shuffle(shuffled)
        if shuffled != sentences:
            return " ".join(shuffled)
    return None


def _whitespace(text, rng):
    return "  " + re.sub(" ", lambda _: rng.choice([" ", "  ", "\n", " \t"]), text) + "\n"


def _case(text, rng):
    return rng.choice(
        [
            text.upper(),
            text.lower(),
            text.title(),
            "".join(c.swapcase() if rng.random() < 0.3 else c for c in text),
        ]
    )


def _punctuation(text, rng):
    marks = re.sub(r"[,.;:!?]", lambda m: rng.choice(["", m.group(0), m.group(0) * 3, "!"]), text)
    return marks + rng.choice(["!!!", "...", "?", ""])


EDITS = {
    "whitespace": lambda t, r, v: _whitespace(t, r),
    "case": lambda t, r, v: _case(t, r),
    "punctuation": lambda t, r, v: _punctuation(t, r),
    "2% words changed": lambda t, r, v: _words(t, 0.02, r, v, "substitute"),
    "5% words changed": lambda t, r, v: _words(t, 0.05, r, v, "substitute"),
    "10% words changed": lambda t, r, v: _words(t, 0.10, r, v, "substitute"),
    "10% words deleted": lambda t, r, v: _words(t, 0.10, r, v, "delete"),
    "10% words inserted": lambda t, r, v: _words(t, 0.10, r, v, "insert"),
    "sentences reordered": lambda t, r, v: _reorder(t, r),
    "mixed (case+punct+5%)": lambda t, r, v: _case(
        _punctuation(_words(t, 0.05, r, v, "substitute"), r), r
    ),
}


def groups(texts, threads=None):
    """prefaudit's grouping, as the duplication validator runs it."""
    found = dedup.near_duplicate_pairs(
        dedup.comparable(texts),
        threshold=THRESHOLD,
        shingle_size=SHINGLE,
        num_perm=PERMS,
        threads=threads,
    )
    return dedup.components(len(texts), found.left, found.right), found


def accuracy(originals_per_edit: int, seed: int) -> None:
    prompts, responses, by_instruction = real_texts()
    rng = random.Random(seed)
    pool = [t for t in prompts + responses if len(t.split()) >= 10]
    # Drop texts that already nearly repeat another (J >= 0.45), so every group found below is
    # either a planted copy or a mistake.
    labels, _ = _groups_at(pool, 0.45)
    pool = [t for i, t in enumerate(pool) if labels[i] == i and np.sum(labels == i) == 1]
    vocab = [w for t in rng.sample(pool, 500) for w in t.split()]
    words = np.array([len(t.split()) for t in pool])
    print(
        f"accuracy: {len(pool):,} distinct real texts ({words.min()}-{words.max()} words, "
        f"median {int(np.median(words))}); {originals_per_edit:,} edited copies per edit type; "
        f"Jaccard >= {THRESHOLD}, {SHINGLE}-grams, {PERMS} permutations"
    )
    print(f"  {'edit':<24} {'copies':>7} {'recall':>7} {'precision':>9} {'false groups':>12}")
    for name, edit in EDITS.items():
        chosen = rng.sample(range(len(pool)), originals_per_edit)
        copies, of = [], []
        for i in chosen:
            text = edit(pool[i], rng, vocab)
            if text is not None:
                copies.append(text)
                of.append(i)
        texts = pool + copies
        labels, _ = groups(texts)
        of = np.array(of)
        copy_rows = len(pool) + np.arange(len(copies))
        recall = float(np.mean(labels[copy_rows] == labels[of]))
        true_pairs, all_pairs, false_groups = _pair_counts(labels, len(pool), of)
        precision = true_pairs / all_pairs if all_pairs else 1.0
        print(f"  {name:<24} {len(copies):>7} {recall:>7.3f} {precision:>9.3f} {false_groups:>12}")
    _same_topic(by_instruction)


def _groups_at(texts, threshold):
    found = dedup.near_duplicate_pairs(dedup.comparable(texts), threshold=threshold)
    return dedup.components(len(texts), found.left, found.right), found


def _pair_counts(labels, originals, of):
    """(grouped pairs that are an original and its copy, all grouped pairs, groups with any
    member that is not the original or its copy)."""
    owner = np.concatenate([np.arange(originals), of])  # the original each text comes from
    true_pairs = all_pairs = false_groups = 0
    values, counts = np.unique(labels, return_counts=True)
    for label in values[counts > 1]:
        members = np.flatnonzero(labels == label)
        size = len(members)
        all_pairs += size * (size - 1) // 2
        _, per_owner = np.unique(owner[members], return_counts=True)
        true_pairs += int(sum(c * (c - 1) // 2 for c in per_owner))
        false_groups += int(len(per_owner) > 1)
    return true_pairs, all_pairs, false_groups


def _same_topic(by_instruction) -> None:
    """Different models' answers to one instruction: same topic, independently written."""
    texts, topic = [], []
    for k, outputs in enumerate(by_instruction.values()):
        for text in outputs:
            if len(text.split()) >= 10:
                texts.append(text)
                topic.append(k)
    labels, found = groups(texts)
    topic = np.array(topic)
    same = topic[found.left] == topic[found.right]
    print(
        f"same topic: {len(texts):,} AlpacaEval answers to {len(by_instruction)} instructions "
        f"(2-4 models each): {int(same.sum())} answer pairs to one instruction grouped "
        f"(Jaccard {', '.join(f'{s:.2f}' for s in found.similarity[same][:10])})"
    )
    for k in np.flatnonzero(same)[:3]:
        a, b = texts[found.left[k]], texts[found.right[k]]
        print(f"    {a[:90]!r}\n    {b[:90]!r}")


# -- speed --------------------------------------------------------------------------------------


def synthetic_prompts(n: int, seed: int) -> list[str]:
    """Real prompts, then new ones of 1-3 real sentences with a quarter of their words replaced,
    so that the set stays mostly distinct as it grows (plain recombination of a fixed sentence
    pool makes near-duplicates grow with the square of the size); 5% are edited copies."""
    prompts, responses, _ = real_texts()
    rng = random.Random(seed)
    sentences = [
        s for t in prompts + responses for s in re.split(r"(?<=[.!?\n])\s+", t) if len(s) > 15
    ]
    vocab = [w for s in rng.sample(sentences, 5000) for w in s.split()]
    out = list(prompts[: int(n * 0.95)])
    while len(out) < int(n * 0.95):
        text = " ".join(rng.sample(sentences, rng.randint(1, 3)))
        out.append(_words(text, 0.25, rng, vocab, "substitute")[:1000])
    while len(out) < n:
        out.append(_words(rng.choice(out), 0.05, rng, vocab, "substitute"))
    rng.shuffle(out)
    return out


def speed(sizes: list[int], with_datasketch: bool, seed: int) -> None:
    print(f"\nspeed: near-duplicate prompts, Jaccard >= {THRESHOLD}, {PERMS} permutations")
    print(
        f"  {'prompts':>8} {'chars':>6} {'prefaudit s':>11} {'per 1k':>7} {'groups':>7} "
        f"{'datasketch s':>12} {'cand.':>9} {'speed-up':>8}"
    )
    previous = None
    for n in sizes:
        texts = synthetic_prompts(n, seed)
        started = time.perf_counter()
        labels, found = groups(texts)
        ours = time.perf_counter() - started
        grouped = int((np.bincount(labels, minlength=n) > 1).sum())
        theirs, candidates = _datasketch(texts) if with_datasketch else (None, None)
        chars = int(np.mean([len(t) for t in texts]))
        speedup = f"{theirs / ours:8.1f}" if theirs else "       -"
        print(
            f"  {n:>8,} {chars:>6} {ours:>11.2f} {1000 * ours / n:>7.3f} {grouped:>7,} "
            f"{theirs if theirs else float('nan'):>12.2f} {candidates or 0:>9,} {speedup}"
        )
        if previous:
            print(f"           growth x{ours / previous[1]:.2f} for x{n / previous[0]:.1f} prompts")
        previous = (n, ours)


def _datasketch(texts):
    """datasketch with the same shingles: MinHash.bulk, then insert all and query all."""
    from datasketch import MinHash, MinHashLSH

    comparable = dedup.comparable(texts).to_pylist()
    started = time.perf_counter()
    encoded = [t.encode() for t in comparable]
    shingles = [
        [b[i : i + SHINGLE] for i in range(max(len(b) - SHINGLE + 1, 1))] if b else []
        for b in encoded
    ]
    hashes = MinHash.bulk(shingles, num_perm=PERMS)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=PERMS)
    with lsh.insertion_session() as session:
        for i, h in enumerate(hashes):
            session.insert(i, h)
    candidates = sum(len(lsh.query(h)) - 1 for h in hashes) // 2
    return time.perf_counter() - started, candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="25000,50000,100000,200000")
    parser.add_argument("--copies", type=int, default=2000, help="edited copies per edit type")
    parser.add_argument("--no-datasketch", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    if not args.skip_accuracy:
        accuracy(args.copies, args.seed)
    speed([int(s) for s in args.sizes.split(",")], not args.no_datasketch, args.seed)


if __name__ == "__main__":
    main()
