"""``exporter.signing``: the SDK-HMAC-SHA256 algorithm as pure functions.

Expected values are literals taken from Huawei's documented test vector
(``docs/modelarts-api.md#signing``) or worked out by hand from the rules there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from exporter import signing

VECTOR_AK = "QTWAOYTTINDUT2QVKYUC"
VECTOR_SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
VECTOR_DATE = "20191115T033655Z"
VECTOR_PATH = "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
VECTOR_QUERY = "marker=13551d6b-755d-4757-b956-536f674975c0&limit=2"
VECTOR_HEADERS = {
    "content-type": "application/json",
    "host": "service.region.example.com",
    "x-sdk-date": VECTOR_DATE,
}
VECTOR_SIGNATURE = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
VECTOR_CANONICAL = (
    "GET\n"
    "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n"
    "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n"
    "content-type:application/json\n"
    "host:service.region.example.com\n"
    "x-sdk-date:20191115T033655Z\n"
    "\n"
    "content-type;host;x-sdk-date\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)


def _vector_canonical() -> str:
    return signing.canonical_request(
        "GET", VECTOR_PATH, VECTOR_QUERY, VECTOR_HEADERS, VECTOR_HEADERS.keys(), b""
    )


class TestDocumentedVector:
    def test_canonical_request_matches_the_documented_layout(self) -> None:
        """The vector's canonical request is exactly the six documented parts."""
        assert _vector_canonical() == VECTOR_CANONICAL

    def test_signature_matches_the_documented_signature(self) -> None:
        """Signing the vector's canonical request gives Huawei's published signature."""
        assert signing.sign(VECTOR_SK, VECTOR_DATE, _vector_canonical()) == VECTOR_SIGNATURE

    def test_canonical_query_of_the_vector(self) -> None:
        """The vector's query is canonicalised to limit before marker."""
        pairs = signing.parse_query(VECTOR_QUERY)
        assert signing.canonical_query(pairs) == (
            "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"
        )

    def test_canonical_uri_of_the_vector(self) -> None:
        """The vector's path gets a trailing slash in the canonical URI."""
        assert signing.canonical_uri(VECTOR_PATH) == "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/"

    def test_authorization_header_of_the_vector(self) -> None:
        """The Authorization header has the documented layout with sorted signed headers."""
        header = signing.authorization_header(
            VECTOR_AK, ["x-sdk-date", "host", "content-type"], VECTOR_SIGNATURE
        )
        assert header == (
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, "
            "SignedHeaders=content-type;host;x-sdk-date, "
            "Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        )

    def test_wrong_secret_key_gives_another_signature(self) -> None:
        """The signature depends on the secret key."""
        assert signing.sign(VECTOR_SK + "x", VECTOR_DATE, _vector_canonical()) != VECTOR_SIGNATURE

    def test_other_date_gives_another_signature(self) -> None:
        """The signature depends on the X-Sdk-Date in the string to sign."""
        assert signing.sign(VECTOR_SK, "20191115T033656Z", _vector_canonical()) != (
            VECTOR_SIGNATURE
        )


class TestCanonicalUri:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/", "/"),
            ("/v1/abc", "/v1/abc/"),
            ("/v1/abc/", "/v1/abc/"),
            ("/v2/p/statistics/pools/pool-a/workloads", "/v2/p/statistics/pools/pool-a/workloads/"),
        ],
    )
    def test_trailing_slash_appended_once(self, path: str, expected: str) -> None:
        """A missing trailing slash is appended, an existing one is not doubled."""
        assert signing.canonical_uri(path) == expected

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/v1/a b", "/v1/a%20b/"),
            ("/v1/a%20b", "/v1/a%20b/"),
            ("/v1/%41bc", "/v1/Abc/"),
            ("/v1/%7euser", "/v1/~user/"),
            ("/v1/~user", "/v1/~user/"),
            ("/v1/a+b", "/v1/a%2Bb/"),
            ("/v1/a%2bb", "/v1/a%2Bb/"),
            ("/v1/é", "/v1/%C3%A9/"),
            ("/v1/%C3%A9", "/v1/%C3%A9/"),
            ("/v1/a:b@c", "/v1/a%3Ab%40c/"),
            ("/v1/-._~", "/v1/-._~/"),
            ("/v1/100%25", "/v1/100%25/"),
        ],
    )
    def test_segments_decoded_then_reencoded(self, path: str, expected: str) -> None:
        """Segments are percent-decoded and re-encoded keeping only unreserved characters."""
        assert signing.canonical_uri(path) == expected

    def test_empty_segments_are_kept(self) -> None:
        """A double slash stays a double slash."""
        assert signing.canonical_uri("/v1//x") == "/v1//x/"


