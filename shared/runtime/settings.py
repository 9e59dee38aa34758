"""Settings read from the environment (and a `.env` file), validated at start-up.

Shared settings have the names SRE teams expect (`KAFKA_BOOTSTRAP_SERVERS`, `LOG_LEVEL`);
each service adds its own database URL (`INVENTORY_DATABASE_URL`, falling back to
`DATABASE_URL`) and its own options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
# The bounds of the service's ports, for the shared fields and each service's own per-service
# fields (which replace the shared field, bounds and all).
HttpPort = Annotated[int, Field(ge=0, le=65535)]
OpsPort = Annotated[int, Field(ge=1, le=65535)] | None
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", env_file=".env", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    enable_idempotence: bool = Field(
        default=True,
        description="Idempotent producer; the embedded Tansu broker cannot (InitProducerId fails).",
    )
    client_id_prefix: str = "lottrace"
    session_timeout_ms: int = Field(
        default=6_000,
        ge=1_000,
        description="A member that stops heartbeating (killed) keeps its partitions this long."
        " 6 s is the least Kafka accepts by default (group.min.session.timeout.ms): against the"
        " embedded broker a killed consumer's successor gets them back in ~11 s (18 s at 10 s).",
    )
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    linger_ms: int = Field(default=2, ge=0)
    fetch_max_wait_ms: int = Field(
        default=500,
        ge=1,
        description="How long the broker may hold a fetch for new data. Kafka answers as soon"
        " as data arrives; the embedded Tansu broker waits this long, so `make run` lowers it.",
    )
    fetch_min_bytes: int = Field(
        default=1,
        ge=1,
        description="How much data a broker waits for (up to `fetch_max_wait_ms`) before it"
        " answers a consumer's fetch. 1 answers at once; more makes fewer, larger batches"
        " under a steady load, each costing one transaction, for up to `fetch_max_wait_ms`"
        " more latency a hop while traffic is light.",
    )
    max_message_bytes: int = Field(
        default=900 * 1024,
        ge=10_000,
        description="The largest message (key, value and headers) produced or consumed: the"
        " contract's 900 KB. A cluster whose `max.message.bytes` is smaller lowers it; an"
        " event over it is refused when it is emitted (a recall notice is split to fit), and a"
        " consumed value over it is dead-lettered as `too_large`.",
    )

    @property
    def bootstrap_list(self) -> list[str]:
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]


def export_slots_of(pool: int) -> int:
    """How many exports a pool of `pool` connections serves at once, unless told: a third."""
    return max(1, pool // 3)


@dataclass(frozen=True)
class ExportLimits:
    """How exports share the pool: `slots` read at once, each waiting up to `wait_seconds`
    for its slot; one whose client takes nothing for `stall_seconds` is dropped. The
    defaults are the services' (a pool of 10)."""

    slots: int = export_slots_of(10)
    wait_seconds: float = 10.0
    stall_seconds: float = 300.0


