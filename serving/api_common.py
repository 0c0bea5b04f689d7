"""What the endpoints share: the X-API-Key check (registry, role, scanner, rate limit) and
the 4xx bodies of malformed requests, `{"detail": "<field>: <problem>"}`.

Every keyed call is refused unless its key is in the registry (serving/keys.py) with a
role the endpoint accepts: 401 for a missing, unknown or revoked key (or no registry),
403 for a known key used outside its role or scanners, 429 past its rate limit, 503
when the keys file cannot be read. None of these bodies carries a decision: the item
was never decided, and the line holds it for a human (INSPECT).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import ValidationError

from serving.keys import KeyFileError, KeyRecord
from serving.rate_limit import retry_after
from serving.state import ServiceState

API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False,
                       description="A key from `atr keys issue` (its role decides the calls "
                                   "it may make; a scanner key, the scanners it may scan for)")
SCOPE_KEY = "atr.key"  # where an early check leaves the caller's key for the endpoint


def _refuse(state: ServiceState, status: int, reason: str, detail: str) -> HTTPException:
    state.metrics.auth_refused.labels(reason=reason).inc()
    headers = {"WWW-Authenticate": "X-API-Key"} if status == 401 else None
    return HTTPException(status, detail, headers=headers)


def authenticate(state: ServiceState, given: str | None, roles: Sequence[str],
                 what: str) -> KeyRecord:
    """The caller's key record, or the HTTPException that refuses the call."""
    registry = state.keys
    if not registry.configured:
        raise _refuse(state, 401, "no_registry", f"no key registry configured "
                      f"(serve.keys_file): every {what} is refused")
    if not given:
        raise _refuse(state, 401, "missing_key", f"missing X-API-Key: a {what} needs a "
                      f"{' or '.join(roles)} key")
    try:
        key = registry.lookup(given)
    except KeyFileError as exc:
        raise _refuse(state, 503, "registry_error", f"key_registry_error: {exc}"[:300]) \
            from None
    if key is None:
        raise _refuse(state, 401, "unknown_key", "unknown or revoked X-API-Key")
    if key.role not in roles:
        raise _refuse(state, 403, "wrong_role", f"key {key.name!r} has role {key.role!r}; "
                      f"a {what} needs a {' or '.join(roles)} key")
    return key


def charge(state: ServiceState, key: KeyRecord, n: int = 1, call_items: int = 1) -> None:
    """Take n tokens from the key's bucket, or refuse with 429 and Retry-After (a call of
    more items than the burst can never pass: 429 without Retry-After)."""
    limit = state.settings.rate_limits[key.role]
    wait = float("inf") if call_items > limit.burst else state.limiter.take(key.name, limit, n)
    if wait:
        state.metrics.rate_limited.labels(key_name=key.name).inc()
        detail = (f"rate_limited: key {key.name!r} may send {limit.rate:g} items/s "
                  f"(burst {limit.burst}) to this replica")
        if wait == float("inf"):
            raise HTTPException(429, f"{detail}; {max(n, call_items)} items in one call "
                                "exceed the burst")
        raise HTTPException(429, detail, headers={"Retry-After": retry_after(wait)})


def check_scanner(state: ServiceState, key: KeyRecord, scanner_id: str) -> None:
    if scanner_id not in key.scanners:
        raise _refuse(state, 403, "wrong_scanner", f"scanner_id {scanner_id!r}: key "
                      f"{key.name!r} may submit only for {', '.join(key.scanners)}")


def keyed(roles: Sequence[str], what: str
          ) -> Callable[[Request, str | None], Awaitable[KeyRecord]]:
    """A FastAPI dependency: the caller's key (one token charged), declared in the OpenAPI
    schema as the ApiKey security scheme. A key checked early (the scan routes check it
    before the body is read) is not checked or charged again."""

    async def caller(request: Request, api_key: str | None = Security(API_KEY)) -> KeyRecord:
        key = request.scope.get(SCOPE_KEY)
        if key is None:
            state: ServiceState = request.app.state.svc
            key = authenticate(state, api_key, roles, what)
            charge(state, key)
        return key

    return caller


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]  # a body field is named as it is sent
    return ".".join(parts) or "body"


def validation_detail(exc: ValidationError | RequestValidationError) -> str:
    return "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors())


async def validation_failed(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's validation errors in the service's own shape: 400 for a body that is not
    JSON, else 422 naming each invalid field."""
    assert isinstance(exc, RequestValidationError)
    bad_json = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = (bad_json.get("ctx") or {}).get("error", "JSON decode error")
        return JSONResponse({"detail": f"body is not valid JSON: {reason}"}, status_code=400)
    return JSONResponse({"detail": validation_detail(exc)}, status_code=422)
