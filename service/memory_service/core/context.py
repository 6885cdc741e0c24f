"""The call context: what one blocking engine call carries across mem0's closed API.

mem0's methods take no tenant, deadline or cancellation, yet the code it calls back into (our
history store, the database pool, the Ollama client) needs them. The engine sets one CallContext
around every call it runs on its thread pool (domain/memories/engine.py: `MemoryEngine._run`),
and the callees read it here, so there is one visible place for all of it:

- `user_key`: the tenant-qualified owner, written on history rows and messages;
- `cancelled`: set when the caller stopped waiting (its deadline passed and it answered 503);
  a transaction checks it before running and before commit, so an abandoned call is rolled
  back instead of leaving a phantom write;
- `ollama_deadline` / `waiting_on`: the budget of the Ollama call in progress, which the HTTP
  transport cuts timeouts to, and which dependency the call waits on when it misses its deadline;
- `extraction`: what one inferred add's extraction produced, for the engine to read afterwards;
- `payload_fields`: service-owned fields (the entities of inferred facts) the vector store merges
  into each memory mem0 inserts during the call, so the row, its graph outbox row and its webhook
  event are complete in the insert's own transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


class CallCancelled(Exception):
    """The call's deadline passed; its transaction is rolled back instead of committed."""


@dataclass(slots=True)
class ExtractionReport:
    """Filled while mem0 runs one inferred add.

    outcome: None (the LLM was not asked), "extracted", or why nothing usable came back:
    "empty_response", "invalid_json", "unexpected_json", "no_facts", "context_overflow".
    """

    outcome: str | None = None
    facts: list[str] = field(default_factory=list)
    unembedded: set[str] = field(default_factory=set)  # extracted facts Ollama failed to embed


@dataclass(slots=True)
class CallContext:
    user_key: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    ollama_deadline: float | None = None
    waiting_on: str | None = None
    extraction: ExtractionReport | None = None
    payload_fields: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise CallCancelled


_current: ContextVar[CallContext | None] = ContextVar("call_context", default=None)


def current_call() -> CallContext | None:
    """The context of the engine call running on this thread, if any."""
    return _current.get()


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
