"""The audit on a Ray cluster: per-block loading and the per-pair model passes as Ray Data
stages, each finished block kept as a Parquet shard so a re-run skips it.

What runs where:

- loading: every input file (one file, or each shard of a folder) is read by a Ray task in
  blocks of ``block_rows`` records; each block's records are parsed, mapped to the layout and
  checked there (the rows' rejections with file and line). The driver then adds the converted
  rows in input order with the same :class:`~prefaudit.io.shapes.PairBuilder` the single
  process uses (pair ids, repeated ids, the load report), so the pairs and the report are the
  same by construction;
- embeddings and reference log-probs: ``map_batches`` stages on actor pools, one model load
  per actor, one block per call (the scorer plans its GPU batches inside a block with the same
  planner as a single process), ``num_gpus=1`` per actor when the cluster has GPUs;
- results: one Parquet shard per block, named by a hash of the stage, the model's identity and
  the block's texts, written to a temporary name and renamed; a re-run lists the shards and
  sends only the other blocks to the cluster;
- near-duplicates: from :data:`BAND_JOIN_MIN_TEXTS` texts, the MinHash candidates come from a
  band-join on the cluster (sketches per block as ``dedup.sketch`` makes them, rows grouped
  by scheme and band bucket with Ray's shuffle), the same pairs and estimates as one process;
- the validators: on the driver, unchanged, with these artefacts filled into the
  :class:`~prefaudit.auditing.AuditContext` (``artefacts()`` below gives them in its keys).

Ray is imported only inside these functions: ``import prefaudit`` stays free of it.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xxhash

from prefaudit.engines import RAY_BLOCK_ROWS
from prefaudit.errors import SettingError
from prefaudit.io import LoadedData, load
from prefaudit.io import loader as _loader
from prefaudit.io.readers import detect_file_type, line_limit, open_records
from prefaudit.io.schema import LoadError, LoadIssue, LoadReport
from prefaudit.io.shapes import PairBuilder, RowError, ShapeMapper, check_required, detect_shape
from prefaudit.io.shapes import resolve_mapping as _resolve_mapping
from prefaudit.models.cache import default_cache_dir

log = logging.getLogger(__name__)

BLOCK_ROWS = RAY_BLOCK_ROWS  # records (pairs, texts) per block: one model call and one shard each
# Texts from which the near-duplicate search leaves the driver (the driver's index of 5M
# prompts: signatures and band tables of a few GB).
BAND_JOIN_MIN_TEXTS = 5_000_000
CONNECT_SECONDS = 5.0  # how long an address may take to answer before it counts as unreachable
INSTALL = "pip install 'prefaudit[ray]'"
_SHARD_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


# -- the cluster -------------------------------------------------------------------------------


def require_ray():
    """The ``ray`` module, or :class:`SettingError` (exit 2) saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]: pyarrow datasets)
    except ImportError:
        raise SettingError(
            f"engine='ray' needs Ray, which is not installed: {INSTALL}", setting="engine"
        ) from None
    return ray


