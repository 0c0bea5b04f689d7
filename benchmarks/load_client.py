"""The serving benchmark's load generator: aiohttp on atr.line.sender's schedules.

On this 2-core machine the client shares the cores with the server under test, so its
own CPU cost per request comes straight off the server's figure. httpx (the `atr line`
sender) costs more per request than aiohttp; a load generator should weigh as little as
possible (as wrk or hey would on another machine), and every server is driven by the
same client, so the comparison stays fair. `--client httpx` reruns with the line's sender.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from functools import partial

import aiohttp
import httpx

from atr.line.sender import RequestFn, Shot, fire, run_schedule

# One request, as data: (path, body, content type, query params).
RequestSpec = Callable[[int], tuple[str, bytes, str, dict[str, str] | None]]


async def _shoot(session: aiohttp.ClientSession, spec: RequestSpec, headers: Mapping[str, str],
                 index: int, due_s: float, t0: float) -> Shot:
    path, body, content_type, params = spec(index)
    sent = time.perf_counter() - t0
    try:
        async with session.post(path, data=body, params=params,
                                headers={"Content-Type": content_type, **headers}) as resp:
            raw = await resp.read()
            done = time.perf_counter() - t0
            if 200 <= resp.status < 300:
                return Shot(index, due_s, sent, done, resp.status, json.loads(raw))
            return Shot(index, due_s, sent, done, resp.status,
                        error=raw[:300].decode(errors="replace"))
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        done = time.perf_counter() - t0
        return Shot(index, due_s, sent, done, 0, error=f"{type(exc).__name__}: {exc}"[:300])


async def fire_aiohttp(base_url: str, spec: RequestSpec, n: int, *, rate: float | None,
                       concurrency: int, timeout_s: float = 60.0,
                       headers: Mapping[str, str] | None = None) -> tuple[list[Shot], float]:
    connections = max(concurrency, 64) if rate and rate > 0 else concurrency
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base_url=base_url, connector=connector, trust_env=False,
                                     timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        return await run_schedule(partial(_shoot, session, spec, headers or {}), n, rate=rate,
                                  concurrency=concurrency)


def as_httpx(spec: RequestSpec, headers: Mapping[str, str] | None = None) -> RequestFn:
    def send(client: httpx.AsyncClient, i: int) -> object:
        path, body, content_type, params = spec(i)
        return client.post(path, content=body, params=params,
                           headers={"Content-Type": content_type, **(headers or {})})

    return send


def run(client: str, base_url: str, spec: RequestSpec, n: int, *, rate: float | None,
        concurrency: int, headers: Mapping[str, str] | None = None,
        ) -> tuple[list[Shot], float]:
    """n requests with the chosen client library ("aiohttp" or "httpx"); `headers` go with
    every request (atr serve's X-API-Key)."""
    if client == "aiohttp":
        job = fire_aiohttp(base_url, spec, n, rate=rate, concurrency=concurrency,
                           headers=headers)
    elif client == "httpx":
        job = fire(base_url, as_httpx(spec, headers), n, rate=rate, concurrency=concurrency,
                   timeout_s=60)
    else:
        raise ValueError(f"--client {client!r}: expected aiohttp or httpx")
    return asyncio.run(job)
