"""Connections spread over `serve.workers`: a worker holding more than its share closes
one after its next reply (`Connection: close`), so the client opens another.

The workers accept on one socket, and the kernel does not balance: the first worker awake
takes every connection waiting, so a client opening 4 keep-alive connections at once
often finds 3 or all 4 on one worker while the other idles (measured:
benchmarks/serving_throughput.py records each worker's CPU). Each worker counts its open
connections in a shared table (one slot per worker, an mmap'd file); one whose count is
above the least loaded other's + 1 when a connection opens serves that connection's
first request and then closes it. HTTP says the client then reconnects (aiohttp and
httpx do, before their next request on it), and the new connection lands on either
worker: the spread converges to within one connection, at the price of a reconnect.

The uvicorn protocol class is httptools' (uvicorn's `auto` where httptools is installed,
as it is here: a requirement of the service); only connection_made/_lost (asyncio's own
protocol API) and the new request's keep-alive flag are touched.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

SLOT = struct.Struct("<q")


class ConnectionTable:
    """Open connections per worker, shared by the workers through a file of `workers`
    8-byte slots (each worker writes only its own)."""

    def __init__(self, path: Path, workers: int, slot: int) -> None:
        size = SLOT.size * workers
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.workers, self.slot = workers, slot
        SLOT.pack_into(self._map, slot * SLOT.size, 0)  # a replaced worker starts at 0

    def add(self, n: int) -> int:
        """Change this worker's count by n; its new value."""
        value = SLOT.unpack_from(self._map, self.slot * SLOT.size)[0] + n
        SLOT.pack_into(self._map, self.slot * SLOT.size, value)
        return int(value)

    def over_share(self) -> bool:
        """More open connections here than the least loaded other worker's + 1."""
        counts = [SLOT.unpack_from(self._map, k * SLOT.size)[0] for k in range(self.workers)]
        mine = counts.pop(self.slot)
        return bool(counts) and mine > min(counts) + 1


table: ConnectionTable | None = None  # set in each worker (serving/workers.py)


class BalancedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, counting its connections in `table`."""

    _shed = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if table is not None:
            table.add(1)
            self._shed = table.over_share()

    def connection_lost(self, exc: Exception | None) -> None:
        if table is not None:
            table.add(-1)
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._shed and self.cycle is not None:
            # set before the app's task first runs: the reply says Connection: close
            self.cycle.keep_alive = False
            self._shed = False
