"""Collector, exposition cache and HTTP server (real sockets), and promtool's lint."""

from __future__ import annotations

import io
import json
import shutil
import socket
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from structlog.typing import FilteringBoundLogger

from exporter.exposition import ExpositionCache, process_metrics, render
from exporter.logs import make_logger
from exporter.models import (
    Api,
    CycleStats,
    ItemKey,
    ItemState,
    JobTypeStatistics,
    ResourceSpec,
    ResourceSpecs,
    Snapshot,
    WorkloadStatistics,
)
from exporter.server import MetricsServer, parse_listen_address
from tests.support.promtext import Samples, series, value
from tests.support.promtext import parse as samples

P = "0123456789abcdef0123456789abcdef"
REGION = "ap-southeast-3"
NOW = 1_800_000_000.0

V100 = ResourceSpec(
    spec_code="modelarts.vm.gpu.v100",
    spec_id="4",
    gpu_type="v100",
    storage="",
    interface_type="1",
    no_resource=True,
    gpus=1.0,
    cpu_cores=8.0,
    memory_gib=64.0,
    max_nodes=4.0,
    pricing_units=None,
)
UNKNOWN = ResourceSpec("modelarts.vm.odd", "", "", "", "", None, None, None, None, None, None)


def item(target: str, data: object, last_success: float | None, success: bool = True) -> ItemState:
    api = Api.RESOURCE_SPECS if isinstance(data, ResourceSpecs) else Api.WORKLOAD_STATISTICS
    return ItemState(
        key=ItemKey(P, api, target),
        success=success,
        duration_seconds=0.25,
        last_success=last_success,
        data=data,  # type: ignore[arg-type]
        error_code=None if success else "timeout",
    )


def snapshot() -> Snapshot:
    pool_a = WorkloadStatistics(
        (
            JobTypeStatistics("train", 4.0, (("queue", 1.0), ("running", 3.0), ("failed", 0.0))),
            JobTypeStatistics("notebook", None, (("running", 2.0),)),
        )
    )
    pool_old = WorkloadStatistics((JobTypeStatistics("infer", 1.0, (("running", 1.0),)),))
    specs = ResourceSpecs(2.0, (V100, UNKNOWN))
    return Snapshot(
        poll_interval_seconds=60.0,
        stale_after_seconds=180.0,
        items=(
            item("pool-a", pool_a, NOW - 10),
            item("pool-old", pool_old, NOW - 200, success=False),
            item("train", specs, NOW - 10),
        ),
        up=((P, True),),
        regions=((P, REGION),),
        credentials_refused=((P, False),),
        request_rates=((P, 50.0),),
        requests=(((P, "workload_statistics", "200"), 7),),
        errors=(((P, "workload_statistics", "timeout"), 2),),
        cycles=((P, CycleStats(3, 1, last_duration_seconds=0.5)),),
    )


def jobs(parsed: Samples, pool: str, job_type: str, status: str) -> float | None:
    return value(parsed, "modelarts_pool_jobs", project_id=P, pool=pool, type=job_type,
                 status=status)  # fmt: skip