def connect(address: str | None = None):
    """Join the Ray cluster at ``address`` (None: start a local one on this machine), unless
    this process has already joined one; returns the ``ray`` module.

    An address nobody answers at fails in :data:`CONNECT_SECONDS` with :class:`SettingError`
    naming it (``ray.init`` itself would retry for minutes). Workers import prefaudit from
    where this process does: a local cluster through ``PYTHONPATH``, a remote one through
    ``runtime_env={"py_modules": [prefaudit]}`` (Ray uploads the package).
    """
    ray = require_ray()
    if address not in (None, "auto", "local"):
        _reachable(address)
    if ray.is_initialized():
        return ray
    import prefaudit

    package_root = str(Path(prefaudit.__file__).resolve().parent.parent)
    if address in (None, "local"):
        paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}
    else:
        runtime_env = {"py_modules": [prefaudit]}
    try:
        ray.init(
            address=address,
            runtime_env=runtime_env,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise SettingError(
            f"ray_address {address}: cannot join a Ray cluster there: {err}",
            setting="ray_address",
        ) from None
    return ray


def _reachable(address: str) -> None:
    """Raise :class:`SettingError` unless something listens at ``address`` (host:port, or
    ray://host:port for Ray Client)."""
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise SettingError(
            f"ray_address {address}: expected HOST:PORT or ray://HOST:PORT", setting="ray_address"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as err:
        raise SettingError(
            f"ray_address {address}: no Ray cluster answers there ({err}); start one with "
            "`ray start --head` or give the head node's address",
            setting="ray_address",
        ) from None


def _cluster_gpus(ray) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


# -- loading, per block ------------------------------------------------------------------------


# Shapes whose rows are read together, so loaded on the driver: one row per rating (grouped into
# pairs), two responses and a label (the label column's scale is read from all of its values),
# and one row per pair and rating.
WHOLE_COLUMN_SHAPES = ("annotations", "side_by_side", "ratings")


def load_blocks(
    path: Any,
    *,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    annotations: Any = None,
    on_bad_row: str = "skip",
    max_chars: int = _loader.DEFAULT_MAX_CHARS,
    label_scale: Any = None,
    binarize: str = _loader.DEFAULT_BINARIZE,
    rating_score: str = _loader.DEFAULT_RATING_SCORE,
    block_rows: int = BLOCK_ROWS,
) -> LoadedData:
    """:func:`prefaudit.io.load`'s result, with the records read and checked on the cluster in
    blocks of ``block_rows``. A file or a folder of files (``.jsonl``/``.json``/``.csv``/
    ``.tsv``/``.parquet``, optionally ``.gz``, read in name order) is read there; other inputs
    (tables in memory, ``hf:`` datasets, ``save_to_disk`` folders) and long annotation tables
    (grouped over the whole input) are loaded here by :func:`~prefaudit.io.load`; a separate
    annotations file is joined to the pairs here. Inputs whose rows are read together are loaded
    here too: a label column (its scale is read from all of its values) and per-response
    ratings (grouped by prompt)."""
    files = _input_files(path)
    options = dict(format=format, mapping=dict(mapping or {}), on_bad_row=on_bad_row)
    options |= dict(label_scale=label_scale, binarize=binarize, rating_score=rating_score)
    if files is None:
        return load(path, annotations=annotations, max_chars=max_chars, **options)
    ratings = _loader._check_settings(
        format, on_bad_row, max_chars, label_scale, binarize, rating_score
    )
    report = LoadReport(files=[str(f) for f in files], file_type=detect_file_type(str(files[0])))
    sample_source = open_records(str(files[0]), max_line_bytes=line_limit(max_chars))
    _, sample = _loader._read_ahead(sample_source.items)
    columns = {key for record in sample for key in record}
    report.mapping = _resolve_mapping(columns, dict(mapping or {}), str(path))
    report.shape = format or (detect_shape(sample, report.mapping, str(path)) if sample else "flat")
    check_required(report.shape, report.mapping, columns, str(path))
    if report.shape in WHOLE_COLUMN_SHAPES:
        return load(path, annotations=annotations, max_chars=max_chars, **options)
    blocks = _read_on_cluster(files, report.shape, report.mapping, max_chars, block_rows)
    pairs, digests = _merge_blocks(blocks, report, max_chars)
    report.pairs = len(pairs)
    data_hash, table = "".join(digests), None
    if annotations is not None:  # joined to the pairs here, as load() does
        table, annotations_hash = _loader._add_annotations(
            str(annotations), pairs, report, None, label_scale
        )
        data_hash += annotations_hash
    report.annotations = 0 if table is None else len(table)
    report.fingerprint = _loader._fingerprint(data_hash, report, max_chars, label_scale, ratings)
    if on_bad_row == "fail" and report.rejected:
        raise LoadError(
            f"{path}: {len(report.rejected)} row(s) could not be loaded (on_bad_row='fail')",
            report.rejected,
            setting="on_bad_row",
        )
    return LoadedData(pairs, table, report)


def _input_files(path: Any) -> list[Path] | None:
    """The files the cluster reads for ``path``, or None when it is loaded on the driver."""
    if not isinstance(path, (str, Path)) or str(path).startswith("hf:"):
        return None
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir() or (path / "dataset_info.json").exists() or (path / "state.json").exists():
        return None
    if (path / "dataset_dict.json").exists():
        return None
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.name.removesuffix(".gz").endswith(_SHARD_SUFFIXES)
    )
    if not files:
        raise SettingError(f"{path}: a folder with no data files to read", setting="data")
    return files


@dataclass(frozen=True)
class _ReadFile:
    """The read stage: one input file -> its blocks (each a pickled list of converted rows and
    rejections), then one last row with the file's fingerprint, notes and unit."""

    shape: str
    mapping: dict[str, str]
    max_chars: int
    block_rows: int

    def __call__(self, row: dict[str, Any]) -> Iterable[dict[str, Any]]:
        index, name = int(row["index"]), str(row["file"])
        source = open_records(name, max_line_bytes=line_limit(self.max_chars))
        report = LoadReport()
        mapper = ShapeMapper(
            self.shape, self.mapping, PairBuilder(report, name, "", self.max_chars)
        )
        block: list[tuple] = []
        number = 0
        for line, item in source.items:
            block.append(self._converted(mapper, source, line, item))
            if len(block) >= self.block_rows:
                yield {"index": index, "block": number, "payload": pickle.dumps(block)}
                block, number = [], number + 1
        if block:
            yield {"index": index, "block": number, "payload": pickle.dumps(block)}
            number += 1
        tail = (source.fingerprint.hexdigest(), list(source.notes), source.unit, source.name)
        yield {"index": index, "block": number, "payload": pickle.dumps(tail)}

    @staticmethod
    def _converted(mapper: ShapeMapper, source, line: int, item: Any) -> tuple:
        """("issue", LoadIssue) or ("pair", line, values, given id, warnings, left-out parts)."""
        if isinstance(item, LoadIssue):
            return ("issue", item)
        try:
            mapper.row_warnings.clear()
            mapper._row_left_out.clear()
            values = mapper.convert(item)
            given = mapper.pair_id(item)
        except RowError as err:
            issue = LoadIssue(
                source.name, line, err.field, err.reason, unit=source.unit, record=item
            )
            return ("issue", issue)
        left_out = Counter(mapper._row_left_out)
        # The raw record travels too: the driver may still reject the row (a pair id that
        # another block already gave), and a rejection keeps its record.
        origin = (source.name, source.unit)
        return ("pair", origin, line, values, given, list(mapper.row_warnings), left_out, item)


def _read_on_cluster(files, shape, mapping, max_chars, block_rows) -> list[tuple[int, int, Any]]:
    """(file index, block number, unpickled payload) of every block, in input order."""
    ray = require_ray()
    items = [{"index": i, "file": str(f)} for i, f in enumerate(files)]
    reader = _ReadFile(shape, dict(mapping), max_chars, block_rows)
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).flat_map(reader)
    blocks = []
    progress = Progress("load", None, unit="row")
    for row in dataset.iter_rows():
        payload = pickle.loads(row["payload"])
        blocks.append((int(row["index"]), int(row["block"]), payload))
        if isinstance(payload, list):
            progress.done(1, len(payload))
    progress.close()
    return sorted(blocks, key=lambda b: (b[0], b[1]))


