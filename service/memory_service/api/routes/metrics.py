"""Prometheus exposition, admin keys only, not rate limited (scrapers poll it)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from memory_service.api.deps import ScraperPrincipal
from memory_service.api.envelope import error_responses
from memory_service.observability.metrics import render

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Performance metrics (Prometheus text format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **error_responses(401, 403)},
)
async def metrics(admin: ScraperPrincipal) -> Response:
    body, content_type = render()
    return Response(body, media_type=content_type)
