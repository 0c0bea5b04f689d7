"""Fire requests at a service: open-loop on a fixed schedule, or closed-loop with N workers.

Open-loop (a rate in items/s): request i is due at start + i/rate whatever happened to
the earlier ones, as parcels arrive on a belt. Its latency is measured from when it was
DUE, not from when the client got round to sending it, so a service that stalls cannot
hide the queue it built (coordinated omission). Closed-loop (no rate): `concurrency`
workers each send the next request as soon as their previous one is answered: the
throughput ceiling, with latency measured from the actual send.

One httpx.AsyncClient for the whole run (connection reuse, as a line's sorter would).
The request itself is a callable, so the serving benchmark drives MLflow's scoring server
with the same scheduler.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

RequestFn = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
# shoot(index, due_s, t0) -> Shot: one request, timed; the schedules below only call this,
# so another HTTP client (the serving benchmark's aiohttp one) reuses them unchanged.
Shoot = Callable[[int, float, float], Awaitable["Shot"]]
# Open-loop requests in flight at once; past this the client queues (still counted from
# the due time) instead of opening an unbounded number of sockets to a stalled service.
MAX_IN_FLIGHT = 256


@dataclass
class Shot:
    index: int
    due_s: float  # seconds from the run's start when the request was due (open-loop)
    sent_s: float  # when the client actually sent it
    done_s: float
    status: int  # HTTP status; 0 when the transport failed (timeout, refused...)
    body: Any = None  # decoded JSON of a 2xx answer
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.error is None

    @property
    def latency_ms(self) -> float:
        return (self.done_s - self.due_s) * 1000.0


async def _shoot(client: httpx.AsyncClient, request: RequestFn, index: int, due_s: float,
                 t0: float) -> Shot:
    sent = time.perf_counter() - t0
    try:
        resp = await request(client, index)
        done = time.perf_counter() - t0
        if 200 <= resp.status_code < 300:
            return Shot(index, due_s, sent, done, resp.status_code, resp.json())
        return Shot(index, due_s, sent, done, resp.status_code, error=resp.text[:300])
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        done = time.perf_counter() - t0
        return Shot(index, due_s, sent, done, 0, error=f"{type(exc).__name__}: {exc}"[:300])


async def open_loop(shoot: Shoot, n: int, rate: float) -> list[Shot]:
    """n requests due at i/rate seconds; all latencies from the due time."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0 items/s, got {rate}")
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    t0 = time.perf_counter()

    async def one(i: int) -> Shot:
        due = i / rate
        delay = due - (time.perf_counter() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
        async with gate:
            return await shoot(i, due, t0)

    # Tasks are created up front and each sleeps until its own due time: a slow answer
    # never delays the next send.
    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def closed_loop(shoot: Shoot, n: int, concurrency: int) -> list[Shot]:
    """`concurrency` workers, each sending the next index as soon as it is free."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    shots: list[Shot] = []
    next_index = iter(range(n))
    t0 = time.perf_counter()

    async def worker() -> None:
        for i in next_index:  # a shared iterator: each index goes to exactly one worker
            shots.append(await shoot(i, time.perf_counter() - t0, t0))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(shots, key=lambda s: s.index)


def make_client(base_url: str, timeout_s: float, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    # trust_env=False: a proxy from the environment must never sit between line and service
    return httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits,
                             trust_env=False)


async def fire(base_url: str, request: RequestFn, n: int, *, rate: float | None,
               concurrency: int, timeout_s: float = 10.0) -> tuple[list[Shot], float]:
    """Run n requests open-loop (rate) or closed-loop (rate None/0); (shots, wall seconds)."""
    open_mode = bool(rate and rate > 0)
    connections = max(concurrency, 64) if open_mode else concurrency
    async with make_client(base_url, timeout_s, connections) as client:
        return await run_schedule(partial(_shoot, client, request), n, rate=rate,
                                  concurrency=concurrency)


async def run_schedule(shoot: Shoot, n: int, *, rate: float | None,
                       concurrency: int) -> tuple[list[Shot], float]:
    """Open-loop when a rate > 0 is given, else closed-loop; (shots, wall seconds)."""
    t0 = time.perf_counter()
    if rate and rate > 0:
        shots = await open_loop(shoot, n, float(rate))
    else:
        shots = await closed_loop(shoot, n, concurrency)
    return shots, time.perf_counter() - t0


async def wait_ready(base_url: str, path: str = "/ready", timeout_s: float = 30.0) -> None:
    """Poll until the service answers 200 on `path`, or fail naming the URL."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                resp = await client.get(path)
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)
    raise ConnectionError(f"service at {base_url}{path} not ready after {timeout_s:.0f} s ({last})")
