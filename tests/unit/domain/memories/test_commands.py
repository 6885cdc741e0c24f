"""The add command and its outcome: the JSON a queued add is stored as, and back."""

from __future__ import annotations

from memory_service.domain.memories.commands import AddCommand, AddOutcome, Message
from memory_service.models.memory import MemoryRecord
from memory_service.models.scope import Scope


def test_a_full_command_round_trips_through_its_stored_json() -> None:
    command = AddCommand(
        user_id="alice",
        messages=(Message("user", "I like tea", name="Al"), Message("assistant", "Noted")),
        agent_id="bot",
        run_id="r1",
        metadata={"source": "chat", "priority": 3},
        infer=False,
    )
    stored = command.to_json()
    assert stored == {
        "messages": [
            {"role": "user", "content": "I like tea", "name": "Al"},
            {"role": "assistant", "content": "Noted"},
        ],
        "user_id": "alice",
        "agent_id": "bot",
        "run_id": "r1",
        "infer": False,
        "metadata": {"source": "chat", "priority": 3},
    }
    assert AddCommand.from_json(stored) == command


def test_absent_fields_stay_out_of_the_stored_json() -> None:
    command = AddCommand(user_id="alice", messages=(Message("user", "hi"),))
    assert command.to_json() == {"messages": [{"role": "user", "content": "hi"}], "user_id": "alice"}
    restored = AddCommand.from_json(command.to_json())
    assert restored == command
    assert restored.infer is None  # "not said" is not "false": the server's default decides


def test_from_json_accepts_the_http_body_shape() -> None:
    command = AddCommand.from_json(
        {"messages": [{"role": "user", "content": "x"}], "user_id": 42, "metadata": None, "infer": True}
    )
    assert command.user_id == "42"
    assert command.metadata == {}
    assert command.infer is True
    assert command.messages == (Message("user", "x", None),)


def test_the_scope_is_the_tenant_with_the_commands_ids() -> None:
    command = AddCommand(user_id="alice", messages=(), agent_id="bot", run_id="r1")
    assert command.scope("acme") == Scope("acme", "alice", "bot", "r1")
    assert command.scope("acme").user_key == "acme/alice"


def test_the_outcome_is_the_synchronous_adds_data() -> None:
    record = MemoryRecord(
        id="6f1c0a52-5f0e-4a55-9d2e-2a6b7b1f3c11",
        content="likes tea",
        user_id="alice",
        agent_id=None,
        run_id=None,
        metadata={"source": "api", "entities": []},
        relationships=[],
        created_at="2025-07-30T20:15:00Z",
        updated_at=None,
        score=0.5,
        tenant="acme",
    )
    assert AddOutcome([record], "none").to_json() == {
        "memories": [
            {
                "id": "6f1c0a52-5f0e-4a55-9d2e-2a6b7b1f3c11",
                "content": "likes tea",
                "user_id": "alice",
                "agent_id": None,
                "run_id": None,
                "metadata": {"source": "api", "entities": []},
                "relationships": [],
                "created_at": "2025-07-30T20:15:00Z",
                "updated_at": None,
            }
        ],
        "count": 1,
        "inference": "none",
    }
