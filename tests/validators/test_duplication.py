import json

import numpy as np
import pytest

from prefaudit.auditing import AuditContext, run_audit
from prefaudit.outputs import read_audit, save_audit
from prefaudit.validators.duplication import DuplicationValidator
from tests.helpers import WordEmbedder, pairs_frame

LONG = (
    "Preheat the oven to two hundred degrees, mix flour, water, salt and yeast, knead the dough "
    "for ten minutes, let it rise for an hour, shape the loaf and bake it for forty minutes."
)
BASE = [
    ("How do I bake a loaf of bread at home?", LONG, "Buy some bread from a shop instead."),
    ("What is the capital of France?", "Paris is the capital of France.", "Lyon."),
    ("What is the capital of Germany?", "Berlin is the capital of Germany.", "Bonn."),
    ("Name a prime number.", "Seven is a prime number.", "Eight is a prime number."),
]


def _run(rows, embedder=None, **params):
    pairs = pairs_frame(rows, **params.pop("columns", {}))
    context = AuditContext(pairs, embedder=embedder)
    return DuplicationValidator(**params).run(context), context


def _mask(result, column):
    return result.flags[column].tolist()


def test_clean_data_of_one_topic_is_not_flagged():
    result, _ = _run(BASE, semantic=False)
    assert not result.flags["issue"].any()
    assert result.metrics["duplication/exact_rate"] == 0.0
    assert result.metrics["duplication/near_duplicate_rate"] == 0.0
    assert result.metrics["duplication/distinct_prompts"] == 4


def test_exact_copy_after_normalisation():
    copy = (
        "  how do I BAKE a loaf of bread at home?? ",
        LONG.upper(),
        "Buy some bread from a shop instead.",
    )
    result, _ = _run([*BASE, copy], semantic=False)
    assert _mask(result, "exact_duplicate") == [False] * 4 + [True]
    assert result.flags["duplicate_of"].iat[4] == "p0"
    assert "exact copy of pair p0" in result.flags["reason"].iat[4]
    assert result.metrics["duplication/exact_duplicates"] == 1
    assert result.metrics["duplication/exact_rate"] == pytest.approx(1 / 5)


def test_near_copy_with_a_few_words_changed():
    edited = LONG.replace("ten minutes", "eight minutes").replace("an hour", "one hour")
    copy = (
        "How do I bake a loaf of bread at home, please?",
        edited,
        "Buy some bread from a shop instead!",
    )
    result, _ = _run([*BASE, copy], semantic=False)
    assert _mask(result, "near_duplicate") == [False] * 4 + [True]
    assert _mask(result, "exact_duplicate") == [False] * 5
    assert result.flags["duplicate_of"].iat[4] == "p0"
    assert result.flags["prompt_group"].tolist() == ["p0", "p1", "p2", "p3", "p0"]


def test_same_prompt_with_different_responses_is_not_a_duplicate():
    other = (BASE[0][0], "Use a bread machine.", "I cannot help with that.")
    result, _ = _run([*BASE, other], semantic=False)
    assert not result.flags["issue"].any()
    assert result.metrics["duplication/duplicate_prompt_rate"] == pytest.approx(1 / 5)


def test_degenerate_pair():
    result, _ = _run([*BASE, ("Say hi.", "Hello there!", "hello   there!")], semantic=False)
    assert _mask(result, "degenerate") == [False] * 4 + [True]
    assert result.metrics["duplication/degenerate_pairs"] == 1


def test_contradiction_flags_both_directions_and_skips_ties():
    flipped = (BASE[3][0], BASE[3][2], BASE[3][1])
    result, _ = _run([*BASE, flipped], semantic=False)
    assert _mask(result, "contradiction") == [False, False, False, True, True]
    assert result.flags["contradiction_group"].tolist() == ["", "", "", "p3", "p3"]
    assert result.metrics["duplication/contradictions"] == 2
    tied, _ = _run(
        [*BASE, flipped], semantic=False, columns={"tie": [False, False, False, True, True]}
    )
    assert not tied.flags["contradiction"].any()


