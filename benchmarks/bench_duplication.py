"""Near-duplicate detection: accuracy per edit type, and speed against datasketch.MinHashLSH.

Accuracy: distinct real texts from ../shared/data (HH-RLHF harmless prompts and replies,
AlpacaEval instructions and outputs; at least 10 words each, and none within Jaccard 0.45 of
another) get edited copies planted with the edits people actually make. For each edit type it
prints recall (copies grouped with their original) and precision (grouped pairs that really are
an original and its copy), with prefaudit's defaults (character 5-grams of the normalised text
without punctuation, Jaccard >= 0.6, 128 permutations). It also counts false groups among texts
of one topic: the different models' answers to each AlpacaEval instruction.

Speed: 25k, 50k, 100k and 200k prompts (--sizes; 1,000,000 works too: the real prompts, then
new ones made of 1-3 real sentences with a quarter of their words replaced, so that the set
stays mostly distinct as it grows; 5% are copies with 5% of their words changed; cached in
benchmarks/.cache), each arm in a fresh process, alternating, min/median over --speed-repeat
rounds, with the process's peak resident memory (VmHWM): prefaudit's pipeline (normalise,
shingle, MinHash, LSH, exact verification, grouping); rensa (RMinHash digests from
prefaudit's own shingle hashes through its flat-buffer API, and its streaming LSH index with
the same bands, which flags texts sharing a band with an earlier one: no pairs, no exact
check, so less work than prefaudit does); datasketch's MinHash.bulk + MinHashLSH (the same
shingles as bytes; insert all, query all; up to 200k).

Pair copies (issue 20 part 5): copies of real judged pairs (AlpacaEval gpt4-dev, HH-RLHF) with
the prompt edited (one word of a 3-12 word prompt, or 5% of any prompt) and 5% of the
responses' words changed, planted and found by the duplication validator with copies found by
their responses (the default) and without; and templated prompts with one word changed and
other answers, which must stay unflagged.

The validator at 100k pairs: the default against the prompt rule alone (and, with
--baseline-checkout, another checkout's validator) in fresh processes, with peak memory.

    python benchmarks/bench_duplication.py [--sizes 25000,50000,100000,200000] [--no-datasketch]
        [--no-rensa] [--threads 1,2] [--speed-repeat 3] [--pairs 100000] [--repeat 3]
        [--baseline-checkout ../main] [--skip-accuracy] [--skip-speed]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from prefaudit import dedup  # noqa: E402

THRESHOLD, SHINGLE, PERMS = 0.6, 5, 128
CACHE = ROOT / "benchmarks" / ".cache"


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


# Each arm in a fresh process (its own peak memory: VmHWM, the resident high-water mark, which
# counts numpy's and Arrow's buffers as well as Python's): load the prompts, run the arm, print
# its seconds, the peak and what it found.
_SEARCH_CHILD = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, pyarrow.parquet as pq

def memory(field):
    with open("/proc/self/status") as status:
        return int(status.read().split(field + ":")[1].split()[0]) / 1024

texts = pq.read_table(sys.argv[2])["text"].combine_chunks()
arm, threshold, size, perms, bands = sys.argv[3], float(sys.argv[4]), *map(int, sys.argv[5:8])
loaded = memory("VmRSS")
began = time.perf_counter()
from prefaudit import dedup
comparable = dedup.comparable(texts)
if arm == "prefaudit":
    found = dedup.near_duplicate_pairs(comparable, threshold=threshold, shingle_size=size,
                                       num_perm=perms)
    labels = dedup.components(len(texts), found.left, found.right)
    result = int((np.bincount(labels, minlength=len(texts)) > 1).sum())
    detail = int(len(found))
elif arm == "rensa":
    import rensa

    # prefaudit's shingles (the same 5-grams of the same normalised texts, as 64-bit token
    # hashes) given to rensa's flat-buffer API, a chunk at a time; rensa's streaming LSH index
    # flags each text that shares a band with an earlier one (its deduplication: no pairs, no
    # exact check).
    lsh = rensa.RMinHashLSH(threshold, perms, bands)
    result = detail = 0
    step = 20_000
    for lo in range(0, len(comparable), step):
        sets = dedup.shingle(comparable.slice(lo, step), size)
        digests = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            sets.hashes.astype(np.uint64), sets.offsets.astype(np.uint64), perms, 0
        )
        flags = lsh.insert_matrix_and_query_duplicate_flags(digests, start_key=lo)
        result += sum(flags)
else:  # datasketch, the same shingles as bytes: MinHash.bulk, then insert all and query all
    from datasketch import MinHash, MinHashLSH

    encoded = [t.encode() for t in comparable.to_pylist()]
    shingles = [[b[i : i + size] for i in range(max(len(b) - size + 1, 1))] if b else []
                for b in encoded]
    hashes = MinHash.bulk(shingles, num_perm=perms)
    lsh = MinHashLSH(threshold=threshold, num_perm=perms)
    with lsh.insertion_session() as session:
        for i, h in enumerate(hashes):
            session.insert(i, h)
    detail = sum(len(lsh.query(h)) - 1 for h in hashes) // 2
    result = 0
seconds = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "peak_mb": memory("VmHWM"), "loaded_mb": loaded,
                  "result": result, "detail": detail}))
"""


