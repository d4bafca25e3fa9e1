"""Every Redis key the relay uses, named once (as arq names its own in `arq.constants`).

The rest of the code never spells a key: it calls the stores of this package, which build keys
here. Lua scripts get what they touch as KEYS, or, where a script derives keys from what it
reads (a delivery's outbox, its subscriber's slots), the prefixes below as ARGV.

Recordings (`service.storage.recordings`), each for `RECORDING_RETENTION_DAYS`:
- `rr:recording:{id}` (hash): the pipeline state; `:callbacks` (list): other callbacks;
  `:transcription`: Plivo's transcription callback.
- `rr:recordings` (zset): id -> accepted at (ms), the index behind `GET /v1/recordings`.

Subscriptions and deliveries (`service.storage.subscriptions`, `service.storage.deliveries`):
- `rr:subscriptions` (hash): id -> JSON.
- `rr:body:{recording}:{event}` (hash: `b` body, `n` deliveries still to settle, `t` queued at,
  `d` the recording's archive day): each event's body, once however many subscribers it goes
  to, while any has it to receive.
- `rr:pending:{subscription}` (hash): recording -> the events it still has to receive, in order
  (one letter each, the head first; `#<tries>` after the head's failed attempts; `@<worker>`
  while a worker attempts the head); field `!`: when its current run of failures began.
- `rr:queue:{subscription}` (zset): recording -> when its head event is due (ms), for heads
  not in flight.
- `rr:deliveries:due` (zset): subscription -> when its queue next needs a look (ms).
- `rr:deliveries:spacing` (hash): a rate-limited subscription -> the least time between two
  of its webhooks (ms); `rr:deliveries:pace` (hash): subscription -> when it may next be sent
  one (ms), kept by the claim script (evenly spaced, however many workers).
- `rr:deliveries:in-flight` (hash): subscription -> attempts in flight (what a worker that
  dies held is released once its heartbeat lapses: `rr:workers`).
- `rr:failed:{subscription}` (zset): `{recording}:{event}` -> failed at (s), for recover.
- `rr:attempts:{subscription}` (list): its recent attempts (a bounded window, the dashboard's).
- `rr:archive:attempts` (list): attempts on their way to their recordings' `attempts.json` in
  the archive (a few seconds); `rr:archive:attempts:lock`: whoever moves them now.

Erasures (`service.storage.erasures`): an erased recording's state is its tombstone (status
`erased`, for `RECORDING_RETENTION_DAYS` from its erasure); `rr:erasure:{id}` (hash: the
erasure and its progress), `:todo` (hash: recording -> `day|account`, what it erases),
`:outcomes` (hash: recording -> what each step came to), each kept `ERASURE_DAYS` once it has
ended (the archive's audit record is the lasting one); `rr:erasures` (zset: the latest 100);
`rr:retention:lock` (string: whoever runs today's retention sweep); `rr:reindex` (string: how
far `python -m workers reindex` got).

Plivo's rate limit (`service.storage.rate_limit`): `rr:plivo-rate:{auth_id}` (zset), and
`rr:plivo-rate:{auth_id}:{work}` for a kind of work held to a share of it (reconciliation).

Reconciliation and backfill (`service.storage.reconciliation`): `rr:reconcile:lock` (string,
whoever sweeps; it lapses after `RECONCILE_INTERVAL`), `rr:reconcile:watermark:{auth_id}`
(string, ISO time: swept up to), `rr:backfill:{id}` (hash: a backfill's window and progress),
`rr:backfills:line` (zset: the backfills not ended, in the order they were asked for; the first
`BACKFILL_CONCURRENCY` run), `rr:backfills` (zset: the latest 100 backfills, for the lists).

Wake-ups (`service.storage.wakeups`), pub/sub channels, not keys: `rr:wake:jobs` (a job is
due now in arq's queue), `rr:wake:deliveries` (a delivery is due now).

The keys' layout (`service.storage.upgrade`): `rr:layout` (string: its version, written once an
upgrade has taken up what an earlier version left), `rr:layout:upgrading` (whoever does it).

Workers' heartbeats (`service.storage.heartbeats`): `rr:workers` (zset: worker -> last beat,
epoch s). The write probe (`service.storage.server`): `rr:probe:{pid}` (10 s).

Keys the relay makes for itself (`service.storage.keyring`): `rr:keyring:{name}` (32 bytes).
Dashboard sessions (`service.storage.sessions`): `rr:session:{id}` (string: the session's
JSON, gone after `SESSION_HOURS` or at logout). Failed admin-token checks
(`service.storage.sessions`): `rr:auth-failures:{minute}:{client address}` and
`rr:auth-failures:{minute}` (counters, kept two minutes).

Metrics (`service.storage.metrics`): `rr:metrics` (hash: series -> total, every process's
counts summed), `rr:metrics:minute:{n}` and `rr:metrics:hour:{n}` (hashes: the same, counted in
minute n / hour n since the epoch; kept 25 hours and 8 days).

arq's keys (`arq:queue`, `arq:job:...`) are arq's, spelled by `service.storage.jobs`.
"""

