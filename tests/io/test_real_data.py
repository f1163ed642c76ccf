"""The loaders on the real files in ../shared/data (skipped when the folder is absent)."""

import gzip
import json

import pytest

from prefaudit.io import load

pytestmark = pytest.mark.slow

# Lines of the HH harmless test split whose chosen transcript ends with an empty assistant turn.
HH_EMPTY_CHOSEN_LINES = [87, 517, 926, 1104]


def test_all_hh_pairs_load_and_the_prompt_is_the_shared_prefix(hh_file):
    data = load(str(hh_file))
    report, pairs = data.report, data.pairs
    assert (report.rows_read, report.rows_accepted, report.rows_rejected, report.pairs) == (
        2312,
        2312,
        0,
        2312,
    )
    assert report.shape == "hh"
    assert (pairs["prompt"].str.strip() != "").all()
    assert (pairs["rejected"].str.strip() != "").all()
    # The source itself has four empty chosen replies: kept, warned about, never invented.
    empty = pairs.loc[pairs["chosen"].str.strip() == "", "row"].tolist()
    assert empty == HH_EMPTY_CHOSEN_LINES
    warned = sorted(w.line for w in report.warnings if w.reason == "empty; kept")
    assert warned == HH_EMPTY_CHOSEN_LINES
    with gzip.open(hh_file) as handle:
        raw = [json.loads(line) for line in handle]
    for row in pairs.itertuples():
        source = raw[row.row - 1]
        assert source["chosen"].startswith(row.prompt) and source["rejected"].startswith(row.prompt)
        assert source["chosen"].rstrip().endswith(row.chosen)
        assert source["rejected"].rstrip().endswith(row.rejected)


def test_alpacaeval_judges_load_as_pairs_with_annotations(alpaca_file):
    data = load(str(alpaca_file))
    report = data.report
    assert report.shape == "annotations"
    assert (report.rows_read, report.pairs) == (5635, 2411)
    assert report.rows_read == report.rows_accepted + report.rows_rejected
    (null_row,) = report.rejected
    assert (null_row.line, null_row.field, null_row.reason) == (
        2668,
        "label",
        "is null (no preference recorded)",
    )
    assert null_row.record["annotator"]  # the row itself is kept for rejected.jsonl
    assert len(data.annotations) == 5634
    assert set(data.annotations["annotator"]) == {
        "alpaca_eval_cot_gpt4_turbo_fn",
        "alpaca_eval_gpt4_turbo_fn",
        "weighted_alpaca_eval_gpt4_turbo",
    }
    assert data.pairs["prompt"].nunique() == 805
    # Orientation follows the judges: where all of a pair's judges preferred output_2, it is chosen.
    table = data.annotations.groupby("pair_id")["value"].mean()
    assert (table.reindex(data.pairs.index)[~data.pairs["tie"]] > 0.5).all()
