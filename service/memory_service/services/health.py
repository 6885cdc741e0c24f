"""Dependency health, probed in the background and served from a cache.

`/health` must answer in well under a second even when a dependency hangs, so requests never
probe: a background task checks each dependency every HEALTH_INTERVAL seconds, each probe bounded
by a timeout, and keeps the last result (and the `memory_dependency_up` gauge) current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from memory_service.core.timefmt import now_rfc3339
from memory_service.observability.metrics import DEPENDENCY_UP

log = logging.getLogger(__name__)
Probe = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class ProbeResult:
    up: bool
    latency_ms: float | None
    checked_at: str | None
    error: str | None = None


def _retrieve(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()


class HealthMonitor:
    def __init__(self, interval: float, timeout: float = 2.0) -> None:
        self.interval = interval
        self.timeout = timeout
        self._probes: dict[str, Probe] = {}
        self.results: dict[str, ProbeResult] = {}
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Future[object]] = {}

    def register(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe
        self.results[name] = ProbeResult(up=False, latency_ms=None, checked_at=None, error="not checked yet")

    async def _probe(self, name: str, probe: Probe) -> None:
        started = time.perf_counter()
        error: str | None = None
        pending = self._inflight.get(name)
        if pending is not None and not pending.done():
            # The last probe still hangs (a stopped server holds its thread): report, don't pile up.
            self._record(name, False, None, "previous probe still waiting")
            return
        task = asyncio.ensure_future(probe())
        task.add_done_callback(_retrieve)  # a probe that outlives its timeout fails unobserved
        self._inflight[name] = task
        done, _ = await asyncio.wait({task}, timeout=self.timeout)
        if not done:
            up, error = False, f"no answer within {self.timeout:.1f}s"
        elif task.exception() is not None:
            up, error = False, task.exception().__class__.__name__
        else:
            up = task.result() is not False
            error = None if up else "probe failed"
        self._record(name, up, (time.perf_counter() - started) * 1000, error)

    def _record(self, name: str, up: bool, latency_ms: float | None, error: str | None) -> None:
        previous = self.results.get(name)
        if previous is not None and previous.up and not up:
            log.warning("dependency %s is down: %s", name, error)
        elif previous is not None and not previous.up and up and previous.checked_at is not None:
            log.info("dependency %s is back", name)
        latency = None if latency_ms is None else round(latency_ms, 2)
        self.results[name] = ProbeResult(up, latency, now_rfc3339(), error)
        DEPENDENCY_UP.labels(name).set(1 if up else 0)

    async def check_all(self) -> None:
        await asyncio.gather(*(self._probe(name, probe) for name, probe in self._probes.items()))

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:  # the loop must outlive any single bad round
                log.exception("health round failed")
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        await self.check_all()
        self._task = asyncio.create_task(self._loop(), name="health-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def up(self, name: str) -> bool:
        """The dependency's last known state; unknown counts as up (nothing says otherwise yet)."""
        result = self.results.get(name)
        return result is None or result.up or result.checked_at is None

    @property
    def healthy(self) -> bool:
        return all(r.up for r in self.results.values())
