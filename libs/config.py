"""Configuration from environment variables, with local defaults.

Every variable is documented in the README's configuration table. A service reads its own
settings with ``Settings.from_env("catalog")``; nothing else in the code reads os.environ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.engine import URL, make_url

SERVICES: tuple[str, ...] = ("catalog", "inventory", "order", "member", "distribution", "gateway")

DEFAULT_GRPC_PORTS: dict[str, int] = {
    "catalog": 50051,
    "inventory": 50052,
    "order": 50053,
    "member": 50054,
    "distribution": 50055,
    "gateway": 50056,
}
DEFAULT_METRICS_PORTS: dict[str, int] = {name: 9101 + index for index, name in enumerate(SERVICES)}
DEFAULT_GATEWAY_HTTP_PORT = 8080
DEFAULT_BROKER_PORT = 9092
# Event loops a process may run on (libs/event_loop.py); uvloop costs less CPU per call.
EVENT_LOOPS: tuple[str, ...] = ("uvloop", "asyncio")
# Calls one gRPC server process works on at once; the next is refused with RESOURCE_EXHAUSTED
# at once rather than queued towards its caller's deadline.
DEFAULT_GRPC_MAX_CONCURRENT_RPCS = 1000


class ConfigError(ValueError):
    """A configuration variable is missing or malformed."""


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key} must be true or false, got {raw!r}")


def _positive(env: Mapping[str, str], key: str, default: int) -> int:
    value = _int(env, key, default)
    if value < 1:
        raise ConfigError(f"{key} must be at least 1, got {value}")
    return value


def _ratio(env: Mapping[str, str], key: str, default: float) -> float:
    value = _float(env, key, default)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key} must be between 0 and 1, got {value}")
    return value


def event_loop(env: Mapping[str, str]) -> str:
    """OMNI_EVENT_LOOP: the event loop of a process (the runner's too)."""
    name = env.get("OMNI_EVENT_LOOP", "").strip().lower() or EVENT_LOOPS[0]
    if name not in EVENT_LOOPS:
        raise ConfigError(f"OMNI_EVENT_LOOP must be one of {EVENT_LOOPS}, got {name!r}")
    return name


@dataclass(frozen=True)
class Settings:
    """Everything one service process needs to know about its surroundings."""

    service: str
    pg_dsn: str | None
    database_url_override: str | None
    database_prefix: str
    kafka_bootstrap: str | None
    topic_prefix: str
    grpc_host: str
    grpc_port: int
    metrics_host: str
    metrics_port: int
    gateway_http_port: int
    peer_addresses: Mapping[str, str]
    metrics_addresses: Mapping[str, str]
    log_level: str
    otlp_endpoint: str | None
    trace_file: str | None
    # Head sampling of new traces when spans are exported (a call's trace follows its caller).
    trace_sample_ratio: float
    # A span per SQL statement (asyncpg): off by default, it costs ≈ 30 % of a hot path.
    trace_sql: bool
    # Successful calls slower than this are logged at INFO (faster ones at DEBUG).
    slow_rpc_seconds: float
    grpc_max_concurrent_rpcs: int
    event_loop: str
    shutdown_drain_seconds: float
    shutdown_grace_seconds: float
    rpc_deadline_seconds: float
    state_dir: Path
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Settings:
        if service not in SERVICES:
            raise ConfigError(f"unknown service {service!r}; expected one of {SERVICES}")
        env = os.environ if env is None else env
        upper = service.upper()
        grpc_host = env.get("OMNI_GRPC_HOST", "127.0.0.1")
        peers = {
            name: env.get(f"OMNI_{name.upper()}_ADDR", f"127.0.0.1:{DEFAULT_GRPC_PORTS[name]}")
            for name in SERVICES
        }
        metrics_ports = {
            name: _int(env, f"OMNI_{name.upper()}_METRICS_PORT", DEFAULT_METRICS_PORTS[name])
            for name in SERVICES
        }
        metrics_addresses = {
            name: env.get(f"OMNI_{name.upper()}_METRICS_ADDR", f"127.0.0.1:{metrics_ports[name]}")
            for name in SERVICES
        }
        return cls(
            service=service,
            pg_dsn=env.get("OMNI_PG_DSN") or None,
            database_url_override=env.get(f"OMNI_{upper}_DATABASE_URL") or None,
            database_prefix=env.get("OMNI_DATABASE_PREFIX", "omni_"),
            kafka_bootstrap=env.get("OMNI_KAFKA_BOOTSTRAP") or None,
            topic_prefix=env.get("OMNI_TOPIC_PREFIX", ""),
            grpc_host=grpc_host,
            grpc_port=_int(env, f"OMNI_{upper}_GRPC_PORT", DEFAULT_GRPC_PORTS[service]),
            metrics_host=env.get("OMNI_METRICS_HOST", "127.0.0.1"),
            metrics_port=metrics_ports[service],
            gateway_http_port=_int(env, "OMNI_GATEWAY_HTTP_PORT", DEFAULT_GATEWAY_HTTP_PORT),
            peer_addresses=peers,
            metrics_addresses=metrics_addresses,
            log_level=env.get("OMNI_LOG_LEVEL", "INFO").upper(),
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            trace_file=env.get("OMNI_TRACE_FILE") or None,
            trace_sample_ratio=_ratio(env, "OMNI_TRACE_SAMPLE_RATIO", 1.0),
            trace_sql=_bool(env, "OMNI_TRACE_SQL", False),
            slow_rpc_seconds=_float(env, "OMNI_SLOW_RPC_SECONDS", 1.0),
            grpc_max_concurrent_rpcs=_positive(
                env, "OMNI_GRPC_MAX_CONCURRENT_RPCS", DEFAULT_GRPC_MAX_CONCURRENT_RPCS
            ),
            event_loop=event_loop(env),
            shutdown_drain_seconds=_float(env, "OMNI_SHUTDOWN_DRAIN_SECONDS", 1.0),
            shutdown_grace_seconds=_float(env, "OMNI_SHUTDOWN_GRACE_SECONDS", 10.0),
            rpc_deadline_seconds=_float(env, "OMNI_RPC_DEADLINE_SECONDS", 5.0),
            state_dir=Path(env.get("OMNI_STATE_DIR", ".omni")),
            extra={k: v for k, v in env.items() if k.startswith(f"OMNI_{upper}_")},
        )

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def database_name(self) -> str:
        return f"{self.database_prefix}{self.service}"

    def database_url(self) -> URL:
        """The SQLAlchemy (asyncpg) URL of this service's own database."""
        if self.database_url_override:
            return make_url(self.database_url_override).set(drivername="postgresql+asyncpg")
        if not self.pg_dsn:
            raise ConfigError(
                "OMNI_PG_DSN is not set: point it at a PostgreSQL server "
                "(or start everything with `make run`, which embeds one)"
            )
        return make_url(self.pg_dsn).set(
            drivername="postgresql+asyncpg", database=self.database_name
        )

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap:
            raise ConfigError(
                "OMNI_KAFKA_BOOTSTRAP is not set: point it at a Kafka broker "
                "(or start everything with `make run`, which embeds one)"
            )
        return self.kafka_bootstrap

    def topic(self, producing_service: str) -> str:
        """The topic a service publishes its events to: one per producing service."""
        return f"{self.topic_prefix}omni.{producing_service}.v1"

    def dead_letter_topic(self) -> str:
        """Where this service's consumers park events they cannot apply."""
        return f"{self.topic_prefix}omni.{self.service}.dlq"

    def consumer_group(self, purpose: str) -> str:
        return f"{self.topic_prefix}omni.{self.service}.{purpose}"


def all_topics(topic_prefix: str = "") -> list[str]:
    """Every topic the platform uses: one per producing service, one dead-letter per service."""
    topics = [f"{topic_prefix}omni.{name}.v1" for name in SERVICES]
    topics += [f"{topic_prefix}omni.{name}.dlq" for name in SERVICES]
    return topics
