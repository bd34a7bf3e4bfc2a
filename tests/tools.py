"""Where the suite finds the real SMTP clients that `make test` unpacks (bin/fetch-smtp-tools)."""

from __future__ import annotations

import os
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / ".data" / "tools"
SWAKS = TOOLS / "usr" / "bin" / "swaks"
SMTP_SOURCE = TOOLS / "usr" / "sbin" / "smtp-source"


def swaks_env() -> dict[str, str]:
    """swaks finds Net::SSLeay (for --tls) in the unpacked libnet-ssleay-perl."""
    folders = sorted(str(path) for path in TOOLS.glob("usr/lib/*/perl5/*") if path.is_dir())
    return {**os.environ, "PERL5LIB": os.pathsep.join(folders)}


def smtp_source_env() -> dict[str, str]:
    """smtp-source links against Postfix's private libraries, unpacked beside it."""
    return {**os.environ, "LD_LIBRARY_PATH": str(TOOLS / "usr" / "lib" / "postfix")}
