"""A fixed mmap threshold for glibc's malloc in the edge process, so large messages cost their size.

glibc serves an allocation from its heap below the "mmap threshold" and with its own mapping
above it; the threshold starts at 128 KiB and rises to the size of each mapped block freed (up
to 32 MiB). After one large message, a 25 MB attachment's buffers are heap blocks: a growing
DATA buffer is then copied block to block as it grows, and the blocks it leaves behind stay
resident (the heap is trimmed only from its top). In bench/stores.py that was about 25 MB more
RSS for a 34 MB message than its Python objects. With the threshold fixed, every block of 1 MiB
or more is its own mapping: it grows by `mremap` without a copy and goes back to the system
when freed.

Only where the C library is glibc (`mallopt` is not portable); elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 1 << 20


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """True when glibc took the setting (which also stops its dynamic adjustment)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        log.warning("could not set malloc's mmap threshold; large messages may cost more memory")
        return False
