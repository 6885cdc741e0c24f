"""HTTP serving that loses no request when a worker stops on purpose (recycling, SIGHUP, SIGTERM).

uvicorn's graceful shutdown closes every idle keep-alive connection at once. A client that has
just sent its next request on such a connection (the bytes are in the kernel, not yet read) gets
a reset, or fails writing its body: with two workers recycled every GUNICORN_MAX_REQUESTS, 3 of
100,000 adds failed that way. HTTP/1.1 gives a server one clean way to end a persistent
connection: answer a request with `Connection: close`. So a draining connection here is not
closed while idle; its next request is served and answered with `Connection: close` (the client
opens a new connection, which the listener, closed in this worker, hands to another one). Only a
connection that stays idle for the whole drain period (the keep-alive timeout, when uvicorn would
have closed it anyway) is closed by the server. Requests in progress finish as before.

`DrainingUvicornWorker` is the gunicorn worker class (gunicorn_conf.py); the single-process
server uses the same protocol (cli.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.workers import UvicornWorker

from memory_service.api.http_protocol import EnvelopeHttpToolsProtocol

MIN_DRAIN_SECONDS = 1.0


class DrainingHttpToolsProtocol(EnvelopeHttpToolsProtocol):
    """The service's httptools protocol (the envelope and head limits of api/http_protocol.py)
    whose shutdown answers the next request with `Connection: close`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._draining = False
        self._receiving = False  # a request's bytes have started to arrive
        self._drain_timer: asyncio.TimerHandle | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving = True

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # this response says `Connection: close`, then the connection ends

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._receiving = False

    def shutdown(self) -> None:
        """Called by the server when it stops: finish what is in progress, serve the next request
        with `Connection: close`, close a connection only after it stayed idle the drain period."""
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            return
        drain = max(MIN_DRAIN_SECONDS, float(self.timeout_keep_alive))
        self._drain_timer = self.loop.call_later(drain, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._drain_timer = None
        if self.transport.is_closing() or self._receiving:
            return  # a request is arriving: it is answered with `Connection: close`
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        super().connection_lost(exc)


class DrainingUvicornWorker(UvicornWorker):
    """gunicorn's uvicorn worker with uvloop and the service's protocol: uvicorn's own answers in
    the envelope, a deadline and a size limit on request heads (gunicorn's limit_request_*
    settings do not reach uvicorn workers; this does), and draining.

    It also tells the master it is alive while its application starts: uvicorn reports only once
    serving, so a worker whose start (model, pool, migrations check) took longer than
    GUNICORN_TIMEOUT on a busy host was killed and replaced, again and again. The heartbeat runs
    on the event loop, so a worker whose loop is stuck still misses it and is replaced.
    """

    CONFIG_KWARGS = {"loop": "uvloop", "http": DrainingHttpToolsProtocol}

    async def _serve(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await super()._serve()
        finally:
            heartbeat.cancel()

    async def _heartbeat(self) -> None:
        while True:
            self.notify()
            await asyncio.sleep(1.0)