def _merge_blocks(blocks, report: LoadReport, max_chars: int) -> tuple[pd.DataFrame, list[str]]:
    """The pairs of every block added in input order (ids, repeated ids and the accounting as
    :func:`prefaudit.io.load` does them) and each file's fingerprint digest."""
    builder = PairBuilder(report, report.files[0], "line", max_chars)
    mapper = ShapeMapper(report.shape, report.mapping, builder)
    digests, notes, names = [], [], []
    for _, _, payload in blocks:
        if not isinstance(payload, list):  # a file's last row
            digest, file_notes, _unit, name = payload
            digests.append(digest)
            names.append(name)  # as the reader names it, like load()
            notes.extend(file_notes)
            continue
        for entry in payload:
            _add_entry(entry, report, builder, mapper)
    report.rows_rejected = len(report.rejected)
    report.files = names
    report.notes.extend(notes)
    report.notes.extend(mapper.notes())
    return builder.frame(set(report.mapping)), digests


def _add_entry(entry: tuple, report: LoadReport, builder: PairBuilder, mapper: ShapeMapper):
    """One converted row (or rejection) into the builder and the report, as
    :func:`prefaudit.io.loader._read_rows` does it."""
    report.rows_read += 1
    if entry[0] == "issue":
        report.reject(entry[1])
        return
    _, (file, unit), line, values, given, warnings, left_out, record = entry
    builder.file, builder.unit = file, unit  # a folder's rows name their own file
    try:
        builder.add(line, values, given)
    except RowError as err:
        report.reject(LoadIssue(file, line, err.field, err.reason, unit=unit, record=record))
        return
    for field, reason in warnings:
        report.warn(LoadIssue(file, line, field, reason, unit=unit))
    if left_out:
        mapper.left_out.update(left_out)
        mapper.pairs_with_left_out += 1
    report.rows_accepted += 1


