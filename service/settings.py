"""Configuration: every setting comes from an environment variable, checked at start-up.

`load_settings()` is what the processes call; a missing or malformed value stops them with one
line that names the variable, and never echoes a secret's value.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.logs import FORMATS

# The object stores ARCHIVE_URL may name (service.storage.archive opens them).
ARCHIVE_SCHEMES = ("file://", "s3://", "gs://", "az://", "azure://", "abfs://", "abfss://")

AUTH_ID_PREFIXES = ("MA", "SA")
# What REDACT may name (service.domain.redaction.Kind, one for each).
REDACTABLE = ("card", "ssn", "email", "phone")
LOG_LEVELS = ("debug", "info", "warning", "error")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    """All of recording-relay's configuration. Field `x_y` is read from variable `X_Y`."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    port: int = Field(default=8000, ge=1, le=65535)
    # The address the web process listens on: every interface, as a PaaS's router needs
    # (`make run` sets 127.0.0.1: the dashboard is not served to the LAN over plain HTTP).
    host: str = "0.0.0.0"
    web_concurrency: int = Field(default=1, ge=1, le=64)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Connections this process opens to Redis at most, all its work together
    # (`service.storage.connections`): a plan's `maxclients` is shared by every process.
    redis_max_connections: int = Field(default=8, ge=4, le=10_000)
    # Verify a rediss:// server's certificate (false: a self-signed one, as Heroku's plans use).
    redis_tls_verify: bool = True
    log_level: str = "info"
    # `text` (one line an event) or `json` (one JSON object a line, `service.logs`).
    log_format: str = "text"

    plivo_auth_id: str
    plivo_auth_token: SecretStr
    plivo_api_url: str = "https://api.plivo.com"
    # Subaccounts whose recordings come to this relay: "SAID:token,SAID:token".
    plivo_subaccounts: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    plivo_verify_signatures: bool = True

    # The public URL Plivo calls (scheme, host and any path prefix), used to check signatures
    # when the app sits behind a proxy or PaaS router. Unset: the URL the request arrived at.
    public_base_url: str | None = None

    # The management API's and the dashboard's bearer tokens: any of ADMIN_TOKENS (comma-
    # separated: a new one can be put in use before the old one is retired) or ADMIN_TOKEN.
    admin_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    admin_token: SecretStr | None = None
    # Failed admin-token checks (dashboard logins, bearer API calls) allowed a minute, from one
    # client address and from all together, before every check is refused (429) till the
    # minute is over.
    auth_failures_per_address: int = Field(default=10, ge=1, le=100_000)
    auth_failures_in_all: int = Field(default=100, ge=1, le=1_000_000)
    # The bearer token of `GET /metrics` (Prometheus's scrape); unset: no metrics are served.
    metrics_token: SecretStr | None = None

    # The key media links are signed with (`service.domain.media_links`); unset: a key the relay
    # makes and keeps in Redis (`service.storage.keyring`), independent of the admin tokens.
    media_signing_key: SecretStr | None = None
    # Seconds a media link in an event stays valid (each attempt and replay carries a new one).
    media_link_ttl: int = Field(default=86_400, ge=60, le=30 * 86_400)

    # The object store that keeps every recording's history and payloads (storage/archive.py).
    archive_url: str
    # Also archive the pre-denoised recording (`?type=original`, India-region accounts).
    archive_original: bool = False
    # Erase archived recordings this many days after the day the relay accepted them (a daily
    # sweep, `recording.erased` with reason `retention`; held recordings are kept). Unset: keep.
    archive_retention_days: int | None = Field(default=None, ge=1, le=36_500)
    # The key of the archive's index of who each recording is of (`storage/subject_index.py`);
    # unset: a key the relay makes and keeps in Redis (lost with Redis: `workers reindex`).
    erasure_index_key: SecretStr | None = None
    # What is removed from transcripts before anything is kept or sent: any of REDACTABLE,
    # comma-separated, or `none` (service.domain.redaction). Card numbers by default (PCI DSS).
    redact: Annotated[tuple[str, ...], NoDecode] = ("card",)
    # Audio transfers (Plivo to the archive) one worker process runs at once: each holds up to
    # one upload part (5 MiB) in memory, whatever the recording's length.
    audio_transfers: int = Field(default=4, ge=1, le=64)

    # Seconds a client has to send a whole request (head and body) before it is answered 408.
    http_request_timeout: float = Field(default=10.0, gt=0, le=300)

    # How long the relay remembers a recording (its state and de-duplication), in days.
    recording_retention_days: int = Field(default=30, ge=1)
    # Seconds a worker lets running jobs and webhook attempts finish on SIGTERM before handing
    # them back; at most 25, so that it is gone within a PaaS's 30 s.
    worker_shutdown_grace: float = Field(default=20, ge=0, le=25)
    worker_max_jobs: int = Field(default=50, ge=1)
    # A job running longer fails; a killed worker's jobs are retried this long + 10 s later.
    worker_job_timeout: int = Field(default=120, ge=1)

    # Seconds between transcription polls when Plivo's callback does not come; the last repeats.
    transcription_poll_schedule: Annotated[tuple[float, ...], NoDecode] = (30, 60, 120, 300)
    # Seconds after requesting a transcription before giving up on it.
    transcription_deadline: float = Field(default=1800, gt=0)
    # The customer's <Record transcriptionType="auto"> already transcribes: never create one.
    plivo_auto_transcription: bool = False
    # Seconds after a transcription was marked as being bought before a request Plivo shows no
    # sign of (a worker died between the mark and the request) is taken never to have arrived,
    # and the transcription is bought then.
    plivo_unknown_request_wait: float = Field(default=120, gt=0, le=86_400)
    # Plivo's API limit shared by every worker of an account: "requests/seconds".
    plivo_rate_limit: Annotated[tuple[int, float], NoDecode] = (300, 5.0)
    plivo_timeout: float = Field(default=10.0, gt=0)
    # Retries of one Plivo request (5xx, 429, timeouts) within its job, with backoff.
    plivo_retries: int = Field(default=4, ge=0, le=10)
    # Seconds after a recording's callback during which Plivo outages (5xx, 429, timeouts) are
    # waited out by retrying its job later; then it is reported failed.
    plivo_outage_window: float = Field(default=3600, gt=0)
    # Delete each recording and its transcription from Plivo this many days after its final
    # event (0: at once). Unset: never. Storage costs money after 90 days.
    plivo_delete_after_days: float | None = Field(default=None, ge=0)

    # Seconds between reconciliation sweeps against Plivo's List Recordings API (0: none), and
    # the share of the account's rate limit their listing may take at most.
    reconcile_interval: float = Field(default=300, ge=0, le=86_400)
    reconcile_rate_share: float = Field(default=0.1, gt=0, le=1)
    # Backfills asked for through the API that run at once (one worker job each); the rest
    # wait their turn, in the order they were asked for.
    backfill_concurrency: int = Field(default=1, ge=1, le=100)

    # Networks webhooks may be sent to despite being loopback/private/link-local: "CIDR,CIDR".
    delivery_allow_networks: Annotated[tuple[Network, ...], NoDecode] = ()
    # Seconds before each delivery attempt (the first is usually 0), each with +/-20% jitter.
    delivery_retry_schedule: Annotated[tuple[float, ...], NoDecode] = (
        0, 5, 300, 1800, 7200, 18000, 36000, 36000,
    )  # fmt: skip
    delivery_timeout: float = Field(default=15.0, gt=0)
    # A subscription failing this long without a success is disabled (seconds; 5 days).
    delivery_disable_after: float = Field(default=5 * 86400, gt=0)
    # Attempts in flight at once to one subscription, so a slow one cannot take every worker.
    delivery_max_in_flight: int = Field(default=4, ge=1)
    # Subscriptions the management API will hold at most.
    subscriptions_max: int = Field(default=1000, ge=1, le=100_000)
    # Webhook attempts one worker process runs at once (besides its WORKER_MAX_JOBS jobs).
    delivery_concurrency: int = Field(default=50, ge=1, le=1000)

    @field_validator("admin_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        tokens = tuple(part.strip() for part in value.split(",") if part.strip())
        if not tokens:
            raise ValueError("must be one or more tokens, comma-separated")
        return tokens

    @model_validator(mode="after")
    def _an_admin_token(self) -> Settings:
        if not self.admin_tokens and self.admin_token is None:
            raise ValueError("ADMIN_TOKENS (or ADMIN_TOKEN) is required")
        return self

    @property
    def admin_secrets(self) -> list[SecretStr]:
        """Every admin token in use: ADMIN_TOKENS', then ADMIN_TOKEN."""
        found = list(self.admin_tokens)
        if self.admin_token is not None and self.admin_token not in found:
            found.append(self.admin_token)
        return found

    @field_validator("plivo_auth_id")
    @classmethod
    def _auth_id_shape(cls, value: str) -> str:
        if len(value) != 20 or not value.startswith(AUTH_ID_PREFIXES):
            raise ValueError("must be a 20-character Plivo Auth ID starting with MA or SA")
        return value

    @field_validator(
        "plivo_auth_token", "admin_token", "media_signing_key", "metrics_token", "erasure_index_key"
    )
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.lower()

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.lower() not in FORMATS:
            raise ValueError(f"must be one of {', '.join(FORMATS)}")
        return value.lower()

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        if value.startswith("unix://"):
            return value
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 (reading it checks it)
        except ValueError:
            raise ValueError("has a port that is not a number from 1 to 65535") from None
        database = parts.path.removeprefix("/")
        if database and not (database.isascii() and database.isdigit()):
            raise ValueError("has a database that is not a number (redis://host:port/0)")
        return value

    @field_validator("plivo_api_url", "public_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or value.endswith("://"):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("archive_url")
    @classmethod
    def _archive_url(cls, value: str) -> str:
        if not value.startswith(ARCHIVE_SCHEMES) or value.endswith("://"):
            raise ValueError("must be a file:///path, s3://bucket/prefix, gs://... or az://... URL")
        return value

    @field_validator("plivo_subaccounts", mode="before")
    @classmethod
    def _parse_subaccounts(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            auth_id, sep, token = item.partition(":")
            if not sep or not token or len(auth_id) != 20 or not auth_id.startswith("SA"):
                raise ValueError("must be a comma-separated list of SAUTHID:token pairs")
            pairs[auth_id] = token
        return pairs

    @field_validator("redact", mode="before")
    @classmethod
    def _parse_redact(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        names = [part.strip().lower() for part in value.split(",") if part.strip()]
        if names == ["none"]:
            return ()
        unknown = [name for name in names if name not in REDACTABLE]
        if unknown or not names:
            raise ValueError(f"must be none or any of {','.join(REDACTABLE)}, comma-separated")
        return tuple(dict.fromkeys(names))

    @field_validator("transcription_poll_schedule", "delivery_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        try:
            seconds = tuple(float(part) for part in value.split(",") if part.strip())
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 30,60,120") from None
        # Polls need a pause between them; a delivery may be tried at once.
        smallest_ok = 0.0 if info.field_name == "delivery_retry_schedule" else 1e-9
        if not seconds or any(s < smallest_ok for s in seconds):
            raise ValueError("must be comma-separated positive seconds, e.g. 30,60,120")
        return seconds

    @field_validator("plivo_rate_limit", mode="before")
    @classmethod
    def _parse_rate(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        count, sep, window = value.partition("/")
        try:
            parsed = (int(count), float(window))
        except ValueError:
            parsed = (0, 0.0)
        if not sep or parsed[0] < 1 or parsed[1] <= 0:
            raise ValueError("must be requests/seconds, e.g. 300/5")
        return parsed

    @field_validator("delivery_allow_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return tuple(
                ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip()
            )
        except ValueError:
            raise ValueError(
                "must be comma-separated CIDRs, e.g. 127.0.0.0/8,10.1.0.0/16"
            ) from None

    @property
    def redis_url_for_logs(self) -> str:
        """`REDIS_URL` without its password."""
        parts = urlsplit(self.redis_url)
        if parts.password is None:
            return self.redis_url
        netloc = f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}"
        return urlunsplit(parts._replace(netloc=netloc))

    def credentials(self) -> dict[str, str]:
        """Every account's auth token by its Auth ID: the main account and its subaccounts."""
        accounts = [(self.plivo_auth_id, self.plivo_auth_token), *self.plivo_subaccounts.items()]
        return {auth_id: token.get_secret_value() for auth_id, token in accounts}

    def token_for(self, auth_id: str) -> SecretStr | None:
        """The auth token of the main account or of one of the configured subaccounts."""
        if auth_id == self.plivo_auth_id:
            return self.plivo_auth_token
        return self.plivo_subaccounts.get(auth_id)


def describe_errors(error: ValidationError) -> str:
    """One line naming each bad variable, without ever repeating the value it was given."""
    problems = []
    for item in error.errors():
        variable = str(item["loc"][0]).upper() if item["loc"] else ""
        if not variable:  # a rule across variables: its message names them
            problems.append(item["msg"].removeprefix("Value error, "))
        elif item["type"] == "missing":
            problems.append(f"{variable} is required")
        else:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{variable} {message}")
    return "configuration error: " + "; ".join(problems)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check the configuration; on a problem print one line and exit with status 2."""
    try:
        if environ is None:
            return Settings()  # type: ignore[call-arg]  # fields come from the environment
        return Settings.model_validate({k.lower(): v for k, v in environ.items()})
    except ValidationError as error:
        print(describe_errors(error), file=sys.stderr)
        raise SystemExit(2) from None
