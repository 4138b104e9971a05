"""``exporter.auth``: AK/SK signing of httpx requests and the IAM token source.

The AK/SK signer is checked against Huawei's documented vector and, byte for byte, against the
official SDK signer (``huaweicloudsdkcore``, a test-only dependency) used as an oracle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import types
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import signing
from exporter.auth import AkSkAuth, IamTokenAuth, IamTokenSource, sign_request
from exporter.config import AkSkCredentials, PasswordCredentials, Secret
from exporter.errors import ApiError, AuthError, PollError, ResponseError, TransportError
from tests.support.clocks import FakeClock

VECTOR_AK = "QTWAOYTTINDUT2QVKYUC"
VECTOR_SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
VECTOR_NOW = datetime(2019, 11, 15, 3, 36, 55, tzinfo=UTC).timestamp()
VECTOR_SIGNATURE = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"

PROJECT = "0123456789abcdef0123456789abcdef"
MODELARTS = "https://modelarts.cn-north-4.myhuaweicloud.com"
IAM = "https://iam.cn-north-4.myhuaweicloud.com"
SECURITY_TOKEN = "gQpjbi1ub3J0aC00joE3xWbPD4Ga0aWk7zTb6ZxqK2cOOuFtl0ywRXZ8o="


def aksk(ak: str = VECTOR_AK, sk: str = VECTOR_SK, token: str | None = None) -> AkSkCredentials:
    return AkSkCredentials(
        access_key=Secret(ak, "test"),
        secret_key=Secret(sk, "test"),
        security_token=None if token is None else Secret(token, "test"),
    )


# ---------------------------------------------------------------------------- SDK oracle

_SDK_HEADERS = ("Host", "X-Sdk-Date", "Content-Type", "X-Security-Token", "X-Project-Id")


def sdk_sign(
    request: httpx.Request,
    ak: str,
    sk: str,
    resource_path: str,
    pairs: list[tuple[str, str]],
) -> tuple[str, str]:
    """(Authorization, uri) from the official SDK signer for the request ``sign_request`` made.

    The SDK signs every header it is given, so it gets exactly the headers our signer signs.
    Repeated query keys are given as one ``(key, [values])`` entry, as the SDK expects.
    """
    headers = {name: request.headers[name] for name in _SDK_HEADERS if name in request.headers}
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    query_params: list[tuple[str, object]] = [
        (key, values[0] if len(values) == 1 else values) for key, values in grouped.items()
    ]
    sdk_request = SdkRequest(
        method=request.method,
        schema=request.url.scheme,
        host=request.url.netloc.decode("ascii"),
        resource_path=resource_path,
        query_params=query_params,
        header_params=headers,
        body=request.content or None,
    )
    Signer(types.SimpleNamespace(ak=ak, sk=sk)).sign(sdk_request)
    return sdk_request.header_params["Authorization"], sdk_request.uri


def server_accepts(request: httpx.Request, secret_key: str) -> bool:
    """Verify ``request`` as the API gateway would: recompute the signature from the wire."""
    auth = signing.parse_authorization(request.headers["Authorization"])
    assert auth is not None
    headers = {name: request.headers[name] for name in auth.signed_headers}
    canonical = signing.canonical_request(
        request.method,
        request.url.raw_path.split(b"?")[0].decode("ascii"),
        request.url.query.decode("ascii"),
        headers,
        auth.signed_headers,
        request.content,
    )
    return signing.sign(secret_key, headers["x-sdk-date"], canonical) == auth.signature


# ---------------------------------------------------------------------------- sign_request


class TestSignRequestVector:
    def _signed_vector(self) -> httpx.Request:
        request = httpx.Request(
            "GET",
            "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
            "?marker=13551d6b-755d-4757-b956-536f674975c0&limit=2",
            headers={"Content-Type": "application/json"},
        )
        sign_request(request, aksk(), VECTOR_NOW)
        return request

    def test_authorization_matches_documented_vector(self) -> None:
        """sign_request produces Huawei's documented Authorization header for the vector."""
        assert self._signed_vector().headers["Authorization"] == (
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, "
            "SignedHeaders=content-type;host;x-sdk-date, Signature=" + VECTOR_SIGNATURE
        )

    def test_sdk_date_header_set_from_clock(self) -> None:
        """X-Sdk-Date is the given time in UTC basic format."""
        assert self._signed_vector().headers["X-Sdk-Date"] == "20191115T033655Z"

    def test_query_rewritten_into_canonical_order(self) -> None:
        """The URL's query is rewritten to the canonical (sorted) query that was signed."""
        assert self._signed_vector().url.query == (
            b"limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"
        )

    def test_path_sent_without_trailing_slash(self) -> None:
        """The trailing slash is for the signature only; the path is sent unchanged."""
        assert self._signed_vector().url.raw_path.split(b"?")[0] == (
            b"/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
        )


