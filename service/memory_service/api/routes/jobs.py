"""Jobs: the state and outcome of an asynchronous add (`POST /v1/memories?async=true`)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from memory_service.api.deps import CurrentPrincipal, ServicesDep
from memory_service.api.envelope import Envelope, ErrorBody, error_responses, ok
from memory_service.api.schemas import AddedMemories
from memory_service.core.timefmt import rfc3339
from memory_service.errors import ServiceUnavailable
from memory_service.models.jobs import Job, JobState
from memory_service.services.container import Services
from memory_service.services.jobs import JobRunner

router = APIRouter(prefix="/jobs", tags=["jobs"])


def status_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


class JobAccepted(BaseModel):
    job_id: str
    state: JobState = Field(examples=["queued"])
    status_url: str = Field(examples=["/v1/jobs/9b2f7c1e-0d4a-4c55-8e0b-1f2a3b4c5d6e"])


class JobOut(BaseModel):
    job_id: str
    kind: Literal["add"]
    state: JobState
    attempts: int = Field(description="Attempts started so far (a job whose backend is down is retried)")
    created_at: str
    started_at: str | None
    finished_at: str | None
    status_url: str
    result: AddedMemories | None = Field(description="When succeeded: what the synchronous add returns")
    error: ErrorBody | None = Field(
        description="When failed (or queued for a retry): the error, as the envelope shows it"
    )

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            job_id=job.id,
            kind="add",
            state=job.state,
            attempts=job.attempts,
            created_at=rfc3339(job.created_at),
            started_at=rfc3339(job.started_at),
            finished_at=rfc3339(job.finished_at),
            status_url=status_url(job.id),
            result=AddedMemories.model_validate(job.result) if job.result is not None else None,
            error=ErrorBody.model_validate(job.error) if job.error is not None else None,
        )


def job_runner(services: Services) -> JobRunner:
    """The process's job runner, or 503 where jobs do not run."""
    if services.jobs is None:
        raise ServiceUnavailable("jobs", "asynchronous jobs are not running in this process")
    return services.jobs


async def get_jobs(services: ServicesDep) -> JobRunner:
    return job_runner(services)


JobsDep = Annotated[JobRunner, Depends(get_jobs)]


@router.get("/{job_id}", summary="State and result of an asynchronous add", responses=error_responses(401, 404, 429))
async def get_job(job_id: str, principal: CurrentPrincipal, jobs: JobsDep) -> Envelope[JobOut]:
    job = await asyncio.to_thread(jobs.get, principal.tenant, job_id)
    return ok(JobOut.of(job), f"Job {job.state}")