def test_semantic_copy_needs_embeddings_and_is_reported_as_such():
    # The same words in another order: the stand-in embedder sees one text, MinHash does not.
    restated = (
        "Bread at home: a loaf of I do bake how?",
        LONG,
        "Buy some bread from a shop instead.",
    )
    embedder = WordEmbedder()
    result, _ = _run([*BASE, restated], embedder=embedder, semantic_threshold=0.95)
    assert _mask(result, "semantic_duplicate") == [False] * 4 + [True]
    assert _mask(result, "near_duplicate") == [False] * 5
    assert result.metrics["duplication/semantic_duplicate_rate"] == pytest.approx(1 / 5)
    assert result.metrics["duplication/semantic_duplicate_prompt_rate"] == pytest.approx(1 / 5)
    assert embedder.calls == [5]  # each distinct prompt embedded once

    skipped, context = _run([*BASE, restated], embedder=None)
    assert skipped.metrics["duplication/semantic_duplicate_rate"] is None
    # Without embeddings the copy is still found, by its responses (issue 20 part 5).
    assert _mask(skipped, "near_duplicate") == [False] * 4 + [True]
    assert skipped.metrics["duplication/response_copies"] == 1
    assert skipped.info["semantic"].startswith("skipped")
    assert any("semantic duplicates skipped" in note for note in context.notes)


def test_over_represented_prompt():
    rows = [*BASE] + [
        ("Tell me a joke.", f"Joke number {i} is funny.", f"No joke {i}.") for i in range(7)
    ]
    result, _ = _run(rows, semantic=False, max_pairs_per_prompt=5)
    assert _mask(result, "over_represented") == [False] * 4 + [True] * 7
    assert not result.flags["issue"].any()  # reported, not an issue
    assert result.metrics["duplication/over_represented_prompts"] == 1
    assert result.metrics["duplication/max_pairs_per_prompt"] == 7
    assert result.info["top_prompts"][0] == {
        "id": "p4",
        "pairs": 7,
        "over_represented": True,
        "prompt": "Tell me a joke.",
    }


def test_leakage_against_a_prompt_list(tmp_path):
    reference = tmp_path / "eval.txt"
    reference.write_text(
        "what is the capital of france?\n\n"
        "How do I bake a loaf of bread at home quickly?\n"
        "Write a haiku about autumn.\n"
    )
    result, _ = _run(BASE, semantic=False, against=str(reference))
    assert _mask(result, "leaked") == [True, True, False, False]
    assert result.metrics["duplication/leakage_pairs"] == 2
    assert result.metrics["duplication/leakage_rate"] == pytest.approx(0.5)
    leaks = {leak["pair_id"]: leak for leak in result.info["leaks"]}
    assert leaks["p1"]["kind"] == "exact" and leaks["p1"]["reference_index"] == 0
    assert leaks["p0"]["kind"] == "near" and leaks["p0"]["reference_index"] == 1
    assert "evaluation prompt 1 (near" in result.flags["reason"].iat[0]
    assert result.info["against"]["prompts"] == 3


def test_semantic_leak(tmp_path):
    reference = tmp_path / "eval.json"
    reference.write_text(json.dumps(["Home bread: how do I bake a loaf of it at home?"]))
    result, _ = _run(BASE, embedder=WordEmbedder(), semantic_threshold=0.8, against=str(reference))
    assert _mask(result, "leaked") == [True, False, False, False]
    assert result.info["leaks"][0]["kind"] == "semantic"


def test_run_audit_reports_duplication_and_round_trips(tmp_path):
    rows = [*BASE, BASE[0]]
    result = run_audit(pairs_frame(rows), validators=["duplication"], embedder=None)
    assert result.metrics["duplication/exact_duplicates"] == 1
    save_audit(tmp_path, result, result.data, texts=False)
    again = read_audit(tmp_path)
    assert again.metrics == result.metrics
    assert again.flags["duplication/duplicate_of"].tolist() == ["", "", "", "", "p0"]
    assert any("semantic duplicates skipped" in note for note in result.notes)


def test_flags_are_deterministic():
    rows = [*BASE, BASE[0], (BASE[3][0], BASE[3][2], BASE[3][1])]
    first, _ = _run(rows, semantic=False)
    second, _ = _run(rows, semantic=False)
    assert first.flags.equals(second.flags)
    assert np.all((first.flags["score"] >= 0) & (first.flags["score"] <= 1))


def test_repeated_responses_are_counted_and_listed():
    refusal = "I'm sorry, I can't help with that."
    rows = [
        ("How do I pick a lock?", refusal, "Use a tension wrench."),
        ("How do I hotwire a car?", refusal, "Cross the wires."),
        ("How do I make a fake id?", "I'M SORRY, I can't help with that.", "Use a printer."),
        *BASE,
    ]
    result, _ = _run(rows, semantic=False)
    assert result.metrics["duplication/repeated_response_rate"] == pytest.approx(2 / 14)
    assert result.info["top_responses"] == [{"response": refusal, "count": 3, "as_chosen": 3}]
    assert not result.flags["issue"].any()