class TestCollector:
    def test_job_counts_per_status_with_zeros(self) -> None:
        """Every status the API returned is a series, zeros included."""
        parsed = samples(render(snapshot(), NOW).text.plain.decode())
        assert jobs(parsed, "pool-a", "train", "failed") == 0.0
        assert jobs(parsed, "pool-a", "train", "running") == 3.0
        assert jobs(parsed, "pool-a", "notebook", "running") == 2.0
        assert len(series(parsed, "modelarts_pool_jobs")) == 4

    def test_every_series_of_a_project_carries_its_region(self) -> None:
        """Each series with a project_id, data and health alike, has the project's region;
        the exporter's own series (build, shard, config) have neither."""
        parsed = samples(render(snapshot(), NOW).text.plain.decode())
        located = {name for (name, labels) in parsed if ("project_id", P) in labels}
        assert {"modelarts_pool_jobs", "modelarts_spec_info", "modelarts_up"} <= located
        assert {"modelarts_request_budget_rate", "modelarts_credentials_refused"} <= located
        assert {"modelarts_exporter_poll_cycles_total", "modelarts_poll_errors_total"} <= located
        for name, labels in parsed:
            names = {label for label, _ in labels}
            if "project_id" in names:
                assert ("region", REGION) in labels, name
            else:
                assert "region" not in names, name

    def test_missing_total_has_no_type_series(self) -> None:
        """An item without ``total`` yields no modelarts_pool_type_jobs series."""
        parsed = samples(render(snapshot(), NOW).text.plain.decode())
        assert (
            value(parsed, "modelarts_pool_type_jobs", project_id=P, pool="pool-a", type="train")
            == 4.0
        )
        assert (
            value(parsed, "modelarts_pool_type_jobs", project_id=P, pool="pool-a", type="notebook")
            is None
        )

    def test_stale_data_is_hidden_but_health_stays(self) -> None:
        """Data older than stale_after leaves; the item's success and timestamp stay."""
        parsed = samples(render(snapshot(), NOW).text.plain.decode())
        assert not any(
            k[0] == "modelarts_pool_jobs" and ("pool", "pool-old") in k[1] for k in parsed
        )
        labels = {"project_id": P, "api": "workload_statistics", "target": "pool-old"}
        assert value(parsed, "modelarts_poll_success", **labels) == 0.0
        assert value(parsed, "modelarts_poll_last_success_timestamp_seconds", **labels) == NOW - 200

    def test_a_failed_item_carries_its_last_error_code(self) -> None:
        """modelarts_poll_last_error_info names the error code of each item whose last poll
        failed, and has no series for an item whose last poll succeeded."""
        parsed = samples(render(snapshot(), NOW).text.plain.decode())
        assert series(parsed, "modelarts_poll_last_error_info") == {
            frozenset(
                {
                    ("project_id", P),
                    ("region", REGION),
                    ("api", "workload_statistics"),
                    ("target", "pool-old"),
                    ("error_code", "timeout"),
                }
            ): 1.0
        }

    def test_refused_credentials_are_a_gauge_per_project(self) -> None:
        """modelarts_credentials_refused is 1 for a project whose key was refused, else 0."""
        other = "f" * 32
        refused = Snapshot(60.0, 180.0, credentials_refused=((P, True), (other, False)))
        parsed = samples(render(refused, NOW).text.plain.decode())
        assert value(parsed, "modelarts_credentials_refused", project_id=P) == 1.0
        assert value(parsed, "modelarts_credentials_refused", project_id=other) == 0.0

    def test_spec_numbers_units_and_skips(self) -> None:
        """Memory is GiB x 2^30 bytes; None numbers and unknown no_resource give no series."""
        parsed = samples(render(snapshot(), NOW).text.plain.decode())
        spec = {"project_id": P, "job_type": "train", "spec_code": "modelarts.vm.gpu.v100"}
        assert value(parsed, "modelarts_spec_memory_bytes", **spec) == 64 * 1073741824
        assert value(parsed, "modelarts_spec_no_resource", **spec) == 1.0
        assert value(parsed, "modelarts_spec_pricing_units", **spec) is None
        odd = {**spec, "spec_code": "modelarts.vm.odd"}
        assert value(parsed, "modelarts_spec_no_resource", **odd) is None
        assert (
            value(
                parsed,
                "modelarts_spec_info",
                **odd,
                spec_id="",
                gpu_type="",
                storage="",
                interface_type="",
            )
            == 1.0
        )
        assert value(parsed, "modelarts_specs", project_id=P, job_type="train") == 2.0

    def test_help_says_how_often_values_are_polled(self) -> None:
        """HELP of polled families states the interval."""
        text = render(snapshot(), NOW).text.plain.decode()
        assert "# HELP modelarts_pool_jobs " in text
        assert "polled every 60 seconds" in text.split("# HELP modelarts_pool_jobs ")[1]

    def test_promtool_check_metrics_has_no_findings(self) -> None:
        """promtool check metrics reports nothing on a full exposition."""
        promtool = shutil.which("promtool")
        assert promtool, "promtool missing: install Debian's prometheus package (see .ci/run)"
        text = render(snapshot(), NOW).text.plain
        result = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, check=False
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