from __future__ import annotations

SUBSCRIPTIONS = "rr:subscriptions"
RECORDINGS_INDEX = "rr:recordings"
DUE = "rr:deliveries:due"  # member: a subscription; score: when to look at its queue (ms)
IN_FLIGHT = "rr:deliveries:in-flight"  # subscription -> attempts in flight
SPACING = "rr:deliveries:spacing"  # rate-limited subscription -> least ms between webhooks
PACE = "rr:deliveries:pace"  # subscription -> when it may next be sent a webhook (ms)
ATTEMPTS_TO_ARCHIVE = "rr:archive:attempts"  # attempts on their way to the archive
ATTEMPTS_MOVING = "rr:archive:attempts:lock"  # whoever moves them now
WORKERS = "rr:workers"
LAYOUT = "rr:layout"  # which layout of these keys Redis holds (`service.storage.upgrade`)
UPGRADING = "rr:layout:upgrading"  # a worker taking up what an earlier version left (60 s)

WAKE_JOBS = "rr:wake:jobs"
WAKE_DELIVERIES = "rr:wake:deliveries"

# Prefixes the delivery scripts complete themselves.
PENDING_PREFIX = "rr:pending:"
QUEUE_PREFIX = "rr:queue:"
BODY_PREFIX = "rr:body:"
ATTEMPTS_PREFIX = "rr:attempts:"
FAILED_PREFIX = "rr:failed:"


def recording(recording_id: str) -> str:
    return f"rr:recording:{recording_id}"


def recording_callbacks(recording_id: str) -> str:
    return f"rr:recording:{recording_id}:callbacks"


def recording_transcription(recording_id: str) -> str:
    return f"rr:recording:{recording_id}:transcription"


def pending(subscription_id: str) -> str:
    return PENDING_PREFIX + subscription_id


def queue(subscription_id: str) -> str:
    return QUEUE_PREFIX + subscription_id


def body(recording_id: str, event: str) -> str:
    """An event's body while subscribers have it to receive (`event`: its one-letter code)."""
    return f"{BODY_PREFIX}{recording_id}:{event}"


def failed(subscription_id: str) -> str:
    return FAILED_PREFIX + subscription_id


def attempts(subscription_id: str) -> str:
    return ATTEMPTS_PREFIX + subscription_id


def plivo_rate(auth_id: str) -> str:
    return f"rr:plivo-rate:{auth_id}"


def plivo_rate_share(auth_id: str, work: str) -> str:
    return f"rr:plivo-rate:{auth_id}:{work}"


RECONCILE_LOCK = "rr:reconcile:lock"


def reconcile_watermark(auth_id: str) -> str:
    return f"rr:reconcile:watermark:{auth_id}"


def backfill(backfill_id: str) -> str:
    return f"rr:backfill:{backfill_id}"


BACKFILL_LINE = "rr:backfills:line"


def retranscribe(window: str) -> str:
    """How far `python -m workers retranscribe` got over a window: the last recording done."""
    return f"rr:retranscribe:{window}"


BACKFILL_HISTORY = "rr:backfills"


def keyring(name: str) -> str:
    return f"rr:keyring:{name}"


def session(session_id: str) -> str:
    return f"rr:session:{session_id}"


def auth_failures(minute: int, address: str | None = None) -> str:
    """Failed admin-token checks in `minute` (since the epoch): from `address`, or from all."""
    return (
        f"rr:auth-failures:{minute}" if address is None else f"rr:auth-failures:{minute}:{address}"
    )


def probe(pid: int) -> str:
    """A process's short-lived write probe (`service.storage.server.writable`)."""
    return f"rr:probe:{pid}"


METRICS = "rr:metrics"


def metrics_minute(minute: int) -> str:
    return f"rr:metrics:minute:{minute}"


def metrics_hour(hour: int) -> str:
    return f"rr:metrics:hour:{hour}"


def erasure(erasure_id: str) -> str:
    return f"rr:erasure:{erasure_id}"


def erasure_todo(erasure_id: str) -> str:
    return f"rr:erasure:{erasure_id}:todo"


def erasure_outcomes(erasure_id: str) -> str:
    return f"rr:erasure:{erasure_id}:outcomes"


ERASURES = "rr:erasures"
RETENTION_LOCK = "rr:retention:lock"
REINDEX = "rr:reindex"
