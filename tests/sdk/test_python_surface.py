"""The sync and async Python clients expose one surface: the same public methods with the same
signatures, blocking on one side and awaitable on the other. Both are built from one declaration
per operation (`mem0_client.client`), so this guards the binding, not a second copy: a method
bound to the wrong transport, or losing its name, docstring or signature, shows here.
"""

from __future__ import annotations

import asyncio
import inspect

import mem0_client
import pytest
from mem0_client import AdminAPI, AsyncMemoryClient, MemoryClient, WebhooksAPI

# Each blocking class and its twin, exported as Async<name>.
PAIRS = [(cls, getattr(mem0_client, f"Async{cls.__name__}")) for cls in (MemoryClient, AdminAPI, WebhooksAPI)]
# Where the twins differ on purpose: context-manager protocol and the names of the close calls.
SYNC_ONLY = {"__enter__", "__exit__"}
ASYNC_ONLY = {"__aenter__", "__aexit__"}
BLOCKING_ON_BOTH = {"with_options"}  # makes a client, sends nothing


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") or n in SYNC_ONLY | ASYNC_ONLY}


def _instances(sync_cls: type, async_cls: type) -> tuple[object, object]:
    sync_client, async_client = MemoryClient("k"), AsyncMemoryClient("k")
    if sync_cls is AdminAPI:
        return sync_client.admin, async_client.admin
    if sync_cls is WebhooksAPI:
        return sync_client.webhooks, async_client.webhooks
    return sync_client, async_client


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=lambda c: c.__name__)
def test_twins_have_the_same_methods_and_signatures(sync_cls: type, async_cls: type) -> None:
    assert _public(sync_cls) - SYNC_ONLY == _public(async_cls) - ASYNC_ONLY
    sync_obj, async_obj = _instances(sync_cls, async_cls)
    methods = sorted(n for n in _public(sync_cls) - SYNC_ONLY if callable(getattr(sync_obj, n)))
    assert methods, sync_cls
    for name in methods:
        blocking, awaited = getattr(sync_obj, name), getattr(async_obj, name)
        # Parameters alike; the return annotations differ only for the iterators (Iterator vs AsyncIterator).
        assert inspect.signature(blocking).parameters == inspect.signature(awaited).parameters, name
        assert blocking.__name__ == awaited.__name__ == name
        assert not inspect.iscoroutinefunction(blocking), name
        if name not in BLOCKING_ON_BOTH:
            assert inspect.iscoroutinefunction(awaited) or inspect.isasyncgenfunction(awaited), name
        # Looked up on the class, an operation is still a function of the instance.
        unbound = getattr(async_cls, name)
        assert next(iter(inspect.signature(unbound).parameters)) == "self", name


def test_operations_keep_the_builders_names_docs_and_keyword_only_options() -> None:
    client = MemoryClient("k")
    search = inspect.signature(client.search)
    assert search.return_annotation == "SearchResult"
    assert [p.kind for p in search.parameters.values()][1:] == [inspect.Parameter.KEYWORD_ONLY] * 9
    assert client.webhooks.rotate_secret.__qualname__ == "WebhooksAPI.rotate_secret"
    assert "shown only this once" in (client.admin.create_key.__doc__ or "")
    with pytest.raises(ValueError, match="update needs content"):
        client.update("memory-id")  # checked before anything is sent


def test_a_clone_binds_its_namespaces_to_itself() -> None:
    client = AsyncMemoryClient("k")
    clone = client.with_options(max_retries=0)
    assert (clone.max_retries, client.max_retries) == (0, 2)
    assert clone.admin._client is clone
    assert clone.webhooks._client is clone
    asyncio.run(client.close())