class TestCache:
    def test_reuses_rendered_bytes_until_data_goes_stale(self) -> None:
        """Scrapes get the same object until some data reaches stale_after, then a re-render."""
        clock = [NOW]
        cache = ExpositionCache(snapshot(), lambda: clock[0])
        first = cache.current()
        assert cache.current() is first
        clock[0] = NOW + 169.9  # pool-a and train were polled at NOW-10: fresh until NOW+170
        assert cache.current() is first
        clock[0] = NOW + 170
        second = cache.current()
        assert second is not first
        assert b'pool="pool-a"' in first.text.plain
        assert b'modelarts_pool_jobs{pool="pool-a"' not in second.text.plain
        assert second.expires_at is None

    def test_openmetrics_is_rendered_once_per_exposition_on_demand(self) -> None:
        """OpenMetrics is rendered on first request, reused, and replaced after publish."""
        cache = ExpositionCache(snapshot(), lambda: NOW)
        first = cache.body(True)
        assert cache.body(True) is first
        assert b"modelarts_pool_jobs{" in first.plain
        assert b"# EOF" not in first.plain  # the live part brings it
        assert b"".join(cache.payload(True, False)[1]).endswith(b"\n# EOF\n")
        cache.publish(Snapshot(60.0, 180.0))
        second = cache.body(True)
        assert second is not first
        assert b"modelarts_pool_jobs{" not in second.plain

    def test_publish_swaps_the_exposition(self) -> None:
        """publish() makes the new snapshot's rendering the one served."""
        cache = ExpositionCache(Snapshot(60.0, 180.0), lambda: NOW)
        assert b"modelarts_pool_jobs{" not in cache.current().text.plain
        cache.publish(snapshot())
        assert b"modelarts_pool_jobs{" in cache.current().text.plain


@pytest.fixture
def server() -> Iterator[tuple[str, list[bool]]]:
    ready = [False]
    cache = ExpositionCache(snapshot(), lambda: NOW, process_metrics())
    srv = MetricsServer("127.0.0.1:0", cache.payload, lambda: ready[0])
    srv.start()
    try:
        yield f"http://127.0.0.1:{srv.port}", ready
    finally:
        srv.stop()


