"""smtp_edge/malloc_tuning.py: with the threshold fixed, a large block freed after an earlier
large message goes back to the system at once (without it glibc keeps it in its heap)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from smtp_edge.malloc_tuning import fix_mmap_threshold

    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()

    def rss():
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) * 1024

    earlier = bytes(20 << 20)  # an earlier large message, freed: glibc raises its threshold
    del earlier
    before = rss()
    block = bytearray(10 << 20)
    block[::4096] = b"x" * len(block[::4096])  # touched, so resident
    above = [bytes(100) for _ in range(1000)]  # live objects after it on the heap
    del block
    print((rss() - before) >> 20)
    """
)


def resident_mb_after_free(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_a_freed_large_block_is_given_back_with_the_threshold_fixed() -> None:
    assert resident_mb_after_free("fixed") <= 1


def test_without_it_glibc_keeps_the_block_resident() -> None:
    """What the setting is for (if glibc changes this, the setting may no longer be needed)."""
    assert resident_mb_after_free("default") >= 9
