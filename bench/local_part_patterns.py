"""How long the slowest local-part pattern that `services.local_parts` accepts takes at RCPT.

    python -m bench.local_part_patterns [--rounds R]

Hostile patterns (each catastrophic for a backtracking engine, or as large as the caps allow)
against 64-character local parts built to hurt them (long runs, a failing last character,
non-ASCII); each pattern is either refused or timed, and the worst single match is reported. The
bound is structural (RE2: input length x program size, both capped); this shows its size.
"""

from __future__ import annotations

import argparse
import statistics
import time

from provider.services.local_parts import InvalidPattern, compiled

HOSTILE = [
    r"(a+)+$", r"(a|aa)*b", r"(a*)*b", r"(x+x+)+y", r"(.*a){20}", r"(\w+\s?)*$", r"([a-z]+)*[0-9]",
    r"(.*){99}", r"((.*){9}){9}", r"(.?){99}a{99}", r"(.*.*.*.*.*.*.*.*.*.*){50}", r"[\pL\pN]{999}",
    r"(.*){1000}", r"(a)\1", r"(?=a)a", r"((a{100}){10}){10}",
]
INPUTS = ["a" * 64, "a" * 63 + "!", "é" * 32, "ab" * 32, "a " * 32, "x" * 63 + "y", "0" * 64]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=21, help="batches per pattern and input")
    parser.add_argument("--batch", type=int, default=50, help="matches per batch")
    args = parser.parse_args()
    worst_overall = 0.0
    for pattern in HOSTILE:
        try:
            program = compiled(pattern)
        except InvalidPattern as exc:
            print(f"{pattern[:40]:40}  refused: {str(exc)[:70]}")
            continue
        worst = 0.0  # the median batch's time per match, for the input that hurts most
        for local in INPUTS:
            per_match = []
            for _ in range(args.batches):
                start = time.perf_counter()
                for _ in range(args.batch):
                    program.fullmatch(local)
                per_match.append((time.perf_counter() - start) / args.batch)
            worst = max(worst, statistics.median(per_match))
        worst_overall = max(worst_overall, worst)
        print(f"{pattern[:40]:40}  {program.programsize:5} instructions  {worst * 1e3:7.3f} ms per match")
    print(f"slowest accepted pattern on its slowest 64-character local part: {worst_overall * 1e3:.3f} ms "
          "per match (median of batches; a shared machine adds its own pauses to single runs)")


if __name__ == "__main__":
    main()
