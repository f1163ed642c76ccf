"""``duplication``: repeated, contradictory and leaked pairs, and prompts that dominate the data."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from prefaudit import dedup, kernels, memory, stats, text
from prefaudit.chat import is_conversation
from prefaudit.validators.base import CleaningAction, Validator, ValidatorResult

log = logging.getLogger(__name__)

_SEVERITY = {
    "exact": 1.0,
    "degenerate": 1.0,
    "contradiction": 0.9,
    "leaked": 0.9,
    "near": 0.8,
    "semantic": 0.6,
    "over_represented": 0.3,  # reported, not an issue: many pairs per prompt can be by design
}
_LISTED = 200  # groups, leaks and examples listed in `info` (the largest or strongest first)
_SNIPPET = 200  # characters of a prompt shown in `info`
# Characters of each prompt of a nearly identical pair in `info`: enough to reach the words
# that differ, which in a long prompt are often past the first 200.
_EXAMPLE_CHARS = 1_000
_EXAMPLES = 50  # nearly identical prompt pairs listed in `info`
# Near-duplicate prompt links judged for the examples, closest to the threshold first (a word
# diff each; bounds the time on data where templated prompts make many links).
_EXAMINED = 5_000
# Character similarity (difflib ratio) at which a replaced word is the same word respelled:
# "recieve"/"receive" 0.86, "color"/"colour" 0.91, "dish"/"dishes" 0.8; different words score
# lower ("Israeli"/"Danish" 0.31, "atoms"/"words" 0.6).
_RESPELLED = 0.75
# Share of distinct words two prompts have in common (of all their distinct words) for a pair
# to be a copy of another found by its responses: one word of a three-word prompt replaced
# keeps half ("is it legal" / "is it safe"), the edits the issue plants keep more; prompts of
# one topic that a canned response follows share less ("how do I pick a lock" / "write an
# HTML page that ..." nothing).
_RELATED_WORDS = 0.5


@dataclass(frozen=True)
class Grouping:
    """Group labels of n texts: each label is the position of the group's first text."""

    exact: np.ndarray  # same text after normalisation
    near: np.ndarray  # exact, or linked by near-duplicate (MinHash, verified Jaccard) edges
    # The near-duplicate edges between distinct texts (positions): all of them when
    # `complete`, else those found before they outgrew dedup's budget (the groups are whole).
    edges: dedup.SimilarPairs
    complete: bool = True


