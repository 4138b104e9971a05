"""A target's connections as ``max_concurrency`` clients of one connection each.

Why not one ``httpx.AsyncClient`` with ``max_concurrency`` connections: for every request,
and again when each response closes, httpcore's connection pool scans all its connections
and asks each whether its socket has expired (a readability check per connection). At
16 connections that bookkeeping was about a third of the exporter's CPU per request
(cProfile of ``bench/poll_cycle.py``). With one connection per client there is nothing to
scan; a request takes a free client from a queue instead, so at most ``len(clients)``
requests are in flight, as before, and each client keeps its connection alive.

::

    pool = ClientPool([httpx.AsyncClient(limits=ONE) for _ in range(16)])
    async with pool.stream("GET", url) as response:
        ...
    await pool.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import httpx

__all__ = ["ONE_CONNECTION", "ClientPool", "Streamer"]

#: The limits of each client of a pool.
ONE_CONNECTION = httpx.Limits(max_connections=1, max_keepalive_connections=1)


class Streamer(Protocol):
    """What ``ModelArtsClient`` needs to send a request: ``httpx.AsyncClient`` or a pool."""

    def stream(self, method: str, url: str) -> AbstractAsyncContextManager[httpx.Response]: ...


class ClientPool:
    """Streams each request on a free client; waits when all are busy."""

    def __init__(self, clients: Sequence[httpx.AsyncClient]) -> None:
        if not clients:
            raise ValueError("a client pool needs at least one client")
        self.clients = tuple(clients)
        self._free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self.clients:
            self._free.put_nowait(client)

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str) -> AsyncIterator[httpx.Response]:
        client = await self._free.get()
        try:
            async with client.stream(method, url) as response:
                yield response
        finally:
            self._free.put_nowait(client)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
