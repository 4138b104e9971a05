"""The client pool: one connection per client, at most one request per client at a time."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from exporter.connections import ONE_CONNECTION, ClientPool


class Recorder:
    """A transport that answers after a short sleep and records concurrency per client."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return httpx.Response(200, json={"path": request.url.path})


def pool_of(recorders: list[Recorder]) -> ClientPool:
    return ClientPool(
        [
            httpx.AsyncClient(transport=httpx.MockTransport(r.handle), limits=ONE_CONNECTION)
            for r in recorders
        ]
    )


class TestClientPool:
    def test_requests_spread_over_clients_one_at_a_time_each(self) -> None:
        """Forty requests over four clients: never two at once on one client, never more
        than four at once in all, and every client is used."""
        recorders = [Recorder() for _ in range(4)]
        pool = pool_of(recorders)
        total = Recorder()

        async def one(i: int) -> str:
            total.in_flight += 1
            total.most = max(total.most, total.in_flight)
            async with pool.stream("GET", f"http://sim/{i}") as response:
                await response.aread()
                body = response.json()["path"]
            total.in_flight -= 1
            return str(body)

        async def scenario() -> list[str]:
            try:
                return await asyncio.gather(*(one(i) for i in range(40)))
            finally:
                await pool.aclose()

        assert asyncio.run(scenario()) == [f"/{i}" for i in range(40)]
        assert [r.most for r in recorders] == [1, 1, 1, 1]
        assert all(client.is_closed for client in pool.clients)

    def test_a_failed_request_gives_its_client_back(self) -> None:
        """A client whose request raised is free again for the next request."""

        def fail(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        pool = ClientPool([httpx.AsyncClient(transport=httpx.MockTransport(fail))])

        async def scenario() -> int:
            for _ in range(3):
                with pytest.raises(httpx.ConnectError):
                    async with pool.stream("GET", "http://sim/"):
                        pass
            await pool.aclose()
            return pool._free.qsize()

        assert asyncio.run(scenario()) == 1

    def test_an_empty_pool_is_refused(self) -> None:
        """A pool without clients could never send anything: it is an error."""
        with pytest.raises(ValueError, match="at least one client"):
            ClientPool([])