class TestServer:
    def test_metrics_plain_text(self, server: tuple[str, list[bool]]) -> None:
        """/metrics answers the text format, uncompressed when gzip is not accepted."""
        url, _ = server
        response = httpx.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"})
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "Content-Encoding" not in response.headers
        assert b"modelarts_pool_jobs{" in response.content

    def test_metrics_gzip(self, server: tuple[str, list[bool]]) -> None:
        """With Accept-Encoding: gzip the body is a single gzip member holding the same
        series as the plain text (cached part and per-scrape part)."""
        url, _ = server
        plain = samples(httpx.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"}).text)
        with httpx.stream("GET", f"{url}/metrics", headers={"Accept-Encoding": "gzip"}) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            body = b"".join(r.iter_raw())
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one member, as httpx reads it
        unzipped = samples(decoder.decompress(body).decode())
        assert decoder.eof
        assert decoder.unused_data == b""
        assert unzipped.keys() == plain.keys()
        cached = {k: v for k, v in plain.items() if k[0].startswith("modelarts_")}
        assert cached == {k: v for k, v in unzipped.items() if k[0].startswith("modelarts_")}

    def test_process_metrics_are_appended_per_scrape(self, server: tuple[str, list[bool]]) -> None:
        """process_* metrics are served and move between scrapes; the cached part does not."""
        url, _ = server
        first = httpx.get(f"{url}/metrics").text
        sum(range(3_000_000))  # burn some CPU between the scrapes
        second = httpx.get(f"{url}/metrics").text
        cpu = [value(samples(t), "process_cpu_seconds_total") for t in (first, second)]
        assert cpu[0] is not None
        assert cpu[1] is not None
        assert cpu[1] > cpu[0]
        assert value(samples(second), "process_resident_memory_bytes")
        assert first.split("# HELP process_")[0] == second.split("# HELP process_")[0]

    def test_metrics_openmetrics_when_asked(self, server: tuple[str, list[bool]]) -> None:
        """Accept: application/openmetrics-text gets OpenMetrics with one # EOF, at the end."""
        url, _ = server
        response = httpx.get(
            f"{url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.text.endswith("# EOF\n")
        assert response.text.count("# EOF") == 1
        assert "process_cpu_seconds_total" in response.text
        assert "modelarts_pool_jobs{" in response.text

    def test_readyz_follows_readiness(self, server: tuple[str, list[bool]]) -> None:
        """/readyz is 503 before the first cycle and 200 after; /healthz is always 200."""
        url, ready = server
        assert httpx.get(f"{url}/readyz").status_code == 503
        assert httpx.get(f"{url}/healthz").status_code == 200
        ready[0] = True
        assert httpx.get(f"{url}/readyz").status_code == 200

    def test_landing_page_head_and_unknown_paths(self, server: tuple[str, list[bool]]) -> None:
        """/ links to /metrics; HEAD has headers but no body; other paths are 404."""
        url, _ = server
        assert 'href="/metrics"' in httpx.get(url + "/").text
        head = httpx.head(f"{url}/metrics")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) > 0
        assert head.content == b""
        assert httpx.get(f"{url}/nope").status_code == 404

    def test_keep_alive_connection_serves_many_requests(
        self, server: tuple[str, list[bool]]
    ) -> None:
        """One keep-alive connection serves several scrapes, HEAD and GET mixed."""
        url, _ = server
        with httpx.Client() as client:
            statuses = [client.head(f"{url}/metrics").status_code]
            statuses += [len(client.get(f"{url}/metrics").content) > 0 for _ in range(3)]
        assert statuses == [200, True, True, True]

    def test_clients_resetting_mid_request_are_a_debug_entry(
        self, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """A client that resets its connection mid-request (SO_LINGER 0) is no error: one
        ``http_connection_failed`` debug entry each, nothing on stderr, and the server
        goes on serving."""
        out = io.StringIO()
        cache = ExpositionCache(snapshot(), lambda: NOW)
        srv = MetricsServer("127.0.0.1:0", cache.payload, lambda: True, log=debug_log(out))
        srv.start()
        try:
            for _ in range(3):
                client = socket.create_connection(("127.0.0.1", srv.port))
                client.sendall(b"GET /metr")
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
            entries = wait_for_entries(out, "http_connection_failed", 3)
            assert httpx.get(f"http://127.0.0.1:{srv.port}/healthz").status_code == 200
        finally:
            srv.stop()
        assert all(e["level"] == "debug" and "exception" not in e for e in entries)
        assert capfd.readouterr().err == ""

    def test_a_failing_request_is_one_json_entry_with_its_traceback(
        self, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """A bug while answering (here the payload raises) is logged as one
        ``http_request_failed`` error entry carrying the traceback, not printed bare on
        stderr; the next request is served."""
        out = io.StringIO()
        calls = []

        def payload(openmetrics: bool, gzipped: bool) -> tuple[str, tuple[bytes]]:
            calls.append(openmetrics)
            if len(calls) == 1:
                raise RuntimeError("render broke")
            return "text/plain", (b"ok 1\n",)

        srv = MetricsServer("127.0.0.1:0", payload, lambda: True, log=debug_log(out))
        srv.start()
        try:
            url = f"http://127.0.0.1:{srv.port}/metrics"
            plain = {"Accept-Encoding": "identity"}
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.get(url, headers=plain)
            [entry] = wait_for_entries(out, "http_request_failed", 1)
            assert httpx.get(url, headers=plain).text == "ok 1\n"
        finally:
            srv.stop()
        assert entry["level"] == "error"
        assert "RuntimeError: render broke" in entry["exception"]
        assert capfd.readouterr().err == ""


def debug_log(out: io.StringIO) -> FilteringBoundLogger:
    return make_logger("debug", "json", stream=out)


def wait_for_entries(out: io.StringIO, event: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` log entries of ``event`` written to ``out``, within 5 s."""
    deadline = time.monotonic() + 5
    while True:
        entries = [json.loads(line) for line in out.getvalue().splitlines()]
        found = [entry for entry in entries if entry["event"] == event]
        if len(found) >= count:
            return found[:count]
        assert time.monotonic() < deadline, f"{count} x {event} not logged: {entries}"
        time.sleep(0.01)


class TestListenAddress:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (":10072", ("", 10072)),
            ("127.0.0.1:9", ("127.0.0.1", 9)),
            ("[::1]:80", ("::1", 80)),
            ("localhost:0", ("localhost", 0)),
        ],
    )
    def test_parses(self, text: str, expected: tuple[str, int]) -> None:
        """[host]:port forms parse to (host, port)."""
        assert parse_listen_address(text) == expected

    @pytest.mark.parametrize("text", ["10072", "host:", "host:http", ":70000"])
    def test_rejects(self, text: str) -> None:
        """Malformed addresses are refused."""
        with pytest.raises(ValueError, match="host"):
            parse_listen_address(text)
