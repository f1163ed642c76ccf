from hypothesis import given, settings
from hypothesis import strategies as st

from prefaudit.text import normalize, text_features


def test_normalisation_examples():
    assert normalize(["  Ｈｅｌｌｏ,,,   WORLD!!\n", "ﬁne\u00a0day", "a - - b"]).to_pylist() == [
        "hello, world!",
        "fine day",
        "a - - b",
    ]


@settings(deadline=None)  # the first example may load the compiled loops and tables
@given(st.lists(st.text(max_size=50), max_size=30))
def test_hashes_equal_exactly_when_normalised_texts_are_equal(texts):
    normalised = normalize(texts).to_pylist()
    hashes = text_features(texts, chunk_rows=7).normalized_hash  # several chunks, threaded
    for i in range(len(texts)):
        for j in range(len(texts)):
            if normalised[i] == normalised[j]:
                assert hashes[i] == hashes[j]


@settings(deadline=None)
@given(st.text(max_size=50))
def test_normalisation_is_idempotent(text):
    once = normalize([text]).to_pylist()
    assert normalize(once).to_pylist() == once


def test_word_cut_never_ends_inside_a_word():
    from prefaudit.text import word_cut

    text = "I am interested in trying some Israeli dishes. Can you give me a recipe?"
    assert word_cut(text, 52) == "I am interested in trying some Israeli dishes. Can"
    assert word_cut(text, 51) == "I am interested in trying some Israeli dishes. Can "
    assert word_cut(text, 1000) == text
    assert word_cut(text, 0) == ""
    assert word_cut("x" * 50, 20) == "x" * 20  # one long word: cut where the limit falls


@given(st.text(max_size=80), st.integers(1, 60))
def test_word_cut_is_a_prefix_within_the_limit(text, limit):
    from prefaudit.text import word_cut

    head = word_cut(text, limit)
    assert text.startswith(head) and len(head) <= limit
    # Either nothing was left out, or the cut falls next to whitespace: no word cut in two.
    at_space = not head[-1:].strip() or not text[len(head) : len(head) + 1].strip()
    assert len(head) == min(len(text), limit) or at_space


def python_shape_counts(texts) -> dict[str, list[float]]:
    """The shape counts as pandas counts them with Python's re (object dtype: pandas' Arrow
    strings would count with RE2), a missing text as an empty one."""
    import pandas as pd

    from prefaudit.text import SHAPE_PATTERNS

    series = pd.Series(["" if text is None else text for text in texts], dtype=object)
    counts = {
        "chars": series.str.len(),
        "lines": series.str.count("\n"),
        "questions": series.str.count(r"\?"),
    }
    counts |= {name: series.str.count(pattern) for name, pattern in SHAPE_PATTERNS.items()}
    return {name: values.to_numpy(dtype=float).tolist() for name, values in counts.items()}


def compiled_shape_counts(texts, threads=None) -> dict[str, list[float]]:
    from prefaudit.text import shape_counts

    return {name: values.tolist() for name, values in shape_counts(texts, threads).items()}


SHAPE_EDGES = [
    "Why?\n- one 2\n* two",
    "né 3 ÉÉ?",
    "",
    "  A  B\tc \x0b",
    "1. x\n2. y",
    "-\n- a",  # the first item ends with "\n", where the second starts
    "\n\n- a\n\n\n* b",  # \s* spans blank lines: each match starts at a blank line
    "1.\n2. x\n3)\t4",
    "12) a\n1 . x\n1.x\n-x\n-",
    "12\n- a\n3\n\n4. b",  # digits that fail at "\n": the next line is still tried
    "• a\n  •\u2028b\n\u2028- c\r- d",  # \u2028 and \r are \s, but no line start for ^
    "x\n  * y\n\t3. z\n\x1c\x1d-\x85\n\u00a0٣٣) w",  # Unicode spaces and digits
    "٣ digits ①²𝟘 ½ 3",  # \d is Nd: ٣ and 𝟘 are, ① ² ½ are not
    "a\x00b\x1fc\x1cd\x7f e\u3000f\u200bg\ufeffh 😊\u2028i",
    "ÀB Ω ǅ Σ CAPS",  # [A-Z] is ASCII only
]


def test_shape_counts_count_as_python_re_does_on_edge_cases():
    assert compiled_shape_counts(SHAPE_EDGES) == python_shape_counts(SHAPE_EDGES)
    counts = compiled_shape_counts(SHAPE_EDGES[5:7])
    assert counts["list items"] == [2.0, 2.0]


def test_shape_counts_of_missing_texts_and_inputs_of_any_kind():
    import pandas as pd
    import pyarrow as pa

    texts = ["Why?\n- one 2", None, "né 3", ""]
    expected = python_shape_counts(texts)
    assert compiled_shape_counts(pa.array(texts)) == expected
    assert compiled_shape_counts(pa.chunked_array([texts[:2], texts[2:]])) == expected
    assert compiled_shape_counts(pd.Series(texts)) == expected
    assert compiled_shape_counts(pd.Index(texts)) == expected
    assert compiled_shape_counts(texts, threads=3) == expected
    assert {name: values[1] for name, values in expected.items()} == dict.fromkeys(expected, 0.0)
    assert compiled_shape_counts([]) == dict.fromkeys(expected, [])
    assert compiled_shape_counts([None, None]) == dict.fromkeys(expected, [0.0, 0.0])


