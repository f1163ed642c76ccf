"""The report with 1 MB texts: does it open? (issue 21: a 900,000-character response froze
the page for 18 s; three 1 MB cells, 87 s).

    python benchmarks/bench_report_long_texts.py [WORK_FOLDER]

206 pairs, 6 of them with 1.08 MB prompts and responses (flagged as duplicates and extreme
lengths, so the sections show them), audited with embeddings off; prints the report's size and
the median of 3 opens in headless Chromium: seconds to the load event and to the table drawn.
Run it on the commit before the fix for the baseline (see benchmarks/README.md).
"""

import json
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ["PREFAUDIT_EMBEDDING_MODEL"] = "off"
from bench_report import open_times  # noqa: E402

import prefaudit  # noqa: E402

work = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
work.mkdir(parents=True, exist_ok=True)
rows = [
    {
        "prompt": f"Question number {i} about topic {i % 7}?",
        "chosen": f"A fine answer {i}.",
        "rejected": f"Wrong {i}.",
    }
    for i in range(200)
]
big = "lorem ipsum dolor sit amet " * 40_000  # about 1.08 MB
for i in range(3):
    rows.append(
        {"prompt": big + str(i), "chosen": big + "x" + str(i), "rejected": big}
    )  # long prompts, near-identical responses
    rows.append({"prompt": big + str(i), "chosen": big + "x" + str(i), "rejected": big})
data = work / "pairs.jsonl"
data.write_text("".join(json.dumps(r) + "\n" for r in rows))
out = work / "out"
prefaudit.audit(str(data), out=out, max_chars=2_000_000)
html = out / "index.html"
print("report MB", round(html.stat().st_size / 1e6, 2))
print("load s, table s:", open_times(html, 3))
