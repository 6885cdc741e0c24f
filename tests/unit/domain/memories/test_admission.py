"""Admission per key: a key holds at most `limit` slots; others wait briefly, then 429; a slot is
held until the work behind it has finished."""

from __future__ import annotations

import asyncio

import pytest
from memory_service.domain.memories.admission import KeyGate
from memory_service.errors import RateLimitExceeded


def test_a_key_over_its_limit_waits_then_is_refused_while_other_keys_pass() -> None:
    async def scenario() -> None:
        gate = KeyGate(limit=2, wait=0.05)
        held = [await gate.acquire("a"), await gate.acquire("a")]
        other = await gate.acquire("b")  # another key is not affected
        with pytest.raises(RateLimitExceeded) as refused:
            await gate.acquire("a")
        assert refused.value.details == {"limit": "concurrency", "max_concurrent": 2}
        assert refused.value.retry_after == 1
        assert gate.snapshot() == {"keys_at_limit": 1, "waiting": 0}
        for slot in [*held, other]:
            slot.release()
        assert gate.snapshot() == {"keys_at_limit": 0, "waiting": 0}

    asyncio.run(scenario())


def test_a_waiter_gets_the_slot_released_within_its_wait() -> None:
    async def scenario() -> None:
        gate = KeyGate(limit=1, wait=2.0)
        first = await gate.acquire("a")
        waiting = asyncio.create_task(gate.acquire("a"))
        await asyncio.sleep(0.01)
        assert gate.snapshot()["waiting"] == 1
        first.release()
        second = await asyncio.wait_for(waiting, 1.0)
        second.release()
        assert gate.snapshot() == {"keys_at_limit": 0, "waiting": 0}

    asyncio.run(scenario())


def test_a_slot_is_held_until_the_thread_it_admitted_has_finished() -> None:
    async def scenario() -> None:
        gate = KeyGate(limit=1, wait=0.05)
        slot = await gate.acquire("a")
        thread_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slot.hold(thread_done)
        slot.release()  # the request was answered (a 503 at its deadline) ...
        with pytest.raises(RateLimitExceeded):  # ... but its thread still runs: the slot stays taken
            await gate.acquire("a")
        thread_done.set_result(None)
        await asyncio.sleep(0)
        (await gate.acquire("a")).release()

    asyncio.run(scenario())
