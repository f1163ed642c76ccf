import os
import platform
import sys

import pyarrow as pa
import pytest

from prefaudit import memory


def _resident_bytes() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or platform.libc_ver()[0] != "glibc"
    or not getattr(sys, "_is_gil_enabled", lambda: True)(),  # free-threaded: mimalloc
    reason="Python's blocks from glibc's malloc",
)
def test_give_back_returns_freed_blocks_that_glibc_keeps():
    """Blocks freed below one still held stay resident (glibc keeps them for reuse) until
    give_back returns their pages."""
    assert memory._malloc_trim() is not None
    blocks = [bytes(4000) + bytes([k % 256]) for k in range(40_000)]  # ~160 MB, malloc'd
    held = bytes(4000) + b"x"  # above them: free() cannot trim the heap's top past it
    before = _resident_bytes()
    del blocks
    kept = _resident_bytes()
    memory.give_back()
    after = _resident_bytes()
    assert kept > before - 40 * 2**20  # freed, yet still resident
    assert after < kept - 100 * 2**20  # given back
    assert held


@pytest.mark.parametrize("missing", ["platform", "library"])
def test_give_back_does_nothing_without_glibc(monkeypatch, missing):
    """Elsewhere than Linux, or on a C library without malloc_trim (musl), only Arrow's pool
    is asked."""
    if missing == "platform":
        monkeypatch.setattr(memory.sys, "platform", "darwin")
    else:
        monkeypatch.setattr(memory.sys, "platform", "linux")

        def no_glibc(name):
            raise OSError(f"{name}: cannot open shared object file")

        monkeypatch.setattr(memory.ctypes, "CDLL", no_glibc)
    released = []
    pool = pa.default_memory_pool()
    monkeypatch.setattr(pa, "default_memory_pool", lambda: released.append(1) or pool)
    memory._malloc_trim.cache_clear()
    try:
        assert memory._malloc_trim() is None
        memory.give_back()
        assert released == [1]
    finally:
        memory._malloc_trim.cache_clear()
