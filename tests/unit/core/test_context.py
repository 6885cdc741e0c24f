"""The call context: one per engine call, visible to what mem0 calls back into, gone afterwards."""

from __future__ import annotations

import contextvars
import threading

import pytest
from memory_service.core.context import (
    CallCancelled,
    CallContext,
    call_context,
    check_cancelled,
    current_call,
    ensure_call_context,
    waiting_for,
)


def test_no_context_outside_a_call() -> None:
    assert current_call() is None


def test_the_context_is_current_inside_the_block_and_restored_after() -> None:
    given = CallContext(user_key="acme/alice")
    with call_context(given) as context:
        assert context is given
        assert current_call() is given
    assert current_call() is None


def test_nested_contexts_restore_the_outer_one() -> None:
    with call_context(CallContext(user_key="acme/outer")) as outer:
        with call_context(CallContext(user_key="acme/inner")):
            inner = current_call()
            assert inner is not None
            assert inner.user_key == "acme/inner"
        assert current_call() is outer
    assert current_call() is None


def test_the_context_is_restored_when_the_call_raises() -> None:
    with pytest.raises(RuntimeError), call_context(CallContext(user_key="acme/alice")):
        raise RuntimeError("mem0 failed")
    assert current_call() is None


def test_a_fresh_context_when_none_is_given() -> None:
    with call_context() as context:
        assert context.user_key is None
        assert context.ollama_deadline is None
        assert context.extraction is None
        assert not context.cancelled.is_set()


def test_ensure_reuses_the_current_context() -> None:
    with call_context(CallContext(user_key="acme/alice")) as outer, ensure_call_context() as context:
        assert context is outer
    assert current_call() is None


def test_ensure_makes_one_for_calls_outside_the_engine_and_drops_it_after() -> None:
    with ensure_call_context() as context:
        assert current_call() is context
    assert current_call() is None


def test_cancellation_is_seen_by_whoever_holds_the_context() -> None:
    context = CallContext()
    context.raise_if_cancelled()  # not cancelled: nothing happens
    context.cancelled.set()
    with pytest.raises(CallCancelled):
        context.raise_if_cancelled()


def test_the_context_travels_to_a_worker_thread_with_copy_context() -> None:
    """A ContextVar, not a thread-local or a global: the engine's copied context carries it into its
    thread pool, and an unrelated thread never sees another call's tenant."""
    seen: dict[str, str | None] = {}

    def read(label: str) -> None:
        context = current_call()
        seen[label] = context.user_key if context is not None else None

    with call_context(CallContext(user_key="acme/alice")):
        copied = contextvars.copy_context()
        plain = threading.Thread(target=read, args=("plain",))
        plain.start()
        plain.join()
    carried = threading.Thread(target=copied.run, args=(read, "copied"))
    carried.start()
    carried.join()
    assert seen == {"plain": None, "copied": "acme/alice"}


# -- the commit handshake (issue 19): exactly one of "the caller answers" and "the write commits" wins


def test_cancel_first_refuses_the_commit_and_interrupts_attached_io() -> None:
    call = CallContext()
    interrupted: list[str] = []
    call.attach(lambda: interrupted.append("socket"))
    assert call.cancel() is True
    assert interrupted == ["socket"]
    assert call.claim_commit() is False
    with pytest.raises(CallCancelled):
        call.attach(lambda: None)


def test_commit_first_makes_the_caller_wait_and_is_never_interrupted() -> None:
    call = CallContext()
    interrupted: list[str] = []
    call.attach(lambda: interrupted.append("socket"))
    assert call.claim_commit() is True
    assert call.cancel() is False
    assert interrupted == []
    assert not call.cancelled.is_set()


def test_a_detached_resource_is_not_interrupted() -> None:
    call = CallContext()
    interrupted: list[str] = []
    token = call.attach(lambda: interrupted.append("socket"))
    call.detach(token)
    assert call.cancel() is True
    assert interrupted == []


@pytest.mark.parametrize("round_", range(200))
def test_under_a_race_exactly_one_side_wins(round_: int) -> None:
    call = CallContext()
    barrier = threading.Barrier(2)
    results: dict[str, bool] = {}

    def cancel() -> None:
        barrier.wait()
        results["cancel"] = call.cancel()

    def commit() -> None:
        barrier.wait()
        results["commit"] = call.claim_commit()

    threads = [threading.Thread(target=cancel), threading.Thread(target=commit)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["cancel"] != results["commit"], results


def test_cancellation_points_and_the_component_waited_on() -> None:
    check_cancelled()  # outside any call: nothing to check
    with call_context(CallContext()) as call:
        with waiting_for("extractor"):
            assert call.waiting_on == "extractor"
            with waiting_for("postgres"):
                assert call.waiting_on == "postgres"
            assert call.waiting_on == "extractor"
        assert call.waiting_on is None
        check_cancelled()
        call.cancel()
        with pytest.raises(CallCancelled):
            check_cancelled()
    assert not isinstance(CallCancelled(), Exception)  # mem0's `except Exception` cannot swallow it
