"""The call context: what one blocking engine call carries across mem0's closed API.

mem0's methods take no tenant, deadline or cancellation, yet the code it calls back into (our
history store, the database pool, the embedder, the extractor, the Ollama client) needs them.
The engine sets one CallContext around every call it runs on its thread pool
(domain/memories/engine.py: `MemoryEngine._run`), and the callees read it here, so there is one
visible place for all of it:

- `user_key`: the tenant-qualified owner, written on history rows and messages;
- `deadline`: when the caller stops waiting (monotonic clock); Ollama calls cut their timeouts
  to it;
- cancellation: at the deadline the caller calls `cancel()`. Long work checks
  `raise_if_cancelled()` as it goes (the extractor, the embedder, every database block), and
  blocking I/O registered with `attach()` (a database connection in use) is interrupted at once,
  so the thread stops instead of running on for nobody;
- the commit handshake: a write commits only after `claim_commit()`; `cancel()` and
  `claim_commit()` exclude each other under one lock, so exactly one wins: either the caller
  answers 503 and nothing is committed, or the commit goes ahead and the caller waits for it
  and answers with its outcome;
- `waiting_on`: the component the call is waiting on right now (postgres, embedder, extractor,
  ollama), which a 503 at the deadline names;
- `extraction`: what one inferred add's extraction produced, for the engine to read afterwards;
- `payload_fields`: service-owned fields (the entities of inferred facts) the vector store merges
  into each memory mem0 inserts during the call, so the row, its graph outbox row and its webhook
  event are complete in the insert's own transaction;
- `unit`: the database unit of work the call's writes share (storage/database.py).

Apart from the call context, one per-request value: the API dialect the request arrived in
(`contract` or `platform`, api/dialects.py), set by the HTTP middleware for the whole request, so
the engine's operation metrics and spans say which dialect asked without any parameter for it.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)


class CallCancelled(BaseException):
    """The call's caller stopped waiting; whatever it started is rolled back.

    A BaseException, like asyncio's CancelledError, so that mem0's `except Exception` fallbacks
    (which log and carry on) do not swallow it: the thread unwinds at the first check.
    """


class CallState(Enum):
    RUNNING = "running"
    COMMITTING = "committing"  # a commit was claimed: the caller must wait for its outcome
    CANCELLED = "cancelled"  # the caller answered without waiting: nothing may commit


@dataclass(slots=True)
class ExtractionReport:
    """Filled while mem0 runs one inferred add.

    outcome: None (the LLM was not asked), "extracted", or why nothing usable came back:
    "empty_response", "invalid_json", "unexpected_json", "no_facts", "context_overflow".
    """

    outcome: str | None = None
    facts: list[str] = field(default_factory=list)
    unembedded: set[str] = field(default_factory=set)  # extracted facts Ollama failed to embed


_tokens = itertools.count()


@dataclass(slots=True)
class CallContext:
    user_key: str | None = None
    deadline: float | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    ollama_deadline: float | None = None
    waiting_on: str | None = None
    extraction: ExtractionReport | None = None
    payload_fields: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    unit: Any = None
    state: CallState = CallState.RUNNING
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _interrupts: dict[int, Callable[[], None]] = field(default_factory=dict)

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise CallCancelled

    def cancel(self) -> bool:
        """The caller stops waiting. Interrupts the I/O in progress and returns True, unless a
        commit was claimed first: then it returns False and the caller must await the outcome."""
        with self._lock:
            if self.state is CallState.COMMITTING:
                return False
            self.state = CallState.CANCELLED
            self.cancelled.set()
            # Under the lock: a resource detached meanwhile (a connection given back to the pool
            # and handed to another call) must never be interrupted.
            for interrupt in self._interrupts.values():
                try:
                    interrupt()
                except Exception as exc:  # an interrupt that fails leaves the timeouts to end the I/O
                    log.debug("interrupting a cancelled call failed: %s", exc)
            return True

    def claim_commit(self) -> bool:
        """Called right before a commit: False if the caller already answered (roll back instead)."""
        with self._lock:
            if self.state is CallState.CANCELLED:
                return False
            self.state = CallState.COMMITTING
            return True

    def interrupt_now(self) -> None:
        """Interrupt the attached I/O whatever the state (a commit that outlived COMMIT_TIMEOUT;
        its outcome is then looked up, never assumed)."""
        with self._lock:
            for interrupt in self._interrupts.values():
                try:
                    interrupt()
                except Exception as exc:
                    log.debug("interrupting a call failed: %s", exc)

    def attach(self, interrupt: Callable[[], None]) -> int:
        """Register how to interrupt I/O this call is about to block on; raises if already cancelled."""
        with self._lock:
            if self.state is CallState.CANCELLED:
                raise CallCancelled
            token = next(_tokens)
            self._interrupts[token] = interrupt
            return token

    def detach(self, token: int) -> None:
        with self._lock:
            self._interrupts.pop(token, None)


_current: ContextVar[CallContext | None] = ContextVar("call_context", default=None)
_dialect: ContextVar[str] = ContextVar("dialect", default="contract")


def current_dialect() -> str:
    """The API dialect of the request being served: `contract` (also outside requests) or `platform`."""
    return _dialect.get()


@contextmanager
def dialect(name: str) -> Iterator[None]:
    """Make `name` the current dialect for the block."""
    token = _dialect.set(name)
    try:
        yield
    finally:
        _dialect.reset(token)


def current_call() -> CallContext | None:
    """The context of the engine call running on this thread, if any."""
    return _current.get()


def check_cancelled() -> None:
    """A cooperative cancellation point for long work: raises CallCancelled once the caller left."""
    context = _current.get()
    if context is not None and context.cancelled.is_set():
        raise CallCancelled


@contextmanager
def waiting_for(component: str) -> Iterator[None]:
    """Name the component the current call waits on for the block (a 503 at the deadline says it)."""
    context = _current.get()
    if context is None:
        yield
        return
    outer = context.waiting_on
    context.waiting_on = component
    try:
        yield
    finally:
        context.waiting_on = outer


@contextmanager
def call_context(context: CallContext | None = None) -> Iterator[CallContext]:
    """Make `context` (or a new one) current for the block."""
    context = context if context is not None else CallContext()
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


@contextmanager
def ensure_call_context() -> Iterator[CallContext]:
    """The current context, or a fresh one for calls made outside the engine (start-up probes)."""
    existing = _current.get()
    if existing is not None:
        yield existing
        return
    with call_context() as context:
        yield context