# -- progress ----------------------------------------------------------------------------------


class Progress:
    """prefaudit's own progress line for a stage, beside Ray Data's bars: a bar of rows done,
    with rows per second and the time left (tqdm's), and a log line at the end."""

    def __init__(self, stage: str, rows: int | None, *, unit: str = "pair"):
        from tqdm import tqdm

        self.stage, self.started = stage, time.perf_counter()
        self.blocks = self.rows = 0
        show = rows is None or rows >= 50
        self.bar = tqdm(total=rows, unit=unit, desc=f"{stage} (ray)", disable=not show)

    def done(self, blocks: int, rows: int) -> None:
        self.blocks += blocks
        self.rows += rows
        self.bar.update(rows)

    def close(self) -> None:
        self.bar.close()
        seconds = time.perf_counter() - self.started
        rate = self.rows / seconds if seconds else 0.0
        log.info(
            "%s: %d blocks, %d rows in %.1fs (%.1f rows/s)",
            self.stage,
            self.blocks,
            self.rows,
            seconds,
            rate,
        )


# -- the per-pair stages -----------------------------------------------------------------------


def shard_folder(stage: str) -> Path:
    """Where a stage's shards are kept: ``$PREFAUDIT_CACHE_DIR/ray/<stage>`` (on a cluster
    of several machines, point PREFAUDIT_CACHE_DIR at a filesystem every node mounts)."""
    return default_cache_dir() / "ray" / stage


def shard_name(stage: str, identity: str, columns: Mapping[str, list]) -> str:
    """A block's shard: a hash of the stage, the model's identity and the block's texts."""
    digest = xxhash.xxh3_128(f"{stage}\0{identity}\0".encode())
    for name in sorted(columns):
        digest.update(f"\0{name}\0".encode())
        for value in columns[name]:
            text = (
                pickle.dumps(value)
                if not isinstance(value, str)
                else value.encode("utf-8", "surrogatepass")
            )
            digest.update(len(text).to_bytes(8, "little"))
            digest.update(text)
    return f"{digest.hexdigest()}.parquet"


