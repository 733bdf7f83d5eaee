"""Keep freed memory in the process instead of returning it to the OS after every training step.

A training step allocates and frees the same multi-megabyte temporaries over and over (the gathered
rows of a row_sparse table, their gradients and optimizer moments, activations). glibc serves blocks
above its mmap threshold with fresh ``mmap`` calls and trims the heap top eagerly, so each step pays
page faults to zero new pages: measured on the pooled row_sparse benchmark table (50,000 × 256, 1
thread), a lazy Adam step took 26.7 ms with glibc's defaults and 16.4 ms with the thresholds raised.
This is what tcmalloc/jemalloc via ``LD_PRELOAD`` would give, without asking users to preload.

Only the thresholds change (``mallopt``); nothing is allocated. Set ``OBJECT2VEC_MALLOPT=0`` to
leave the allocator alone. Elsewhere than Linux with glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 256 << 20  # blocks below 256 MB come from the heap and are reused
TRIM_THRESHOLD = 1 << 30  # give memory back only when 1 GB sits free at the heap top
_applied = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are in effect."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("OBJECT2VEC_MALLOPT", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...): keep the platform's behaviour
        return False
    _applied = ok
    return ok
