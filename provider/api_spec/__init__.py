"""The OpenAPI document of the customer API (`/api/v0.1`), served at `GET /api/v0.1/openapi.json`.

`openapi.json` beside this file is the document itself, written by hand and kept true by
tests/test_openapi.py: every route the app registers under /api/v0.1 must be in it (and nothing
else), the document must be valid OpenAPI 3.1, and the main operations' real answers must validate
against its response schemas. A new route: add its path under `paths` (shared parameters,
responses and schemas are in `components`) in the same change.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def document_bytes() -> bytes:
    return resources.files(__package__).joinpath("openapi.json").read_bytes()


def document() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(document_bytes())
    return parsed