class StageWorker:
    """One actor of a stage: ``make()`` builds its model once; each call gets blocks (a
    pickled dict of columns, one per row), computes them, writes each block's shard
    atomically and returns the shard's name, rows and the seconds and tokens it took."""

    def __init__(self, make: Callable[[], Any], compute: Callable, folder: str):
        self.model = make()
        self.compute, self.folder = compute, Path(folder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"shard": [], "rows": [], "seconds": [], "tokens": []}
        for shard, payload in zip(batch["shard"], batch["payload"], strict=True):
            columns = pickle.loads(payload)
            began = time.perf_counter()
            frame, tokens = self.compute(self.model, columns)
            path = self.folder / str(shard)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            frame.to_parquet(temporary, index=False)
            os.replace(temporary, path)  # a killed run leaves whole shards or none
            out["shard"].append(str(shard))
            out["rows"].append(len(frame))
            out["seconds"].append(time.perf_counter() - began)
            out["tokens"].append(tokens)
        return out


@dataclass
class StageRun:
    """What a stage did: its table (one row per input row, in order) and the work it took."""

    table: pd.DataFrame
    computed_blocks: int
    skipped_blocks: int
    tokens: int
    seconds: float  # wall time of the cluster part


def run_stage(
    stage: str,
    identity: str,
    columns: Mapping[str, list],
    make: Callable[[], Any],
    compute: Callable,
    *,
    block_rows: int = BLOCK_ROWS,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
) -> StageRun:
    """Run ``compute(model, block_columns) -> (frame, tokens)`` over ``columns`` in blocks of
    ``block_rows`` on a pool of actors (each builds ``make()`` once), skipping the blocks whose
    shard a previous run finished; returns the blocks' frames in input order.

    ``actors``: the pool's size (default: one per GPU, else one per CPU of the cluster);
    ``gpus_per_actor``: default 1 when the cluster has GPUs, else 0."""
    ray = require_ray()
    n = len(next(iter(columns.values()))) if columns else 0
    folder = shard_folder(stage)
    folder.mkdir(parents=True, exist_ok=True)
    spans = [(start, min(start + block_rows, n)) for start in range(0, n, block_rows)]
    blocks = [{k: list(v[a:b]) for k, v in columns.items()} for a, b in spans]
    names = [shard_name(stage, identity, block) for block in blocks]
    todo = [k for k, name in enumerate(names) if not (folder / name).exists()]
    log.info(
        "%s: %d blocks, %d finished before, %d to compute",
        stage,
        len(blocks),
        len(blocks) - len(todo),
        len(todo),
    )
    tokens, began = 0, time.perf_counter()
    if todo:
        gpus = _cluster_gpus(ray)
        per_actor = gpus_per_actor if gpus_per_actor is not None else (1 if gpus else 0)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        size = actors or (max(gpus // max(per_actor, 1), 1) if per_actor else max(cpus, 1))
        size = min(size, len(todo))
        items = [{"shard": names[k], "payload": pickle.dumps(blocks[k])} for k in todo]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            StageWorker,
            fn_constructor_args=(make, compute, str(folder)),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=size),
            num_gpus=per_actor or None,
            num_cpus=1 if not per_actor else None,
        )
        progress = Progress(stage, sum(spans[k][1] - spans[k][0] for k in todo))
        for row in dataset.iter_rows():
            tokens += int(row["tokens"])
            progress.done(1, int(row["rows"]))
        progress.close()
    seconds = time.perf_counter() - began
    frames = [pd.read_parquet(folder / name) for name in names]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return StageRun(table, len(todo), len(blocks) - len(todo), tokens, seconds)


# -- the artefacts the validators ask for ------------------------------------------------------


@dataclass(frozen=True)
class ScorerSpec:
    """How an actor builds its reference scorer (the model is loaded once per actor)."""

    model: str | None
    max_length: int
    device: str
    dtype: str

    def __call__(self):
        from prefaudit.models.reference import ReferenceScorer

        # No disk cache of its own in the actor: the stage's shards are the cache.
        return ReferenceScorer(
            self.model,
            max_length=self.max_length,
            device=self.device,
            dtype=self.dtype,
            cache_dir=False,
        )