class TestSignRequest:
    def test_only_host_and_date_signed_on_bare_get(self) -> None:
        """A bare GET signs exactly host and x-sdk-date, not other headers."""
        request = httpx.Request("GET", f"{MODELARTS}/v1/x", headers={"User-Agent": "t"})
        sign_request(request, aksk(), VECTOR_NOW)
        auth = signing.parse_authorization(request.headers["Authorization"])
        assert auth is not None
        assert auth.signed_headers == ("host", "x-sdk-date")

    def test_security_token_added_and_signed(self) -> None:
        """Temporary credentials add X-Security-Token and sign it."""
        request = httpx.Request("GET", f"{MODELARTS}/v1/x")
        sign_request(request, aksk(token=SECURITY_TOKEN), VECTOR_NOW)
        auth = signing.parse_authorization(request.headers["Authorization"])
        assert request.headers["X-Security-Token"] == SECURITY_TOKEN
        assert auth is not None
        assert auth.signed_headers == ("host", "x-sdk-date", "x-security-token")

    def test_project_id_header_signed(self) -> None:
        """An X-Project-Id header is signed when present."""
        request = httpx.Request("GET", f"{MODELARTS}/v1/x", headers={"X-Project-Id": PROJECT})
        sign_request(request, aksk(), VECTOR_NOW)
        auth = signing.parse_authorization(request.headers["Authorization"])
        assert auth is not None
        assert auth.signed_headers == ("host", "x-project-id", "x-sdk-date")

    def test_space_in_param_sent_as_percent_20(self) -> None:
        """A space in an httpx ``params`` value is sent (and signed) as %20, keeping the value."""
        request = httpx.Request("GET", f"{MODELARTS}/v1/x", params={"labelSelector": "a b"})
        sign_request(request, aksk(), VECTOR_NOW)
        assert request.url.query == b"labelSelector=a%20b"

    def test_plus_in_param_sent_as_percent_2b(self) -> None:
        """A plus in an httpx ``params`` value is sent (and signed) as %2B."""
        request = httpx.Request("GET", f"{MODELARTS}/v1/x", params={"k": "a+b"})
        sign_request(request, aksk(), VECTOR_NOW)
        assert request.url.query == b"k=a%2Bb"

    def test_repeated_and_empty_params_canonical_on_wire(self) -> None:
        """Repeated keys are sorted by value and empty values kept as k=."""
        params = [("status", "Running"), ("labelSelector", ""), ("status", "Abnormal")]
        request = httpx.Request("GET", f"{MODELARTS}/v2/{PROJECT}/pools", params=tuple(params))
        sign_request(request, aksk(), VECTOR_NOW)
        assert request.url.query == b"labelSelector=&status=Abnormal&status=Running"

    def test_no_query_leaves_no_question_mark(self) -> None:
        """A request without a query is sent without a '?'."""
        request = httpx.Request("GET", f"{MODELARTS}/v1/x")
        sign_request(request, aksk(), VECTOR_NOW)
        assert b"?" not in request.url.raw_path


# ---------------------------------------------------------------------------- SDK oracle


_WORKLOADS = f"/v2/{PROJECT}/statistics/pools/pool-a/workloads"
_SPECS = f"/v1/{PROJECT}/job/resource-specs"

