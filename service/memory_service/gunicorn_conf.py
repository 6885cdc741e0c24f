"""gunicorn settings, read from the environment; usable as `gunicorn -c python:memory_service.gunicorn_conf`.

Workers are uvicorn workers (the app is ASGI) that drain without dropping a request
(serving.py). `max_requests` with jitter recycles workers one at a time, so a slow leak in a
dependency never accumulates and never all workers restart at once; a recycle, like SIGHUP,
costs no request.
SIGTERM makes gunicorn stop accepting, let in-flight requests finish for up to
`graceful_timeout` seconds, then exit. Each worker builds its own app after the fork (no
preload): the embedding model, the database pool and the Redis client are per process, and
nothing unsafe (sockets, threads, ONNX sessions) crosses a fork.
"""

from __future__ import annotations

import os
from typing import Any

from memory_service.settings import Settings


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_graceful_timeout() -> int:
    return _int("GUNICORN_GRACEFUL_TIMEOUT", 30)


def env_keepalive() -> int:
    return _int("GUNICORN_KEEPALIVE", 5)


bind = f"{os.environ.get('API_HOST', '0.0.0.0')}:{os.environ.get('API_PORT', '8080')}"  # noqa: S104
workers = _int("GUNICORN_WORKERS", 2)
worker_class = "memory_service.serving.DrainingUvicornWorker"
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = env_graceful_timeout()
keepalive = env_keepalive()
max_requests = _int("GUNICORN_MAX_REQUESTS", 10_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1_000)
preload_app = False
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The one setting both serving paths use (settings.py): uvicorn's workers get it from here.
forwarded_allow_ips = ",".join(Settings().forwarded_allow_ips)
proxy_allow_ips = forwarded_allow_ips
wsgi_app = "memory_service.main:create_app()"


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges must stop counting in the multiprocess metrics."""
    from memory_service.observability.metrics import mark_process_dead

    mark_process_dead(worker.pid)