@dataclass(frozen=True)
class _Given:
    """An object built in code (a test's tiny model, a scorer already configured), shipped to
    each actor as it is."""

    value: Any

    def __call__(self):
        return self.value


@dataclass
class ScoredElsewhere:
    """What the reference validator reads of the scorer when the cluster scored the pairs."""

    identity: str
    model_identity: str | None
    tokens_per_second: float | None


def score_block(scorer, columns: Mapping[str, list]) -> tuple[pd.DataFrame, int]:
    """A block's reference log-probs (:meth:`ReferenceScorer.score`) and the tokens scored."""
    before = scorer.tokens_scored
    messages = columns.get("prompt_messages")
    frame = scorer.score(columns["prompt"], columns["chosen"], columns["rejected"], messages)
    return frame, scorer.tokens_scored - before


def embed_block(embedder, columns: Mapping[str, list]) -> tuple[pd.DataFrame, int]:
    """A block's embeddings (one row per text)."""
    vectors = np.asarray(embedder.encode(list(columns["text"])), dtype=np.float32)
    return pd.DataFrame({"vector": list(vectors)}), 0


def reference_logps(
    pairs: pd.DataFrame,
    model: str | None,
    max_length: int,
    rows: np.ndarray,
    *,
    scorer: Any = None,
    block_rows: int = BLOCK_ROWS,
    actors: int | None = None,
) -> tuple[pd.DataFrame, ScoredElsewhere]:
    """The reference log-probs of the pairs at ``rows`` (:data:`SCORE_COLUMNS`, in order)
    scored on the cluster, and what the validator reads of the scorer. ``scorer``: an object
    to ship to the actors instead of loading ``model`` there (tests)."""
    from prefaudit.models.reference import ReferenceScorer

    ray = require_ray()
    if scorer is not None:
        make, identity = _Given(scorer), scorer.identity
        model_identity = scorer.model_identity
    else:
        device, dtype = ("cuda", "bfloat16") if _cluster_gpus(ray) else ("cpu", "float32")
        make = ScorerSpec(model, max_length, device, dtype)
        local = ReferenceScorer(model, max_length=max_length, device=device, dtype=dtype)
        identity, model_identity = local.identity, local.model_identity
    chosen = pairs.iloc[rows]
    columns = {c: chosen[c].tolist() for c in ("prompt", "chosen", "rejected")}
    if "prompt_messages" in chosen:
        columns["prompt_messages"] = chosen["prompt_messages"].tolist()
    run = run_stage(
        "reference", identity, columns, make, score_block, block_rows=block_rows, actors=actors
    )
    rate = run.tokens / run.seconds if run.tokens and run.seconds else None
    return _score_dtypes(run.table, len(rows)), ScoredElsewhere(identity, model_identity, rate)


def _score_dtypes(table: pd.DataFrame, n: int) -> pd.DataFrame:
    from prefaudit.models.reference import SCORE_COLUMNS

    if not n:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    return table[list(SCORE_COLUMNS)].reset_index(drop=True)


def embeddings(
    pairs: pd.DataFrame,
    columns: Iterable[str],
    embedder: Any,
    identity: str,
    *,
    block_rows: int = BLOCK_ROWS,
    actors: int | None = None,
) -> dict[str, np.ndarray]:
    """Embeddings of every text of each of ``columns`` (each distinct text embedded once,
    across the columns), computed on the cluster: ``{column: vectors in pair order}``."""
    columns = list(columns)
    texts = list(dict.fromkeys(t for c in columns for t in pairs[c].tolist()))
    make = _EmbedderSpec(embedder) if isinstance(embedder, str) else _Given(embedder)
    run = run_stage(
        "embeddings",
        identity,
        {"text": texts},
        make,
        embed_block,
        block_rows=block_rows,
        actors=actors,
    )
    vectors = np.stack(run.table["vector"].to_numpy()).astype(np.float32) if texts else None
    row = {text: k for k, text in enumerate(texts)}
    out = {}
    for column in columns:
        codes, uniques = pd.factorize(pairs[column])
        out[column] = vectors[[row[t] for t in uniques]][codes]
    return out


