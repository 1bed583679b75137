"""One settings object, built in `main()` from flags and PROCENGINE_* environment variables, passed down.

pydantic-settings reads the environment (PROCENGINE_REDIS_URL, PROCENGINE_API_TOKENS="tokA=tenantA,...")
so that flags, env and defaults meet in one typed place.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from procengine.runtime.collector import parse_thresholds
from procengine.store.redis_url import RedisTls, parse_redis_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROCENGINE_", frozen=True, extra="ignore")

    redis_url: str | None = None
    """External Redis; None starts the embedded redis-server under `data_dir`."""
    data_dir: Path = Path(".procengine")
    embedded_unix_socket: bool = True
    """The node reaches the embedded redis-server over its unix socket (`<data_dir>/redis.sock`), which saves the
    loopback TCP stack on every round trip; false: over TCP on 127.0.0.1 (the server listens on both). Not used with
    `redis_url` (a `unix:///path/redis.sock` URL names a socket of any Redis)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    prefix: str = Field(default="procengine", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    api_tokens: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """Bearer token -> tenant. Empty: single tenant `default`, loopback only."""
    handlers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Modules imported at start so that their @task handlers register."""

    http_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hosts (`host` or `host:port`) the built-in `http` task handler may call; none by default."""
    definitions: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    """Definition files registered at start (in every configured tenant, or `default`)."""

    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_nesting_depth: int = Field(default=64, ge=8, le=128)
    """How deep JSON or YAML input may nest (objects and lists in one another): variables, signal payloads,
    definitions and every other body; deeper is refused with 422 naming the limit. At most 128, so that whatever
    was accepted can be shown whole (procengine/depth.py)."""
    max_connections: int = Field(default=4096, gt=0)
    """Connections the front door holds open at once; one more is answered 503 and closed."""
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    """How long a request's line and headers may take to arrive, from the connection's opening or the first byte
    of the request; a slower one gets 408 and its connection is closed."""
    http_keepalive_timeout_s: float = Field(default=75.0, gt=0)
    """How long an idle keep-alive connection stays open (keep it above a proxy's own upstream idle timeout)."""
    max_snapshot_bytes: int = Field(default=2_097_152, ge=65_536)
    """The most an execution's memory snapshot (variables, node outputs, waiting signals) may take, msgpack-encoded:
    a task output, a value or a signal that would push it over fails its element (LimitExceeded) or is refused."""
    retention: str = "7d"
    """How long a finished execution (completed, failed, cancelled) and everything it owns stay in Redis: a
    duration such as 7d, 12h, 30m, 90s or 500ms."""
    retention_for: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """Per tenant, a retention of its own (TENANT=DURATION)."""
    on_exhausted: Literal["fail", "pause"] = "fail"
    """What an element's failure for good does when no catch takes it and the element has no `onExhausted` of its
    own: `fail` the execution, or `pause` it with the element held as failed (resume retries it)."""
    on_exhausted_for: Annotated[dict[str, Literal["fail", "pause"]], NoDecode] = Field(default_factory=dict)
    """Per tenant, an `on_exhausted` of its own (TENANT=fail|pause)."""
    sweep_interval_ms: int = Field(default=60_000, gt=0)
    """How often a node takes executions whose retention is over out of the tenants' indexes."""
    fire_schedules: bool = True
    """Whether this node fires schedules (node/schedule_loop.py); false: it serves their API only, other nodes fire
    them (PROCENGINE_FIRE_SCHEDULES=false)."""
    max_definition_elements: int = Field(default=1000, gt=0)
    """Elements one definition may have (nested ones counted): more is refused at registration (422)."""
    max_variables: int = Field(default=1000, gt=0)
    """Start variables one execution may be given (422 beyond)."""
    max_signal_bytes: int = Field(default=262_144, gt=0)
    """The most a signal's payload may take, msgpack-encoded (413 beyond)."""
    max_pending_signals: int = Field(default=1000, gt=0)
    """Signals that may wait in one execution for a wait-signal to take them (422 beyond)."""
    max_starts_per_second: int = Field(default=5000, ge=0)
    """Starts a tenant may make per second, over all nodes (429 with Retry-After beyond; 0: no limit)."""
    max_event_streams: int = Field(default=100, gt=0)
    """Event streams (server-sent events) a node serves at once; more are answered 503."""
    max_foreach_items: int = Field(default=10_000, gt=0)
    """The most items one for-each takes: a longer list fails the element (LimitExceeded)."""
    max_expression_cost: int = Field(default=1_000_000, gt=0)
    """The most one CEL evaluation may cost, estimated before it runs: more fails the element (LimitExceeded)."""
    checkpoint_coalesce: int = Field(default=32, ge=1, le=256)
    """The most consecutive pure elements (set-variable, if-condition, switch) of one lane written in one checkpoint
    (docs/architecture.md, "Pure runs"); 1: every element its own checkpoint."""
    history_checkpoints: int = Field(default=50, ge=0, le=10_000)
    """How many of its last checkpoints each execution keeps (rewind, fork, diff: docs/repair.md); 0: none."""
    history_bytes: int = Field(default=256 * 1024, ge=0)
    """The most bytes one execution's kept checkpoints may take in Redis (the oldest go first); 0: none."""
    pause_grace_ms: int = Field(default=5_000, ge=0)
    """How long pause lets a running task finish before cancelling and re-queueing it."""
    passivate_after_ms: int = Field(default=30_000, ge=0)
    """Paused and finished actors leave memory after this idle time."""
    node_heartbeat_ms: int = Field(default=1_000, gt=0)
    node_ttl_ms: int = Field(default=5_000, gt=0)
    """A node whose heartbeat key is older than this is dead; its executions are adopted."""
    reconcile_interval_ms: int = Field(default=2_000, gt=0)
    store_check_interval_ms: int = Field(default=1_000, gt=0)
    """How often a node checks that Redis kept its data (store identity, id counters: a few GETs)."""
    node_crash_limit: int = Field(default=3, ge=1)
    """An execution in whose middle this many nodes in a row stopped (killed, crashed, or cut off from Redis past
    their heartbeat's TTL) with no progress in between is failed (NodeCrashed) instead of adopted again: one
    execution that crashes whatever node runs it takes down this many nodes, not the cluster."""
    log_maxlen: int = Field(default=10_000, gt=0)
    mailbox_size: int = Field(default=256, gt=0)
    redis_tls_ca: Path | None = None
    """PEM file of the CA that signed the Redis servers' certificates (a private CA), for a rediss URL: the one
    server, the sentinels and their master, every cluster node. None: the system's CAs."""
    redis_tls_cert: Path | None = None
    """PEM file of this node's client certificate, for a Redis that asks for one (tls-auth-clients yes)."""
    redis_tls_key: Path | None = None
    """PEM file of the client certificate's private key (leave out if it is in the certificate's file)."""
    redis_timeout_s: float = Field(default=5.0, gt=0)
    redis_retries: int = Field(default=3, ge=0)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    """json: one JSON object a line (for log search); text: for people at a terminal."""
    durability: Literal["local", "replicated"] = "local"
    """local: a write is acknowledged once the Redis master has it (a failover may lose the last ones);
    replicated: once a replica has it too (WAIT 1 after every transition and checkpoint)."""
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """auto: uvloop where it is installed (a dependency except on Windows), else asyncio's own loop."""
    gc_thresholds: str = "20000,20,20"
    """Python's garbage-collector thresholds for `serve`: "20000,20,20" (runtime/collector.py THRESHOLDS: full
    collections rare, which were most of a start's CPU); "default" keeps Python's own (700,10,10)."""

    @field_validator("gc_thresholds")
    @classmethod
    def _check_gc_thresholds(cls, value: str) -> str:
        parse_thresholds(value)  # ValueError names what is wrong
        return value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_token_pairs(value.split(","))
        return value

    @field_validator("definitions", mode="before")
    @classmethod
    def _parse_definitions(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(part.strip()) for part in value.split(",") if part.strip()]
        return value

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, value: str) -> str:
        duration_ms(value)  # its ValueError says what is wrong
        return value

    @field_validator("retention_for", mode="before")
    @classmethod
    def _parse_retention_for(cls, value: object) -> object:
        pairs = value.split(",") if isinstance(value, str) else value
        if isinstance(pairs, list):
            value = parse_pairs([str(pair) for pair in pairs], "retention", "TENANT=DURATION")
        if isinstance(value, dict):
            for duration in value.values():
                duration_ms(str(duration))
        return value

    @field_validator("on_exhausted_for", mode="before")
    @classmethod
    def _parse_on_exhausted_for(cls, value: object) -> object:
        pairs = value.split(",") if isinstance(value, str) else value
        if isinstance(pairs, list):
            value = parse_pairs([str(pair) for pair in pairs], "on-exhausted", "TENANT=fail|pause")
        return value

    @field_validator("http_allow", mode="before")
    @classmethod
    def _parse_http_allow(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            # here, not at the top: every command reads settings, only serve needs the http handler's aiohttp
            from procengine.tasks.http import parse_allow_entry

            for entry in value:
                parse_allow_entry(str(entry))  # its ValueError names what is wrong
        return value

    @field_validator("handlers", mode="before")
    @classmethod
    def _parse_handlers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _names_a_redis(cls, value: str | None) -> str | None:
        if value is not None:
            parse_redis_url(value)  # its ValueError says what is wrong
        return value

    @model_validator(mode="after")
    def _tls_files_are_usable(self) -> Settings:
        if self.redis_tls_ca is None and self.redis_tls_cert is None and self.redis_tls_key is None:
            return self
        if self.redis_url is None:
            raise ValueError("--redis-tls-* need a rediss:// --redis-url; the embedded Redis does not use TLS")
        self.redis_tls.check_url(parse_redis_url(self.redis_url))
        if self.redis_tls_key is not None and self.redis_tls_cert is None:
            raise ValueError("--redis-tls-key is given without --redis-tls-cert")
        check_tls_files(self.redis_tls_ca, self.redis_tls_cert, self.redis_tls_key)
        return self

    @model_validator(mode="after")
    def _replicated_needs_replicas(self) -> Settings:
        if self.durability == "replicated":
            if self.redis_url is None:
                raise ValueError(
                    "durability replicated needs a Redis with a replica (--redis-url); the embedded one has none"
                )
            if parse_redis_url(self.redis_url).kind == "cluster":
                raise ValueError("durability replicated is not supported on Redis Cluster yet: use Sentinel, or local")
        return self

    @property
    def redis_tls(self) -> RedisTls:
        """The TLS files for every connection to Redis."""
        return RedisTls(
            *(
                str(path) if path is not None else None
                for path in (self.redis_tls_ca, self.redis_tls_cert, self.redis_tls_key)
            )
        )

    @property
    def single_tenant(self) -> bool:
        return not self.api_tokens

    @property
    def tenants(self) -> list[str]:
        return sorted(set(self.api_tokens.values())) if self.api_tokens else ["default"]

    def on_exhausted_of(self, tenant: str) -> Literal["fail", "pause"]:
        """What an element's failure for good does in `tenant` when the element does not say (`onExhausted`)."""
        return self.on_exhausted_for.get(tenant, self.on_exhausted)

    def retention_ms(self, tenant: str) -> int:
        """How long a finished execution of `tenant` stays."""
        return duration_ms(self.retention_for.get(tenant, self.retention))


_DURATION = re.compile(r"^(\d{1,12})(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str) -> int:
    """`7d`, `12h`, `30m`, `90s`, `500ms` in milliseconds; ValueError for anything else or 0."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is no duration: write a number and one of ms, s, m, h, d (e.g. 7d)")
    value = int(found.group(1)) * _UNIT_MS[found.group(2)]
    if value <= 0:
        raise ValueError(f"{text!r}: a retention must be longer than 0")
    return value


def parse_token_pairs(pairs: list[str]) -> dict[str, str]:
    """`["tokA=tenantA", ...]` -> {"tokA": "tenantA"}; raises ValueError on a malformed pair."""
    return parse_pairs(pairs, "token", "TOKEN=TENANT")


def parse_pairs(pairs: list[str], what: str, shape: str) -> dict[str, str]:
    """`["a=b", ...]` -> {"a": "b"} (blank entries skipped); ValueError naming `what` and `shape` otherwise."""
    found: dict[str, str] = {}
    for pair in pairs:
        pair = pair.strip()
        if not pair:
            continue
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{what} must look like {shape}, got {pair!r}")
        found[name.strip()] = value.strip()
    return found


def check_tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """ValueError in one line when a TLS file cannot be read or is not PEM of its kind (read now, so that serve
    says so at once instead of failing every connection later)."""
    import ssl

    context = ssl.create_default_context()
    try:
        if ca is not None:
            context.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--redis-tls-ca {ca}: {_ssl_reason(exc)}") from None
    try:
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--redis-tls-cert {cert} / --redis-tls-key {key}: {_ssl_reason(exc)}") from None


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return exc.strerror or type(exc).__name__
    return str(getattr(exc, "reason", None) or exc).strip() or type(exc).__name__