_CASES = {
    "workloads": ("GET", MODELARTS, _WORKLOADS, [], {}, b""),
    "resource_specs": ("GET", MODELARTS, _SPECS, [("job_type", "train")], {}, b""),
    "pools": (
        "GET",
        MODELARTS,
        f"/v2/{PROJECT}/pools",
        [("workspaceId", "0"), ("labelSelector", ""), ("status", "")],
        {},
        b"",
    ),
    "pool_with_odd_name": (
        "GET",
        MODELARTS,
        f"/v2/{PROJECT}/statistics/pools/{quote('pool a~é', safe='')}/workloads",
        [],
        {},
        b"",
    ),
    "project_header": (
        "GET",
        MODELARTS,
        _SPECS,
        [("job_type", "inference")],
        {"X-Project-Id": PROJECT},
        b"",
    ),
    "json_post_on_port": (
        "POST",
        "https://modelarts.example.internal:8443",
        _SPECS,
        [("b", "1"), ("a", "x y")],
        {"Content-Type": "application/json;charset=UTF-8"},
        b'{"job_type":"train"}',
    ),
}


class TestMatchesOfficialSdk:
    @pytest.mark.parametrize("token", [None, SECURITY_TOKEN], ids=["aksk", "temporary"])
    @pytest.mark.parametrize("case", sorted(_CASES))
    def test_realistic_requests(self, case: str, token: str | None) -> None:
        """Our Authorization header and wire URI equal the official SDK's, byte for byte."""
        method, base, path, params, headers, body = _CASES[case]
        request = httpx.Request(
            method, base + path, params=tuple(params), headers=headers, content=body or None
        )
        sign_request(request, aksk(token=token), VECTOR_NOW)
        sdk_auth, sdk_uri = sdk_sign(request, VECTOR_AK, VECTOR_SK, path, params)
        assert request.headers["Authorization"] == sdk_auth
        assert request.url.raw_path.decode("ascii") == sdk_uri

    def test_oracle_reproduces_the_vector(self) -> None:
        """The oracle itself reproduces Huawei's documented signature (so it is a fair judge)."""
        request = httpx.Request(
            "GET",
            "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            headers={"Content-Type": "application/json", "X-Sdk-Date": "20191115T033655Z"},
        )
        sdk_auth, _ = sdk_sign(
            request,
            VECTOR_AK,
            VECTOR_SK,
            "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            [("marker", "13551d6b-755d-4757-b956-536f674975c0"), ("limit", "2")],
        )
        assert sdk_auth.endswith("Signature=" + VECTOR_SIGNATURE)


_TEXT = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn", "Co"))
_SPECIAL = st.sampled_from([" ", "~", "%", "%41", "%zz", "+", "&", "=", "?", "#", "é", "池"])
_FRAGMENT = st.one_of(st.text(_TEXT, max_size=6), _SPECIAL)
_SEGMENT = (
    st.lists(_FRAGMENT, max_size=3)
    .map("".join)
    .filter(lambda s: "/" not in s and s not in {".", ".."})
)
_KEY = st.one_of(
    st.sampled_from(["job_type", "a", "a b", "é"]),
    st.lists(_FRAGMENT, min_size=1, max_size=3).map("".join).filter(bool),
)
_VALUE = st.one_of(st.just(""), st.lists(_FRAGMENT, max_size=3).map("".join))
_LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_HOST = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)


class TestMatchesOfficialSdkProperty:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        scheme=st.sampled_from(["https", "http"]),
        host=_HOST,
        port=st.one_of(st.none(), st.integers(1, 65535)),
        segments=st.lists(_SEGMENT, min_size=1, max_size=5),
        pairs=st.lists(st.tuples(_KEY, _VALUE), max_size=6),
        ak=st.from_regex(r"[A-Z0-9]{20}", fullmatch=True),
        sk=st.text(_TEXT, min_size=1, max_size=40),
        token=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9+/=]{8,40}", fullmatch=True)),
        project_header=st.booleans(),
        body=st.one_of(st.just(b""), st.binary(min_size=1, max_size=64)),
        now=st.integers(0, 4_102_444_800),
    )
    def test_generated_requests(
        self,
        scheme: str,
        host: str,
        port: int | None,
        segments: list[str],
        pairs: list[tuple[str, str]],
        ak: str,
        sk: str,
        token: str | None,
        project_header: bool,
        body: bytes,
        now: int,
    ) -> None:
        """For any path, query, host, key and token, we sign exactly as the official SDK does."""
        path = "/" + "/".join(quote(segment, safe="") for segment in segments)
        authority = host if port is None else f"{host}:{port}"
        headers = {"X-Project-Id": PROJECT} if project_header else {}
        if body:
            headers["Content-Type"] = "application/json"
        request = httpx.Request(
            "POST" if body else "GET",
            f"{scheme}://{authority}{path}",
            params=tuple(pairs),
            headers=headers,
            content=body or None,
        )
        assert request.url.raw_path.split(b"?")[0].decode("ascii") == path
        sign_request(request, aksk(ak, sk, token), float(now))
        sdk_auth, sdk_uri = sdk_sign(request, ak, sk, path, pairs)
        assert request.headers["Authorization"] == sdk_auth
        assert request.url.raw_path.decode("ascii") == sdk_uri


