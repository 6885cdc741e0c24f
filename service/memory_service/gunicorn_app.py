"""gunicorn, embedded: `memory-service serve --workers N` runs it with gunicorn_conf's settings.

The master owns the embedded Postgres (when there is one) and supervises it from its own loop
(no thread in a process that forks): a dead server is restarted within about a second, and one
that cannot be restarted ends the master with EMBEDDED_POSTGRES_LOST for the process manager.
"""

from __future__ import annotations

import sys
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import HaltServer

from memory_service import gunicorn_conf
from memory_service.storage.embedded import EmbeddedPostgres

EMBEDDED_POSTGRES_LOST = 3  # exit status


class SupervisingArbiter(Arbiter):
    """gunicorn's master loop, which also checks the embedded Postgres once a second."""

    def __init__(self, app: BaseApplication, embedded: EmbeddedPostgres | None) -> None:
        super().__init__(app)
        self.embedded = embedded

    def manage_workers(self) -> None:
        super().manage_workers()
        if self.embedded is not None and self.embedded.check_at_most_every() == "lost":
            raise HaltServer("the embedded Postgres died and could not be restarted", EMBEDDED_POSTGRES_LOST)


class GunicornApp(BaseApplication):
    def __init__(self, bind: str, workers: int, embedded: EmbeddedPostgres | None = None) -> None:
        self._bind = bind
        self._workers = workers
        self._embedded = embedded
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

    def run(self) -> None:
        try:
            SupervisingArbiter(self, self._embedded).run()
        except RuntimeError as exc:
            print(f"\nError: {exc}\n", file=sys.stderr)
            sys.exit(1)
