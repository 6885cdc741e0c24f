"""An asynchronous job as stored: its state, the command it runs, and its result or error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

JobState = Literal["queued", "running", "succeeded", "failed"]  # the jobs table's CHECK holds it to these


@dataclass(slots=True)
class Job:
    id: str
    tenant: str
    kind: str
    state: JobState
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> Job:
        return cls(str(row[0]), *row[1:])
