"""Giving freed memory back to the system between the large steps of an audit.

glibc keeps what a program frees in its arenas for reuse, and Arrow's memory pool (mimalloc
or jemalloc) keeps freed buffers likewise. Many small and mid-sized blocks (a Python string
per text, a compiled kernel's chunks on threads) or large Arrow buffers freed together leave
gigabytes there, counted in the process's resident memory, while the next step's large
arrays are mapped afresh beside them and do not reuse them. :func:`give_back` returns those
free pages (Arrow's ``release_unused``, and glibc's ``malloc_trim``, which Dask documents
for its workers' memory) at the ends of an audit's large steps.
"""

from __future__ import annotations

import ctypes
import functools
import sys


def give_back() -> None:
    """Return the allocators' free pages to the system: Arrow's memory pool's, and the C
    library's (glibc's ``malloc_trim(0)``; nothing on other platforms or C libraries)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where there is none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