class TestParseQuery:
    def test_pairs_are_decoded_in_wire_order(self) -> None:
        """parse_query percent-decodes keys and values and keeps their order."""
        assert signing.parse_query("b=2&a%20b=x%20y&c=%C3%A9") == [
            ("b", "2"),
            ("a b", "x y"),
            ("c", "é"),
        ]

    def test_plus_stays_a_plus(self) -> None:
        """A literal + is a plus, not a space (Huawei encodes space as %20)."""
        assert signing.parse_query("k=a+b") == [("k", "a+b")]

    def test_key_without_value_and_empty_parts(self) -> None:
        """A key without '=' has an empty value and empty parts are skipped."""
        assert signing.parse_query("a&&b=") == [("a", ""), ("b", "")]

    def test_only_first_equals_splits(self) -> None:
        """The value keeps any further '=' characters."""
        assert signing.parse_query("k=a=b") == [("k", "a=b")]

    def test_empty_query(self) -> None:
        """An empty query has no pairs."""
        assert signing.parse_query("") == []


class TestCanonicalQuery:
    def test_pairs_sorted_by_key(self) -> None:
        """Pairs are sorted by key regardless of their order."""
        assert signing.canonical_query([("b", "2"), ("c", "3"), ("a", "1")]) == "a=1&b=2&c=3"

    def test_repeated_keys_sorted_by_value(self) -> None:
        """A repeated key appears once per value, values sorted."""
        pairs = [("k", "z"), ("a", "0"), ("k", "a"), ("k", "m")]
        assert signing.canonical_query(pairs) == "a=0&k=a&k=m&k=z"

    def test_empty_value_keeps_equals(self) -> None:
        """An empty value is written k=."""
        assert signing.canonical_query([("workspaceId", ""), ("a", "1")]) == "a=1&workspaceId="

    def test_space_is_percent_20(self) -> None:
        """A space in a key or value becomes %20, never +."""
        assert signing.canonical_query([("a b", "x y")]) == "a%20b=x%20y"

    def test_plus_is_encoded(self) -> None:
        """A literal plus is encoded as %2B."""
        assert signing.canonical_query(signing.parse_query("k=a+b")) == "k=a%2Bb"

    def test_reserved_and_unicode_encoded_tilde_kept(self) -> None:
        """Reserved characters and UTF-8 are percent-encoded; ~ is kept."""
        pairs = [("k", "~*&=/é")]
        assert signing.canonical_query(pairs) == "k=~%2A%26%3D%2F%C3%A9"

    def test_sorted_by_decoded_key_not_encoded_key(self) -> None:
        """Sorting uses decoded keys, as the SDK does ('a' before 'é' though %C3 < a)."""
        assert signing.canonical_query([("é", "2"), ("a", "1")]) == "a=1&%C3%A9=2"

    def test_upper_case_sorts_before_lower_case(self) -> None:
        """Sorting is by code point, so 'Z' precedes 'a'."""
        assert signing.canonical_query([("a", "1"), ("Z", "2")]) == "Z=2&a=1"

    def test_no_pairs(self) -> None:
        """No pairs give an empty canonical query."""
        assert signing.canonical_query([]) == ""

    def test_decoded_query_round_trips(self) -> None:
        """A wire query already in canonical form is unchanged by parse + canonicalise."""
        wire = "a=1&a=x%20y&b=&c=%2B~&d=%C3%A9"
        assert signing.canonical_query(signing.parse_query(wire)) == wire