class ServiceSettings(BaseSettings):
    """What every service shares; a service subclasses it and declares `database_url`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: SecretStr
    http_host: str = "127.0.0.1"
    http_port: HttpPort = 8080
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    event_source: str | None = Field(
        default=None, description="CloudEvents `source` of what this service emits."
    )
    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(
        default=10,
        ge=2,
        description="Connections of the pool; at least 2: an export may hold one for as long"
        " as its download takes.",
    )
    db_statement_timeout_ms: int = Field(default=30_000, ge=100)
    export_slots: int | None = Field(
        default=None,
        ge=1,
        description="Exports sent as they are read (the FSMA 204 sheet) at once. Each holds a"
        " pooled connection and a snapshot as long as its download takes; fewer than"
        " DB_POOL_MAX, so that the consumers and the API always have connections. Unset: a"
        " third of DB_POOL_MAX.",
    )
    export_wait_seconds: float = Field(
        default=ExportLimits.wait_seconds,
        ge=0,
        le=600,
        description="How long an export waits for a slot before it is refused with 503"
        " `exports_busy`.",
    )
    export_stall_seconds: float = Field(
        default=ExportLimits.stall_seconds,
        ge=1,
        le=86_400,
        description="An export whose client takes none of its bytes for this long is ended,"
        " and gives back its slot, connection and snapshot (which holds vacuum back).",
    )
    consumer_max_records: int = Field(default=500, ge=1, le=10_000)
    consumer_batch_timeout_ms: int = Field(default=50, ge=1)
    outbox_batch_size: int = Field(default=2_000, ge=1, le=50_000)
    inbox_retention_days: float = Field(default=30.0, gt=0)
    outbox_retention_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long published outbox rows are kept, to be published again if the"
        " broker loses its log. It bounds what a broker crash can lose while a consumer lags"
        " (a stopped service has this long to come back) and what one re-publishes.",
    )
    outbox_broker_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the relay reads back the last record it published to tell"
        " whether the broker lost its log (also at start and after any publish failure).",
    )
    migrate_on_start: bool = True
    max_request_bytes: int = Field(default=1_000_000, ge=1_024)
    auth_mode: Literal["required", "disabled"] = Field(
        default="required",
        description="`required`: every route but health, readiness and metrics needs an API key"
        " with the route's role; `disabled`: everything is open (demos only).",
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="JSON list of {name, roles, hash} entries (`lottrace hash-key` makes one).",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="YAML or JSON file of {name, roles, hash} entries, added to API_KEYS.",
    )
    ops_http_port: OpsPort = Field(
        default=None,
        description="When set, /healthz, /readyz and /metrics are served on this port only"
        " (not on the main port); unset, they are served, open, on the main port.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    metrics_sample_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often consumer lag and the outbox backlog and age are sampled into"
        " their gauges (see docs/observability.md).",
    )
    otel_enabled: bool = Field(
        default=False,
        description="Export OpenTelemetry traces (consumed batches, HTTP requests) over OTLP;"
        " off, nothing of OpenTelemetry's SDK is loaded.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL of the collector (spans go to `<url>/v1/traces`); unset,"
        " the exporter's own default and OTEL_EXPORTER_OTLP_TRACES_* variables apply.",
    )
    otel_service_name: str | None = Field(
        default=None, description="`service.name` of the spans; unset, `lottrace-<service>`."
    )
    otel_sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded; a request that carries a caller's trace"
        " follows the caller's decision.",
    )

    @field_validator("export_slots")
    @classmethod
    def _leaves_connections(cls, value: int | None, info: ValidationInfo) -> int | None:
        pool = info.data.get("db_pool_max")
        if value is not None and pool is not None and value >= pool:
            raise ValueError(f"must be less than DB_POOL_MAX ({pool})")
        return value

    @property
    def exports(self) -> ExportLimits:
        return ExportLimits(
            slots=self.export_slots or export_slots_of(self.db_pool_max),
            wait_seconds=self.export_wait_seconds,
            stall_seconds=self.export_stall_seconds,
        )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value


def per_service(service: str, name: str, default: Any, *, description: str | None = None) -> Any:
    """A field read from `<SERVICE>_<NAME>` first, then from the shared `<NAME>`."""
    return Field(
        default=default,
        validation_alias=AliasChoices(f"{service.upper()}_{name.upper()}", name.upper()),
        description=description,
    )


def database_url_field(service: str, *, port: int = 5432) -> Any:
    return per_service(
        service,
        "database_url",
        SecretStr(f"postgresql://postgres@127.0.0.1:{port}/lottrace_{service}"),
        description=f"PostgreSQL URL of the {service} projection.",
    )


def ops_port_field(service: str) -> Any:
    """`<SERVICE>_OPS_HTTP_PORT`, then `OPS_HTTP_PORT`; unset, operations share the main port."""
    return per_service(service, "ops_http_port", None)


S = TypeVar("S", bound=BaseSettings)


class InvalidSettings(Exception):
    """Settings the environment gives that a service cannot start with: one line a variable."""


def load_settings(settings_class: type[S]) -> S:
    """The settings from the environment (and `.env`). A refusal names each variable and what
    is wrong with it, never its value: it may be a URL with a password, or a key."""
    try:
        return settings_class()
    except ValidationError as error:
        prefix = "KAFKA_" if error.title == KafkaSettings.__name__ else ""
        lines = [
            f"{_variable(prefix, problem['loc'])}: {problem['msg']}"
            for problem in error.errors(include_url=False, include_input=False)
        ]
        raise InvalidSettings("\n".join(lines)) from None


def _variable(prefix: str, location: tuple[int | str, ...]) -> str:
    """The environment variable a validation error's location names: a field's own name
    (upper case, after its model's prefix) or the alias it was read from, as it stands."""
    first, *inner = location
    name = str(first) if str(first).isupper() else prefix + str(first).upper()
    return name + (f" ({'.'.join(map(str, inner))})" if inner else "")