def prompts_file(n: int, seed: int) -> Path:
    """:func:`synthetic_prompts` of ``n``, cached as Parquet (1M takes minutes to build)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"prompts_{n}_{seed}.parquet"
    if not path.exists():
        pq.write_table(pa.table({"text": synthetic_prompts(n, seed)}), path)
    return path


def _search(arm: str, path: Path, checkout: Path, threads: int | None) -> dict:
    import json
    import os
    import subprocess

    bands, _ = dedup.lsh_bands(THRESHOLD, PERMS)
    code = [sys.executable, "-c", _SEARCH_CHILD, str(checkout), str(path), arm]
    code += [str(THRESHOLD), str(SHINGLE), str(PERMS), str(bands)]
    env = dict(os.environ)
    if threads:
        env["PREFAUDIT_THREADS"] = str(threads)
    return json.loads(subprocess.run(code, check=True, capture_output=True, env=env).stdout)


def speed(
    sizes: list[int], arms: dict[str, tuple[str, Path, int | None]], repeats: int, seed: int
) -> None:
    """Every arm on the same prompts in fresh processes, alternating, ``repeats`` rounds."""
    print(
        f"\nspeed: near-duplicate prompts, Jaccard >= {THRESHOLD}, {SHINGLE}-grams, {PERMS} "
        f"permutations, {dedup.lsh_bands(THRESHOLD, PERMS)[0]} bands; fresh processes, "
        f"alternating, {repeats} rounds; peak = the process's resident high-water mark"
    )
    print(
        f"  {'prompts':>9} {'arm':<24} {'min s':>7} {'median s':>8} {'peak MB':>8} "
        f"{'(loaded)':>8}  found"
    )
    for n in sizes:
        path = prompts_file(n, seed)
        runs = {name: [] for name in arms}
        for round_ in range(repeats):
            order = list(arms) if round_ % 2 == 0 else list(arms)[::-1]
            for name in order:
                arm, checkout, threads = arms[name]
                if arm == "datasketch" and n > 200_000:
                    continue  # hours at a million
                runs[name].append(_search(arm, path, checkout, threads))
        for name, results in runs.items():
            if not results:
                continue
            seconds = [r["seconds"] for r in results]
            arm = arms[name][0]
            found = {
                "prefaudit": f"{results[0]['result']:,} texts grouped, "
                f"{results[0]['detail']:,} pairs >= {THRESHOLD}",
                "rensa": f"{results[0]['result']:,} texts flagged (unverified)",
                "datasketch": f"{results[0]['detail']:,} candidate pairs (unverified)",
            }[arm]
            print(
                f"  {n:>9,} {name:<24} {min(seconds):>7.2f} {np.median(seconds):>8.2f} "
                f"{max(r['peak_mb'] for r in results):>8,.0f} "
                f"{results[0]['loaded_mb']:>8,.0f}  {found}"
            )
        first = list(arms)[0]
        for name in list(arms)[1:]:
            if runs[name] and runs[first]:
                theirs, ours = ([r["seconds"] for r in runs[k]] for k in (name, first))
                print(
                    f"  {'':>9} {name} / {first}: {min(theirs) / min(ours):.2f}x (min), "
                    f"{np.median(theirs) / np.median(ours):.2f}x (median)"
                )


# -- the validator on 100,000 pairs -------------------------------------------------------------


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
    parser.add_argument("--no-datasketch", action="store_true", help="(skipped above 200k)")
    parser.add_argument("--no-rensa", action="store_true")
    parser.add_argument(
        "--threads", default="", help="also time prefaudit with these thread counts: 1,2"
    )
    parser.add_argument("--speed-repeat", type=int, default=3, help="rounds of the search arms")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pairs", type=int, default=100_000, help="pairs timed in the validator (0: skip)"
    )
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
            arms = {"prefaudit": ("prefaudit", ROOT, None)}
            for threads in filter(None, args.threads.split(",")):
                arms[f"prefaudit, {threads} thread(s)"] = ("prefaudit", ROOT, int(threads))
            if args.baseline_checkout:
                arms[f"prefaudit {args.baseline_checkout}"] = (
                    "prefaudit",
                    args.baseline_checkout,
                    None,
                )
            if not args.no_rensa:
                arms["rensa"] = ("rensa", ROOT, None)
            if not args.no_datasketch:
                arms["datasketch"] = ("datasketch", ROOT, None)
            sizes = [int(s) for s in args.sizes.split(",")]
            speed(sizes, arms, args.speed_repeat, args.seed)
        if args.pairs:
            validator_speed(args.pairs, args.repeat, args.seed, args.baseline_checkout)


if __name__ == "__main__":
    main()
