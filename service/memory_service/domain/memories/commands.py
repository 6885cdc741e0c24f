"""The add command and its outcome: what an add needs and gives, whoever asks for it.

The HTTP routes, the job runner (asynchronous adds) and other surfaces build the same command,
so an add behaves the same whichever way it arrives; a queued job stores the command as JSON and
its outcome likewise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from memory_service.models.memory import MemoryRecord
from memory_service.models.scope import Scope


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    name: str | None = None

    def to_json(self) -> dict[str, str]:
        data = {"role": self.role, "content": self.content}
        if self.name:
            data["name"] = self.name
        return data


@dataclass(frozen=True, slots=True)
class AddCommand:
    """One add: messages for a user (already resolved: never None), validated by the caller."""

    user_id: str
    messages: tuple[Message, ...]
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    infer: bool | None = None
    app_id: str | None = None

    def scope(self, tenant: str) -> Scope:
        return Scope(tenant, self.user_id, self.agent_id, self.run_id, self.app_id)

    def to_json(self) -> dict[str, Any]:
        """The stored form of a queued add (the same shape as the HTTP request body)."""
        data: dict[str, Any] = {"messages": [m.to_json() for m in self.messages], "user_id": self.user_id}
        for name in ("agent_id", "run_id", "app_id", "infer"):
            if (value := getattr(self, name)) is not None:
                data[name] = value
        if self.metadata:
            data["metadata"] = self.metadata
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AddCommand:
        return cls(
            user_id=str(data["user_id"]),
            messages=tuple(Message(m["role"], m["content"], m.get("name")) for m in data["messages"]),
            agent_id=data.get("agent_id"),
            run_id=data.get("run_id"),
            metadata=dict(data.get("metadata") or {}),
            infer=data.get("infer"),
            app_id=data.get("app_id"),
        )


# "none": stored as given; "extracted": facts from the LLM; "fallback": the LLM gave nothing, stored as given.
Inference = Literal["none", "extracted", "fallback"]


@dataclass(slots=True)
class AddOutcome:
    memories: list[MemoryRecord]
    inference: Inference

    def to_json(self) -> dict[str, Any]:
        """A finished job's stored result (the shape of the synchronous add's `data`)."""
        return {
            "memories": [m.to_json() for m in self.memories],
            "count": len(self.memories),
            "inference": self.inference,
        }
