"""mem0's own Python `MemoryClient` (PyPI mem0ai 2.2.1), unmodified, against the real service.

Every memory method of the client, the errors it raises for the server's statuses, and the
Platform-only methods the server answers with a clear refusal. What a test checks is always what
the server answered, read back through another call or another client.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest
from mem0 import MemoryClient
from mem0.client.types import AddMemoryOptions
from mem0.exceptions import (
    MemoryError as Mem0MemoryError,
)
from mem0.exceptions import (
    MemoryNotFoundError,
    MemoryQuotaExceededError,
    RateLimitError,
    ValidationError,
)

from tests.compat.conftest import platform_http, wait_for_event
from tests.support.server import ServiceProcess, embedded_conninfo, new_tenant_key


def added_ids(response: dict[str, Any]) -> list[str]:
    assert response["status"] == "SUCCEEDED", response
    assert all(r["event"] == "ADD" for r in response["results"])
    return [r["id"] for r in response["results"]]


def test_construction_pings_and_resolves_the_tenant(service: ServiceProcess, key: str, tenant: str) -> None:
    client = MemoryClient(api_key=key, host=service.url)
    assert (client.org_id, client.project_id) == (tenant, tenant)
    client.client.close()


def test_a_wrong_key_fails_at_construction(service: ServiceProcess) -> None:
    # mem0ai 2.2.1 turns its ping's 401 into ValueError("Error: <detail>") in the constructor.
    with pytest.raises(ValueError, match="Invalid API key"):
        MemoryClient(api_key="m0sk_not-a-real-key", host=service.url)


def test_add_takes_a_string_a_message_or_a_list(mem0: MemoryClient) -> None:
    (from_string,) = added_ids(mem0.add("I love hiking in the Alps", user_id="alice"))
    (from_dict,) = added_ids(mem0.add({"role": "user", "content": "My sister is called Ana"}, user_id="alice"))
    from_list = added_ids(
        mem0.add(
            [
                {"role": "user", "content": "I work as a data engineer"},
                {"role": "assistant", "content": "Noted, data engineering."},
                {"role": "user", "content": "I drink green tea every morning"},
            ],
            user_id="alice",
        )
    )
    assert len(from_list) == 2  # without an LLM each user message is one memory; the assistant's is context
    assert mem0.get(from_string)["memory"] == "I love hiking in the Alps"
    assert mem0.get(from_dict)["memory"] == "My sister is called Ana"
    assert [mem0.get(i)["memory"] for i in from_list] == [
        "I work as a data engineer",
        "I drink green tea every morning",
    ]
    memory = mem0.get(from_string)
    assert memory["user_id"] == "alice"
    assert memory["metadata"] == {}
    assert memory["created_at"].endswith("Z")
    assert {"id", "memory", "user_id", "agent_id", "app_id", "run_id", "created_at", "updated_at"} <= set(memory)


def test_add_scopes_by_user_agent_run_and_app(mem0: MemoryClient) -> None:
    (full,) = added_ids(
        mem0.add("Prefers window seats", user_id="bob", agent_id="travel-bot", run_id="trip-7", app_id="booking")
    )
    (agent_only,) = added_ids(mem0.add("Always answer in French", agent_id="travel-bot"))
    (run_only,) = added_ids(mem0.add("The meeting moved to Friday", run_id="standup-3"))
    (via_filters,) = added_ids(mem0.add("Likes spicy food", AddMemoryOptions(filters={"user_id": "carol"})))
    got = mem0.get(full)
    assert (got["user_id"], got["agent_id"], got["run_id"], got["session_id"], got["app_id"]) == (
        "bob",
        "travel-bot",
        "trip-7",
        "trip-7",
        "booking",
    )
    assert (mem0.get(agent_only)["user_id"], mem0.get(agent_only)["agent_id"]) == ("default", "travel-bot")
    assert mem0.get(run_only)["run_id"] == "standup-3"
    assert mem0.get(via_filters)["user_id"] == "carol"
    by_agent = mem0.get_all(filters={"agent_id": "travel-bot"})
    assert {m["id"] for m in by_agent["results"]} == {full, agent_only}
    with pytest.raises(ValidationError, match="user_id, agent_id, run_id or app_id"):
        mem0.add("Nobody's memory")


def test_add_keeps_metadata_as_given(mem0: MemoryClient) -> None:
    metadata = {"source": "chat", "priority": 3, "tags": ["a", "b"], "nested": {"k": 1}}
    (memory_id,) = added_ids(mem0.add("I moved to Lisbon", user_id="dan", metadata=metadata))
    assert mem0.get(memory_id)["metadata"] == metadata


def test_add_refuses_platform_only_parameters_by_name(mem0: MemoryClient) -> None:
    with pytest.raises(ValidationError, match="custom_instructions"):
        mem0.add("Hello", user_id="erin", custom_instructions="only facts about food")
    with pytest.raises(ValidationError, match="expiration_date"):
        mem0.add("Hello", user_id="erin", expiration_date="2030-01-01")
    assert mem0.get_all(filters={"user_id": "erin"})["count"] == 0


def test_add_in_async_mode_is_queued_and_its_event_succeeds(
    service: ServiceProcess, mem0: MemoryClient, key: str, other_key: str
) -> None:
    queued = mem0.add("I am learning the cello", user_id="fay", async_mode=True)
    assert queued["status"] == "PENDING"
    body = wait_for_event(service, key, queued["event_id"])
    assert body["status"] == "SUCCEEDED", body
    assert body["event_type"] == "ADD"
    (result,) = body["results"]
    assert mem0.get(result["id"])["memory"] == "I am learning the cello"
    with platform_http(service, other_key) as other:
        assert other.get(f"/v1/event/{queued['event_id']}/").status_code == 404


def test_another_tenants_memory_is_not_found(mem0: MemoryClient, other_mem0: MemoryClient) -> None:
    (secret,) = added_ids(mem0.add("The vault code is 1234", user_id="gus"))
    with pytest.raises(MemoryNotFoundError):
        other_mem0.get(secret)
    with pytest.raises(MemoryNotFoundError):
        other_mem0.update(secret, text="hijacked")
    with pytest.raises(MemoryNotFoundError):
        other_mem0.delete(secret)
    with pytest.raises(MemoryNotFoundError):
        other_mem0.history(secret)
    with pytest.raises(MemoryNotFoundError):
        other_mem0.batch_delete([{"memory_id": secret}])
    assert other_mem0.get_all(filters={"user_id": "gus"})["count"] == 0
    assert other_mem0.search("vault code", filters={"user_id": "gus"})["results"] == []
    assert mem0.get(secret)["memory"] == "The vault code is 1234"


def test_get_all_pages_newest_first(mem0: MemoryClient) -> None:
    ids = [added_ids(mem0.add(f"Fact number {i} about Hana", user_id="hana"))[0] for i in range(5)]
    newest_first = list(reversed(ids))
    everything = mem0.get_all(filters={"user_id": "hana"})
    assert everything["count"] == 5
    assert [m["id"] for m in everything["results"]] == newest_first
    first = mem0.get_all(filters={"user_id": "hana"}, page=1, page_size=2)
    assert (first["count"], first["previous"]) == (5, None)
    assert "page=2" in first["next"]
    last = mem0.get_all(filters={"user_id": "hana"}, page=3, page_size=2)
    assert last["next"] is None
    assert "page=2" in last["previous"]
    pages = [mem0.get_all(filters={"user_id": "hana"}, page=p, page_size=2)["results"] for p in (1, 2, 3)]
    assert [m["id"] for page in pages for m in page] == newest_first
    with pytest.raises(ValidationError):
        mem0.get_all(filters={"user_id": "hana"}, page=0)


def test_search_ranks_the_users_memories(mem0: MemoryClient) -> None:
    added_ids(
        mem0.add(
            [
                {"role": "user", "content": "I play the guitar in a jazz band"},
                {"role": "user", "content": "My favourite food is ramen"},
                {"role": "user", "content": "I am allergic to peanuts"},
            ],
            user_id="ivan",
        )
    )
    added_ids(mem0.add("I play the drums in a jazz band", user_id="someone-else"))
    found = mem0.search("Which music does he play?", filters={"user_id": "ivan"}, top_k=2, threshold=0.0)
    results = found["results"]
    assert len(results) == 2
    assert results[0]["memory"] == "I play the guitar in a jazz band"
    assert all(r["user_id"] == "ivan" for r in results)
    assert results[0]["score"] >= results[1]["score"] > 0
    strict = mem0.search("Which music does he play?", filters={"user_id": "ivan"}, threshold=0.99)
    assert strict["results"] == []
    narrowed = mem0.search("ramen", filters={"user_id": "ivan"}, fields=["id", "memory"], threshold=0.0)
    assert set(narrowed["results"][0]) == {"id", "memory"}
    with pytest.raises(ValidationError, match="SEARCH_LIMIT"):
        mem0.search("ramen", filters={"user_id": "ivan"}, top_k=1000)


def test_update_text_and_metadata_and_the_history_records_it(mem0: MemoryClient) -> None:
    (memory_id,) = added_ids(mem0.add("I live in Berlin", user_id="jo", metadata={"source": "chat"}))
    updated = mem0.update(memory_id, text="I live in Hamburg")
    assert updated["memory"] == "I live in Hamburg"
    mem0.update(memory_id, metadata={"confidence": "high"})
    got = mem0.get(memory_id)
    assert got["memory"] == "I live in Hamburg"
    assert got["metadata"] == {"source": "chat", "confidence": "high"}
    assert got["updated_at"] > got["created_at"]
    assert [m["id"] for m in mem0.search("Hamburg", filters={"user_id": "jo"})["results"]] == [memory_id]
    history = mem0.history(memory_id)
    assert [(h["event"], h["old_memory"], h["new_memory"]) for h in history[:2]] == [
        ("ADD", None, "I live in Berlin"),
        ("UPDATE", "I live in Berlin", "I live in Hamburg"),
    ]
    assert all(h["memory_id"] == memory_id and h["user_id"] == "jo" for h in history)


def test_delete_removes_the_memory_and_keeps_its_history(mem0: MemoryClient) -> None:
    (memory_id,) = added_ids(mem0.add("My car is red", user_id="kim"))
    assert "deleted" in mem0.delete(memory_id)["message"]
    with pytest.raises(MemoryNotFoundError):
        mem0.get(memory_id)
    with pytest.raises(MemoryNotFoundError):
        mem0.delete(memory_id)
    assert [h["event"] for h in mem0.history(memory_id)] == ["ADD", "DELETE"]


def test_delete_all_by_ids_and_filters(mem0: MemoryClient) -> None:
    lea = added_ids(
        mem0.add([{"role": "user", "content": "Lea fact 1"}, {"role": "user", "content": "Lea fact 2"}], user_id="lea")
    )
    (keep,) = added_ids(mem0.add("Max keeps this", user_id="max", metadata={"kind": "keep"}))
    (drop,) = added_ids(mem0.add("Max drops this", user_id="max", metadata={"kind": "drop"}))
    (agent,) = added_ids(mem0.add("The agent's note", agent_id="helper"))
    with pytest.raises(ValidationError, match="at least one"):
        mem0.delete_all()
    mem0.delete_all(user_id="lea")
    for memory_id in lea:
        with pytest.raises(MemoryNotFoundError):
            mem0.get(memory_id)
    # The client sends filters as a query parameter; the server reads them.
    mem0.delete_all(filters={"AND": [{"user_id": "max"}, {"metadata": {"kind": "drop"}}]})
    with pytest.raises(MemoryNotFoundError):
        mem0.get(drop)
    assert mem0.get(keep)["memory"] == "Max keeps this"
    assert mem0.get(agent)["memory"] == "The agent's note"
    assert [h["event"] for h in mem0.history(drop)] == ["ADD", "DELETE"]


def test_users_lists_entities_and_delete_users_erases_them(mem0: MemoryClient, other_mem0: MemoryClient) -> None:
    added_ids(mem0.add("Nia likes tea", user_id="nia"))
    added_ids(mem0.add("Nia likes coffee too", user_id="nia", run_id="chat-1"))
    added_ids(mem0.add("Omar plays chess", user_id="omar", agent_id="coach", app_id="games"))
    added_ids(other_mem0.add("Other tenant's Nia", user_id="nia"))
    entities = {(e["type"], e["name"]): e for e in mem0.users()["results"]}
    assert set(entities) == {("user", "nia"), ("user", "omar"), ("agent", "coach"), ("app", "games"), ("run", "chat-1")}
    assert entities[("user", "nia")]["total_memories"] == 2
    assert mem0.users()["count"] == 5
    mem0.delete_users(user_id="nia")
    assert mem0.get_all(filters={"user_id": "nia"})["count"] == 0
    assert other_mem0.get_all(filters={"user_id": "nia"})["count"] == 1
    mem0.delete_users(agent_id="coach")
    assert mem0.get_all(filters={"user_id": "omar"})["count"] == 0
    # Entities are derived from memories: deleting one that has none is a no-op, not an error, so
    # reset() survives entities that an earlier deletion in its sequence already emptied.
    assert mem0.delete_users(user_id="nobody")["message"]
    added_ids(mem0.add("Pia's trip", user_id="pia", agent_id="planner", run_id="trip-1"))
    assert {e["type"] for e in mem0.users()["results"]} == {"user", "agent", "run"}
    assert mem0.reset()["message"]
    assert mem0.users()["results"] == []
    assert other_mem0.get_all(filters={"user_id": "nia"})["count"] == 1


def test_batch_update_and_delete_a_thousand(mem0: MemoryClient) -> None:
    ids: list[str] = []
    for start in range(0, 1000, 25):  # small adds: each embeds its messages within REQUEST_TIMEOUT
        messages = [{"role": "user", "content": f"Batch memory {i} of Quinn"} for i in range(start, start + 25)]
        ids += added_ids(mem0.add(messages, user_id="quinn"))
    assert len(ids) == 1000
    updates = [{"memory_id": memory_id, "metadata": {"batch": i}} for i, memory_id in enumerate(ids)]
    updates[0]["text"] = "Quinn's first memory, rewritten"
    assert mem0.batch_update(updates)["message"] == "Successfully updated 1000 memories"
    assert mem0.get(ids[0])["memory"] == "Quinn's first memory, rewritten"
    assert mem0.get(ids[999])["metadata"] == {"batch": 999}
    assert mem0.get_all(filters={"metadata": {"batch": {"gte": 500}}})["count"] == 500
    with pytest.raises(ValidationError, match="1000"):
        mem0.batch_update([{"memory_id": ids[0], "text": "x"}] * 1001)
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(MemoryNotFoundError, match=missing):
        mem0.batch_update([{"memory_id": ids[1], "text": "must not be applied"}, {"memory_id": missing, "text": "x"}])
    assert mem0.get(ids[1])["memory"] == "Batch memory 1 of Quinn"
    assert mem0.batch_delete([{"memory_id": i} for i in ids])["message"] == "Successfully deleted 1000 memories"
    assert mem0.get_all(filters={"user_id": "quinn"})["count"] == 0
    assert [h["event"] for h in mem0.history(ids[500])] == ["ADD", "UPDATE", "DELETE"]


def test_memory_export_create_and_get(mem0: MemoryClient, other_mem0: MemoryClient) -> None:
    ids = added_ids(
        mem0.add(
            [{"role": "user", "content": "Rae likes sailing"}, {"role": "user", "content": "Rae lives by the sea"}],
            user_id="rae",
        )
    )
    added_ids(mem0.add("Sam's unrelated memory", user_id="sam"))
    schema = {"type": "object", "properties": {"hobbies": {"type": "array", "items": {"type": "string"}}}}
    created = mem0.create_memory_export(schema=json.dumps(schema), filters={"AND": [{"user_id": "rae"}]})
    export = mem0.get_memory_export(memory_export_id=created["id"])
    assert export["id"] == created["id"]
    assert export["schema"] == schema
    assert sorted(m["id"] for m in export["memories"]) == sorted(ids)
    assert export["count"] == 2
    latest = mem0.get_memory_export(filters={"AND": [{"user_id": "rae"}]})
    assert latest["id"] == created["id"]
    with pytest.raises(MemoryNotFoundError):
        other_mem0.get_memory_export(memory_export_id=created["id"])
    with pytest.raises(ValidationError, match="schema"):
        mem0.create_memory_export(schema="not json", filters={"user_id": "rae"})


def test_feedback_is_stored_per_memory(service: ServiceProcess, mem0: MemoryClient, other_mem0: MemoryClient) -> None:
    (memory_id,) = added_ids(mem0.add("Tom prefers aisle seats", user_id="tom"))
    answer = mem0.feedback(memory_id, "positive", "exactly right")
    assert (answer["feedback"], answer["feedback_reason"]) == ("POSITIVE", "exactly right")
    mem0.feedback(memory_id, "VERY_NEGATIVE")
    with pytest.raises(MemoryNotFoundError):
        other_mem0.feedback(memory_id, "NEGATIVE")
    with psycopg.connect(embedded_conninfo(service.data_dir)) as conn:
        rows = conn.execute(
            "SELECT feedback, feedback_reason FROM memory_feedback WHERE memory_id = %s ORDER BY created_at",
            (memory_id,),
        ).fetchall()
    assert rows == [("POSITIVE", "exactly right"), ("VERY_NEGATIVE", None)]


def test_platform_only_methods_name_what_the_server_does_not_offer(mem0: MemoryClient) -> None:
    for call, feature in (
        (lambda: mem0.get_summary(filters={"user_id": "u"}), "summaries"),
        (lambda: mem0.get_profile("u"), "profiles"),
        (lambda: mem0.get_profile_settings(), "profiles"),
        (lambda: mem0.project.get(), "projects"),
        (lambda: mem0.update_project(custom_instructions="x"), "projects"),
    ):
        with pytest.raises(Mem0MemoryError) as raised:
            call()
        assert type(raised.value) is Mem0MemoryError  # not mistaken for a validation or not-found error
        assert "does not offer" in raised.value.message
        assert feature in raised.value.message
        assert raised.value.error_code == "HTTP_501"


def test_a_key_over_its_limit_raises_rate_limit_error_with_a_retry_time(
    service: ServiceProcess, admin: httpx.Client, tenant: str
) -> None:
    limited = MemoryClient(api_key=new_tenant_key(admin, tenant, rate_limit=3), host=service.url)  # the ping is 1
    limited.get_all(filters={"user_id": "u"})
    limited.get_all(filters={"user_id": "u"})
    with pytest.raises(RateLimitError) as raised:
        limited.get_all(filters={"user_id": "u"})
    assert raised.value.debug_info["retry_after"] >= 1
    assert "Rate limit exceeded" in raised.value.message
    limited.client.close()


def test_an_oversized_message_is_refused_as_quota_error(mem0: MemoryClient) -> None:
    with pytest.raises(MemoryQuotaExceededError, match="MAX_MEMORY_SIZE"):
        mem0.add("x" * 20_001, user_id="uma")  # the session's service has MAX_MEMORY_SIZE=20000
