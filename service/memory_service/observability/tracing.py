"""OpenTelemetry traces, exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Spans come from the official instrumentations (FastAPI requests, psycopg queries, Redis calls)
and from the service's own spans around mem0 operations, embeddings and vector-store calls. With
no endpoint the API's no-op tracer stays in place: spans cost nothing and nothing is exported.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from opentelemetry import trace

from memory_service import __version__
from memory_service.settings import Settings

log = logging.getLogger(__name__)
_configured = False


def configure_tracing(settings: Settings, app: FastAPI) -> bool:
    """Install the SDK, the exporter and the instrumentations; True when tracing is on."""
    global _configured
    if not settings.otel_exporter_otlp_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if not _configured:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        resource = Resource.create(
            {
                "service.name": settings.otel_service_name,
                "service.version": __version__,
                "deployment.environment": settings.app_env,
            }
        )
        provider = TracerProvider(resource=resource)
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)
        PsycopgInstrumentor().instrument(enable_commenter=False)
        RedisInstrumentor().instrument()
        _configured = True
        log.info("tracing enabled, exporting to %s", endpoint)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporter at shutdown, so the last batch of spans is not lost."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()