# ---------------------------------------------------------------------------- AkSkAuth


class TestAkSkAuthOverTheWire:
    def _send(self, credentials: AkSkCredentials, **kwargs: object) -> httpx.Request:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={})

        auth = AkSkAuth(credentials, clock=lambda: VECTOR_NOW)
        with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
            client.get(f"{MODELARTS}{_SPECS}", **kwargs)  # type: ignore[arg-type]
        assert len(seen) == 1
        return seen[0]

    @pytest.mark.parametrize(("status", "refusals"), [(401, 1), (403, 0), (200, 0), (500, 0)])
    def test_a_401_says_the_credentials_were_refused(self, status: int, refusals: int) -> None:
        """``refused`` is called once for a 401 from ModelArts, and for nothing else (a 403
        is a missing permission, not a wrong key); the request is not sent again."""
        sent: list[httpx.Request] = []
        called: list[None] = []

        def handler(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return httpx.Response(status, json={})

        auth = AkSkAuth(aksk(), lambda: VECTOR_NOW, refused=lambda: called.append(None))
        with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
            assert client.get(f"{MODELARTS}{_SPECS}").status_code == status
        assert len(sent) == 1
        assert len(called) == refusals

    def test_transport_sees_authorization_and_date(self) -> None:
        """The request on the wire carries Authorization and X-Sdk-Date."""
        request = self._send(aksk(), params={"job_type": "train"})
        assert request.headers["X-Sdk-Date"] == "20191115T033655Z"
        assert request.headers["Authorization"].startswith(
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=host;x-sdk-date, "
        )
        assert "X-Security-Token" not in request.headers

    def test_transport_sees_signed_security_token(self) -> None:
        """With a token, X-Security-Token is on the wire and listed in SignedHeaders."""
        request = self._send(aksk(token=SECURITY_TOKEN))
        auth = signing.parse_authorization(request.headers["Authorization"])
        assert request.headers["X-Security-Token"] == SECURITY_TOKEN
        assert auth is not None
        assert "x-security-token" in auth.signed_headers

    def test_wire_query_is_canonical(self) -> None:
        """The query on the wire is the sorted, %20-encoded canonical query."""
        params = [("job_type", "train"), ("b", "x y"), ("a", "2"), ("a", "1"), ("e", "")]
        request = self._send(aksk(), params=params)
        assert request.url.query == b"a=1&a=2&b=x%20y&e=&job_type=train"

    @pytest.mark.parametrize("token", [None, SECURITY_TOKEN], ids=["aksk", "temporary"])
    def test_server_verifies_signature_from_wire(self, token: str | None) -> None:
        """Recomputing the signature from what arrived gives the signature in the header."""
        params = [("job_type", "train"), ("q", "a b+c"), ("q", "é")]
        request = self._send(aksk(token=token), params=params)
        assert server_accepts(request, VECTOR_SK)

    def test_server_rejects_wrong_secret(self) -> None:
        """The server-side check fails with another secret key (it can fail)."""
        request = self._send(aksk(), params={"job_type": "train"})
        assert not server_accepts(request, VECTOR_SK + "x")

    def test_server_rejects_tampered_query(self) -> None:
        """The server-side check fails when the query was changed after signing."""
        request = self._send(aksk(), params={"job_type": "train"})
        tampered = httpx.Request(
            request.method,
            request.url.copy_with(query=b"job_type=inference"),
            headers=request.headers,
        )
        assert not server_accepts(tampered, VECTOR_SK)


# ---------------------------------------------------------------------------- IAM token

PASSWORD = "Pa55-w0rd-never-log-me"
EXPIRES_AT = "2030-01-01T00:00:00.000000Z"
EXPIRES_TS = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
PASSWORD_CREDS = PasswordCredentials(
    user="exporter", password=Secret(PASSWORD, "test"), domain="my-account"
)


class FakeCloud:
    """IAM and ModelArts behind one MockTransport handler; counts what it receives.

    The n-th token is ``token-n`` and expires at ``expiries[n-1]`` (the last one repeats).
    """

    def __init__(self) -> None:
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.iam_status = 201
        self.iam_body: object = None
        self.expiries = [EXPIRES_AT]
        self.give_subject_token = True
        self.iam_raises: Exception | None = None
        self.iam_delay = 0.0
        self.api_statuses: list[int] = []

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            self.token_requests.append(request)
            if self.iam_delay:
                await asyncio.sleep(self.iam_delay)
            if self.iam_raises is not None:
                raise self.iam_raises
            headers = {"X-Request-Id": "req-1"}
            if self.iam_status == 201 and self.give_subject_token:
                headers["X-Subject-Token"] = f"token-{len(self.token_requests)}"
            body = self.iam_body
            if body is None:
                expiry = self.expiries[min(len(self.token_requests), len(self.expiries)) - 1]
                body = {"token": {"expires_at": expiry}}
            return httpx.Response(self.iam_status, headers=headers, json=body)
        self.api_requests.append(request)
        status = self.api_statuses.pop(0) if self.api_statuses else 200
        return httpx.Response(status, json={})


@contextlib.asynccontextmanager
async def token_source(
    cloud: FakeCloud,
    clock: FakeClock,
    refresh_margin: float = 3600.0,
    refused: Callable[[], None] = lambda: None,
) -> AsyncIterator[IamTokenSource]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(cloud.handler)) as http:
        yield IamTokenSource(
            http, IAM, PROJECT, PASSWORD_CREDS, clock, refresh_margin, refused=refused
        )