@dataclass(frozen=True)
class ResponseLinks:
    """Near-duplicate links between responses (positions 0..2n-1: chosen, then rejected)."""

    exact: np.ndarray  # the first position of each response's exact group
    near: np.ndarray  # the first position of each response's component over all the links
    codes: np.ndarray  # sorted `low * 2n + high` of the linked exact groups' first positions
    # When the search kept only some links (dedup.near_duplicate_groups), whether two first
    # positions are linked, asked of each pair (NearGroups.ask); None when `codes` has them all.
    check: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    def direct(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether responses ``a[k]`` and ``b[k]`` are the same or linked to each other, not
        only through other responses (a chain of near-duplicates joins texts that are not)."""
        first, second = self.exact[a], self.exact[b]
        same = first == second
        if self.check is not None:
            other = np.flatnonzero(~same)
            same[other] = self.check(first[other], second[other])
            return same
        code = np.minimum(first, second) * len(self.exact) + np.maximum(first, second)
        if not len(self.codes):
            return same
        at = np.minimum(np.searchsorted(self.codes, code), len(self.codes) - 1)
        return same | (self.codes[at] == code)


class DuplicationValidator(Validator):
    """Exact, near and semantic duplicates, degenerate and contradictory pairs, dominant prompts,
    and prompts leaked from an evaluation set.

    >>> import pandas as pd
    >>> from prefaudit.auditing import AuditContext
    >>> pairs = pd.DataFrame({"prompt": ["Q", "q ", "R"], "chosen": ["A", "a", "C"],
    ...                       "rejected": ["B", "b", "C"]}, index=["p1", "p2", "p3"])
    >>> flags = DuplicationValidator(semantic=False).run(AuditContext(pairs)).flags
    >>> flags["exact_duplicate"].tolist(), flags["degenerate"].tolist()
    ([False, True, False], [False, False, True])
    """

    name = "duplication"
    description = (
        "Finds pairs that repeat another pair exactly (after Unicode, case, whitespace and "
        "punctuation normalisation), nearly (MinHash LSH on character shingles, each match "
        "verified by its exact Jaccard similarity: the prompt and both responses, or both "
        "responses under an edited prompt) or in meaning (prompt embeddings, cosine "
        "similarity); pairs whose chosen and rejected responses are the same; contradictions "
        "(the same responses, to the same or an edited prompt, labelled both ways); prompts "
        "with far more pairs than the rest; and, given an evaluation set as against, training "
        "prompts that match it. "
        "Duplicates over-weight some preferences, contradictions pull the policy both ways, and "
        "leaked prompts make benchmark results lie."
    )
    metric_names = (
        "duplication/pairs",
        "duplication/exact_duplicates",
        "duplication/exact_rate",
        "duplication/near_duplicates",
        "duplication/near_duplicate_rate",
        "duplication/response_copies",
        "duplication/semantic_duplicates",
        "duplication/semantic_duplicate_rate",
        "duplication/degenerate_pairs",
        "duplication/contradictions",
        "duplication/distinct_prompts",
        "duplication/duplicate_prompt_rate",
        "duplication/near_duplicate_prompt_rate",
        "duplication/semantic_duplicate_prompt_rate",
        "duplication/repeated_response_rate",
        "duplication/max_pairs_per_prompt",
        "duplication/over_represented_prompts",
        "duplication/top_prompt_share",
        "duplication/leakage_pairs",
        "duplication/leakage_rate",
        "duplication/issue_rate",
    )
    headline_metrics = (
        "duplication/exact_rate",
        "duplication/near_duplicate_rate",
        "duplication/semantic_duplicate_rate",
        "duplication/degenerate_pairs",
        "duplication/contradictions",
        "duplication/leakage_rate",
    )
    cleaning = (CleaningAction("dedupe", "duplicate_of"),)

    param_ranges = MappingProxyType(
        {
            "near_threshold": (0, 1),
            "shingle_size": (1, 8),
            "near_min_words": (1, None),
            "copy_min_words": (1, None),
            "num_perm": (1, None),
            "semantic_threshold": (0, 1),
            "max_pairs_per_prompt": (1, None),
            "seed": (0, None),
        }
    )

    def __init__(
        self,
        *,
        near_threshold: float = 0.6,
        shingle_size: int = 5,
        near_min_words: int = 8,
        copy_min_words: int | None = 5,
        num_perm: int = 128,
        semantic: bool = True,
        semantic_threshold: float = 0.95,
        max_pairs_per_prompt: int | None = None,
        against: str | None = None,
        seed: int = 0,
    ):
        # Jaccard similarity of character-5-gram sets: edits of up to ~10% of the words stay
        # above 0.6 (benchmarks/bench_duplication.py measures recall per edit type).
        self.near_threshold = near_threshold
        # Bytes per shingle (a character for Latin script); at most 8.
        self.shingle_size = shingle_size
        # Shorter texts are near-duplicates only when equal without punctuation or one adds
        # words to the other: in a short text one changed word is usually a different question
        # ("start a riot" / "start a food fight").
        self.near_min_words = near_min_words
        # A pair whose chosen and rejected responses both nearly match another pair's is a copy
        # of it whatever the prompts (an edited short prompt is another question to the prompt
        # rule), when its two responses have at least this many words together: short canned
        # responses ("Yes.", "I can't help with that.") recur under different prompts.
        # None = copies need matching prompts.
        self.copy_min_words = copy_min_words
        # MinHash permutations; more = fewer missed pairs near the threshold, slower.
        self.num_perm = num_perm
        # Semantic duplicates of prompts need embeddings; off = MinHash only.
        self.semantic = semantic
        # Cosine similarity of unit embeddings; 0.95 keeps "capital of France/Germany" apart.
        self.semantic_threshold = semantic_threshold
        # Prompts with more pairs than this are over-represented; None = what chance would
        # rarely give (see _over_represented).
        self.max_pairs_per_prompt = max_pairs_per_prompt
        # An evaluation set (any loadable dataset or a plain list of prompts) to check for leaks.
        self.against = against
        self.seed = seed  # MinHash permutations

    def run(self, context) -> ValidatorResult:
        pairs = context.pairs
        n = len(pairs)
        prompt = self._group(context, _prompt_texts(pairs), context.normalized_hashes("prompt"))
        memory.give_back()  # what the prompt search freed, before the response search
        prompt_any, semantic_status = self._semantic_groups(context, prompt)
        words = [context.text_features(side).words for side in ("chosen", "rejected")]
        long_enough = self._long_enough(*words)
        responses, response_exact, links = self._response_groups(context, prompt_any, long_enough)
        chosen, rejected = responses[:n], responses[n:]
        by_responses = self._long_enough(*_specific_words(links, prompt_any, *words))
        related = _RelatedPrompts(_prompt_texts(pairs))

        findings = _pair_duplicates(context, prompt, prompt_any, chosen, rejected)
        _add_response_copies(findings, links, by_responses, related, prompt, prompt_any)
        findings["degenerate"] = context.normalized_hashes("chosen") == context.normalized_hashes(
            "rejected"
        )
        contradiction = _contradictions(
            pairs, prompt_any, chosen, rejected, links, by_responses, related
        )
        findings["contradiction"], contradiction_group, findings["swapped"] = contradiction
        # Counted on prompts equal after normalisation: near-duplicate groups chain templated
        # prompts ("a recipe for <dish>") into one large group that is not one prompt.
        sizes, limit, over = self._over_represented(prompt.exact)
        findings["over_represented"] = over
        leaks = self._leaks(context, prompt) if self.against else None
        findings["leaked"] = leaks["leaked"] if leaks is not None else np.zeros(n, dtype=bool)

        ids = pairs.index.astype(str).to_numpy()
        flags = self._flags(pairs, findings, ids, contradiction_group, prompt, leaks)
        metrics = self._metrics(
            n, findings, flags, prompt, prompt_any, response_exact, sizes, limit, leaks
        )
        if semantic_status != "ran":
            for key in (
                "semantic_duplicates",
                "semantic_duplicate_rate",
                "semantic_duplicate_prompt_rate",
            ):
                metrics[f"duplication/{key}"] = None
        info = self._info(pairs, ids, findings, flags, prompt, sizes, limit, leaks, semantic_status)
        info["top_responses"] = _top_responses(pairs, response_exact)
        return self.result(flags, metrics, info)

    # -- grouping ---------------------------------------------------------------------------

    def _group(self, context, texts, hashes: np.ndarray) -> Grouping:
        """Exact and near-duplicate groups of ``texts``, whose hashes are ``hashes``; labels
        are first positions."""
        exact, distinct = _first_positions(hashes)
        comparable = dedup.ComparableTexts(kernels.column_strings(texts), distinct)
        found = context.near_duplicate_groups(
            comparable, **self._search_settings(), accept=self._short_rule(comparable)
        )
        near = distinct[found.labels][_rank_of(exact, distinct)]
        links = found.links
        edges = dedup.SimilarPairs(distinct[links.left], distinct[links.right], links.similarity)
        return Grouping(exact, near, edges, found.complete)

    def _search_settings(self) -> dict[str, Any]:
        return {
            "threshold": self.near_threshold,
            "shingle_size": self.shingle_size,
            "num_perm": self.num_perm,
            "seed": self.seed,
        }

    def _near_pairs(self, context, texts) -> dedup.SimilarPairs:
        """Near-duplicate pairs among ``texts`` (positions among them), by the rule for short
        texts of :meth:`_short_rule`."""
        comparable = dedup.ComparableTexts(kernels.column_strings(texts))
        found = context.near_duplicate_pairs(comparable, **self._search_settings())
        keep = self._short_rule(comparable)(found.left, found.right, found.similarity)
        return dedup.SimilarPairs(
            found.left[keep], found.right[keep], found.similarity[keep], found.candidates
        )

    def _short_rule(self, comparable: dedup.ComparableTexts) -> Callable[..., np.ndarray]:
        """Which near-duplicate pairs (left, right, similarity) of ``comparable`` texts to keep.

        Texts shorter than ``near_min_words`` pair only when they are equal once punctuation is
        dropped, or when one is the other with words added ("... a rabbit" / "... a rabbit
        please"): in "how do you start a riot" a changed word is a fifth of the text, and
        usually a different question.
        """

        def keep(left: np.ndarray, right: np.ndarray, similarity: np.ndarray) -> np.ndarray:
            words = comparable.words  # counted as the search read the texts
            short = np.minimum(words[left], words[right]) < self.near_min_words
            kept = ~short | (similarity >= 1.0)
            doubt = np.flatnonzero(short & ~kept)
            if len(doubt):
                texts = comparable.read(np.concatenate([left[doubt], right[doubt]])).to_pylist()
                for k, a, b in zip(doubt, texts[: len(doubt)], texts[len(doubt) :], strict=True):
                    a, b = set(a.split()), set(b.split())
                    kept[k] = a <= b or b <= a
            return kept

        return keep

    def _semantic_groups(self, context, prompt: Grouping) -> tuple[np.ndarray, str]:
        """Prompt groups with semantic (embedding) edges added to the near-duplicate ones."""
        from prefaudit.models.embeddings import EmbeddingsUnavailable

        if not self.semantic:
            return prompt.near, "off"
        distinct = np.unique(prompt.exact)
        if len(distinct) < 2:
            return prompt.near, "ran"
        try:
            vectors = context.embeddings("prompt")[distinct]
        except EmbeddingsUnavailable as err:
            note = f"duplication: semantic duplicates skipped ({err})"
            if note not in context.notes:
                context.notes.append(note)
            (log.info if context.embedder is None else log.warning)(note)
            return prompt.near, f"skipped: {err}"
        found = dedup.cosine_pairs(vectors, self.semantic_threshold)
        left = np.concatenate([_rank_of(prompt.near[distinct], distinct), found.left])
        right = np.concatenate([np.arange(len(distinct)), found.right])
        labels = dedup.components(len(distinct), left, right)
        return distinct[labels][_rank_of(prompt.exact, distinct)], "ran"

    def _long_enough(self, chosen_words: np.ndarray, rejected_words: np.ndarray) -> np.ndarray:
        """Pairs whose responses have ``copy_min_words`` words together (none when None)."""
        if self.copy_min_words is None:
            return np.zeros(len(chosen_words), dtype=bool)
        return chosen_words + rejected_words >= self.copy_min_words

    def _response_groups(
        self, context, prompt_group: np.ndarray, long_enough: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, ResponseLinks]:
        """Near and exact groups of all responses (chosen then rejected, positions 0..2n-1), and
        the near-duplicate links between them.

        Only responses of prompts that occur in more than one pair, and those of pairs whose
        responses are ``long_enough`` to show a copy whatever the prompts, can make a duplicate
        pair or a contradiction, so only those are searched; the others keep their exact groups.
        The near groups link only responses of repeated prompts, as the prompt rule always has:
        the other responses searched must not chain them into larger groups.
        """
        pairs = context.pairs
        n = len(pairs)
        hashes = np.concatenate(
            [context.normalized_hashes("chosen"), context.normalized_hashes("rejected")]
        )
        exact, _ = _first_positions(hashes)
        repeated = np.flatnonzero(np.bincount(prompt_group, minlength=n)[prompt_group] > 1)
        searched = np.union1d(repeated, np.flatnonzero(long_enough))
        if not len(searched):
            return exact, exact, ResponseLinks(exact, exact, np.zeros(0, dtype=np.int64))
        # The distinct texts among those responses, each named by its first position overall.
        firsts = np.unique(exact[np.concatenate([searched, searched + n])])
        comparable = dedup.ComparableTexts(
            kernels.column_strings(pairs["chosen"], pairs["rejected"]), firsts
        )
        of_repeated = np.zeros(2 * n, dtype=bool)
        of_repeated[exact[np.concatenate([repeated, repeated + n])]] = True
        accept = self._short_rule(comparable)
        found = context.near_duplicate_groups(
            comparable, **self._search_settings(), accept=accept, within=of_repeated[firsts]
        )
        labels, inner = np.arange(2 * n), np.arange(2 * n)
        labels[firsts], inner[firsts] = firsts[found.labels], firsts[found.within]
        left, right = firsts[found.links.left], firsts[found.links.right]
        check = None
        if found.ask is not None:

            def check(a: np.ndarray, b: np.ndarray) -> np.ndarray:
                # Responses of the searched pairs, so among `firsts` (any other: not linked).
                at = np.minimum(np.searchsorted(firsts, [a, b]), len(firsts) - 1)
                searched = (firsts[at[0]] == a) & (firsts[at[1]] == b)
                return searched & found.ask(*at)

        links = ResponseLinks(exact, labels[exact], np.sort(left * 2 * n + right), check)
        return inner[exact], exact, links

    def _over_represented(self, prompt_near: np.ndarray) -> tuple[pd.Series, int, np.ndarray]:
        sizes = pd.Series(prompt_near).value_counts()
        limit = self.max_pairs_per_prompt
        if limit is None and len(sizes):
            # If pairs fell on prompts at random, a prompt's count would be about Poisson with
            # the mean count; the limit is the count that many prompts exceed by chance less
            # than once in 100 datasets (Bonferroni over the prompts), and at least 5.
            from scipy.stats import poisson

            mean = float(sizes.mean())
            limit = max(5, int(poisson.isf(0.01 / len(sizes), mean)))
        limit = 5 if limit is None else limit
        over = sizes[sizes > limit]
        return sizes, limit, np.isin(prompt_near, over.index.to_numpy())

    def _leaks(self, context, prompt: Grouping) -> dict[str, Any]:
        """Training prompts that match an evaluation prompt exactly, nearly or in meaning."""
        from prefaudit.models.embeddings import EmbeddingsUnavailable

        reference = context.prompt_list(self.against)
        pairs = context.pairs
        distinct = np.unique(prompt.exact)
        kind = np.full(len(distinct), "", dtype=object)
        similarity = np.zeros(len(distinct))
        match = np.full(len(distinct), -1)
        if reference:
            reference_hash = text.text_features(reference).normalized_hash
            first = pd.Series(np.arange(len(reference))).groupby(reference_hash).first()
            train_hash = context.normalized_hashes("prompt")[distinct]
            exact = np.isin(train_hash, first.index.to_numpy())
            kind[exact], similarity[exact] = "exact", 1.0
            match[exact] = first.reindex(train_hash[exact]).to_numpy()
            combined = pd.concat(
                [_prompt_texts(pairs).iloc[distinct], pd.Series(reference)], ignore_index=True
            )
            found = self._near_pairs(context, combined)
            cross = (found.left < len(distinct)) & (found.right >= len(distinct))
            _best(
                kind,
                similarity,
                match,
                "near",
                found.left[cross],
                found.right[cross] - len(distinct),
                found.similarity[cross],
            )
            if self.semantic:
                try:
                    train_vectors = context.embeddings("prompt")[distinct]
                    found = dedup.cosine_pairs(
                        train_vectors, self.semantic_threshold, other=context.embed(reference)
                    )
                    _best(
                        kind,
                        similarity,
                        match,
                        "semantic",
                        found.left,
                        found.right,
                        found.similarity,
                    )
                except EmbeddingsUnavailable as err:
                    context.notes.append(f"duplication: semantic leak search skipped ({err})")
        rank = _rank_of(prompt.exact, distinct)
        return {
            "leaked": kind[rank] != "",
            "kind": kind[rank],
            "similarity": similarity[rank],
            "match": match[rank],
            "reference": reference,
        }

    # -- outputs ----------------------------------------------------------------------------

    def _flags(self, pairs, findings, ids, contradiction_group, prompt, leaks) -> pd.DataFrame:
        n = len(pairs)
        score = np.zeros(n)
        for kind, mask in findings.items():
            if kind in _SEVERITY:
                score = np.where(mask, np.maximum(score, _SEVERITY[kind]), score)
        issue = (
            findings["exact"]
            | findings["near"]
            | findings["semantic"]
            | findings["degenerate"]
            | findings["contradiction"]
            | findings["leaked"]
        )
        copy = findings["exact"] | findings["near"] | findings["semantic"]
        duplicate_of = np.where(copy, ids[findings["pair_group"]], "")  # the group's first pair
        reasons = [""] * n
        for i in np.flatnonzero(issue | findings["over_represented"]):
            reasons[i] = "; ".join(self._reasons_for(i, findings, ids, contradiction_group, leaks))
        return pd.DataFrame(
            {
                "score": score,
                "issue": issue,
                "reason": reasons,
                "exact_duplicate": findings["exact"],
                "near_duplicate": findings["near"],
                "semantic_duplicate": findings["semantic"],
                "degenerate": findings["degenerate"],
                "contradiction": findings["contradiction"],
                "leaked": findings["leaked"],
                "over_represented": findings["over_represented"],
                "duplicate_of": duplicate_of,
                "prompt_group": ids[prompt.near],
                "contradiction_group": np.where(
                    findings["contradiction"], ids[np.maximum(contradiction_group, 0)], ""
                ),
            },
            index=pairs.index,
        )

    def _reasons_for(self, i, findings, ids, contradiction_group, leaks) -> list[str]:
        parts = []
        other = ids[findings["pair_group"][i]]
        if findings["exact"][i]:
            parts.append(f"exact copy of pair {ids[findings['exact_of'][i]]} after normalisation")
        elif findings["by_responses"][i]:
            parts.append(
                f"near-duplicate of pair {other} (both responses nearly the same; the prompt "
                "differs, edited or replaced)"
            )
        elif findings["near"][i]:
            parts.append(f"near-duplicate of pair {other} (prompt and responses nearly the same)")
        elif findings["semantic"][i]:
            parts.append(
                f"restates pair {other}: same prompt in meaning, nearly the same responses"
            )
        if findings["degenerate"][i]:
            parts.append("chosen and rejected are the same after normalisation")
        if findings["swapped"][i]:
            parts.append(
                f"contradiction: the same responses, under another prompt, are labelled the "
                f"other way in group {ids[contradiction_group[i]]}"
            )
        elif findings["contradiction"][i]:
            parts.append(
                f"contradiction: the same prompt and responses are labelled the other way in "
                f"group {ids[contradiction_group[i]]}"
            )
        if findings["leaked"][i]:
            k = int(leaks["match"][i])
            snippet = leaks["reference"][k][:80]
            how = leaks["kind"][i]
            value = leaks["similarity"][i]
            measure = "" if how == "exact" else f", similarity {value:.2f}"
            parts.append(f"prompt matches evaluation prompt {k} ({how}{measure}): {snippet!r}")
        if findings["over_represented"][i]:
            parts.append("its prompt has more pairs than the over-representation limit")
        return parts

    def _metrics(
        self, n, findings, flags, prompt, prompt_any, responses, sizes, limit, leaks
    ) -> dict:
        positions = np.arange(n)
        repeated_prompt = prompt.exact != positions
        near_prompt = (prompt.near != positions) & ~repeated_prompt
        semantic_prompt = (prompt_any != positions) & (prompt.near == positions)
        counts = {k: int(findings[k].sum()) for k in ("exact", "near", "semantic")}
        leaked = int(findings["leaked"].sum()) if leaks is not None else None
        return {
            "duplication/pairs": n,
            "duplication/exact_duplicates": counts["exact"],
            "duplication/exact_rate": stats.rate(counts["exact"], n),
            "duplication/near_duplicates": counts["near"],
            "duplication/near_duplicate_rate": stats.rate(counts["near"], n),
            "duplication/response_copies": int(findings["by_responses"].sum()),
            "duplication/semantic_duplicates": counts["semantic"],
            "duplication/semantic_duplicate_rate": stats.rate(counts["semantic"], n),
            "duplication/degenerate_pairs": int(findings["degenerate"].sum()),
            "duplication/contradictions": int(findings["contradiction"].sum()),
            "duplication/distinct_prompts": int(len(np.unique(prompt.exact))),
            "duplication/duplicate_prompt_rate": stats.rate(repeated_prompt.sum(), n),
            "duplication/near_duplicate_prompt_rate": stats.rate(near_prompt.sum(), n),
            "duplication/semantic_duplicate_prompt_rate": stats.rate(semantic_prompt.sum(), n),
            "duplication/repeated_response_rate": stats.rate(
                (responses != np.arange(2 * n)).sum(), 2 * n
            ),
            "duplication/max_pairs_per_prompt": int(sizes.max()) if len(sizes) else 0,
            "duplication/over_represented_prompts": int((sizes > limit).sum()),
            "duplication/top_prompt_share": stats.rate(sizes.max(), n) if len(sizes) else None,
            "duplication/leakage_pairs": leaked,
            "duplication/leakage_rate": None if leaked is None else stats.rate(leaked, n),
            "duplication/issue_rate": stats.rate(flags["issue"].sum(), n),
        }

    def _info(self, pairs, ids, findings, flags, prompt, sizes, limit, leaks, semantic_status):
        prompts = pairs["prompt"]
        groups = []
        group_sizes = pd.Series(findings["pair_group"]).value_counts()
        for rep, size in group_sizes[group_sizes > 1].head(_LISTED).items():
            rows = np.flatnonzero(findings["pair_group"] == rep)
            kinds = [k for k in ("exact", "near", "semantic") if findings[k][rows].any()]
            groups.append(
                {
                    "id": ids[rep],
                    "size": int(size),
                    "kinds": kinds,
                    "members": ids[rows[:50]].tolist(),
                }
            )
        top = sizes.head(20)
        examples, links = _examples(prompt.edges, prompts, _prompt_texts(pairs))
        # Past dedup's budget of links the search stops keeping them: the total is a floor.
        links["complete"] = prompt.complete
        info: dict[str, Any] = {
            "duplicate_groups": groups,
            "top_prompts": [
                {
                    "id": ids[rep],
                    "pairs": int(count),
                    "over_represented": bool(count > limit),
                    "prompt": _snippet(prompts.iat[rep]),
                }
                for rep, count in top.items()
            ],
            "pairs_per_prompt": {
                str(k): int(v) for k, v in sizes.value_counts().sort_index().items()
            },
            "over_representation_limit": limit,
            "near_duplicate_prompts": examples,
            "near_duplicate_prompt_links": links,
            "contradictions": sorted({g for g in flags["contradiction_group"] if g})[:_LISTED],
            "semantic": semantic_status,
        }
        if leaks is not None:
            kinds = pd.Series(leaks["kind"][leaks["leaked"]]).value_counts()
            info["against"] = {
                "path": str(self.against),
                "prompts": len(leaks["reference"]),
                "leaked_pairs_by_match": {str(k): int(v) for k, v in kinds.items()},
            }
            rows = np.flatnonzero(leaks["leaked"])
            info["leaks"] = [
                {
                    "pair_id": ids[r],
                    "kind": leaks["kind"][r],
                    "similarity": float(leaks["similarity"][r]),
                    "reference_index": int(leaks["match"][r]),
                    "reference_prompt": _snippet(leaks["reference"][int(leaks["match"][r])]),
                }
                for r in rows[:_LISTED]
            ]
        return info


def _first_positions(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position, the first position with the same hash; and those first positions, sorted."""
    codes, _ = pd.factorize(hashes)
    first = np.full(codes.max() + 1 if len(codes) else 0, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return first[codes], np.sort(first)


def _rank_of(labels: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Index into the sorted ``distinct`` positions of each label (labels are among them)."""
    return np.searchsorted(distinct, labels)


def _specific_words(
    links: ResponseLinks,
    prompt_group: np.ndarray,
    chosen_words: np.ndarray,
    rejected_words: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's response word counts, 0 for a canned response and for both responses of a
    pair whose responses are one near-duplicate group: neither can show that another pair is a
    copy of this one.

    A response is canned (a refusal, a stock answer, a label) when its near-duplicate group
    occurs under more than two prompt groups: a pair and its copy give two.
    """
    n = len(chosen_words)
    chosen, rejected = links.near[:n], links.near[n:]
    occurrences = pd.DataFrame(
        {"group": links.near, "prompt": np.concatenate([prompt_group, prompt_group])}
    )
    prompts = occurrences.groupby("group", sort=False)["prompt"].transform("nunique").to_numpy()
    specific = (prompts <= 2) & np.concatenate([chosen != rejected] * 2)
    return np.where(specific[:n], chosen_words, 0), np.where(specific[n:], rejected_words, 0)


class _RelatedPrompts:
    """Whether two prompts are one edited from the other: at least ``_RELATED_WORDS`` of their
    distinct words (normalised, punctuation dropped) in common. One word of a three-word prompt
    replaced keeps half; unrelated prompts with the same canned responses share much less."""

    def __init__(self, prompts: pd.Series):
        self.prompts = prompts

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        rows = np.unique(np.concatenate([a, b]))
        texts = dedup.comparable(self.prompts, rows).to_pylist() if len(rows) else []
        words = {int(row): set((t or "").split()) for row, t in zip(rows, texts, strict=True)}
        return np.array(
            [
                len(words[i] & words[j]) >= _RELATED_WORDS * len(words[i] | words[j])
                for i, j in zip(a.tolist(), b.tolist(), strict=True)
            ],
            dtype=bool,
        )


def _pair_duplicates(context, prompt, prompt_any, chosen, rejected) -> dict[str, np.ndarray]:
    """Pairs that repeat an earlier pair: exactly, nearly, or with the prompt restated in meaning.

    Two pairs are copies when their prompts are in one group and their chosen and their
    rejected responses are each in one near-duplicate group. The tier is the closest link to
    the group's first pair: exact (all three texts equal after normalisation), near (prompts
    linked by exact or MinHash matches), or semantic (prompts linked only through embeddings).
    """
    n = len(context.pairs)
    triple = pd.DataFrame(
        {
            "p": context.normalized_hashes("prompt"),
            "c": context.normalized_hashes("chosen"),
            "r": context.normalized_hashes("rejected"),
        }
    )
    exact_of = triple.groupby(["p", "c", "r"], sort=False).ngroup().to_numpy()
    exact_first, _ = _first_positions(exact_of)
    key = pd.DataFrame({"p": prompt_any, "c": chosen, "r": rejected})
    group_first, _ = _first_positions(key.groupby(["p", "c", "r"], sort=False).ngroup().to_numpy())
    positions = np.arange(n)
    exact = exact_first != positions
    copy = (group_first != positions) & ~exact
    near = copy & (prompt.near == prompt.near[group_first])
    return {
        "exact": exact,
        "exact_of": exact_first,
        "near": near,
        "semantic": copy & ~near,
        "pair_group": group_first,
    }


def _add_response_copies(
    findings, links: ResponseLinks, by_responses, related, prompt, prompt_any
) -> None:
    """Join to ``findings`` the copies found by their responses (pairs ``by_responses``, whose
    responses are long and specific enough): a pair whose chosen and rejected responses each
    match those of the first such pair of the same near-duplicate groups, and whose prompt is
    ``related`` to that pair's (an edit of it, however short). Those whose prompts are in other
    groups are near duplicates (``by_responses``)."""
    n = len(by_responses)
    positions = np.arange(n)
    group_first = findings["pair_group"]
    rows = np.flatnonzero(by_responses)
    if len(rows):
        key = pd.DataFrame({"c": links.near[rows], "r": links.near[n + rows]})
        codes = key.groupby(["c", "r"], sort=False).ngroup().to_numpy()
        first = rows[_first_positions(codes)[0]]
        direct = links.direct(rows, first) & links.direct(rows + n, first + n)
        rows, first = rows[direct & (rows != first)], first[direct & (rows != first)]
        edited = related(rows, first)
        left = np.concatenate([positions, rows[edited]])
        right = np.concatenate([group_first, first[edited]])
        group_first = dedup.components(n, left, right)
    copy = (group_first != positions) & ~findings["exact"]
    other_prompt = copy & (prompt_any != prompt_any[group_first])
    near = copy & ~other_prompt & (prompt.near == prompt.near[group_first])
    findings.update(
        near=near | other_prompt,
        by_responses=other_prompt,
        semantic=copy & ~other_prompt & ~near,
        pair_group=group_first,
    )


def _contradictions(
    pairs, prompt_any, chosen, rejected, links: ResponseLinks, by_responses, related
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs whose prompt and responses also occur with chosen and rejected swapped, or, for
    pairs ``by_responses``, whose responses do under any prompt (a swapped copy); their group
    (the first such pair of each) and which were found by the responses alone."""
    n = len(pairs)
    usable = chosen != rejected
    if "tie" in pairs.columns:  # a tie shown in both orders says the same thing twice
        usable &= ~pairs["tie"].fillna(False).to_numpy(dtype=bool)
    forward = pd.MultiIndex.from_arrays([prompt_any[usable], chosen[usable], rejected[usable]])
    flipped = pd.MultiIndex.from_arrays([prompt_any, rejected, chosen])
    found = flipped.isin(forward) & usable
    swapped = _swapped_copies(links, by_responses & usable, related) & ~found
    low, high = np.minimum(chosen, rejected), np.maximum(chosen, rejected)
    response_low = np.minimum(links.near[:n], links.near[n:])
    response_high = np.maximum(links.near[:n], links.near[n:])
    group = np.full(n, -1, dtype=np.int64)
    if found.any() or swapped.any():
        links_found = _first_of_key(found, (prompt_any, low, high))
        links_swapped = _first_of_key(swapped, (response_low, response_high))
        left = np.concatenate([np.arange(n), links_found[0], links_swapped[0]])
        right = np.concatenate([np.arange(n), links_found[1], links_swapped[1]])
        labels = dedup.components(n, left, right)
        either = found | swapped
        group[either] = labels[either]
    return found | swapped, group, swapped


def _swapped_copies(links: ResponseLinks, usable: np.ndarray, related) -> np.ndarray:
    """Usable pairs whose chosen matches another usable pair's rejected and whose rejected
    matches its chosen, each directly, under a ``related`` prompt (the first pair of that
    orientation is checked)."""
    n = len(usable)
    rows = np.flatnonzero(usable)
    chosen, rejected = links.near[rows], links.near[n + rows]
    keys = pd.MultiIndex.from_arrays([chosen, rejected])
    unique = ~keys.duplicated()
    at = keys[unique].get_indexer(pd.MultiIndex.from_arrays([rejected, chosen]))
    mine, other = rows[at >= 0], rows[unique][at[at >= 0]]
    direct = links.direct(mine, other + n) & links.direct(mine + n, other)
    mine, other = mine[direct], other[direct]
    out = np.zeros(n, dtype=bool)
    out[mine[related(mine, other)]] = True
    return out


def _first_of_key(rows: np.ndarray, key: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Edges from each of ``rows`` to the first row of the same ``key``."""
    found = np.flatnonzero(rows)
    if not len(found):
        return found, found
    codes = pd.DataFrame({str(k): part[found] for k, part in enumerate(key)})
    codes = codes.groupby(list(codes.columns), sort=False).ngroup().to_numpy()
    first = pd.Series(found).groupby(codes).transform("min").to_numpy()
    return found, first


def _best(kind, similarity, match, label, left, right, values) -> None:
    """Record, per training prompt, the strongest new match (exact matches are never replaced)."""
    for i, j, value in zip(left, right, values, strict=True):
        if kind[i] == "exact":
            continue
        if value > similarity[i] or not kind[i]:
            kind[i], similarity[i], match[i] = label, float(value), int(j)


def _examples(
    edges: dedup.SimilarPairs, prompts: pd.Series, compared: pd.Series
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The nearly identical prompt pairs worth a look, closest to the threshold first, and a
    count of the near-duplicate links: all of them, those judged, and those judged not
    nearly identical because a word of one is replaced by a different word (:func:`light_edit`).

    The links stay as they are (a pair is a duplicate only when its responses match too);
    only the listing leaves them out: on AlpacaEval every link was one template with another
    question in its slot ("How many atoms are in a grain of salt? Try to explain your
    answer..." / "How many words are spoken daily on Earth? ..."; "... some Danish dishes.
    Can you give me a recipe for Flæskesteg?" / "... for Koldskål?").
    """
    order = np.argsort(edges.similarity, kind="stable")[:_EXAMINED]
    left, right = edges.left[order], edges.right[order]
    words = dedup.comparable(pd.concat([compared.iloc[left], compared.iloc[right]])).to_pylist()
    examples, replaced = [], 0
    for k, (i, j) in enumerate(zip(left.tolist(), right.tolist(), strict=True)):
        if not light_edit(words[k].split(), words[len(left) + k].split()):
            replaced += 1
        elif len(examples) < _EXAMPLES:
            examples.append(
                {
                    "similarity": round(float(edges.similarity[order[k]]), 3),
                    "first": _snippet(prompts.iat[i], _EXAMPLE_CHARS),
                    "second": _snippet(prompts.iat[j], _EXAMPLE_CHARS),
                    "ids": [str(prompts.index[i]), str(prompts.index[j])],
                }
            )
    links = {"total": len(edges.left), "judged": len(left), "word_replaced": replaced}
    return examples, links


def light_edit(first: list[str], second: list[str]) -> bool:
    """Whether two texts' words differ only by words added or removed and words respelled
    (a typo, an inflection, a spelling variant), not by a word replaced with another.

    A replaced word usually makes another question, as the validator already holds for short
    prompts (``near_min_words``): in a template it is the slot ("Israeli" / "Danish" dishes),
    and however few words it is, it is what was asked. The cost: a question reworded with a
    synonym ("best" / "fastest way to learn") does not count as a light edit either.

    >>> light_edit("please give a recipe for pho".split(), "give a recipie for pho".split())
    True
    >>> light_edit("a recipe for flaeskesteg".split(), "a recipe for koldskal".split())
    False
    """
    matcher = difflib.SequenceMatcher(None, first, second, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "replace":
            continue
        old, new = " ".join(first[i1:i2]), " ".join(second[j1:j2])
        if difflib.SequenceMatcher(None, old, new, autojunk=False).ratio() < _RESPELLED:
            return False
    return True


def _snippet(value: str, limit: int = _SNIPPET) -> str:
    """The start of a text for `info`, ending at a word boundary, "…" marking a cut."""
    head = text.word_cut(value, limit)
    return head if len(head) == len(value) else head.rstrip() + " …"


def _top_responses(pairs, responses: np.ndarray) -> list[dict[str, Any]]:
    """The responses that recur most often (canned refusals, templates), with their counts."""
    n = len(pairs)
    counts = pd.Series(responses).value_counts()
    texts = pd.concat([pairs["chosen"], pairs["rejected"]], ignore_index=True)
    return [
        {
            "response": _snippet(texts.iat[int(first)]),
            "count": int(count),
            "as_chosen": int(((responses == first) & (np.arange(2 * n) < n)).sum()),
        }
        for first, count in counts[counts > 1].head(20).items()
    ]


def _prompt_texts(pairs: pd.DataFrame) -> pd.Series:
    """Prompts as near-duplicate search reads them: for chats, the turns' contents without the
    role markers ("Human:", "Assistant:"), which would make short prompts look alike."""
    if "prompt_messages" not in pairs.columns:
        return pairs["prompt"]
    messages = pairs["prompt_messages"]
    joined = [
        "\n".join(str(m.get("content", "")) for m in turns) if is_conversation(turns) else prompt
        for turns, prompt in zip(messages, pairs["prompt"], strict=True)
    ]
    return pd.Series(joined, index=pairs.index, dtype="str")
