"""What the endpoints share: checking an `X-API-Key` against a set of keys, and a 422
detail that names each invalid field."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from fastapi import Request
from pydantic import ValidationError


def key_accepted(request: Request, keys: Iterable[str]) -> bool:
    """The request's X-API-Key is one of `keys` (none given or none configured: False)."""
    given = request.headers.get("x-api-key", "")
    # compare_digest against every key: the time taken does not reveal a key's prefix.
    return bool(given) and any([hmac.compare_digest(given.encode(), key.encode())
                                for key in keys])


def validation_detail(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                     for e in exc.errors())
