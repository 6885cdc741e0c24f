"""Admission per key: how many engine threads one API key may hold at once.

The engine runs every blocking call on a bounded thread pool shared by all tenants. Without a
cap, one key sending slow requests (a huge add, a search while Ollama is slow) fills every
thread and every other tenant waits behind it. Each key may hold KEY_CONCURRENCY threads; a
request over that waits up to KEY_CONCURRENCY_WAIT seconds for one of its own key's slots,
then gets 429 RATE_LIMIT_EXCEEDED (details `limit: "concurrency"`, `Retry-After: 1`).

A slot is held until the thread it admitted has really finished, not merely until the request
was answered: a call cancelled at its deadline keeps its slot until its thread has stopped, so
a key cannot pile up abandoned work either. The gate is per process, like the thread pool it
protects (each gunicorn worker has its own pool and its own gate).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from memory_service.errors import RateLimitExceeded


@dataclass
class _KeyState:
    held: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class Slot:
    """One admitted operation: released when the operation and every thread it holds are done."""

    def __init__(self, gate: KeyGate, key: str) -> None:
        self._gate = gate
        self._key = key
        self._holds = 1  # the operation itself

    def hold(self, future: asyncio.Future[Any]) -> None:
        """Keep the slot until `future` (a call's thread) is done too."""
        self._holds += 1
        future.add_done_callback(lambda _f: self.release())

    def release(self) -> None:
        self._holds -= 1
        if self._holds == 0:
            self._gate._release(self._key)


class KeyGate:
    """At most `limit` admitted operations per key; the rest wait `wait` seconds, then 429."""

    def __init__(self, limit: int, wait: float) -> None:
        self.limit = limit
        self.wait = wait
        self._keys: dict[str, _KeyState] = {}

    async def acquire(self, key: str) -> Slot:
        state = self._keys.setdefault(key, _KeyState())
        if state.held < self.limit and not state.waiters:
            state.held += 1
            return Slot(self, key)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.wait)
        except TimeoutError:
            if waiter.done():  # granted just as the wait ran out: keep it
                return Slot(self, key)
            state.waiters.remove(waiter)
            self._forget_if_idle(key, state)
            raise RateLimitExceeded(
                f"This key already has {self.limit} operations in progress; retry when one has finished",
                {"limit": "concurrency", "max_concurrent": self.limit},
                retry_after=1,
            ) from None
        except asyncio.CancelledError:
            if waiter.done():
                self._release(key)  # granted to a request that is gone: pass it on
            else:
                state.waiters.remove(waiter)
                self._forget_if_idle(key, state)
            raise
        return Slot(self, key)

    def _release(self, key: str) -> None:
        state = self._keys[key]
        while state.waiters:
            waiter = state.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the next waiter: `held` is unchanged
                return
        state.held -= 1
        self._forget_if_idle(key, state)

    def _forget_if_idle(self, key: str, state: _KeyState) -> None:
        if state.held == 0 and not state.waiters:
            self._keys.pop(key, None)

    def snapshot(self) -> dict[str, int]:
        """For /health: keys holding every slot they may, and requests waiting for one."""
        return {
            "keys_at_limit": sum(1 for s in self._keys.values() if s.held >= self.limit),
            "waiting": sum(len(s.waiters) for s in self._keys.values()),
        }
