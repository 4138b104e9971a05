"""Response bodies read within ``max_response_bytes`` whatever their encoding
(``exporter.bodies``): a compressed body is inflated with a bound, never more than the room
left, so a gzip bomb costs no more memory than the limit; an encoding that is not read, or a
body that does not inflate, is its own error. Over real sockets: the real exporter, sent a
gzip body inflating to 256 MiB for one pool, raises its peak RSS (VmHWM) by under 8 MB,
refuses that pool as response_too_large, and serves the others, a gzipped answer included."""

from __future__ import annotations

import gzip
import json
import os
import time
import tracemalloc
import zlib
from pathlib import Path

import httpx
import pytest

from exporter.auth import AkSkAuth
from exporter.bodies import BodyTooLarge, BoundedBody, EncodingError
from exporter.config import AkSkCredentials, Secret
from exporter.simulator import Fault, Simulator
from tests.support.processes import start_exporter
from tests.support.promtext import value

MIB = 1 << 20
LIMIT = 4 * MIB  # the default max_response_bytes


def bomb(inflated: int = 256 * MIB) -> bytes:
    """A gzip stream of ``inflated`` zero bytes (about a thousandth of that on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    parts = [packer.compress(block) for _ in range(inflated // MIB)]
    return b"".join([*parts, packer.flush()])


def chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def read(encoding: str, data: bytes, limit: int = LIMIT) -> bytes:
    body = BoundedBody(encoding, limit)
    for chunk in chunks(data):
        body.feed(chunk)
    return body.finish()


class TestBoundedBody:
    @pytest.mark.parametrize("encoding", ["", "identity", "gzip", "x-gzip", "deflate", "GZIP"])
    def test_a_body_within_the_limit_is_read_whole(self, encoding: str) -> None:
        """Plain, gzip and deflate (zlib) bodies are decoded to what was sent."""
        text = json.dumps({"items": list(range(50_000))}).encode()
        sent = {
            "": text,
            "identity": text,
            "gzip": gzip.compress(text),
            "x-gzip": gzip.compress(text),
            "GZIP": gzip.compress(text),
            "deflate": zlib.compress(text),
        }[encoding]
        assert read(encoding, sent) == text

    @pytest.mark.parametrize("encoding", ["", "gzip"])
    def test_the_limit_is_exact(self, encoding: str) -> None:
        """A body of exactly ``limit`` decoded bytes is read; one byte more is refused."""
        text = b"x" * 1000
        sent = gzip.compress(text) if encoding else text
        assert read(encoding, sent, limit=1000) == text
        with pytest.raises(BodyTooLarge):
            read(encoding, sent, limit=999)

    def test_a_gzip_bomb_costs_no_more_than_the_limit(self) -> None:
        """256 MiB of zeros in a quarter MB of gzip: refused, with Python's allocations
        peaking under the limit and a MiB while reading it (httpx's decoder inflates each
        64 KiB chunk whole: up to 64 MiB at once)."""
        sent = bomb()
        assert len(sent) < MIB
        tracemalloc.start()
        try:
            with pytest.raises(BodyTooLarge):
                read("gzip", sent)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < LIMIT + MIB

    @pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip", "gzip, br"])
    def test_an_encoding_not_read_is_refused(self, encoding: str) -> None:
        """Encodings other than gzip/deflate (or layered ones) are unsupported_encoding."""
        with pytest.raises(EncodingError) as raised:
            BoundedBody(encoding, LIMIT)
        assert raised.value.code == "unsupported_encoding"
        assert encoding in str(raised.value)

    @pytest.mark.parametrize(
        ("sent", "why"),
        [
            (b"{not compressed}", "does not inflate"),
            (gzip.compress(b'{"a": 1}' * 1000)[:-20], "cut short"),
        ],
    )
    def test_a_body_that_does_not_inflate_is_invalid_encoding(self, sent: bytes, why: str) -> None:
        """A body that is not gzip, or is cut short, is invalid_encoding, saying which."""
        with pytest.raises(EncodingError, match=why) as raised:
            read("gzip", sent)
        assert raised.value.code == "invalid_encoding"


PROJECT = "b0d1e5b0d1e5b0d1e5b0d1e5b0d1e5b0"
AK, SK = "BODIESACCESSKEY00000", "bodies-secret-key"


def peak_rss_kb(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in kB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def answer(sim: Simulator, pool: str) -> bytes:
    """The simulator's ShowWorkloadStatistics answer for ``pool``, as sent."""
    auth = AkSkAuth(AkSkCredentials(Secret(AK, "test"), Secret(SK, "test")), time.time)
    path = f"/v2/{PROJECT}/statistics/pools/{pool}/workloads"
    response = httpx.get(sim.url + path, auth=auth)
    assert response.status_code == 200
    return response.content


@pytest.mark.e2e
def test_a_gzip_bomb_costs_the_exporter_under_8_mb(tmp_path: Path) -> None:
    """The real exporter polls three pools every 300 ms. pool-bomb answers a gzip body
    that inflates to 256 MiB, over and over; pool-gzip answers its real counts gzipped
    (a proxy compressing anyway); pool-plain answers plainly. Over 3 s (ten cycles, five
    at least on a busy machine) the peak RSS grows by under 8 MB (about 4.8 MB here;
    131 MB when httpx inflated each chunk whole), pool-bomb fails as response_too_large,
    and the others are served."""
    sim = Simulator(access_keys={AK: SK})
    for pool, running in (("pool-bomb", 1), ("pool-gzip", 2), ("pool-plain", 3)):
        sim.set_pool(PROJECT, pool, {"train": {"Running": running}})
    config = tmp_path / "config.yaml"
    with sim:
        target = {
            "project_id": PROJECT,
            "region": "cn-north-4",
            "endpoint": sim.url,
            "pools": ["pool-bomb", "pool-gzip", "pool-plain"],
        }
        config.write_text(json.dumps({"poll_interval": "300ms", "jitter": 0, "targets": [target]}))
        env = {"PATH": os.environ["PATH"], "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
        exporter = start_exporter(config, tmp_path / "log", env)
        try:
            time.sleep(2)  # warmed up: imports done, a few cycles polled
            before = peak_rss_kb(exporter.process.pid)
            injected = time.time()
            sim.inject(Fault("/pool-bomb/", body=bomb(), headers={"Content-Encoding": "gzip"}))
            gzipped = gzip.compress(answer(sim, "pool-gzip"))
            sim.inject(Fault("/pool-gzip/", body=gzipped, headers={"Content-Encoding": "gzip"}))
            time.sleep(3)
            grown = peak_rss_kb(exporter.process.pid) - before
            samples = exporter.scrape()
        finally:
            exporter.kill()
        bombs = [r for r in sim.requests() if "/pool-bomb/" in r.path and r.time > injected]
    assert len(bombs) >= 5
    assert grown < 8 * 1024, f"peak RSS grew by {grown} kB"
    errors = "modelarts_poll_errors_total"
    too_large = value(samples, errors, api="workload_statistics", error_code="response_too_large")
    assert too_large is not None
    assert too_large >= 5
    labels = {"type": "train", "status": "running"}
    assert value(samples, "modelarts_pool_jobs", pool="pool-gzip", **labels) == 2
    assert value(samples, "modelarts_pool_jobs", pool="pool-plain", **labels) == 3