@dataclass(frozen=True)
class _EmbedderSpec:
    model: str  # "auto" or a sentence-transformers name or folder

    def __call__(self):
        from prefaudit.models.embeddings import Embedder

        return Embedder(None if self.model == "auto" else self.model, cache_dir=False)


_EMBEDDING_USERS = {"duplication": ("prompt",), "coverage": ("prompt",)}
_EMBEDDING_USERS["label_noise"] = ("prompt", "chosen", "rejected")


def artefacts(
    data: LoadedData,
    names: Iterable[str],
    params: Mapping[str, Mapping[str, Any]],
    embedder: Any,
    *,
    reference_scorer: Any = None,
    block_rows: int = BLOCK_ROWS,
    actors: int | None = None,
    band_join_min: int = BAND_JOIN_MIN_TEXTS,
) -> dict[tuple, Any]:
    """The per-pair artefacts the validators ``names`` will ask the audit context for,
    computed on the cluster, under the context's keys (embeddings, reference log-probs and the
    scorer's description), and the near-duplicate search's band-join from ``band_join_min``
    texts on: :func:`~prefaudit.auditing.run_audit`'s ``artefacts``."""
    from prefaudit.auditing import embedding_setting
    from prefaudit.models.embeddings import embedder_from_env, embedding_source
    from prefaudit.validators.reference import ReferenceValidator

    names, pairs = list(names), data.pairs
    out: dict[tuple, Any] = {("near_duplicate_candidates",): BandJoin(band_join_min, block_rows)}
    if embedder == "env":
        embedder = embedder_from_env()
    wanted = sorted({c for name in names for c in _EMBEDDING_USERS.get(name, ())})
    missing = embedder == "auto" and "not installed" in embedding_source("auto")
    if wanted and embedder is not None and not missing and len(pairs):
        identity = embedding_setting(embedder)
        vectors = embeddings(
            pairs, wanted, embedder, identity, block_rows=block_rows, actors=actors
        )
        out.update({("embeddings", column): v for column, v in vectors.items()})
    if "reference" in names:
        validator = ReferenceValidator(**dict(params.get("reference", {})))
        rows = validator._rows(len(pairs))
        key = tuple(int(r) for r in rows)
        models = [validator.model] + ([validator.policy] if validator.policy else [])
        for model in models:
            scorer = reference_scorer
            if isinstance(scorer, dict):  # given per model name, as AuditContext takes it
                scorer = scorer.get(model)
            table, scored = reference_logps(
                pairs,
                model,
                validator.max_length,
                rows,
                scorer=scorer,
                block_rows=block_rows,
                actors=actors,
            )
            out[("reference_logps", model, validator.max_length, key)] = table
            out[("reference_scorer", model, validator.max_length)] = scored
    return out


# -- near-duplicates: the band-join -------------------------------------------------------------


