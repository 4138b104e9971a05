"""The exception tree: codes, retryability, and adding call context."""

from __future__ import annotations

import pytest

from exporter.errors import (
    ApiError,
    AuthError,
    ErrorDetail,
    NotFoundError,
    PollError,
    ResponseError,
    ThrottledError,
    TransportError,
    safe_error_code,
)


class TestWithContext:
    @pytest.mark.parametrize(
        "error",
        [
            ResponseError(ErrorDetail(message="bad"), "invalid_json"),
            ApiError(ErrorDetail(200, "ModelArts.0105", "Error string")),
            ThrottledError(ErrorDetail(429, "APIGW.0308", "slow down"), retry_after=2.5),
            TransportError(ErrorDetail(message="reset"), "transport_error"),
        ],
    )
    def test_keeps_class_and_fields_and_adds_status_and_request_id(self, error: PollError) -> None:
        """The copy is of the same class, keeps its own fields, and names status and id."""
        twin = error.with_context(200, "0123456789abcdef0123456789abcdef")
        assert type(twin) is type(error)
        assert twin.code == error.code
        assert twin.detail.http_status == 200
        assert twin.detail.request_id == "0123456789abcdef0123456789abcdef"
        assert "request_id=0123456789abcdef0123456789abcdef" in str(twin)
        assert getattr(twin, "retry_after", None) == getattr(error, "retry_after", None)
        assert error.detail.request_id is None


class TestClassification:
    def test_retryable_only_where_another_attempt_can_help(self) -> None:
        """5xx, 429 and transport errors are retryable; 401/403, 404, 400 and bodies are not."""
        assert ApiError(ErrorDetail(503)).retryable
        assert ThrottledError(ErrorDetail(429), None).retryable
        assert TransportError(ErrorDetail(), "timeout").retryable
        assert not AuthError(ErrorDetail(503)).retryable
        assert not ApiError(ErrorDetail(400)).retryable
        assert not NotFoundError(ErrorDetail(404)).retryable
        assert not ResponseError(ErrorDetail(200)).retryable

    def test_code_falls_back_to_the_local_word(self) -> None:
        """Without a ModelArts code the metric label is the exporter's word for the failure."""
        assert ApiError(ErrorDetail(502)).code == "http_error"
        assert TransportError(ErrorDetail(), "connect_error").code == "connect_error"
        assert ApiError(ErrorDetail(502, "APIGW.0202")).code == "APIGW.0202"

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("ModelArts.50015001", "ModelArts.50015001"),
            ("APIGW.0301", "APIGW.0301"),
            ("ModelArts.0105", "ModelArts.0105"),
            ("not a code", None),
            ("<script>", None),
            ("A" * 40 + ".1", None),
            (401, None),
            (None, None),
        ],
    )
    def test_safe_error_code(self, raw: object, expected: str | None) -> None:
        """Only code-shaped strings become label values."""
        assert safe_error_code(raw) == expected
