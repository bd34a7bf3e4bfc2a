"""Local-part patterns of custom inbound domains: which recipients of a domain are routed.

A pattern is matched at every RCPT against the whole local part (anchored at both ends, case
ignored, as MTAs and people change case), on the edge's event loop when the route is cached, so
its cost must be bounded whatever a customer writes. Python's `re` backtracks (`(a+)+$` on 64
characters never finishes) and has no timeout, so patterns are compiled by RE2 (google-re2),
which never backtracks: a match costs at most the input length times the compiled program's
size. Both are capped here: a pattern is at most `MAX_PATTERN_LENGTH` characters, its program at
most `MAX_PROGRAM_SIZE` instructions (`(.*){1000}` is refused for that), and RE2's memory at
`MAX_MEMORY`; a local part is at most 64 octets by RFC 5321 (longer ones never match). What RE2
cannot do in linear time (backreferences, lookarounds) it refuses to compile, and so do we.
`bench/local_part_patterns.py` measures the worst of the hostile patterns that pass.
"""

from __future__ import annotations

import functools

import re2

MAX_PATTERN_LENGTH = 255
"""The column's size (`domains.local_part_regex`)."""
MAX_PROGRAM_SIZE = 1000
"""RE2 instructions; `[a-z0-9._+-]+` takes 16, `(sales|support)(\\+.*)?` 40."""
MAX_MEMORY = 256 * 1024
"""Bytes RE2 may use for one pattern (its compiled program and its DFA cache)."""
MAX_LOCAL_PART = 64
"""RFC 5321 section 4.5.3.1.1."""


class InvalidPattern(ValueError):
    """Not a local-part pattern this service runs (syntax, a feature RE2 refuses, too large)."""


def _options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # a customer's typo is an answer to them, not a line in our log
    options.max_mem = MAX_MEMORY
    return options


@functools.lru_cache(maxsize=4096)
def compiled(pattern: str) -> re2._Regexp:
    """The pattern compiled, or InvalidPattern saying why not. Cached: every edge compiles each
    domain's pattern once, not at every RCPT."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPattern(f"local_part_regex is longer than {MAX_PATTERN_LENGTH} characters.")
    if "\x00" in pattern:
        raise InvalidPattern("local_part_regex must not contain NUL characters.")
    try:
        program = re2.compile(pattern, options=_options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise InvalidPattern(
            f"local_part_regex {pattern!r} is not a pattern this service runs ({reason}); "
            "use RE2 syntax: no backreferences or lookarounds."
        ) from None
    if program.programsize > MAX_PROGRAM_SIZE:
        raise InvalidPattern(
            f"local_part_regex {pattern!r} is too complex ({program.programsize} RE2 instructions, at most "
            f"{MAX_PROGRAM_SIZE}); use fewer or smaller repetitions."
        )
    return program


def matches(pattern: str, local_part: str) -> bool:
    """Whether `local_part` is one of the pattern's (the whole of it, case ignored)."""
    if len(local_part.encode("utf-8", errors="surrogateescape")) > MAX_LOCAL_PART:
        return False
    try:
        return compiled(pattern).fullmatch(local_part) is not None
    except InvalidPattern:
        return False  # a row written before a stricter rule: route nothing rather than fail
    except UnicodeEncodeError:
        return False  # undecodable bytes the listener kept as surrogates: no pattern is about them