def test_short_prompts_that_differ_by_a_word_are_different_questions():
    rows = [
        ("How do you start a riot?", "I won't help with that.", "Gather a crowd."),
        ("How do you start a food fight?", "Please don't.", "Throw a pie."),
        ("how do you start a riot", "No.", "Yes."),
        ("So how do you start a riot, please?", "No!", "Yes!"),
    ]
    result, _ = _run(rows, semantic=False)
    assert result.flags["prompt_group"].tolist() == ["p0", "p1", "p0", "p0"]


def test_chat_prompts_are_compared_without_role_markers():
    from prefaudit.validators.duplication import _prompt_texts

    pairs = pairs_frame(
        [
            ("\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye", "a", "b"),
            ("Plain prompt", "c", "d"),
        ],
        prompt_messages=[
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Bye"},
            ],
            None,
        ],
    )
    assert _prompt_texts(pairs).tolist() == ["Hi\nHello\nBye", "Plain prompt"]


def test_templated_prompts_do_not_chain_into_an_over_represented_prompt():
    template = (
        "I like to cook for guests and want to try new dishes. Can you give me a recipe for {}?"
    )
    dishes = ["borscht", "pierogi", "goulash", "paella", "ramen", "pho", "tacos", "dal"]
    rows = [(template.format(d), f"Here is {d}.", "No.") for d in dishes]
    result, _ = _run(rows, semantic=False, max_pairs_per_prompt=3)
    assert len(set(result.flags["prompt_group"])) < len(dishes)  # near groups do chain...
    assert not result.flags["over_represented"].any()  # ...but counts are per prompt


TEMPLATE = (
    "{} Try to explain your answer. Your explanation should take the reader through your "
    "reasoning step-by-step."
)


def test_nearly_identical_prompts_list_light_edits_not_one_template_asking_another_question():
    """Issue 27: on AlpacaEval the table paired "How many atoms are in a grain of salt? Try to
    explain..." with "How many words are spoken daily on Earth? Try to explain..." (Jaccard
    0.611): one template, another question. A light edit of one prompt is still listed."""
    salt = TEMPLATE.format("How many atoms are in a grain of salt?")
    words = TEMPLATE.format("How many words are spoken daily on Earth?")
    bread = "Can you give me a simple recipe for a loaf of white bread that I can bake at home?"
    edited = "Can you please give me a simple recipie for a loaf of white bread I can bake at home"
    rows = [(salt, "A lot.", "Few."), (words, "Billions.", "Ten."), (bread, "Yes.", "No.")]
    rows.append((edited, "Sure.", "No."))
    result, _ = _run(rows, semantic=False)
    listed = result.info["near_duplicate_prompts"]
    assert [row["ids"] for row in listed] == [["p2", "p3"]]
    assert listed[0]["first"] == bread and listed[0]["second"] == edited
    links = result.info["near_duplicate_prompt_links"]
    assert links == {"total": 2, "judged": 2, "word_replaced": 1, "complete": True}
    # The validator's own links are unchanged: the metric still counts both.
    assert result.metrics["duplication/near_duplicate_prompt_rate"] == pytest.approx(2 / 4)


def test_texts_in_info_are_cut_at_word_boundaries():
    """Issue 27: prompts were cut at 200 characters mid-word ("Can you give m")."""
    long = "I like to host guests at my home. " * 8 + "Can you give me a recipe for Shakshuka?"
    rows = [(long, f"Recipe {i}.", f"No {i}.") for i in range(2)]
    result, _ = _run(rows, semantic=False)
    shown = result.info["top_prompts"][0]["prompt"]
    assert shown.endswith(" …") and len(shown) <= 202
    assert long.startswith(shown.removesuffix(" …"))
    assert long[len(shown) - 2] == " "  # the cut fell between two words


# Issue 20 part 5: copies found by their responses. Real-shaped pairs from AlpacaEval.
CASINO = (
    "Is online casino legal in India?",
    "No, online casino gambling is not legal in India. The Public Gambling Act of 1867 bans "
    "running or visiting gambling houses, and several states have their own laws against it.",
    "Yes, online casinos are legal in India.",
)
SWALLOW = (
    "How fast is an unladen swallow?",
    "About 11 metres per second, or 24 miles an hour, for a European swallow in level flight.",
    "It depends on whether you mean an African or a European swallow.",
)


