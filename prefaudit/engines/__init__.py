"""Engines that run an audit's expensive parts somewhere other than this process.

``ray``: loading per block, embeddings and reference log-probs as Ray Data stages on actor
pools, their results kept as resumable Parquet shards; the validators then run unchanged on
the driver (:func:`prefaudit.auditing.run_audit` with the artefacts filled in). Nothing here
imports Ray until an engine is asked for.
"""

ENGINES = ("local", "ray")  # where an audit's loading and model passes run
RAY_BLOCK_ROWS = 10_000  # records per block on Ray: one model call and one kept shard each
