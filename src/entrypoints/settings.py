"""Settings from environment variables. Read once, by ``create_app()`` or the CLI, never at import time.

Every variable, its default and its meaning is listed in README.md ("Configuration").
"""

from __future__ import annotations

import enum
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from domain.limits import Rate

log = logging.getLogger(__name__)


class SettingsError(Exception):
    """A setting is missing or wrong. The message names the variable."""


class PushBackend(enum.StrEnum):
    LOG = "log"
    FCM = "fcm"
    NONE = "none"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None = field(repr=False)  # may carry a password
    db_pool_size: int
    db_max_overflow: int
    db_pool_timeout: float
    db_connect_timeout: float
    db_statement_timeout_ms: int
    auto_migrate: bool
    redis_url: str | None = field(repr=False)  # may carry a password; REDIS_CLUSTER_URL's node when clustered
    redis_cluster: bool  # REDIS_CLUSTER_URL: sharded pub/sub, keys hash-tagged per user
    redis_key_prefix: str
    push_backend: PushBackend
    firebase_credentials_path: Path | None
    firebase_credentials_setting: str
    fcm_base_url: str
    fcm_transport: str
    jwt_algorithm: str
    jwt_secret: str | None = field(repr=False)
    jwt_public_key: str | None = field(repr=False)
    jwt_private_key: str | None = field(repr=False)
    jwt_issuer: str | None
    jwt_audience: str | None
    jwt_user_id_claim: str
    jwt_required_claims: tuple[tuple[str, str], ...]
    jwt_jwks_url: str | None
    jwks_cache_seconds: float
    auth_timeout: float
    auth_preset: str
    admin_api_keys: tuple[str, ...] = field(repr=False)
    auth_auto_provision: bool
    jwt_role_claim: str
    jwt_name_claim: str
    jwt_mobile_claim: str
    token_ttl: timedelta
    time_to_answer: timedelta
    delivery_max_attempts: int
    delivery_request_budget: timedelta
    delivery_push_timeout: timedelta
    delivery_lease: timedelta
    delivery_first_retry: timedelta
    delivery_max_retry: timedelta
    replay_window: timedelta
    dispatcher_enabled: bool
    dispatch_interval: float
    log_level: str
    log_format: str
    http_header_timeout: float
    http_keepalive_timeout: float
    ws_ping_interval: float
    ws_ping_timeout: float
    socket_recheck_interval: float
    socket_send_queue: int
    cors_allow_origins: tuple[str, ...]
    metrics_token: str | None = field(repr=False)
    trusted_proxies: tuple[str, ...]
    socket_send_timeout: float
    instance_name: str
    audit_retention: timedelta
    notification_retention: timedelta
    work_order_retention: timedelta
    console_secret: str | None = field(repr=False)
    rate_limits: dict[str, Rate | None]
    max_pending_orders: int
    max_sockets_per_user: int
    remembered_profiles: int
    shutdown_grace: float
    socket_admission: int
    push_fallback: timedelta | None
    location_flush_interval: float
    data_dir_is_default: bool = False  # WORKCAST_DATA_DIR unset: ./.workcast of whatever folder we started in

    @property
    def embedded(self) -> bool:
        """The embedded default: no DATABASE_URL, so a SQLite file in the data directory."""
        return self.database_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        read = _Reader(env)
        # Absolute from the start: the same relative default in another folder is another database.
        data_dir = Path(read.text("WORKCAST_DATA_DIR", ".workcast")).absolute()
        database_url = read.text("DATABASE_URL", "") or None
        preset = read.choice("AUTH_PRESET", "none", ("none", "firebase", "simplejwt"))
        defaults = _preset_defaults(preset, read)
        algorithm = read.choice("JWT_ALGORITHM", defaults.get("algorithm", "HS256"), ("HS256", "RS256", "ES256"))
        if read.text("REDIS_URL", "") and read.text("REDIS_CLUSTER_URL", ""):
            raise SettingsError("set REDIS_URL (one Redis) or REDIS_CLUSTER_URL (a Redis Cluster node), not both")
        settings = cls(
            data_dir=data_dir,
            database_url=database_url,
            # No overflow by default: overflow connections are closed as they are returned, so a load
            # above the pool size opened a PostgreSQL connection per request (measured: the one-INSERT
            # yardstick went from 1,270 to 2,570 req/s without them). Requests wait for a pooled one.
            db_pool_size=read.integer("DB_POOL_SIZE", 20, minimum=1),
            db_max_overflow=read.integer("DB_MAX_OVERFLOW", 0, minimum=0),
            db_pool_timeout=read.number("DB_POOL_TIMEOUT_SECONDS", 5.0),
            db_connect_timeout=read.number("DB_CONNECT_TIMEOUT_SECONDS", 5.0),
            db_statement_timeout_ms=read.integer("DB_STATEMENT_TIMEOUT_MS", 10_000, minimum=1),
            auto_migrate=read.boolean("AUTO_MIGRATE", database_url is None),
            redis_url=read.text("REDIS_URL", "") or read.text("REDIS_CLUSTER_URL", "") or None,
            redis_cluster=bool(read.text("REDIS_CLUSTER_URL", "")),
            redis_key_prefix=read.text("REDIS_KEY_PREFIX", "workcast") or "workcast",
            push_backend=PushBackend(read.choice("PUSH_BACKEND", "log", tuple(b.value for b in PushBackend))),
            firebase_credentials_path=_path(
                read.text("FIREBASE_CREDENTIALS_PATH", "") or read.text("GOOGLE_APPLICATION_CREDENTIALS", "")
            ),
            firebase_credentials_setting=(
                "FIREBASE_CREDENTIALS_PATH"
                if read.text("FIREBASE_CREDENTIALS_PATH", "")
                else "GOOGLE_APPLICATION_CREDENTIALS"
            ),
            fcm_base_url=read.text("FCM_BASE_URL", "https://fcm.googleapis.com").rstrip("/"),
            fcm_transport=read.choice("FCM_TRANSPORT", "aiohttp", ("aiohttp", "sdk")),
            jwt_algorithm=algorithm,
            jwt_secret=read.text("JWT_SECRET", "") or None,
            jwt_public_key=_key(read, "JWT_PUBLIC_KEY"),
            jwt_private_key=_key(read, "JWT_PRIVATE_KEY"),
            jwt_issuer=read.text("JWT_ISSUER", defaults.get("issuer", "")) or None,
            jwt_audience=read.text("JWT_AUDIENCE", defaults.get("audience", "")) or None,
            jwt_user_id_claim=read.text("JWT_USER_ID_CLAIM", defaults.get("user_claim", "sub")) or "sub",
            jwt_required_claims=read.pairs("JWT_REQUIRED_CLAIMS", defaults.get("required", "")),
            jwt_jwks_url=read.text("JWT_JWKS_URL", defaults.get("jwks_url", "")) or None,
            jwks_cache_seconds=read.number("JWKS_CACHE_SECONDS", 600.0),
            auth_timeout=read.number("AUTH_TIMEOUT_SECONDS", 5.0),
            auth_preset=preset,
            admin_api_keys=tuple(k.strip() for k in read.text("ADMIN_API_KEYS", "").split(",") if k.strip()),
            auth_auto_provision=read.boolean("AUTH_AUTO_PROVISION", False),
            jwt_role_claim=read.text("JWT_ROLE_CLAIM", "role") or "role",
            jwt_name_claim=read.text("JWT_NAME_CLAIM", "name") or "name",
            jwt_mobile_claim=read.text("JWT_MOBILE_CLAIM", "phone_number") or "phone_number",
            token_ttl=timedelta(seconds=read.number("TOKEN_TTL_SECONDS", 86_400.0)),
            time_to_answer=timedelta(seconds=read.number("WORK_TIME_TO_ANSWER_SECONDS", 600.0)),
            delivery_max_attempts=read.integer("DELIVERY_MAX_ATTEMPTS", 8, minimum=1),
            delivery_request_budget=timedelta(milliseconds=read.number("DELIVERY_REQUEST_BUDGET_MS", 1000.0)),
            delivery_push_timeout=timedelta(seconds=read.number("DELIVERY_PUSH_TIMEOUT_SECONDS", 20.0)),
            delivery_lease=timedelta(seconds=read.number("DELIVERY_LEASE_SECONDS", 30.0)),
            delivery_first_retry=timedelta(seconds=read.number("DELIVERY_FIRST_RETRY_SECONDS", 5.0)),
            delivery_max_retry=timedelta(seconds=read.number("DELIVERY_MAX_RETRY_SECONDS", 600.0)),
            replay_window=timedelta(hours=read.number("REPLAY_WINDOW_HOURS", 24.0)),
            dispatcher_enabled=read.boolean("DISPATCHER_ENABLED", True),
            dispatch_interval=read.number("DISPATCH_INTERVAL_SECONDS", 1.0),
            log_level=read.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=read.choice("LOG_FORMAT", "json", ("json", "text")),
            # nginx's client_header_timeout and keepalive_timeout are 60 s and 75 s.
            http_header_timeout=read.number("HTTP_HEADER_TIMEOUT_SECONDS", 60.0),
            http_keepalive_timeout=read.number("HTTP_KEEPALIVE_TIMEOUT_SECONDS", 60.0),
            ws_ping_interval=read.number("WS_PING_INTERVAL_SECONDS", 20.0),
            ws_ping_timeout=read.number("WS_PING_TIMEOUT_SECONDS", 20.0),
            socket_recheck_interval=read.number("SOCKET_USER_RECHECK_SECONDS", 5.0),
            socket_send_queue=read.integer("SOCKET_SEND_QUEUE", 32, minimum=1),
            location_flush_interval=read.number("LOCATION_FLUSH_SECONDS", 1.0),
            cors_allow_origins=read.origins("CORS_ALLOW_ORIGINS"),
            metrics_token=read.text("METRICS_TOKEN", "") or None,
            trusted_proxies=tuple(p.strip() for p in read.text("TRUSTED_PROXIES", "").split(",") if p.strip()),
            socket_send_timeout=read.number("SOCKET_SEND_TIMEOUT_SECONDS", 5.0),
            instance_name=(read.text("INSTANCE_NAME", "") or f"{socket.gethostname()}:{os.getpid()}")[:64],
            audit_retention=timedelta(days=read.number("AUDIT_RETENTION_DAYS", 30.0)),
            notification_retention=timedelta(days=read.number("NOTIFICATION_RETENTION_DAYS", 30.0)),
            work_order_retention=timedelta(days=read.number("WORK_ORDER_RETENTION_DAYS", 365.0)),
            console_secret=read.text("CONSOLE_SECRET", "") or None,
            rate_limits={
                "assign": read.rate("RATE_LIMIT_ASSIGN", "10/1"),
                "write": read.rate("RATE_LIMIT_WRITE", "30/5"),
                "read": read.rate("RATE_LIMIT_READ", "60/10"),
                "auth_failure": read.rate("RATE_LIMIT_AUTH_FAILURES", "20/0.2"),
                "socket_message": read.rate("RATE_LIMIT_SOCKET_MESSAGES", "50/20"),
                "socket_connect": read.rate("RATE_LIMIT_SOCKET_CONNECTS", "10/1"),
            },
            max_pending_orders=read.integer("MAX_PENDING_ORDERS_PER_SEEKER", 20, minimum=0),
            max_sockets_per_user=read.integer("MAX_SOCKETS_PER_USER", 5, minimum=1),
            remembered_profiles=read.integer("REMEMBERED_PROFILES", 50_000, minimum=0),
            shutdown_grace=read.number("SHUTDOWN_GRACE_SECONDS", 10.0),
            socket_admission=read.integer("SOCKET_ADMISSION_CONCURRENCY", 64, minimum=1),
            push_fallback=(
                timedelta(milliseconds=read.number("PUSH_FALLBACK_MS", 1500.0))
                if read.choice("PUSH_POLICY", "always", ("always", "fallback")) == "fallback"
                else None
            ),
            data_dir_is_default=not read.text("WORKCAST_DATA_DIR", ""),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.jwt_algorithm != "HS256" and not (self.jwt_public_key or self.jwt_jwks_url):
            raise SettingsError(
                f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_PUBLIC_KEY (PEM text), JWT_PUBLIC_KEY_PATH"
                " or JWT_JWKS_URL"
            )
        if self.jwt_jwks_url and not (self.jwt_issuer and self.jwt_audience):
            raise SettingsError("JWT_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE (tokens of other apps must not pass)")
        if self.jwt_jwks_url and self.jwt_algorithm == "HS256":
            raise SettingsError("JWT_JWKS_URL publishes public keys: set JWT_ALGORITHM=RS256 or ES256")
        if self.console_secret is not None and len(self.console_secret) < 32:
            raise SettingsError("CONSOLE_SECRET must be at least 32 characters")
        for key in self.admin_api_keys:
            if len(key) < 32:
                raise SettingsError("ADMIN_API_KEYS: each key must be at least 32 characters")
        if self.jwt_algorithm == "HS256" and self.jwt_secret is not None and len(self.jwt_secret) < 32:
            raise SettingsError("JWT_SECRET must be at least 32 characters (HS256 needs a 256-bit secret)")
        if self.delivery_lease <= max(self.delivery_request_budget, self.delivery_push_timeout):
            raise SettingsError(
                "DELIVERY_LEASE_SECONDS must be longer than DELIVERY_PUSH_TIMEOUT_SECONDS and"
                " DELIVERY_REQUEST_BUDGET_MS (a claim must outlive the attempt it covers)"
            )

    def require_token_keys(self) -> None:
        """Only what verifies or issues tokens needs a key: ``workcast migrate`` runs with DATABASE_URL alone."""
        if self.jwt_algorithm == "HS256" and self.jwt_secret is None and not self.embedded:
            raise SettingsError("JWT_SECRET is required when DATABASE_URL is set (only the embedded default makes one)")

    def with_jwt_secret(self) -> Settings:
        """On the embedded default, a missing JWT_SECRET is generated once and kept in the data directory."""
        if self.jwt_algorithm != "HS256" or self.jwt_secret is not None:
            return self
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
            log.warning(
                "JWT_SECRET is not set: generated one for the embedded default and kept it in the data directory",
                extra={"path": str(path)},
            )
        return replace(self, jwt_secret=path.read_text().strip())


FIREBASE_JWKS_URL = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"


def _preset_defaults(preset: str, read: _Reader) -> dict[str, str]:
    """Defaults a preset gives; each stays overridable by its own variable (tests point JWT_JWKS_URL elsewhere)."""
    if preset == "simplejwt":  # Django REST framework SimpleJWT: HS256 with the Django SECRET_KEY
        return {"user_claim": "user_id", "required": "token_type=access"}
    if preset == "firebase":
        project = read.text("FIREBASE_PROJECT_ID", "")
        if not project:
            raise SettingsError("AUTH_PRESET=firebase needs FIREBASE_PROJECT_ID (your Firebase project id)")
        return {
            "algorithm": "RS256",
            "jwks_url": FIREBASE_JWKS_URL,
            "issuer": f"https://securetoken.google.com/{project}",
            "audience": project,
            "user_claim": "sub",
        }
    return {}


def _path(value: str) -> Path | None:
    return Path(value) if value else None


def _key(read: _Reader, name: str) -> str | None:
    inline = read.text(name, "")
    if inline:
        return inline
    path = read.text(f"{name}_PATH", "")
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError as error:
        raise SettingsError(f"{name}_PATH: cannot read {path}: {error.strerror}") from error


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        return self._env.get(name, default).strip()

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self.text(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, got {value}")
        return value

    def number(self, name: str, default: float) -> float:
        raw = self.text(name, str(default))
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if not value > 0 or value == float("inf"):
            raise SettingsError(f"{name} must be a positive number, got {raw!r}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name, "").lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def pairs(self, name: str, default: str) -> tuple[tuple[str, str], ...]:
        """``claim=value,claim=value`` (e.g. ``token_type=access``)."""
        found = []
        for item in self.text(name, default).split(","):
            if not item.strip():
                continue
            claim, sep, value = item.partition("=")
            if not sep or not claim.strip():
                raise SettingsError(f"{name}: {item.strip()!r} is not claim=value")
            found.append((claim.strip(), value.strip()))
        return tuple(found)

    def origins(self, name: str) -> tuple[str, ...]:
        """Comma-separated web origins (``https://app.example.com``), or ``*``; unset: none."""
        found = tuple(o.strip().rstrip("/") for o in self.text(name, "").split(",") if o.strip())
        for origin in found:
            if origin != "*" and not (
                origin.startswith(("https://", "http://")) and "/" not in origin.split("//", 1)[1]
            ):
                raise SettingsError(f"{name}: {origin!r} is not an origin like https://app.example.com (or *)")
        return found

    def rate(self, name: str, default: str) -> Rate | None:
        """``BURST/PER_SECOND`` (``10/1``: 10 at once, then 1 a second) or ``off``."""
        raw = self.text(name, default)
        try:
            return Rate.parse(raw)
        except ValueError:
            raise SettingsError(f"{name} must be BURST/PER_SECOND (e.g. 10/1) or off, got {raw!r}") from None

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self.text(name, default)
        matches = [a for a in allowed if a.lower() == raw.lower()]
        if not matches:
            raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return matches[0]
