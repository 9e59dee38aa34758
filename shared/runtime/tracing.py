"""OpenTelemetry tracing, off unless OTEL_ENABLED.

On, a process gets one TracerProvider (`service.name` OTEL_SERVICE_NAME, else
`lottrace-<service>`) that exports over OTLP/HTTP through a batch span processor (protobuf over
HTTP: no gRPC runtime in the image), sampling OTEL_SAMPLE_RATIO of the traces that do not
follow a caller's decision. It becomes the global provider, which is what FastAPI's own
request tracing uses, and FastStream's KafkaTelemetryMiddleware gets it on the service's
broker: every consumed batch is a consumer span `<topic> process` around the batch's database
transaction and offset commit. Spans still queued at exit are exported by the SDK's exit hook.

Off, nothing here imports OpenTelemetry's SDK, its exporter or FastStream's telemetry module:
neither their import time nor their memory is paid. (FastAPI itself always imports
`opentelemetry-api`, a few modules of no-op interfaces.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.runtime.logging import get_logger

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker
    from opentelemetry.sdk.trace import TracerProvider

    from shared.runtime.settings import ServiceSettings

log = get_logger(__name__)

TRACES_PATH = "/v1/traces"

# The global provider can be set once per process; services built again in the same process
# (tests, tools) share the first one.
_process: dict[str, TracerProvider] = {}


def service_name(settings: ServiceSettings, service: str) -> str:
    return settings.otel_service_name or f"lottrace-{service}"


def traces_endpoint(settings: ServiceSettings) -> str | None:
    """Where spans are sent: OTEL_EXPORTER_OTLP_ENDPOINT plus `/v1/traces`, as the OTLP
    specification defines the base URL; None leaves it to the exporter's own defaults."""
    base = settings.otel_exporter_otlp_endpoint
    if not base:
        return None
    return base.rstrip("/") + TRACES_PATH


def setup_tracing(
    settings: ServiceSettings, *, service: str, broker: KafkaBroker | None
) -> TracerProvider | None:
    """Trace the service when OTEL_ENABLED; returns the provider, None when off."""
    if not settings.otel_enabled:
        return None
    provider = process_tracer_provider(settings, service=service)
    if broker is not None:
        instrument_broker(broker, provider)
    return provider


def process_tracer_provider(settings: ServiceSettings, *, service: str) -> TracerProvider:
    """The process's provider, made and installed globally on first use."""
    if "provider" in _process:
        return _process["provider"]
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as missing:
        raise RuntimeError(
            "OTEL_ENABLED=true needs opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http"
            f" ({missing.name} is missing)"
        ) from missing

    name = service_name(settings, service)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: name}),
        sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio)),
    )
    endpoint = traces_endpoint(settings)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        log.warning("another global tracer provider was set first: HTTP spans go there")
    _process["provider"] = provider
    log.info(
        "tracing enabled",
        service_name=name,
        endpoint=endpoint or "exporter default",
        sample_ratio=settings.otel_sample_ratio,
    )
    return provider


def instrument_broker(broker: KafkaBroker, provider: TracerProvider) -> None:
    """A span per consumed batch (and per publish, should the broker ever publish)."""
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    # The Prometheus metrics already count messages: no OpenTelemetry meters.
    broker.add_middleware(
        KafkaTelemetryMiddleware(tracer_provider=provider, include_messages_counters=False)
    )


def trace_headers() -> list[tuple[str, bytes]]:
    """The current span's W3C trace context (`traceparent`, `tracestate`) as Kafka headers,
    for the events a unit of work writes to the outbox: the consumer's span then continues
    the trace that caused them. Empty when tracing is off."""
    if not _process:
        return []
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]