@dataclass(frozen=True)
class _BandRows:
    """Sketches per block of texts (:func:`prefaudit.dedup.sketch`: permutation signatures for
    short texts, one-permutation ones for long texts), then one row per (scheme, text, band):
    the bucket key, the text's position and its signature (for each candidate's estimate)."""

    bands: int
    rows: int
    shingle_size: int
    num_perm: int
    seed: int
    threshold: float

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from prefaudit import dedup

        out: dict[str, list] = {"scheme": [], "band": [], "key": [], "id": [], "sig": []}
        for start, payload in zip(batch["start"], batch["payload"], strict=True):
            sketches = dedup.sketch(
                pickle.loads(payload),
                self.shingle_size,
                self.num_perm,
                self.seed,
                1,
                self.threshold,
            )
            for scheme, (positions, sig) in enumerate(sketches.schemes):
                rows = [bytes(row) for row in sig]
                for band in range(self.bands):
                    out["scheme"].append(np.full(len(positions), scheme, dtype=np.int8))
                    out["band"].append(np.full(len(positions), band, dtype=np.int32))
                    out["key"].append(dedup.band_keys(sig, band, self.rows))
                    out["id"].append(int(start) + positions)
                    out["sig"].extend(rows)
        kinds = {"scheme": np.int8, "band": np.int32, "key": np.uint64, "id": np.int64}
        table = {
            name: np.concatenate(out[name]).astype(kind) if out[name] else np.zeros(0, kind)
            for name, kind in kinds.items()
        }
        return {**table, "sig": np.array(out["sig"], dtype=object)}


def _bucket(group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One band bucket's candidate pairs with their MinHash estimates."""
    from prefaudit import dedup

    order = np.argsort(group["id"], kind="stable")
    ids = group["id"][order]
    sigs = np.frombuffer(b"".join(group["sig"][order]), dtype=np.uint32).reshape(len(ids), -1)
    left, right = dedup.bucket_pairs(np.arange(len(ids)))
    return {
        "left": ids[left],
        "right": ids[right],
        "similarity": (sigs[left] == sigs[right]).mean(axis=1),
    }


def band_join(
    texts,
    *,
    threshold: float,
    shingle_size: int,
    num_perm: int,
    seed: int,
    block_rows: int = BLOCK_ROWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The near-duplicate candidates of ``texts`` on the cluster, as
    :func:`prefaudit.dedup.near_duplicate_pairs` finds them in one process: signatures per
    block, rows keyed by (band, bucket key) grouped with Ray's shuffle, each bucket's pairs
    with their estimates; (left, right, estimate), distinct pairs in order."""
    import pyarrow as pa

    from prefaudit import dedup

    ray = require_ray()
    if isinstance(texts, pa.Array | dedup.ComparableTexts):  # both sliced a block at a time
        values = texts
    else:
        values = pa.array(list(texts), pa.string())
    n = len(values)
    bands, rows = dedup.lsh_bands(threshold, num_perm)
    items = [
        {"start": start, "payload": pickle.dumps(values.slice(start, block_rows).to_pylist())}
        for start in range(0, n, block_rows)
    ]
    empty = np.zeros(0, dtype=np.int64)
    if not items:
        return empty, empty, np.zeros(0)
    keyed = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _BandRows(bands, rows, shingle_size, num_perm, seed, threshold), batch_size=1
    )
    pairs = keyed.groupby(["scheme", "band", "key"]).map_groups(_bucket, batch_format="numpy")
    found = [batch for batch in pairs.iter_batches(batch_format="numpy") if len(batch["left"])]
    if not found:
        return empty, empty, np.zeros(0)
    left = np.concatenate([b["left"] for b in found]).astype(np.int64)
    right = np.concatenate([b["right"] for b in found]).astype(np.int64)
    similarity = np.concatenate([b["similarity"] for b in found])
    # A pair met in several bands or both schemes: once, with its higher estimate.
    order = np.lexsort((-similarity, left * n + right))
    codes, first = np.unique((left * n + right)[order], return_index=True)
    return codes // n, codes % n, similarity[order][first]


@dataclass(frozen=True)
class BandJoin:
    """The audit context's near-duplicate candidates: on the cluster from ``min_texts`` texts,
    else None (the search runs on the driver)."""

    min_texts: int
    block_rows: int

    def __call__(self, texts, *, threshold, shingle_size, num_perm, seed, **_):
        if len(texts) < self.min_texts:
            return None
        settings = {"shingle_size": shingle_size, "num_perm": num_perm, "seed": seed}
        return lambda values: band_join(
            values, threshold=threshold, block_rows=self.block_rows, **settings
        )
