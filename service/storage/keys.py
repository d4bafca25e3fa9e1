"""Every Redis key the relay uses, named once (as arq names its own in `arq.constants`).

The rest of the code never spells a key: it calls the stores of this package, which build keys
here. Lua scripts get what they touch as KEYS, or, where a script derives keys from what it
reads (a delivery's outbox, its subscriber's slots), the prefixes below as ARGV.

Recordings (`service.storage.recordings`), each for `RECORDING_RETENTION_DAYS`:
- `rr:recording:{id}` (hash): the pipeline state; `:callbacks` (list): other callbacks;
  `:transcription`: Plivo's transcription callback; `:attempts` (list): its webhook attempts.
- `rr:recordings` (zset): id -> accepted at (ms), the index behind `GET /v1/recordings`.

Subscriptions and deliveries (`service.storage.subscriptions`, `service.storage.deliveries`):
- `rr:subscriptions` (hash): id -> JSON.
- `rr:delivery:{subscription}:{message}` (hash), `rr:outbox:{subscription}:{recording}` (zset),
  `rr:deliveries:due` and `rr:deliveries:leased` (zsets of `{subscription}:{message}`),
  `rr:slots:{subscription}` and `rr:waiting:{subscription}` (zsets), `rr:failed:{subscription}`
  (zset), `rr:attempts:{subscription}` (list), `rr:failing-since:{subscription}`.

Plivo's rate limit (`service.storage.rate_limit`): `rr:plivo-rate:{auth_id}` (zset), and
`rr:plivo-rate:{auth_id}:{work}` for a kind of work held to a share of it (reconciliation).

Reconciliation and backfill (`service.storage.reconciliation`): `rr:reconcile:lock` (string,
whoever sweeps; it lapses after `RECONCILE_INTERVAL`), `rr:reconcile:watermark:{auth_id}`
(string, ISO time: swept up to), `rr:backfill:{id}` (hash: a backfill's window and progress).

Wake-ups (`service.storage.wakeups`), pub/sub channels, not keys: `rr:wake:jobs` (a job is
due now in arq's queue), `rr:wake:deliveries` (a delivery is due now).

Workers' heartbeats (`service.storage.heartbeats`): `rr:workers` (zset: worker -> last beat,
epoch s). The write probe (`service.storage.server`): `rr:probe:{pid}` (10 s).

Metrics (`service.storage.metrics`): `rr:metrics` (hash: series -> total, every process's
counts summed), `rr:metrics:minute:{n}` and `rr:metrics:hour:{n}` (hashes: the same, counted in
minute n / hour n since the epoch; kept 25 hours and 8 days).

arq's keys (`arq:queue`, `arq:job:...`) are arq's, spelled by `service.storage.jobs`.
"""

from __future__ import annotations

SUBSCRIPTIONS = "rr:subscriptions"
RECORDINGS_INDEX = "rr:recordings"
DUE = "rr:deliveries:due"  # member `{subscription}:{message}`, score: due (epoch ms)
LEASED = "rr:deliveries:leased"  # the same, taken by a worker; score: lease lapses (ms)

WORKERS = "rr:workers"

WAKE_JOBS = "rr:wake:jobs"
WAKE_DELIVERIES = "rr:wake:deliveries"

# Prefixes the delivery scripts complete themselves.
DELIVERY_PREFIX = "rr:delivery:"
OUTBOX_PREFIX = "rr:outbox:"
SLOTS_PREFIX = "rr:slots:"
WAITING_PREFIX = "rr:waiting:"


def recording(recording_id: str) -> str:
    return f"rr:recording:{recording_id}"


def recording_callbacks(recording_id: str) -> str:
    return f"rr:recording:{recording_id}:callbacks"


def recording_transcription(recording_id: str) -> str:
    return f"rr:recording:{recording_id}:transcription"


def recording_attempts(recording_id: str) -> str:
    return f"rr:recording:{recording_id}:attempts"


def due_member(subscription_id: str, msg_id: str) -> str:
    """A delivery as the delivery queue names it."""
    return f"{subscription_id}:{msg_id}"


def delivery(subscription_id: str, msg_id: str) -> str:
    return DELIVERY_PREFIX + due_member(subscription_id, msg_id)


def outbox(subscription_id: str, recording_id: str) -> str:
    return f"{OUTBOX_PREFIX}{subscription_id}:{recording_id}"


def failed(subscription_id: str) -> str:
    return f"rr:failed:{subscription_id}"


def attempts(subscription_id: str) -> str:
    return f"rr:attempts:{subscription_id}"


def failing_since(subscription_id: str) -> str:
    """When the subscriber's current run of failures began (deleted by a success)."""
    return f"rr:failing-since:{subscription_id}"


def plivo_rate(auth_id: str) -> str:
    return f"rr:plivo-rate:{auth_id}"


def plivo_rate_share(auth_id: str, work: str) -> str:
    return f"rr:plivo-rate:{auth_id}:{work}"


RECONCILE_LOCK = "rr:reconcile:lock"


def reconcile_watermark(auth_id: str) -> str:
    return f"rr:reconcile:watermark:{auth_id}"


def backfill(backfill_id: str) -> str:
    return f"rr:backfill:{backfill_id}"


def probe(pid: int) -> str:
    """A process's short-lived write probe (`service.storage.server.writable`)."""
    return f"rr:probe:{pid}"


METRICS = "rr:metrics"


def metrics_minute(minute: int) -> str:
    return f"rr:metrics:minute:{minute}"


def metrics_hour(hour: int) -> str:
    return f"rr:metrics:hour:{hour}"
