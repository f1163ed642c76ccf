"""The on-disk cache of per-item results (embeddings, reference log-probs), keyed by content."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xxhash

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``PREFAUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/prefaudit``, else ``~/.cache/prefaudit``."""
    if os.environ.get("PREFAUDIT_CACHE_DIR"):
        return Path(os.environ["PREFAUDIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prefaudit"


def source_identity(source: str | Path) -> str:
    """``source`` (a model name or path) with, when it is a local file or folder, a signature
    of its files (their paths, sizes and modification times): a model saved again into the
    same folder (a new fine-tune) is another model to every cache and every reuse, without
    reading its weights."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    elif path.is_file():
        files = [path]
    else:
        return str(source)  # a hub name: its revision is the hub's
    signature = xxhash.xxh3_64()
    for file in files:
        info = file.stat()
        name = file.relative_to(path).as_posix() if file != path else ""
        entry = f"{name}\0{info.st_size}\0{info.st_mtime_ns}\n"
        signature.update(entry.encode("utf-8", "surrogateescape"))
    return f"{source}@{signature.hexdigest()}"


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """A 128-bit hash of each text, as rows of two uint64 (the cache key)."""
    digests = b"".join(xxhash.xxh3_128_digest(t.encode("utf-8", "surrogatepass")) for t in texts)
    return np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)


class VectorCache:
    """Per-item result vectors on disk, looked up by 128-bit keys (:func:`text_keys`): one
    folder per kind (``embeddings``, ``reference``) and identity (model and settings); each
    call that adds results writes one shard atomically, so concurrent runs never corrupt it.
    """

    def __init__(self, root: str | Path, identity: str, *, kind: str, dtype=np.float32):
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.folder = Path(root) / kind / digest
        self.identity = identity
        self.dtype = dtype
        self._keys = np.zeros((0, 2), dtype=np.uint64)
        self._vectors: np.ndarray | None = None
        self._loaded = False

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(found mask, vectors of the found keys in order) for the given keys."""
        self._load()
        if not len(self._keys) or not len(keys):
            return np.zeros(len(keys), dtype=bool), None
        packed, stored = _as_void(keys), _as_void(self._keys)
        position = np.searchsorted(stored, packed)
        position = np.minimum(position, len(stored) - 1)
        found = stored[position] == packed
        return found, self._vectors[position[found]]

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Write one shard of new vectors (atomically: written under a temporary name, renamed)."""
        if not len(keys):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "model.txt").write_text(self.identity + "\n")
        name = uuid.uuid4().hex
        tmp = self.folder / f".{name}.tmp.npz"
        with open(tmp, "wb") as handle:
            np.savez(handle, keys=keys, vectors=vectors.astype(self.dtype))
        os.replace(tmp, self.folder / f"{name}.npz")
        self._loaded = False  # re-read on next lookup (other processes may have added shards)

    def _load(self) -> None:
        if self._loaded:
            return
        keys, vectors = [], []
        for shard in sorted(self.folder.glob("*.npz")) if self.folder.exists() else []:
            try:
                with np.load(shard) as data:
                    keys.append(data["keys"])
                    vectors.append(data["vectors"])
            except (OSError, ValueError, KeyError) as err:  # a damaged shard costs a re-embed only
                log.warning("ignoring damaged embedding cache shard %s: %s", shard, err)
        if keys:
            all_keys, all_vectors = np.concatenate(keys), np.concatenate(vectors)
            order = np.argsort(_as_void(all_keys), kind="stable")
            self._keys, self._vectors = all_keys[order], all_vectors[order]
        self._loaded = True


def _as_void(keys: np.ndarray) -> np.ndarray:
    """Rows of two uint64 as single comparable (sortable, searchable) values."""
    big_endian = np.ascontiguousarray(keys.astype(">u8"))
    return big_endian.view(np.dtype((np.void, 16))).ravel()
