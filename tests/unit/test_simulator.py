"""The simulator answers like ModelArts + IAM, over real loopback sockets."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

import httpx
import pytest

from exporter import signing
from exporter.simulator import (
    OVERSIZED_BYTES,
    SPEC_FIELDS,
    STATUS_KEYS,
    Fault,
    RecordedRequest,
    Simulator,
    default_specs,
)
from tests.support.clocks import FakeClock

PROJECT = "0123456789abcdef0123456789abcdef"
AK, SK = "QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
TEMP_AK, TEMP_SK, SECURITY_TOKEN = "TEMPORARYACCESSKEY01", "temp-secret", "security-token-value"
DOMAIN, USER, PASSWORD = "acme", "exporter", "s3cret!"
START = 1_795_320_000.0  # 2026-11-22T04:00:00Z

WORKLOADS = f"/v2/{PROJECT}/statistics/pools/pool-a/workloads"
SPECS = f"/v1/{PROJECT}/job/resource-specs"
POOL_A = {
    "train": {"Running": 3, "Completed": 10, "Failed": 1},
    "infer": {"Running": 2, "Pending": 1},
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[Simulator]:
    with Simulator(
        access_keys={AK: SK, TEMP_AK: TEMP_SK},
        security_tokens={TEMP_AK: SECURITY_TOKEN},
        iam_users={(DOMAIN, USER): PASSWORD},
        token_lifetime_seconds=3600,
        clock=clock,
    ) as simulator:
        simulator.set_pool(PROJECT, "pool-a", POOL_A)
        simulator.set_specs(PROJECT, "train", default_specs("train"))
        simulator.set_specs(PROJECT, "inference", default_specs("inference"))
        yield simulator


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


def sdk_date(clock: FakeClock, offset: float = 0) -> str:
    return signing.format_sdk_date(datetime.fromtimestamp(clock.now + offset, UTC))


def signed_get(
    client: httpx.Client,
    sim: Simulator,
    clock: FakeClock,
    path: str,
    query: str = "",
    *,
    ak: str = AK,
    sk: str = SK,
    signed_query: str | None = None,
    date_offset: float = 0,
    security_token: str | None = None,
    sign_security_token: bool = True,
    signed_names: tuple[str, ...] | None = None,
    tamper: bool = False,
) -> httpx.Response:
    """Sign like a client would (with exporter.signing) and send over the socket."""
    headers = {"host": f"127.0.0.1:{sim.port}", "x-sdk-date": sdk_date(clock, date_offset)}
    if security_token is not None:
        headers["x-security-token"] = security_token
    names = signed_names or tuple(
        n for n in sorted(headers) if sign_security_token or n != "x-security-token"
    )
    canonical = signing.canonical_request(
        "GET", path, query if signed_query is None else signed_query, headers, names, b""
    )
    signature = signing.sign(sk, headers["x-sdk-date"], canonical)
    if tamper:
        signature = ("0" if signature[0] != "0" else "1") + signature[1:]
    headers["authorization"] = signing.authorization_header(ak, names, signature)
    url = sim.url + path + (f"?{query}" if query else "")
    return client.get(url, headers=headers)


def iam_body(user: str = USER, password: str = PASSWORD, domain: str = DOMAIN) -> dict[str, object]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "password": password, "domain": {"name": domain}}
                },
            },
            "scope": {"project": {"id": PROJECT}},
        }
    }


def error_code(response: httpx.Response) -> object:
    return response.json().get("error_code")


class TestApis:
    def test_signed_workloads_request_gets_documented_json(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A correctly signed request gets the ShowWorkloadStatistics body with all status keys."""
        response = signed_get(client, sim, clock, WORKLOADS)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
        stats = response.json()["statistics"]
        assert stats["total"] == 2
        train = stats["items"][0]
        assert train["type"] == "train"
        assert list(train["status"]) == list(STATUS_KEYS)
        assert train["status"]["Running"] == 3
        assert train["status"]["Queue"] == 0
        assert train["total"] == 14

    def test_new_status_keys_pass_through(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A status key outside the documented nine is served after them and counted in total."""
        sim.set_pool(PROJECT, "pool-a", {"train": {"Running": 1, "Suspended": 2}})
        item = signed_get(client, sim, clock, WORKLOADS).json()["statistics"]["items"][0]
        assert list(item["status"])[-1] == "Suspended"
        assert item["total"] == 3

    def test_resource_specs_match_the_seed_sample_shape(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """job_type=train returns train specs in the sample's field order with a matching count."""
        body = signed_get(client, sim, clock, SPECS, "job_type=train").json()
        assert list(body) == ["specs", "is_success", "spec_total_count"]
        assert body["is_success"] is True
        assert body["spec_total_count"] == len(body["specs"]) == len(default_specs("train"))
        first = body["specs"][0]
        assert list(first) == list(SPEC_FIELDS)
        assert first["spec_code"] == "modelarts.vm.cpu.2u"
        assert (first["core"], first["cpu"]) == ("2", "8")
        codes = {s["spec_code"]: s for s in body["specs"]}
        assert codes["modelarts.bm.npu.arm.8snt9b3.d"]["gpu_type"] == "ascend-snt9b3"
        assert any(s["no_resource"] for s in body["specs"])

    def test_resource_specs_without_job_type_lists_all(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """Without job_type the specs of every job type are concatenated."""
        body = signed_get(client, sim, clock, SPECS).json()
        expected = len(default_specs("train")) + len(default_specs("inference"))
        assert body["spec_total_count"] == expected

    def test_unknown_pool_is_404_with_pool_name(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """An unknown pool answers 404 ModelArts.50015001 naming the pool."""
        path = f"/v2/{PROJECT}/statistics/pools/pool-zz/workloads"
        response = signed_get(client, sim, clock, path)
        assert response.status_code == 404
        assert response.json() == {
            "error_code": "ModelArts.50015001",
            "error_msg": "Pool pool-zz not found.",
        }

    def test_removed_pool_is_404(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """After remove_pool the pool answers 404."""
        assert sim.remove_pool(PROJECT, "pool-a")
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 404

    def test_unknown_project_is_400(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """An unknown project answers 400 ModelArts.50004000."""
        path = f"/v2/{'f' * 32}/statistics/pools/pool-a/workloads"
        response = signed_get(client, sim, clock, path)
        assert response.status_code == 400
        assert error_code(response) == "ModelArts.50004000"

    def test_unknown_path_and_method_are_apigw_0101(
        self, sim: Simulator, client: httpx.Client
    ) -> None:
        """Unknown paths and wrong methods answer 404 APIGW.0101 without needing credentials."""
        for response in (
            client.get(sim.url + f"/v2/{PROJECT}/nodes"),
            client.post(sim.url + WORKLOADS),
            client.post(sim.url + f"/v2/{PROJECT}/pools"),
            client.get(sim.url + "/v3/auth/tokens"),
        ):
            assert response.status_code == 404
            assert error_code(response) == "APIGW.0101"
            assert len(response.headers["x-request-id"]) == 32


class TestAkSk:
    def test_wrong_signature_is_refused(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A wrong signature gets 401 APIGW.0301."""
        response = signed_get(client, sim, clock, WORKLOADS, tamper=True)
        assert response.status_code == 401
        assert error_code(response) == "APIGW.0301"
        assert response.json()["error_msg"].startswith("Incorrect IAM authentication information")

    def test_wrong_secret_key_is_refused(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A signature made with another secret key gets 401."""
        assert signed_get(client, sim, clock, WORKLOADS, sk="other").status_code == 401

    def test_unknown_access_key_is_refused(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """An access key the simulator does not know gets 401."""
        assert signed_get(client, sim, clock, WORKLOADS, ak="NOSUCHKEY").status_code == 401

    def test_sixth_failure_locks_and_lock_expires(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """The 6th consecutive bad signature locks the AK for 5 minutes, even for good ones."""
        for _ in range(6):
            assert signed_get(client, sim, clock, WORKLOADS, tamper=True).status_code == 401
        assert sim.is_locked(AK)
        locked = signed_get(client, sim, clock, WORKLOADS)
        assert locked.status_code == 401
        assert error_code(locked) == "APIGW.0301"
        assert "locked" in locked.json()["error_msg"]
        clock.advance(299)
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 401
        clock.advance(2)
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 200
        assert not sim.is_locked(AK)

    def test_success_resets_failure_count(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """Five failures, a success, then five more failures do not lock the AK."""
        for _ in range(5):
            signed_get(client, sim, clock, WORKLOADS, tamper=True)
        assert sim.failure_count(AK) == 5
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 200
        assert sim.failure_count(AK) == 0
        for _ in range(5):
            signed_get(client, sim, clock, WORKLOADS, tamper=True)
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 200

    def test_stale_sdk_date_is_refused(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """An X-Sdk-Date more than 15 minutes off the simulator clock gets 401; 14 minutes is ok."""
        stale = signed_get(client, sim, clock, WORKLOADS, date_offset=-16 * 60)
        assert stale.status_code == 401
        assert "15 minutes" in stale.json()["error_msg"]
        future = signed_get(client, sim, clock, WORKLOADS, date_offset=16 * 60)
        assert future.status_code == 401
        assert signed_get(client, sim, clock, WORKLOADS, date_offset=-14 * 60).status_code == 200

    def test_host_and_date_must_be_signed(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A signature that leaves out host gets 401."""
        response = signed_get(client, sim, clock, WORKLOADS, signed_names=("x-sdk-date",))
        assert response.status_code == 401
        assert "must be signed" in response.json()["error_msg"]

    def test_query_in_other_order_than_signed_is_refused(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """Sending the query in another order than the signed canonical one gets 401."""
        canonical = "engine_id=0&job_type=train"
        ok = signed_get(client, sim, clock, SPECS, canonical)
        assert ok.status_code == 200
        reordered = signed_get(
            client, sim, clock, SPECS, "job_type=train&engine_id=0", signed_query=canonical
        )
        assert reordered.status_code == 401

    def test_query_encoded_differently_than_signed_is_refused(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """Signing a space as %20 but sending + gets 401."""
        response = signed_get(
            client, sim, clock, SPECS, "job_type=train&x=a+b", signed_query="job_type=train&x=a%20b"
        )
        assert response.status_code == 401

    def test_security_token_required_and_signed(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A temporary AK needs X-Security-Token, equal to the registered one and signed."""
        missing = signed_get(client, sim, clock, WORKLOADS, ak=TEMP_AK, sk=TEMP_SK)
        assert missing.status_code == 401
        wrong = signed_get(
            client, sim, clock, WORKLOADS, security_token="nope", ak=TEMP_AK, sk=TEMP_SK
        )
        assert wrong.status_code == 401
        unsigned = signed_get(
            client,
            sim,
            clock,
            WORKLOADS,
            security_token=SECURITY_TOKEN,
            sign_security_token=False,
            ak=TEMP_AK,
            sk=TEMP_SK,
        )
        assert unsigned.status_code == 401
        good = signed_get(
            client, sim, clock, WORKLOADS, security_token=SECURITY_TOKEN, ak=TEMP_AK, sk=TEMP_SK
        )
        assert good.status_code == 200

    def test_missing_credentials_are_refused(self, sim: Simulator, client: httpx.Client) -> None:
        """A request without any credentials or with a garbled Authorization gets 401."""
        assert client.get(sim.url + WORKLOADS).status_code == 401
        garbled = client.get(sim.url + WORKLOADS, headers={"Authorization": "Basic abc"})
        assert garbled.status_code == 401
        assert error_code(garbled) == "APIGW.0301"


class TestIam:
    def test_token_issue_use_and_expiry(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A password token is issued with 201, works as X-Auth-Token, and stops at expiry."""
        issued = client.post(sim.url + "/v3/auth/tokens", json=iam_body())
        assert issued.status_code == 201
        token = issued.headers["x-subject-token"]
        body = issued.json()["token"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["expires_at"])
        expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert expires.replace(tzinfo=UTC).timestamp() == pytest.approx(START + 3600)
        assert body["methods"] == ["password"]
        assert body["project"]["id"] == PROJECT
        headers = {"X-Auth-Token": token}
        assert client.get(sim.url + WORKLOADS, headers=headers).status_code == 200
        assert client.get(sim.url + SPECS, headers=headers).status_code == 200
        clock.advance(3601)
        expired = client.get(sim.url + WORKLOADS, headers=headers)
        assert expired.status_code == 401
        assert error_code(expired) == "APIGW.0301"

    def test_unknown_token_is_refused(self, sim: Simulator, client: httpx.Client) -> None:
        """A token the simulator never issued gets 401."""
        response = client.get(sim.url + WORKLOADS, headers={"X-Auth-Token": "MIIforged"})
        assert response.status_code == 401

    @pytest.mark.parametrize(
        "overrides",
        [{"password": "wrong"}, {"user": "nobody"}, {"domain": "other"}],
    )
    def test_wrong_credentials_get_iam_401(
        self, sim: Simulator, client: httpx.Client, overrides: Mapping[str, str]
    ) -> None:
        """A wrong password, user or domain gets IAM's 401 body and no token."""
        response = client.post(sim.url + "/v3/auth/tokens", json=iam_body(**overrides))
        assert response.status_code == 401
        assert "x-subject-token" not in response.headers
        assert response.json() == {
            "error": {
                "code": 401,
                "message": "The username or password is wrong.",
                "title": "Unauthorized",
            }
        }

    def test_malformed_body_is_400(self, sim: Simulator, client: httpx.Client) -> None:
        """A body that is not the password-method shape gets IAM's 400."""
        response = client.post(sim.url + "/v3/auth/tokens", content=b"{nope")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == 400


class TestFaults:
    def test_status_fault_counts_down(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A 503 fault with times=2 answers twice with the gateway body, then normal service."""
        sim.inject(Fault.server_error(503, times=2))
        statuses = [signed_get(client, sim, clock, WORKLOADS) for _ in range(3)]
        assert [r.status_code for r in statuses] == [503, 503, 200]
        assert error_code(statuses[0]) == "APIGW.0202"

    @pytest.mark.parametrize("status", [500, 502, 503, 401])
    def test_helper_statuses_have_error_bodies(
        self, sim: Simulator, client: httpx.Client, status: int
    ) -> None:
        """Injected statuses answer with a JSON error_code/error_msg body and skip auth."""
        fault = Fault.unauthorized() if status == 401 else Fault.server_error(status)
        sim.inject(fault)
        response = client.get(sim.url + WORKLOADS)
        assert response.status_code == status
        assert set(response.json()) == {"error_code", "error_msg"}

    def test_throttled_has_body_and_retry_after(self, sim: Simulator, client: httpx.Client) -> None:
        """The throttling helper answers 429 APIGW.0308 with Retry-After."""
        sim.inject(Fault.throttled(retry_after=2, times=1))
        response = client.get(sim.url + WORKLOADS)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"
        assert error_code(response) == "APIGW.0308"
        assert "limit:5,time:1 second" in response.json()["error_msg"]

    def test_path_contains_selects_requests(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A fault for resource-specs leaves workloads alone; first matching fault wins."""
        sim.inject(Fault(path_contains="resource-specs", status=500))
        sim.inject(Fault(status=502))
        assert signed_get(client, sim, clock, SPECS).status_code == 500
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 502
        sim.clear_faults()
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 200

    def test_clearing_one_fault_keeps_the_others(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """clear_faults(fault) removes that fault only: another scenario's stays active."""
        specs = Fault(path_contains="resource-specs", status=500)
        sim.inject(specs)
        sim.inject(Fault(status=502))
        sim.clear_faults(Fault(status=502))
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 200
        assert signed_get(client, sim, clock, SPECS).status_code == 500

    def test_empty_path_fault_spares_iam(self, sim: Simulator, client: httpx.Client) -> None:
        """A catch-all fault does not touch IAM, but one matching /v3/ does."""
        sim.inject(Fault(status=503))
        assert client.post(sim.url + "/v3/auth/tokens", json=iam_body()).status_code == 201
        sim.clear_faults()
        sim.inject(Fault(path_contains="/v3/", status=503, times=1))
        assert client.post(sim.url + "/v3/auth/tokens", json=iam_body()).status_code == 503

    def test_latency(self, sim: Simulator, client: httpx.Client, clock: FakeClock) -> None:
        """A latency fault and the global latency delay the answer."""
        sim.inject(Fault.slow(0.2, times=1))
        started = time.monotonic()
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 200
        assert time.monotonic() - started >= 0.19
        sim.set_latency(0.15)
        started = time.monotonic()
        signed_get(client, sim, clock, WORKLOADS)
        assert 0.14 <= time.monotonic() - started < 2
        sim.set_latency(0)

    def test_close_connection_is_a_transport_error(
        self, sim: Simulator, client: httpx.Client
    ) -> None:
        """close_connection drops the socket, which httpx reports as a transport error."""
        sim.inject(Fault.disconnect(times=1))
        with pytest.raises(httpx.TransportError):
            client.get(sim.url + WORKLOADS)
        assert client.get(sim.url + WORKLOADS).status_code == 401

    def test_raw_body_and_extra_headers(self, sim: Simulator, client: httpx.Client) -> None:
        """A fault's raw body is sent as is, with its extra headers."""
        sim.inject(Fault.malformed_json(times=1))
        sim.inject(Fault(body=b"[]", headers={"X-Extra": "yes"}, times=1))
        broken = client.get(sim.url + WORKLOADS)
        assert broken.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            broken.json()
        odd = client.get(sim.url + WORKLOADS)
        assert odd.content == b"[]"
        assert odd.headers["x-extra"] == "yes"

    @pytest.mark.parametrize("variant", ["statics", "string_counts"])
    def test_statistics_variants(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock, variant: str
    ) -> None:
        """statics renames the top-level key; both variants turn every count into a string."""
        sim.inject(Fault(variant=variant, times=1))
        body = signed_get(client, sim, clock, WORKLOADS).json()
        key = "statics" if variant == "statics" else "statistics"
        assert list(body) == [key]
        assert body[key]["total"] == "2"
        item = body[key]["items"][0]
        assert item["total"] == "14"
        assert item["status"]["Running"] == "3"
        assert all(isinstance(v, str) for v in item["status"].values())

    def test_variant_fault_only_consumed_by_its_api(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A workloads-only variant is not used up by a resource-specs request."""
        sim.inject(Fault(variant="statics", times=1))
        assert "specs" in signed_get(client, sim, clock, SPECS).json()
        assert "statics" in signed_get(client, sim, clock, WORKLOADS).json()

    @pytest.mark.parametrize(
        ("variant", "message_key"),
        [("is_success_false", "error_message"), ("is_success_false_error_msg", "error_msg")],
    )
    def test_is_success_false_variants(
        self,
        sim: Simulator,
        client: httpx.Client,
        clock: FakeClock,
        variant: str,
        message_key: str,
    ) -> None:
        """Resource-specs failure variants answer 200 with is_success false and the error code."""
        sim.inject(Fault(variant=variant))
        response = signed_get(client, sim, clock, SPECS, "job_type=train")
        assert response.status_code == 200
        assert response.json() == {
            "is_success": False,
            message_key: "Error string",
            "error_code": "ModelArts.0105",
        }

    def test_oversized_variant(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """oversized pads a still-valid JSON body to 20 MiB."""
        sim.inject(Fault(variant="oversized", times=1))
        response = signed_get(client, sim, clock, WORKLOADS)
        assert len(response.content) >= OVERSIZED_BYTES
        assert int(response.headers["content-length"]) == len(response.content)
        assert response.json()["statistics"]["total"] == 2

    def test_variant_does_not_bypass_auth(self, sim: Simulator, client: httpx.Client) -> None:
        """A variant reshapes only successful answers; bad credentials still get 401."""
        sim.inject(Fault(variant="statics"))
        assert client.get(sim.url + WORKLOADS).status_code == 401

    def test_fault_json_round_trip(self) -> None:
        """A fault survives to_json/from_json, including a non-UTF-8 body."""
        fault = Fault(path_contains="x", status=500, body=b"\xff\x00", headers={"A": "b"}, times=3)
        assert Fault.from_json(json.loads(json.dumps(fault.to_json()))) == fault
        with pytest.raises(ValueError, match="variant"):
            Fault(variant="nope")


class TestRecording:
    def test_requests_are_recorded(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """Every API request is logged with clock time, raw query, status and access key."""
        signed_get(client, sim, clock, SPECS, "job_type=train")
        clock.advance(5)
        client.get(sim.url + WORKLOADS)
        client.get(sim.url + "/_simulator/state")
        assert sim.requests() == [
            RecordedRequest(START, "GET", SPECS, "job_type=train", 200, AK),
            RecordedRequest(START + 5, "GET", WORKLOADS, "", 401, None),
        ]
        sim.clear_requests()
        assert sim.requests() == []


class TestControl:
    def test_control_endpoints(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """State, pools, specs and faults can be driven over HTTP without credentials."""
        base = sim.url + "/_simulator"
        state = client.get(base + "/state").json()
        assert state["pools"][PROJECT]["pool-a"] == POOL_A

        put = client.put(base + f"/pools/{PROJECT}/pool-b", json={"notebook": {"Running": 4}})
        assert put.status_code == 200
        assert sim.snapshot_state().pools[PROJECT]["pool-b"] == {"notebook": {"Running": 4}}
        path_b = f"/v2/{PROJECT}/statistics/pools/pool-b/workloads"
        assert signed_get(client, sim, clock, path_b).json()["statistics"]["items"][0]["total"] == 4
        assert client.delete(base + f"/pools/{PROJECT}/pool-b").json() == {"removed": True}
        assert signed_get(client, sim, clock, path_b).status_code == 404

        spec = default_specs("train")[:1]
        assert client.put(base + f"/specs/{PROJECT}/train", json=spec).status_code == 200
        assert signed_get(client, sim, clock, SPECS, "job_type=train").json()["specs"] == spec

        fault = {"path_contains": "workloads", "status": 429, "headers": {"Retry-After": "1"}}
        assert client.post(base + "/faults", json=fault).status_code == 201
        throttled = signed_get(client, sim, clock, WORKLOADS)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "1"
        assert client.delete(base + "/faults").status_code == 200
        assert signed_get(client, sim, clock, WORKLOADS).status_code == 200

        requests = client.get(base + "/requests").json()["requests"]
        assert requests[-1]["status"] == 200

    def test_control_rejects_bad_input(self, sim: Simulator, client: httpx.Client) -> None:
        """Bad control bodies get 400 and unknown control paths 404."""
        base = sim.url + "/_simulator"
        bad_counts = {"train": {"Running": -1}}
        assert client.put(base + f"/pools/{PROJECT}/p", json=bad_counts).status_code == 400
        assert client.post(base + "/faults", json={"variant": "nope"}).status_code == 400
        assert client.post(base + "/faults", content=b"{").status_code == 400
        assert client.get(base + "/nothing").status_code == 404

    def test_stop_closes_keep_alive_connections(self, clock: FakeClock) -> None:
        """After stop, a client with a pooled connection gets a transport error."""
        simulator = Simulator(clock=clock).start()
        with httpx.Client(timeout=2) as http:
            assert http.get(simulator.url + "/").status_code == 404
            url = simulator.url
            simulator.stop()
            with pytest.raises(httpx.TransportError):
                http.get(url + "/")


class TestDrift:
    def test_drift_keeps_counts_valid(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """Drift keeps every count non-negative and every served total consistent."""
        rng = random.Random(7)
        sim.seed_demo(PROJECT, ["pool-a", "pool-b"], rng)
        before = sim.snapshot_state()
        for _ in range(300):
            sim.drift(rng)
        after = sim.snapshot_state()
        assert after.pools != before.pools
        for pools in after.pools.values():
            for counts in pools.values():
                assert set(counts) == {"train", "infer", "notebook"}
                for statuses in counts.values():
                    assert all(v >= 0 for v in statuses.values())
        assert all(
            isinstance(s["no_resource"], bool)
            for specs in after.specs.values()
            for spec_list in specs.values()
            for s in spec_list
        )
        for pool in ("pool-a", "pool-b"):
            path = f"/v2/{PROJECT}/statistics/pools/{pool}/workloads"
            stats = signed_get(client, sim, clock, path).json()["statistics"]
            assert stats["total"] == len(stats["items"]) == 3
            for item in stats["items"]:
                assert item["total"] == sum(item["status"].values())
                assert item["status"] == {
                    key: after.pools[PROJECT][pool][item["type"]].get(key, 0)
                    for key in item["status"]
                }

    def test_drift_flips_no_resource_sometimes(self, sim: Simulator) -> None:
        """Over many steps at least one spec's no_resource flips."""
        rng = random.Random(3)
        before = sim.snapshot_state().specs
        seen_change = False
        for _ in range(50):
            sim.drift(rng)
            if sim.snapshot_state().specs != before:
                seen_change = True
                break
        assert seen_change

    def test_default_specs_rejects_unknown_job_type(self) -> None:
        """default_specs only knows train and inference."""
        with pytest.raises(ValueError, match="notebook"):
            default_specs("notebook")
