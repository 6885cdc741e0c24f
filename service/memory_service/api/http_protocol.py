"""uvicorn's HTTP protocol (httptools), with the envelope and limits on what it reads before the app.

uvicorn answers some requests itself, before any ASGI middleware can see them: a request it
cannot parse (a NUL in a header, a URL over 64 KiB, which httptools cannot parse) got a plain-text
400 without the envelope or an X-Request-ID. It also reads request heads without limit: no
deadline (a client sending one header byte a second holds a connection open for ever, the
"slowloris" attack) and no size cap. This subclass answers all of these in the envelope with an
X-Request-ID and closes the connection:

- 400 INVALID_REQUEST: the request is not HTTP httptools can parse;
- 414 URI_TOO_LONG: the request target exceeds 65535 bytes (httptools' own limit);
- 431 HEADERS_TOO_LARGE: the header fields exceed MAX_HEADER_BYTES in total;
- 408 REQUEST_TIMEOUT: the head did not arrive within REQUEST_HEADER_TIMEOUT seconds of the
  connection (or of the request's first byte on a kept-alive connection); a connection that
  sends nothing at all in that time is closed without an answer.

The body deadline and size are the ASGI middleware's (api/middleware.py), which answers there.
Used by `memory-service serve` for one worker and, through the gunicorn worker class
(gunicorn_app.py), for several.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from memory_service.api.envelope import ErrorBody, ErrorEnvelope
from memory_service.settings import get_settings

log = logging.getLogger("memory_service.http")
MAX_URL_BYTES = 65535  # httptools.parse_url cannot parse a longer request target


class _Refused(Exception):
    """Raised from a parser callback: httptools stops parsing and uvicorn calls send_400_response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def envelope_response(status: int, code: str, message: str, extra_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete HTTP/1.1 response in the error envelope that closes the connection."""
    body = ErrorEnvelope(error=ErrorBody(code=code, message=message)).model_dump_json().encode()
    head = [STATUS_LINE[status]]
    for name, value in [
        *extra_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", uuid.uuid4().hex.encode()),
        (b"connection", b"close"),
    ]:
        head.extend([name, b": ", value, b"\r\n"])
    head.append(b"\r\n")
    return b"".join(head) + body


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.request_header_timeout
        self.max_header_bytes = settings.max_header_bytes
        self._header_bytes = 0
        self._in_head = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: _Refused | None = None

    # -- the head deadline -----------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._in_head:
            message = f"The request head did not arrive within {self.header_timeout:g}s (REQUEST_HEADER_TIMEOUT)"
            self._send_envelope(408, "REQUEST_TIMEOUT", message)
        else:  # the deadline armed at connection: not a byte sent since
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._in_head = True
        self._arm_head_timer()  # a kept-alive connection's next request: the deadline starts now

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refuse(414, "URI_TOO_LONG", f"The request target exceeds {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.max_header_bytes:
            self._refuse(
                431, "HEADERS_TOO_LARGE", f"The headers exceed {self.max_header_bytes} bytes (MAX_HEADER_BYTES)"
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    # -- answers ---------------------------------------------------------------------------

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._refusal = _Refused(status, code, message)
        raise self._refusal

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it could not parse, in the envelope (or the refusal a
        callback raised: URL or headers too large)."""
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            self._send_envelope(refusal.status, refusal.code, refusal.message)
        else:
            self._send_envelope(400, "INVALID_REQUEST", "Malformed HTTP request")

    def _send_envelope(self, status: int, code: str, message: str) -> None:
        log.warning("refused before the application: %s %s", status, message)
        self._cancel_head_timer()
        self.transport.write(envelope_response(status, code, message, self.server_state.default_headers))
        self.transport.close()
        _count(status)


def _count(status: int) -> None:
    """Count the answer like any other (imported late: the gunicorn master loads this module
    before the metrics' multiprocess directory may be set)."""
    from memory_service.observability.metrics import HTTP_REQUESTS

    HTTP_REQUESTS.labels("<unmatched>", "UNKNOWN", str(status)).inc()