def fresh_clock() -> FakeClock:
    return FakeClock(EXPIRES_TS - 24 * 3600)


def fetch_tokens(cloud: FakeCloud, clock: FakeClock, times: list[float | None]) -> list[str]:
    """Call ``token()`` once per entry, first setting the clock when the entry is a time."""

    async def main() -> list[str]:
        tokens = []
        async with token_source(cloud, clock) as source:
            for moment in times:
                if moment is not None:
                    clock.now = moment
                tokens.append(await source.token())
        return tokens

    return asyncio.run(main())


def token_error(cloud: FakeCloud, refused: Callable[[], None] = lambda: None) -> PollError:
    async def main() -> None:
        async with token_source(cloud, fresh_clock(), refused=refused) as source:
            await source.token()

    with pytest.raises(PollError) as info:
        asyncio.run(main())
    return info.value


class TestIamTokenSource:
    def test_request_body_has_documented_shape(self) -> None:
        """The token request is a POST to /v3/auth/tokens with exactly the documented body."""
        cloud = FakeCloud()
        fetch_tokens(cloud, fresh_clock(), [None])
        request = cloud.token_requests[0]
        assert request.method == "POST"
        assert str(request.url) == f"{IAM}/v3/auth/tokens"
        assert json.loads(request.content) == {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "exporter",
                            "password": PASSWORD,
                            "domain": {"name": "my-account"},
                        }
                    },
                },
                "scope": {"project": {"id": PROJECT}},
            }
        }

    def test_token_taken_from_subject_token_header(self) -> None:
        """The token is the X-Subject-Token response header."""
        assert fetch_tokens(FakeCloud(), fresh_clock(), [None]) == ["token-1"]

    def test_token_reused_while_fresh(self) -> None:
        """Repeated calls while the token is fresh make one IAM request."""
        cloud = FakeCloud()
        tokens = fetch_tokens(cloud, fresh_clock(), [None, None, EXPIRES_TS - 3601])
        assert tokens == ["token-1"] * 3
        assert len(cloud.token_requests) == 1

    def test_token_refetched_at_refresh_margin(self) -> None:
        """Once clock() reaches expires_at - refresh_margin a new token is fetched."""
        cloud = FakeCloud()
        cloud.expiries = [EXPIRES_AT, "2030-01-02T00:00:00.000000Z"]
        tokens = fetch_tokens(cloud, fresh_clock(), [None, EXPIRES_TS - 3600, None])
        assert tokens == ["token-1", "token-2", "token-2"]
        assert len(cloud.token_requests) == 2

    def test_custom_refresh_margin(self) -> None:
        """The refresh margin is the one given to the source."""
        cloud = FakeCloud()
        clock = fresh_clock()

        async def main() -> list[str]:
            async with token_source(cloud, clock, refresh_margin=60.0) as source:
                first = await source.token()
                clock.now = EXPIRES_TS - 61
                second = await source.token()
                clock.now = EXPIRES_TS - 60
                return [first, second, await source.token()]

        assert asyncio.run(main()) == ["token-1", "token-1", "token-2"]

    def test_concurrent_callers_share_one_fetch(self) -> None:
        """Ten concurrent callers cause a single IAM request and all get its token."""
        cloud = FakeCloud()
        cloud.iam_delay = 0.05

        async def main() -> list[str]:
            async with token_source(cloud, fresh_clock()) as source:
                return list(await asyncio.gather(*(source.token() for _ in range(10))))

        assert asyncio.run(main()) == ["token-1"] * 10
        assert len(cloud.token_requests) == 1

    def test_invalidate_only_forgets_that_token(self) -> None:
        """Invalidating a token that was already replaced keeps the current one."""
        cloud = FakeCloud()

        async def main() -> list[str]:
            async with token_source(cloud, fresh_clock()) as source:
                first = await source.token()
                source.invalidate(first)
                second = await source.token()
                source.invalidate(first)
                return [first, second, await source.token()]

        assert asyncio.run(main()) == ["token-1", "token-2", "token-2"]
        assert len(cloud.token_requests) == 2

    @pytest.mark.parametrize("status", [401, 403])
    def test_refused_password_raises_auth_error_without_retry(self, status: int) -> None:
        """A 401/403 from IAM raises a non-retryable AuthError after exactly one request,
        and says the password was refused (so a password file is read again)."""
        cloud = FakeCloud()
        cloud.iam_status = status
        cloud.iam_body = {"error": {"code": status, "message": "The password is wrong."}}
        refusals: list[None] = []
        error = token_error(cloud, refused=lambda: refusals.append(None))
        assert isinstance(error, AuthError)
        assert error.detail.http_status == status
        assert error.retryable is False
        assert len(cloud.token_requests) == 1
        assert len(refusals) == 1

    def test_a_failing_iam_is_not_a_refused_password(self) -> None:
        """A 5xx from IAM does not say the password was refused."""
        cloud = FakeCloud()
        cloud.iam_status = 503
        refusals: list[None] = []
        token_error(cloud, refused=lambda: refusals.append(None))
        assert refusals == []

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_error_is_retryable_api_error(self, status: int) -> None:
        """A 5xx from IAM raises a retryable ApiError that is not an AuthError."""
        cloud = FakeCloud()
        cloud.iam_status = status
        cloud.iam_body = {"error_code": "IAM.0001", "error_msg": "internal"}
        error = token_error(cloud)
        assert isinstance(error, ApiError)
        assert not isinstance(error, AuthError)
        assert error.detail.http_status == status
        assert error.retryable is True

    def test_missing_subject_token_is_response_error(self) -> None:
        """A 201 without X-Subject-Token raises ResponseError."""
        cloud = FakeCloud()
        cloud.give_subject_token = False
        assert isinstance(token_error(cloud), ResponseError)

    def test_missing_expiry_is_response_error(self) -> None:
        """A 201 whose body has no token.expires_at raises ResponseError."""
        cloud = FakeCloud()
        cloud.iam_body = {"token": {}}
        assert isinstance(token_error(cloud), ResponseError)

    @pytest.mark.parametrize(
        ("raised", "code"),
        [
            (httpx.ReadTimeout("timed out"), "timeout"),
            (httpx.ConnectError("refused"), "connect_error"),
        ],
    )
    def test_transport_failures_are_transport_errors(self, raised: Exception, code: str) -> None:
        """A timeout or connection failure raises a retryable TransportError with its code."""
        cloud = FakeCloud()
        cloud.iam_raises = raised
        error = token_error(cloud)
        assert isinstance(error, TransportError)
        assert error.code == code
        assert error.retryable is True

    @pytest.mark.parametrize(
        "failure", ["401", "403", "500", "no_subject_token", "no_expiry", "timeout", "connect"]
    )
    def test_password_never_in_error_message(self, failure: str) -> None:
        """No failure's exception text contains the password."""
        cloud = FakeCloud()
        if failure.isdigit():
            cloud.iam_status = int(failure)
            cloud.iam_body = {"error": {"code": int(failure), "message": "refused"}}
        elif failure == "no_subject_token":
            cloud.give_subject_token = False
        elif failure == "no_expiry":
            cloud.iam_body = {"token": {}}
        elif failure == "timeout":
            cloud.iam_raises = httpx.ReadTimeout("timed out")
        else:
            cloud.iam_raises = httpx.ConnectError("refused")
        error = token_error(cloud)
        assert PASSWORD not in str(error)
        assert PASSWORD not in repr(error)


