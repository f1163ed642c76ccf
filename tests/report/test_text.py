"""Text from the data as the report shows it."""

from __future__ import annotations

from prefaudit.report.text import SHOWN_CHARS, word_diff


def test_word_diff_shows_whole_words_and_counts_the_rest():
    """Issue 27: the shown text of a long prompt ended mid-word ("... Can you give m")."""
    first = "word " * (SHOWN_CHARS // 5 - 1) + "interesting ending here"
    second = first.replace("ending", "end")
    left, right = word_diff(first, second)
    shown = "".join(piece for _, piece in left[:-1])
    assert shown.endswith(" word") and first.startswith(shown)
    assert left[-1] == ("same", f" … ({len(first) - len(shown):,} more characters)")
    assert set(shown.split()) == {"word"}  # not "inter", the start of the next word
    assert right[-1] == ("same", f" … ({len(second) - len(shown):,} more characters)")
