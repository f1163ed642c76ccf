"""Property: every line of any input is accounted for, as a pair or as a rejected row."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefaudit.io import load

text = st.text(max_size=30)
valid = st.fixed_dictionaries({"prompt": text, "chosen": text, "rejected": text})
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=4,
)
partial = st.dictionaries(
    st.sampled_from(["prompt", "chosen", "rejected", "id", "score_chosen", "source"]),
    json_value,
    max_size=5,
)
line = st.one_of(
    valid.map(json.dumps),
    partial.map(json.dumps),
    json_value.map(json.dumps),  # valid JSON that is not an object
    st.text(max_size=40).map(lambda s: s.replace("\n", " ").replace("\r", " ")),  # mostly malformed
    st.binary(max_size=40).map(
        lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")
    ),  # bytes, maybe not UTF-8
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=valid, lines=st.lists(line, max_size=25))
def test_rows_read_equals_pairs_kept_plus_rows_rejected(tmp_path, first, lines):
    path = tmp_path / "mixed.jsonl"
    encoded = [json.dumps(first).encode()] + [
        x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass") for x in lines
    ]
    path.write_bytes(b"\n".join(encoded) + b"\n")
    data = load(str(path), format="flat")
    report = data.report
    assert report.rows_read == report.rows_accepted + report.rows_rejected
    assert report.pairs == report.rows_accepted == len(data.pairs)
    kept = set(data.pairs["row"])
    rejected = {issue.line for issue in report.rejected}
    nonblank = {n for n, raw in enumerate(encoded, 1) if raw.strip()}
    assert kept.isdisjoint(rejected)
    assert kept | rejected == nonblank