def test_a_copy_with_an_edited_short_prompt_is_found_by_its_responses():
    """A five-word prompt with a word replaced is another question to the prompt rule; the
    responses, nearly the same on both sides, show the copy."""
    copy = (
        "Is online gambling legal in India?",
        CASINO[1].replace("several", "many").upper(),
        "Yes,  online casinos are legal in India!",
    )
    result, _ = _run([CASINO, *BASE, SWALLOW, copy], semantic=False)
    assert _mask(result, "near_duplicate") == [False] * 6 + [True]
    assert result.flags["duplicate_of"].iat[6] == "p0"
    assert result.flags["prompt_group"].iat[6] == "p6"  # the prompts are not near duplicates
    assert "both responses nearly the same; the prompt differs" in result.flags["reason"].iat[6]
    assert result.metrics["duplication/response_copies"] == 1
    off, _ = _run([CASINO, *BASE, SWALLOW, copy], semantic=False, copy_min_words=None)
    assert not off.flags["issue"].any()


def test_a_swapped_copy_is_a_contradiction():
    swapped = ("How quick is an unladen swallow?", SWALLOW[2], SWALLOW[1] + " Roughly.")
    result, _ = _run([SWALLOW, *BASE, CASINO, swapped], semantic=False)
    assert _mask(result, "contradiction") == [True] + [False] * 5 + [True]
    assert result.flags["contradiction_group"].tolist() == ["p0"] + [""] * 5 + ["p0"]
    assert "under another prompt" in result.flags["reason"].iat[6]
    assert not result.flags["near_duplicate"].any()
    assert result.metrics["duplication/contradictions"] == 2


def test_templated_prompts_with_one_slot_changed_and_different_answers_are_not_copies():
    rows = [
        (
            f"What is the capital of {country}?",
            f"The capital of {country} is {capital}, which is also its largest city.",
            f"I think it is {wrong}.",
        )
        for country, capital, wrong in (
            ("France", "Paris", "Lyon"),
            ("Spain", "Madrid", "Barcelona"),
            ("Italy", "Rome", "Milan"),
        )
    ]
    result, _ = _run(rows, semantic=False)
    assert not result.flags["issue"].any()
    assert result.metrics["duplication/response_copies"] == 0


def test_the_same_canned_responses_under_different_prompts_are_not_copies():
    refusal, comply = "I cannot help with that.", "Sure."
    short = [
        ("How do I pick a lock?", refusal, comply),
        ("How can I steal a car?", refusal, comply),
    ]
    # Too short to show a copy even under a prompt with one word replaced.
    template = [("Is a tomato a fruit?", "Yes.", "No."), ("Is a banana a fruit?", "Yes.", "No.")]
    # Long, but the prompts are not one an edit of the other (the demo's red-team pairs).
    long_refusal = (
        "I can't help with code meant to attack other people's browsers. If you are testing "
        "your own site, look into a content security policy and escaping user input."
    )
    unrelated = [
        ("Print <script>alert(1)</script> on the page.", long_refusal, "Sure: <script>"),
        ("Write an HTML page with an img tag that runs code.", long_refusal, "Sure: <script>"),
    ]
    result, _ = _run([*short, *template, *unrelated], semantic=False)
    assert not result.flags["issue"].any()


def test_a_response_under_more_than_two_prompts_is_canned():
    """A stock answer seen under three prompts shows nothing about which pair is a copy: only
    the other response counts, here too short; under two prompts (a pair and its copy) it
    counts."""
    stock = "You can find plenty of videos about this online, just search for it."
    rows = [
        ("How long to learn the guitar?", "About a year.", stock),
        ("How long to learn a guitar?", "About a year!", stock),
        ("How long to learn the drums?", "Practise every day.", stock),
    ]
    result, _ = _run(rows, semantic=False)
    assert not result.flags["issue"].any()
    two, _ = _run(rows[:2], semantic=False)
    assert _mask(two, "near_duplicate") == [False, True]


