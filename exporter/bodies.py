"""Reading a response body within a byte limit, whatever its encoding.

The client asks for ``Accept-Encoding: identity``, but a proxy or gateway may compress
anyway. httpx inflates each received chunk whole, so a few hundred kB of gzip can become
hundreds of MB before any size check runs. Here the raw bytes are read and inflated with a
bound: 256 KiB at a time, and never more than the bytes left under the limit, plus one to
tell "over". Peak memory is so the limit itself and a piece, whatever the ratio. ``gzip``,
``x-gzip`` and ``deflate`` (zlib) are inflated; any other encoding is refused as
``unsupported_encoding``, and a body that does not inflate as ``invalid_encoding``.
"""

from __future__ import annotations

import zlib

__all__ = ["BodyTooLarge", "BoundedBody", "EncodingError"]

#: The most inflated at once: a 64 KiB chunk of gzip can hold 64 MiB.
PIECE = 256 * 1024
#: Content-Encoding values read as zlib streams (gzip or zlib header, detected).
_INFLATED = frozenset({"gzip", "x-gzip", "deflate"})


class BodyTooLarge(Exception):
    """The body, decoded, is longer than the limit."""


class EncodingError(Exception):
    """The body's encoding is not one we read (``code`` ``unsupported_encoding``) or it
    does not decode (``invalid_encoding``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _broken(why: str) -> EncodingError:
    return EncodingError("invalid_encoding", f"compressed body {why}")


class BoundedBody:
    """Collects a body chunk by chunk, decoded per ``Content-Encoding``, up to ``limit``
    bytes; ``BodyTooLarge`` as soon as it would pass it."""

    def __init__(self, encoding: str, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        layers = [part.strip().lower() for part in encoding.split(",") if part.strip()]
        layers = [layer for layer in layers if layer != "identity"]
        self._inflater: zlib._Decompress | None = None
        if not layers:
            return
        if len(layers) > 1 or layers[0] not in _INFLATED:
            raise EncodingError(
                "unsupported_encoding", f"response encoded as {encoding!r}, not identity"
            )
        # 32 + MAX_WBITS: a gzip or a zlib header, whichever comes.
        self._inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)

    def feed(self, chunk: bytes) -> None:
        """Add the next received chunk."""
        if self._inflater is None:
            self._keep(chunk)
            return
        data = chunk
        try:
            while data:
                # At most a piece at a time, and one byte more than the room left, which
                # tells "over the limit" from "just at it"; the rest waits as unconsumed.
                room = self._limit - self._size + 1
                self._keep(self._inflater.decompress(data, min(PIECE, room)))
                data = self._inflater.unconsumed_tail
        except zlib.error:
            raise _broken("does not inflate") from None

    def finish(self) -> bytes:
        """The whole decoded body (once the last chunk was fed)."""
        if self._inflater is not None:
            try:
                self._keep(self._inflater.flush())
            except zlib.error:
                raise _broken("does not inflate") from None
            if not self._inflater.eof:
                raise _broken("cut short")
        return b"".join(self._parts)

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            # Let go of what was read now: the error's traceback keeps this object alive
            # (a retry may hold the error while it reads the next body).
            self._parts.clear()
            raise BodyTooLarge
        if data:
            self._parts.append(data)
