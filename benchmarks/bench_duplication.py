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

Pair copies (issue 20 part 5): copies of real judged pairs (AlpacaEval gpt4-dev, HH-RLHF) with
the prompt edited (one word of a 3-12 word prompt, or 5% of any prompt) and 5% of the
responses' words changed, planted and found by the duplication validator with copies found by
their responses (the default) and without; and templated prompts with one word changed and
other answers, which must stay unflagged.

The validator at 100k pairs: the default against the prompt rule alone (and, with
--baseline-checkout, another checkout's validator) in fresh processes, with peak memory.

    python benchmarks/bench_duplication.py [--sizes 25000,50000,100000,200000] [--no-datasketch]
        [--pairs 100000] [--repeat 3] [--baseline-checkout ../main]
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


# -- copies of whole pairs ------------------------------------------------------------------------


def _proportional(text, share, rng, vocab):
    """``share`` of the words replaced, rounded: none in a text under 10 words at 5% (where one
    word would be 10% or more), unlike :func:`_words`, which always changes one."""
    words = text.split(" ")
    for i in rng.sample(range(len(words)), int(share * len(words) + 0.5)):
        words[i] = rng.choice(vocab)
    return " ".join(words)


def _one_word(text, rng, vocab):
    words = text.split(" ")
    words[rng.randrange(len(words))] = rng.choice(vocab)
    return " ".join(words)


_HUMAN = "\n\nHuman: "


def _question(prompt):
    """The text of a prompt that is edited: an HH prompt's human turn, else all of it."""
    return prompt[len(_HUMAN) :] if prompt.startswith(_HUMAN) else prompt


def _short(prompt):
    """A prompt of 3-12 words (HH: one human turn of 3-12 words)."""
    return prompt.count("Human:") <= 1 and 3 <= len(_question(prompt).split()) <= 12


def _edit_pair(pair, rng, vocab, prompt_edit, swap=False):
    """A copy of ``pair``: the prompt edited, 5% of the responses' words changed, then the case
    or the spacing of all three changed."""
    prompt, chosen, rejected = pair
    head = prompt[: len(prompt) - len(_question(prompt))]
    prompt = head + prompt_edit(_question(prompt), rng, vocab)
    if swap == "strict":  # even a one-word answer is replaced
        chosen, rejected = (_words(t, 0.05, rng, vocab, "substitute") for t in (chosen, rejected))
    else:
        chosen, rejected = (_proportional(t, 0.05, rng, vocab) for t in (chosen, rejected))
    look = rng.choice([_case, _whitespace])
    copy = tuple(look(t, rng) for t in (prompt, chosen, rejected))
    return (copy[0], copy[2], copy[1]) if swap is True else copy


PAIR_EDITS = {
    "prompt of 3-12 words, 1 word changed": (
        _short,
        _one_word,
        False,
    ),
    "the same, every response 1+ word changed": (_short, _one_word, "strict"),
    "the same, chosen and rejected swapped": (
        _short,
        _one_word,
        True,
    ),
    "any prompt, 5% of its words changed": (
        lambda p: True,
        lambda t, r, v: _proportional(t, 0.05, r, v),
        False,
    ),
}


def _audit_pairs(rows, **params):
    import pandas as pd

    from prefaudit.auditing import AuditContext
    from prefaudit.validators.duplication import DuplicationValidator

    ids = [f"p{i}" for i in range(len(rows))]
    pairs = pd.DataFrame(rows, columns=["prompt", "chosen", "rejected"], index=ids)
    return DuplicationValidator(semantic=False, **params).run(AuditContext(pairs)).flags


def _pair_base(rows):
    """The pairs the validator (prompt rule only) does not already flag as copies or
    contradictions, so that every copy found below is planted or a mistake."""
    flags = _audit_pairs(rows, copy_min_words=None)
    found = flags["exact_duplicate"] | flags["near_duplicate"] | flags["contradiction"]
    return [row for row, drop in zip(rows, found | flags["degenerate"], strict=True) if not drop]


def _grouped_pairs(labels, owner):
    """(grouped pairs of one owner, all grouped pairs) over the groups ``labels`` make."""
    true_pairs = all_pairs = 0
    values, counts = np.unique(labels, return_counts=True)
    for label in values[counts > 1]:
        members = np.flatnonzero(labels == label)
        all_pairs += len(members) * (len(members) - 1) // 2
        _, per_owner = np.unique(owner[members], return_counts=True)
        true_pairs += int(sum(c * (c - 1) // 2 for c in per_owner))
    return true_pairs, all_pairs


def _pair_scores(flags, originals, of, swap):
    """Recall, precision and the copies flagged by their responses (not their prompts)."""
    ids = np.asarray(flags.index)
    column = "contradiction_group" if swap else "duplicate_of"
    group = flags[column].to_numpy()
    labels = np.where(group == "", ids, group)
    if swap:
        labels = np.where(flags["contradiction"].to_numpy(), labels, ids)
    copies = originals + np.arange(len(of))
    found = labels[copies] == labels[of]
    if swap:
        found &= flags["contradiction"].to_numpy()[copies]
    owner = np.concatenate([np.arange(originals), of])
    true_pairs, all_pairs = _grouped_pairs(labels, owner)
    precision = true_pairs / all_pairs if all_pairs else 1.0
    return float(found.mean()), precision, all_pairs - true_pairs


def pair_accuracy(copies: int, seed: int) -> None:
    """Copies of whole pairs planted into real judged pairs, found by the duplication validator
    (embeddings off) with copies found by their responses (the default) and without."""
    from realdata import judged_pairs, real_pairs

    from prefaudit.validators.duplication import DuplicationValidator

    default = DuplicationValidator().copy_min_words
    sources = {
        "AlpacaEval gpt4-dev (judged)": judged_pairs(),
        "HH-RLHF harmless": [(p, c, r) for p, c, r, d in real_pairs() if d == "hh"],
    }
    rng = random.Random(seed)
    print(
        f"\npair copies: the duplication validator, copy_min_words={default} vs None (prompt "
        "rule only); responses 5% of words changed (none under 10 words), then case or spacing"
    )
    for name, rows in sources.items():
        base = _pair_base(rows)
        # Every tenth pair held out: the template case takes its answers from them.
        held, base = base[::10], [row for i, row in enumerate(base) if i % 10]
        vocab = [w for t in rng.sample([t for row in base for t in row], 500) for w in t.split()]
        unflagged = int(_audit_pairs(base)["issue"].sum())
        print(f"  {name}: {len(base):,} pairs, {unflagged} flagged before any copy is planted")
        print(
            f"    {'copy':<40} {'copies':>6} {'recall':>7} {'precision':>9} {'false':>5} "
            f"{'off: recall':>11} {'false':>5}"
        )
        for edit, (eligible, prompt_edit, swap) in PAIR_EDITS.items():
            pool = [i for i, row in enumerate(base) if eligible(row[0])]
            of = np.array(rng.sample(pool, min(copies, len(pool))))
            planted = [_edit_pair(base[i], rng, vocab, prompt_edit, swap) for i in of]
            swapped = swap is True  # "strict" edits the responses harder, not the order
            on = _pair_scores(_audit_pairs(base + planted), len(base), of, swapped)
            off = _pair_scores(
                _audit_pairs(base + planted, copy_min_words=None), len(base), of, swapped
            )
            print(
                f"    {edit:<40} {len(of):>6} {on[0]:>7.3f} {on[1]:>9.4f} {on[2]:>5} "
                f"{off[0]:>11.3f} {off[2]:>5}"
            )
        _template_case(base, held, rng, vocab, copies)


def _template_case(base, held, rng, vocab, copies) -> None:
    """Prompts of 3-12 words with one word changed (a template's slot), each with the responses
    of a held-out pair (used once): to the same prompt where one is held out (other answers to
    it), else to another prompt. None is a copy."""
    short = [row[0] for row in base if _short(row[0])]
    prompts = set(short)
    planted = []
    for prompt, chosen, rejected in rng.sample(held, len(held)):
        prompt = prompt if prompt in prompts else rng.choice(short)
        head = prompt[: len(prompt) - len(_question(prompt))]
        planted.append((head + _one_word(_question(prompt), rng, vocab), chosen, rejected))
        if len(planted) == copies:
            break
    flags = _audit_pairs(base + planted)
    flagged = int(flags["issue"].to_numpy()[len(base) :].sum())
    print(f"    template: one slot changed, other answers: {flagged} of {len(planted)} flagged")


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


# -- the validator on 100,000 pairs -------------------------------------------------------------

CACHE = ROOT / "benchmarks" / ".cache"

# Run in a fresh process per measurement (its own peak memory; another checkout's code when
# asked): load the pairs, then time the validator and sample the resident memory it adds.
_CHILD = """
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import pandas as pd
from prefaudit.auditing import AuditContext
from prefaudit.validators.duplication import DuplicationValidator

def rss():
    with open("/proc/self/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) / 1024

pairs = pd.read_parquet(sys.argv[2])
params = json.loads(sys.argv[3])
start, peak, done = rss(), [0.0], []
def sample():
    while not done:
        peak[0] = max(peak[0], rss())
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
began = time.perf_counter()
flags = DuplicationValidator(semantic=False, **params).run(AuditContext(pairs)).flags
seconds = time.perf_counter() - began
done.append(True)
print(json.dumps({"seconds": seconds, "peak_added_mb": max(peak[0], rss()) - start,
                  "near": int(flags["near_duplicate"].sum())}))
"""


def synthetic_pairs(n: int, seed: int):
    """Pairs with mostly distinct prompts (:func:`synthetic_prompts`) and real responses with a
    quarter of their words replaced; 5% copy another pair with 5% of the words of all three
    changed. Copies found by their responses cost the most here: the prompt rule searched only
    the responses of repeated prompts, this searches nearly all of them."""
    import pandas as pd

    _, responses, _ = real_texts()
    rng = random.Random(seed)
    vocab = [w for t in rng.sample(responses, 2000) for w in t.split()]
    prompts = synthetic_prompts(n, seed)
    sides = [
        [_words(rng.choice(responses), 0.25, rng, vocab, "substitute") for _ in range(n)]
        for _ in range(2)
    ]
    rows = [list(row) for row in zip(prompts, *sides, strict=True)]
    for i in rng.sample(range(n), n // 20):
        rows[i] = [_words(t, 0.05, rng, vocab, "substitute") for t in rows[rng.randrange(n)]]
    ids = [f"p{i}" for i in range(n)]
    return pd.DataFrame(rows, columns=["prompt", "chosen", "rejected"], index=ids)


def _measure(path, checkout, params) -> dict:
    import json
    import subprocess

    code = [sys.executable, "-c", _CHILD, str(checkout), str(path), json.dumps(params)]
    return json.loads(subprocess.run(code, check=True, capture_output=True).stdout)


def validator_speed(n: int, repeats: int, seed: int, baseline: Path | None) -> None:
    """The validator with copies found by their responses (the default) and without, in
    alternating fresh processes; and, given a checkout, that checkout's validator."""
    import pandas as pd
    from realdata import judged_pairs

    from prefaudit.validators.duplication import DuplicationValidator

    CACHE.mkdir(parents=True, exist_ok=True)
    distinct = CACHE / f"duplication_pairs_{n}_{seed}.parquet"
    if not distinct.exists():
        synthetic_pairs(n, seed).to_parquet(distinct)
    judged = CACHE / "duplication_judged.parquet"
    if not judged.exists():
        frame = pd.DataFrame(judged_pairs(), columns=["prompt", "chosen", "rejected"])
        frame.index = [f"p{i}" for i in range(len(frame))]
        frame.to_parquet(judged)
    files = {
        f"{n:,} pairs, mostly distinct prompts": distinct,
        "AlpacaEval gpt4-dev: 27,978 judged pairs on 805 prompts": judged,
    }
    default = DuplicationValidator().copy_min_words
    configs = {
        f"copy_min_words={default} (default)": (ROOT, {}),
        "copy_min_words=None (prompt rule only)": (ROOT, {"copy_min_words": None}),
    }
    if baseline:
        configs[f"checkout {baseline}"] = (baseline, {})
    print(f"\nthe duplication validator, embeddings off ({repeats} runs each, fresh processes)")
    for label, path in files.items():
        runs = {name: [] for name in configs}
        for _ in range(repeats):
            for name, (checkout, params) in configs.items():
                runs[name].append(_measure(path, checkout, params))
        print(f"  {label}")
        for name, results in runs.items():
            seconds = [r["seconds"] for r in results]
            memory = max(r["peak_added_mb"] for r in results)
            print(
                f"    {name:<40} min {min(seconds):6.2f} s  median {np.median(seconds):6.2f} s  "
                f"peak +{memory:,.0f} MB  near duplicates {results[0]['near']:,}"
            )
        on, off = ([r["seconds"] for r in runs[k]] for k in list(configs)[:2])
        print(
            f"    default / prompt rule only: {min(on) / min(off):.2f}x (min), "
            f"{np.median(on) / np.median(off):.2f}x (median)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="25000,50000,100000,200000")
    parser.add_argument("--copies", type=int, default=2000, help="edited copies per edit type")
    parser.add_argument("--no-datasketch", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=100_000, help="pairs timed in the validator")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the validator per setting")
    parser.add_argument(
        "--baseline-checkout", type=Path, help="also time this checkout's validator (../main)"
    )
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"real data not found at {SHARED}")
    if not args.skip_accuracy:
        accuracy(args.copies, args.seed)
        pair_accuracy(args.copies, args.seed)
    if not args.skip_speed:
        if args.sizes:
            speed([int(s) for s in args.sizes.split(",")], not args.no_datasketch, args.seed)
        validator_speed(args.pairs, args.repeat, args.seed, args.baseline_checkout)


if __name__ == "__main__":
    main()