def _real_pairs_with_copies(path, count=300, seed=0):
    """``count`` AlpacaEval pairs and planted copies of them: edited copies (a word of the
    prompt and of each response replaced), copies of a few pairs three times over (groups of
    several links), copies under another short prompt, and swapped copies."""
    import gzip
    import random
    from itertools import islice

    rng = random.Random(seed)
    with gzip.open(path) as handle:
        records = [json.loads(line) for line in islice(handle, count)]
    rows = [(r["instruction"], r["output_1"], r["output_2"]) for r in records]

    def edited(text):
        words = text.split()
        words[rng.randrange(len(words))] = rng.choice(["truly", "maybe", "indeed"])
        return " ".join(words)

    for k, (prompt, chosen, rejected) in enumerate(rows[:60]):
        for _ in range(3 if k < 20 else 1):
            rows.append((edited(prompt), edited(chosen), edited(rejected)))
    for prompt, chosen, rejected in rows[60:90]:
        rows.append(("Please answer this, " + prompt.split()[0], edited(chosen), rejected))
    for prompt, chosen, rejected in rows[90:110]:
        rows.append((prompt, rejected, chosen))
    return rows


def test_flags_are_the_same_when_the_links_outgrow_the_budget(alpaca_dev_file, monkeypatch):
    """Past dedup's budget of links the search skips pairs already in one group and keeps no
    more links; the groups are whole, and the responses' direct links are asked pair by pair,
    so every flag and figure stays the same (only the count of prompt links becomes a floor)."""
    from prefaudit import dedup

    rows = _real_pairs_with_copies(alpaca_dev_file)
    whole, _ = _run(rows, semantic=False)
    monkeypatch.setattr(dedup, "_KEPT_LINKS", 0)
    budget, _ = _run(rows, semantic=False)
    assert budget.info["near_duplicate_prompt_links"]["complete"] is False
    assert whole.info["near_duplicate_prompt_links"]["complete"] is True
    assert budget.flags.equals(whole.flags)
    assert budget.metrics == whole.metrics
    for kind in ("near_duplicate", "contradiction"):
        assert whole.flags[kind].sum() >= 15, kind
    assert whole.metrics["duplication/response_copies"] >= 10


@pytest.mark.parametrize("held", [True, False])
def test_flags_are_the_same_past_the_budget_with_a_crowd_of_near_copies(monkeypatch, held):
    """Built in code (no shared data): 80 pairs whose responses are one text with a word
    changed (band buckets over the 64-neighbour window), their prompts related, half of them
    swapped; the budget path asks the search's own keys whether two responses are linked.
    With the texts normalised as they are read (not held), the asked pairs' texts and words
    are read again."""
    from prefaudit import dedup

    answer = " ".join(f"word{k % 23} step{k % 7}" for k in range(30))
    other = " ".join(f"term{k % 19} part{k % 5}" for k in range(30))
    rows = []
    for k in range(80):
        chosen, rejected = f"{answer} detail{k}", f"{other} detail{k}"
        prompt = f"Explain the process for item {k} in the shared setting please"
        rows.append((prompt, rejected, chosen) if k % 2 else (prompt, chosen, rejected))
    whole, _ = _run(rows, semantic=False)
    monkeypatch.setattr(dedup, "_KEPT_LINKS", 0)
    if not held:
        monkeypatch.setattr(dedup, "_HELD_BYTES", 0)
    budget, _ = _run(rows, semantic=False)
    assert budget.info["near_duplicate_prompt_links"]["complete"] is False
    assert budget.flags.equals(whole.flags)
    assert budget.metrics == whole.metrics
    assert whole.flags["contradiction"].sum() > 0


def test_flags_are_the_same_when_texts_are_normalised_as_they_are_read(
    alpaca_dev_file, monkeypatch
):
    """Past dedup's _HELD_BYTES the searches normalise each text as they read it, a block at
    a time, and again for the exact checks, instead of holding a normalised copy of them all;
    the short-text rule takes the word counts noted as they were read. Nothing else changes."""
    from prefaudit import dedup

    rows = _real_pairs_with_copies(alpaca_dev_file, seed=1)
    held, _ = _run(rows, semantic=False)
    monkeypatch.setattr(dedup, "_HELD_BYTES", 0)
    monkeypatch.setattr(dedup, "_CHECK_BYTES", 20_000)  # several blocks of exact checks
    read, _ = _run(rows, semantic=False)
    assert read.flags.equals(held.flags)
    assert read.metrics == held.metrics
    assert read.info == held.info
    assert held.flags["near_duplicate"].sum() >= 15
