"""Atomic file writes: a temporary file beside the target, then a rename; folders swapped
in whole; and the lock a command holds on the folder it writes."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from prefaudit.errors import InputError

try:
    import fcntl
except ImportError:  # Windows: folders are not locked
    fcntl = None

log = logging.getLogger(__name__)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, then move the result over ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; a file we write follows umask
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@functools.cache
def umask() -> int:
    """The process's umask (read once; setting it is the only portable way to read it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def swap_folder(new: str | Path, final: str | Path) -> Path:
    """Put the folder ``new`` at ``final`` in one step, so that a kill at any moment leaves
    ``final`` whole: the old one or the new one, never neither. On Linux the two are exchanged
    with ``renameat2(RENAME_EXCHANGE)`` and the old one is then removed; elsewhere ``final`` is
    renamed aside first (a kill between the two renames leaves it at ``.<name>.old``)."""
    new, final = Path(new), Path(final)
    if not final.exists():
        os.replace(new, final)
        return final
    if not _exchange(new, final):
        aside = _aside(final)
        shutil.rmtree(aside, ignore_errors=True)  # a finished swap's, whose removal was killed
        os.replace(final, aside)
        try:
            os.replace(new, final)
        except OSError:
            os.replace(aside, final)  # put the old one back
            raise
        new = aside
    shutil.rmtree(new, ignore_errors=True)  # now the old folder
    return final


def recover_swap(final: str | Path) -> None:
    """Undo a :func:`swap_folder` killed between its two renames (where the system cannot
    exchange): ``final`` is missing and the old folder lies aside; it goes back."""
    final = Path(final)
    if not final.exists() and _aside(final).is_dir():
        os.replace(_aside(final), final)


def _aside(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where the
    system cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_cwd, exchange = -100, 2  # AT_FDCWD, RENAME_EXCHANGE
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # no such call, or not here
        return False
    raise OSError(code, f"cannot swap {b} for {a}: {os.strerror(code)}")


class FolderBusy(InputError):
    """Another process is writing into the folder (see :func:`claim_folder`)."""


_claims = threading.local()  # the locks this thread holds: {lock file: depth}


@contextlib.contextmanager
def claim_folder(folder: str | Path) -> Iterator[None]:
    """Hold ``folder`` for writing while the block runs: a second process (or thread) that
    claims it meanwhile gets :class:`FolderBusy` naming the holder, at once, instead of both
    writing into it. The lock is ``flock`` on ``.<name>.lock`` beside the folder (removed at
    the end; a killed holder's stays, unlocked), which a shared file system with locks holds
    across hosts; the system releases it when its holder exits or is killed, so whoever holds
    a folder may remove what killed commands left there. A thread may claim a folder again."""
    lock = _lock_file(Path(folder))
    held = _claims.__dict__.setdefault("depth", {})
    if lock in held:
        held[lock] += 1
        try:
            yield
        finally:
            held[lock] -= 1
        return
    fd = _lock(lock, folder)
    held[lock] = 1
    try:
        yield
    finally:
        del held[lock]
        if fd is not None:
            try:
                lock.unlink(missing_ok=True)  # while still locked: a claimer retries anew
            finally:
                os.close(fd)


def _lock(lock: Path, folder: str | Path) -> int | None:
    """An open, locked descriptor of ``lock`` (None where locks are not available)."""
    if fcntl is None:  # Windows
        return None
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
        except OSError as err:  # a read-only parent (a mount point under /mnt)
            return _unlocked(folder, err)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "a process"
            os.close(fd)
            raise FolderBusy(
                f"{folder}: another prefaudit command ({holder}) is writing into it; wait "
                "for it to end, or write elsewhere"
            ) from None
        except OSError as err:  # a file system without locks (NFS without lockd: ENOLCK)
            os.close(fd)
            return _unlocked(folder, err)
        try:
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
            if current:  # else its holder removed it as we opened it: lock the new one
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _unlocked(folder: str | Path, err: OSError) -> None:
    log.warning("%s cannot be locked (%s): nothing stops two writers", folder, err.strerror)


def _lock_file(folder: Path) -> Path:
    """The lock of ``folder``, the same file whatever the spelling (relative, ``..``, a
    symbolic link to it)."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock" if folder.name else folder / ".prefaudit.lock"


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: str | Path, value: Any) -> Path:
    options = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    return write_bytes(path, _dumps(value, options) + b"\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            for row in rows:
                handle.write(_dumps(row, orjson.OPT_SERIALIZE_NUMPY))
                handle.write(b"\n")

    return atomic_write(path, write)


def write_parquet(path: str | Path, frame) -> Path:
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=True))


def _dumps(value: Any, options: int) -> bytes:
    try:
        return orjson.dumps(value, option=options, default=_default)
    except orjson.JSONEncodeError as err:
        if "surrogates" not in str(err):
            raise
        # A file name that is not UTF-8 (Python keeps its bytes as lone surrogates): written
        # with U+FFFD in their place.
        return orjson.dumps(_without_surrogates(value), option=options, default=_default)


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_surrogates(v) for v in value]
    return value


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