# Whitespace of every kind (\x1c-\x1f and \x85 are \s to Python, not to RE2), what list
# items are made of, digits that are \d and not ASCII, and upper case that is not [A-Z].
TRICKY = list(" \t\n\r\x0b\x0c\x1c\x1f\x85\u2028\u00a0\u3000•-*.)0129٣?AZaéÉ😊")


# Pieces of lists (markers, blank lines, items ending in "\n"), so that texts hold many.
PIECES = [
    "- ",
    "-\n",
    "* ",
    "•\t",
    "1. ",
    "12",
    ")",
    "3\n",
    ".\n",
    "٣) ",
    "\n",
    "\n\n",
    " ",
    "\r\n",
    "x",
]
CHARACTERS = st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8"))
TEXTS = st.text(CHARACTERS, max_size=40) | st.lists(
    st.sampled_from(PIECES) | CHARACTERS, max_size=20
).map("".join)


@settings(max_examples=200, deadline=None)  # the first example may compile the kernel
@given(st.lists(TEXTS | st.none(), max_size=12), st.integers(1, 3))
def test_shape_counts_count_as_python_re_does(texts, threads):
    assert compiled_shape_counts(texts, threads) == python_shape_counts(texts)


def test_shape_counts_of_real_texts(hh_file, alpaca_dev_file):
    from tests.helpers import real_texts

    texts = real_texts(hh_file, alpaca_dev_file, 500, 1000)
    assert sum(not text.isascii() for text in texts) > 100  # curly quotes, accents, emoji
    expected = python_shape_counts(texts)
    assert sum(expected["list items"]) > 1000
    assert compiled_shape_counts(texts, threads=2) == expected


# -- normalize: a compiled loop, checked against Arrow's compute functions ---------------------

NORMAL_TRICKY = (
    "  Hello,,,   WORLD!!  ",
    "ﬁne\u00a0DAY",  # NFKC
    "\x1c a \x1f",  # trimmed at the ends, kept inside
    "x\x1cy",
    "!! !! ?",
    "“quoted” — dash… and «more»",
    "ΣΟΦΟΣ İstanbul Ⱥ ǅ",  # lower cases of other lengths
    "a\u2028b\u3000\u3000c\r\n\td",
    "",
    " ",
    "...",
    "𐐀𞤀 cased beyond the BMP",
)


def same_as_arrow(texts, drop):
    from prefaudit.text import arrow_normalize

    ours, theirs = (
        normalize(texts, drop_punctuation=drop),
        arrow_normalize(texts, drop_punctuation=drop),
    )
    assert ours.to_pylist() == theirs.to_pylist()


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXTS | st.sampled_from(NORMAL_TRICKY) | st.none(), max_size=12), st.booleans())
def test_normalize_is_what_arrow_gives(texts, drop):
    same_as_arrow(texts, drop)


def test_normalize_real_texts_as_arrow_does(hh_file, alpaca_dev_file):
    from tests.helpers import real_texts

    texts = real_texts(hh_file, alpaca_dev_file, 500, 1000) + list(NORMAL_TRICKY)
    for drop in (False, True):
        same_as_arrow(texts, drop)


def test_normalize_tables_cover_every_code_point_with_a_case_or_a_class():
    """Beyond _CASED_BELOW Arrow changes no code point's case, and none is punctuation or
    whitespace: the kernel's identity there is Arrow's answer."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from prefaudit.text import _CASED_BELOW, _SPACE

    points = np.arange(_CASED_BELOW, 0x110000)
    every = pa.array(list(map(chr, points.tolist())))
    assert pc.all(pc.equal(pc.utf8_lower(every), every)).as_py()
    for pattern in (r"^\pP$", f"^[{_SPACE}]$"):
        assert not pc.any(pc.match_substring_regex(every, pattern)).as_py()
    assert pc.min(pc.utf8_length(pc.utf8_trim_whitespace(every))).as_py() == 1


def test_normalized_hashes_group_real_texts_as_their_strings_do(hh_file, alpaca_dev_file):
    """Hashes of the normalised texts (a compiled 64-bit hash of their bytes) group the real
    texts as their strings do: no two different texts share one."""
    import pandas as pd

    from tests.helpers import real_texts

    texts = real_texts(hh_file, alpaca_dev_file, 2000, 2000)
    texts += [t.upper() + "  " for t in texts[:500]] + ["", " ", None]  # equal once normalised
    strings = pd.factorize(pd.Series(normalize(texts).to_pylist()).fillna(""))[0]
    hashes = pd.factorize(text_features(texts, chunk_rows=1000).normalized_hash)[0]
    assert (strings == hashes).all()
    assert strings.max() + 1 < len(texts) - 400  # the copies were grouped
