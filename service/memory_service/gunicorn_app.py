"""gunicorn, embedded: `memory-service serve --workers N` runs it with gunicorn_conf's settings."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication
from uvicorn.workers import UvicornWorker

from memory_service import gunicorn_conf


class EnvelopeUvicornWorker(UvicornWorker):
    """uvicorn's gunicorn worker with the service's HTTP protocol (api/http_protocol.py): its own
    answers in the envelope, a deadline and a size limit on request heads. gunicorn's
    limit_request_* settings do not reach uvicorn workers; this does."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "auto",
        "http": "memory_service.api.http_protocol:EnvelopeHttpToolsProtocol",
    }


class GunicornApp(BaseApplication):
    def __init__(self, bind: str, workers: int) -> None:
        self._bind = bind
        self._workers = workers
        super().__init__()

    def load_config(self) -> None:
        assert self.cfg is not None
        for name in dir(gunicorn_conf):
            value = getattr(gunicorn_conf, name)
            if name in self.cfg.settings and not name.startswith("_"):
                self.cfg.set(name, value)
        self.cfg.set("bind", [self._bind])
        self.cfg.set("workers", self._workers)

    def load(self) -> Any:
        from memory_service.main import create_app

        return create_app()