class TestCanonicalRequest:
    def test_body_is_hashed(self) -> None:
        """A non-empty body contributes its SHA-256 as the last line."""
        canonical = signing.canonical_request(
            "post", "/v1/x", "", {"host": "h"}, ["host"], b'{"a":1}'
        )
        assert canonical.split("\n")[-1] == (
            "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
        )

    def test_method_upper_cased(self) -> None:
        """The method is upper-cased."""
        canonical = signing.canonical_request("get", "/", "", {"host": "h"}, ["host"], b"")
        assert canonical.startswith("GET\n/\n\n")

    def test_header_values_stripped_and_sorted(self) -> None:
        """Signed headers are sorted and their values stripped of surrounding space."""
        headers = {"x-sdk-date": " 20191115T033655Z ", "host": "h:8443 "}
        canonical = signing.canonical_request("GET", "/", "", headers, ["x-sdk-date", "host"], b"")
        assert canonical == (
            "GET\n/\n\nhost:h:8443\nx-sdk-date:20191115T033655Z\n\nhost;x-sdk-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )

    def test_only_signed_headers_included(self) -> None:
        """Headers not listed as signed are left out of the canonical request."""
        headers = {"host": "h", "user-agent": "x"}
        canonical = signing.canonical_request("GET", "/", "", headers, ["host"], b"")
        assert "user-agent" not in canonical

    def test_empty_body_hash_constant(self) -> None:
        """The empty-body hash constant is the documented one."""
        assert signing.EMPTY_BODY_SHA256 == (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )


class TestFormatSdkDate:
    def test_utc_basic_format(self) -> None:
        """An aware UTC datetime is written %Y%m%dT%H%M%SZ."""
        moment = datetime(2019, 11, 15, 3, 36, 55, tzinfo=UTC)
        assert signing.format_sdk_date(moment) == "20191115T033655Z"

    def test_other_zone_converted_to_utc(self) -> None:
        """A datetime in another zone is converted to UTC first."""
        moment = datetime(2019, 11, 15, 11, 36, 55, tzinfo=timezone(timedelta(hours=8)))
        assert signing.format_sdk_date(moment) == "20191115T033655Z"


class TestParseAuthorization:
    def test_accepts_produced_header(self) -> None:
        """The header authorization_header produces parses back into its parts."""
        header = signing.authorization_header(
            VECTOR_AK, ["host", "x-sdk-date", "content-type"], VECTOR_SIGNATURE
        )
        parsed = signing.parse_authorization(header)
        assert parsed == signing.Authorization(
            access_key=VECTOR_AK,
            signed_headers=("content-type", "host", "x-sdk-date"),
            signature=VECTOR_SIGNATURE,
        )

    def test_accepts_documented_literal(self) -> None:
        """The documented header text parses."""
        parsed = signing.parse_authorization(
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, "
            "SignedHeaders=content-type;host;x-sdk-date, Signature=" + VECTOR_SIGNATURE
        )
        assert parsed is not None
        assert parsed.access_key == VECTOR_AK
        assert parsed.signed_headers == ("content-type", "host", "x-sdk-date")

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "garbage",
            "Bearer abc",
            "SDK-HMAC-SM3 Access=AK, SignedHeaders=host, Signature=" + VECTOR_SIGNATURE,
            "sdk-hmac-sha256 Access=AK, SignedHeaders=host, Signature=" + VECTOR_SIGNATURE,
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host",
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=abc",
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=" + "g" * 64,
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=" + VECTOR_SIGNATURE + "0",
            "SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=" + VECTOR_SIGNATURE,
            "SDK-HMAC-SHA256 SignedHeaders=host, Access=AK, Signature=" + VECTOR_SIGNATURE,
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature="
            + VECTOR_SIGNATURE
            + ", Extra=1",
        ],
    )
    def test_rejects_garbage(self, value: str) -> None:
        """Anything but a well-formed SDK-HMAC-SHA256 header parses to None."""
        assert signing.parse_authorization(value) is None
