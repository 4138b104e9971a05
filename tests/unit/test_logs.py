"""Logging: JSON lines, level filter, and the secret scrubber as a last line of defence."""

from __future__ import annotations

import io
import json

from exporter.logs import SecretScrubber, make_logger

SECRET = "sentinel-secret-value-123"


class TestMakeLogger:
    def test_json_lines_with_utc_timestamp_and_level(self) -> None:
        """JSON format writes one object per line with event, level and a UTC timestamp."""
        out = io.StringIO()
        make_logger("info", "json", stream=out).info("poll_failed", target="pool-a")
        line = json.loads(out.getvalue())
        assert line["event"] == "poll_failed"
        assert line["level"] == "info"
        assert line["target"] == "pool-a"
        assert line["timestamp"].endswith("Z")

    def test_level_filter(self) -> None:
        """Below the configured level nothing is written."""
        out = io.StringIO()
        log = make_logger("warning", "json", stream=out)
        log.info("quiet")
        log.warning("loud")
        assert [json.loads(x)["event"] for x in out.getvalue().splitlines()] == ["loud"]

    def test_configured_secrets_are_masked_in_output(self) -> None:
        """A secret value that reaches an event, even nested, is written as ***."""
        out = io.StringIO()
        log = make_logger("info", "json", secrets=[SECRET], stream=out)
        log.warning("oops", error=f"signature with {SECRET} failed", nested={"k": [SECRET]})
        assert SECRET not in out.getvalue()
        line = json.loads(out.getvalue())
        assert line["error"] == "signature with *** failed"
        assert line["nested"] == {"k": ["***"]}


class TestScrubber:
    def test_short_values_are_not_scrubbed(self) -> None:
        """Values shorter than 6 characters would match ordinary words and are left alone."""
        scrub = SecretScrubber(["abc", SECRET])
        event = scrub(None, "info", {"event": "abc", "x": f"{SECRET}!"})
        assert event == {"event": "abc", "x": "***!"}