class TestIamTokenAuth:
    def _client(self, cloud: FakeCloud, source: IamTokenSource) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.MockTransport(cloud.handler), auth=IamTokenAuth(source)
        )

    def test_token_sent_as_x_auth_token_and_reused(self) -> None:
        """Every request carries X-Auth-Token from one IAM fetch while it is fresh."""
        cloud = FakeCloud()

        async def main() -> None:
            async with (
                token_source(cloud, fresh_clock()) as source,
                self._client(cloud, source) as client,
            ):
                for _ in range(3):
                    await client.get(f"{MODELARTS}{_WORKLOADS}")

        asyncio.run(main())
        assert [r.headers["X-Auth-Token"] for r in cloud.api_requests] == ["token-1"] * 3
        assert len(cloud.token_requests) == 1

    def test_concurrent_requests_share_one_fetch(self) -> None:
        """Ten concurrent ModelArts requests cause one IAM request."""
        cloud = FakeCloud()
        cloud.iam_delay = 0.05

        async def main() -> None:
            async with (
                token_source(cloud, fresh_clock()) as source,
                self._client(cloud, source) as client,
            ):
                await asyncio.gather(*(client.get(f"{MODELARTS}{_WORKLOADS}") for _ in range(10)))

        asyncio.run(main())
        assert len(cloud.token_requests) == 1
        assert {r.headers["X-Auth-Token"] for r in cloud.api_requests} == {"token-1"}

    def test_modelarts_401_causes_new_token_next_time(self) -> None:
        """After ModelArts answers 401, the next request uses a newly fetched token."""
        cloud = FakeCloud()
        cloud.api_statuses = [401, 200, 200]

        async def main() -> list[int]:
            async with (
                token_source(cloud, fresh_clock()) as source,
                self._client(cloud, source) as client,
            ):
                return [
                    (await client.get(f"{MODELARTS}{_WORKLOADS}")).status_code for _ in range(3)
                ]

        assert asyncio.run(main()) == [401, 200, 200]
        tokens = [r.headers["X-Auth-Token"] for r in cloud.api_requests]
        assert tokens == ["token-1", "token-2", "token-2"]
        assert len(cloud.token_requests) == 2

    def test_sync_client_refused(self) -> None:
        """IamTokenAuth with a synchronous client raises instead of sending unauthenticated."""
        cloud = FakeCloud()

        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200)

        async def make_source() -> IamTokenSource:
            async with token_source(cloud, fresh_clock()) as source:
                return source

        source = asyncio.run(make_source())
        auth = IamTokenAuth(source)
        with (
            httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client,
            pytest.raises(RuntimeError, match="AsyncClient"),
        ):
            client.get(f"{MODELARTS}{_WORKLOADS}")
