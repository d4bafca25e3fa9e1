"""The OpenAPI document of the management API, served at `GET /v1/openapi.json`.

Paths are written out here; request and response bodies come from pydantic models, so the
document cannot drift from what the API validates. Every route of the management API is here,
with what it answers; links from a created subscription to the operations on it let stateful
tests (schemathesis, in the suite) reach real ids.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.domain.events import Event
from service.domain.subscriptions import Subscription, SubscriptionCreate, SubscriptionPatch
from service.operations.backfills import BackfillRequest
from service.operations.paging import MAX_LIMIT
from service.storage.reconciliation import Backfill
from service.storage.recordings import Status
from service.web.api.deliveries import RecoverRequest, ReplayRequest

ERROR = {"$ref": "#/components/schemas/Error"}


class SubscriptionList(BaseModel):
    data: list[Subscription]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")
    unreadable: list[dict[str, str]] = Field(
        description="stored records the relay cannot read: `id` and `error`; delete them"
    )


class Attempt(BaseModel):
    at: float = Field(description="epoch seconds")
    subscription_id: str
    recording_id: str
    msg_id: str = Field(description="the webhook-id")
    type: str
    status_code: int | None
    latency_ms: float
    error: str | None
    response_body: str = Field(description="the first 4 KiB of the answer")
    retry_after: float | None = None


class AttemptList(BaseModel):
    data: list[Attempt] = Field(description="oldest first within the page")
    next_cursor: str | None = Field(description="pass as `cursor` for older attempts")


class Queued(BaseModel):
    queued: int = Field(description="webhooks queued")


class RecordingSummary(BaseModel):
    recording_id: str
    status: str | None
    accepted_at: int | None = Field(description="epoch ms")
    updated_at: int | None = Field(description="epoch ms")
    archived: bool
    last_error: str | None


class RecordingList(BaseModel):
    data: list[RecordingSummary] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for older recordings")


class RecordingStatus(BaseModel):
    recording_id: str
    status: str | None = Field(
        description="queued, details_fetched, transcribing, transcribed, failed, ignored or "
        "not_transcribed (backfilled without transcription)"
    )
    source: str = Field(description="callback, reconciliation or backfill")
    steps: dict[str, int | None] = Field(description="each step's time, epoch ms")
    plivo_requests: int
    last_error: str | None
    archived: bool
    audio: list[dict[str, Any]] | None = Field(description="the archived audio: key, size, sha256")
    callback: dict[str, Any] | None
    other_callbacks: list[dict[str, Any]]
    events: list[Event]
    attempts: list[Attempt]


class Heartbeat(BaseModel):
    worker: str = Field(description="the PaaS's name for the process (DYNO, ...) and its pid")
    last_heartbeat: float = Field(description="epoch seconds")
    seconds_ago: float
    alive: bool = Field(description="it beat within the last 30 s")


class Workers(BaseModel):
    alive: int
    heartbeats: list[Heartbeat] = Field(description="the last day's workers, newest first")


class Queues(BaseModel):
    oldest_due_job_seconds: float | None = Field(description="null: no job waits to start")
    oldest_due_webhook_seconds: float | None = Field(description="null: no webhook waits")


class RedisFigures(BaseModel):
    used_memory: int
    maxmemory: int = Field(description="0: no limit")
    maxmemory_policy: str = Field(description="anything but noeviction loses work")
    connected_clients: int
    maxclients: int | None
    rejected_connections: int = Field(description="since Redis started")
    evicted_keys: int = Field(description="since Redis started")


class HealthReport(BaseModel):
    workers: Workers
    queues: Queues
    redis: RedisFigures
    warnings: list[str] = Field(description="what to act on, in sentences; empty when all is well")


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


PAGE = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
]
# What every operation may answer besides its own.
COMMON = {
    "401": _answer("missing or wrong bearer token", ERROR),
    "429": _answer(
        "too many wrong tokens from this address (or in all) this minute: Retry-After", ERROR
    ),
    "503": _answer("Redis is unreachable: nothing was changed; retry later", ERROR),
}
BAD_BODY = {
    "400": _answer("the body is not JSON", ERROR),
    "422": _answer("invalid input; the error names the field", ERROR),
}
AUDIO = {
    "description": "the audio",
    "content": {
        kind: {"schema": {"type": "string", "format": "binary"}}
        for kind in ("audio/mpeg", "audio/wav")
    },
}
UNKNOWN = {"404": _answer("no such subscription", ERROR)}
UNREADABLE = {"409": _answer("the stored subscription is unreadable: delete it", ERROR)}
# Where a created subscription's id goes next (OpenAPI links, followed by stateful tests).
LINKS = {
    name: {"operationId": operation, "parameters": {"subscription_id": "$response.body#/id"}}
    for name, operation in [
        ("GetSubscription", "getSubscription"),
        ("PatchSubscription", "patchSubscription"),
        ("RotateSecret", "rotateSecret"),
        ("Attempts", "listAttempts"),
        ("Recover", "recover"),
        ("DeleteSubscription", "deleteSubscription"),
    ]
}


def document() -> dict[str, Any]:
    subscription = _ref("Subscription")
    one = {"parameters": [_path_param("subscription_id")]}
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}},
            "required": ["error"],
        },
    }
    for model in (
        Subscription,
        SubscriptionCreate,
        SubscriptionPatch,
        SubscriptionList,
        Attempt,
        AttemptList,
        Queued,
        ReplayRequest,
        RecoverRequest,
        RecordingStatus,
        RecordingList,
        Event,
        BackfillRequest,
        HealthReport,
    ):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["Backfill"] = TypeAdapter(Backfill).json_schema()
    created = _answer("created, with its signing secret", subscription)
    return {
        "openapi": "3.1.0",
        "info": {"title": "recording-relay management API", "version": "1"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"admin": []}],
        "paths": {
            "/v1/subscriptions": {
                "post": {
                    "operationId": "createSubscription",
                    "summary": "Subscribe a URL to events",
                    "requestBody": _body("SubscriptionCreate"),
                    "responses": {
                        "201": {**created, "links": LINKS},
                        "409": _answer("SUBSCRIPTIONS_MAX subscriptions exist already", ERROR),
                        **BAD_BODY,
                        **COMMON,
                    },
                },
                "get": {
                    "operationId": "listSubscriptions",
                    "summary": "The subscriptions, oldest first, a page at a time",
                    "parameters": PAGE,
                    "responses": {
                        "200": _answer("a page of subscriptions", _ref("SubscriptionList")),
                        "422": _answer("a bad limit or cursor", ERROR),
                        **COMMON,
                    },
                },
            },
            "/v1/subscriptions/{subscription_id}": {
                **one,
                "get": {
                    "operationId": "getSubscription",
                    "responses": {
                        "200": _answer("the subscription", subscription),
                        **UNKNOWN,
                        **UNREADABLE,
                        **COMMON,
                    },
                },
                "patch": {
                    "operationId": "patchSubscription",
                    "summary": "Change url, events, description or enabled (none may be null)",
                    "requestBody": _body("SubscriptionPatch"),
                    "responses": {
                        "200": _answer("changed", subscription),
                        **BAD_BODY,
                        **UNKNOWN,
                        **UNREADABLE,
                        **COMMON,
                    },
                },
                "delete": {
                    "operationId": "deleteSubscription",
                    "summary": "Delete it, its attempt log and what is queued for it",
                    "responses": {"204": _answer("deleted"), **UNKNOWN, **COMMON},
                },
            },
            "/v1/subscriptions/{subscription_id}/rotate-secret": {
                **one,
                "post": {
                    "operationId": "rotateSecret",
                    "summary": "A new secret; the old one signs alongside for 24 hours",
                    "responses": {
                        "200": _answer("rotated", subscription),
                        **UNKNOWN,
                        **UNREADABLE,
                        **COMMON,
                    },
                },
            },
            "/v1/subscriptions/{subscription_id}/attempts": {
                **one,
                "get": {
                    "operationId": "listAttempts",
                    "summary": "The attempt log, newest page first",
                    "parameters": PAGE,
                    "responses": {
                        "200": _answer("a page of attempts", _ref("AttemptList")),
                        "422": _answer("a bad limit or cursor", ERROR),
                        **UNKNOWN,
                        **COMMON,
                    },
                },
            },
            "/v1/subscriptions/{subscription_id}/recover": {
                **one,
                "post": {
                    "operationId": "recover",
                    "summary": "Send again everything that failed for it since a time",
                    "requestBody": _body("RecoverRequest"),
                    "responses": {
                        "202": _answer("queued again", _ref("Queued")),
                        **BAD_BODY,
                        **UNKNOWN,
                        **COMMON,
                    },
                },
            },
            "/v1/recordings": {
                "get": {
                    "operationId": "listRecordings",
                    "summary": "The recordings of the retention window, newest first",
                    "parameters": [
                        *PAGE,
                        {
                            "name": "status",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": [s.value for s in Status]},
                        },
                        *(
                            {
                                "name": name,
                                "in": "query",
                                "required": False,
                                "schema": {"type": "string", "format": "date-time"},
                            }
                            for name in ("since", "until")
                        ),
                    ],
                    "responses": {
                        "200": _answer("a page of recordings", _ref("RecordingList")),
                        "422": _answer("a bad filter, limit or cursor", ERROR),
                        **COMMON,
                    },
                },
            },
            "/v1/recordings/{recording_id}": {
                "parameters": [_path_param("recording_id")],
                "get": {
                    "operationId": "getRecording",
                    "summary": "A recording's pipeline state, steps, Plivo requests and events",
                    "responses": {
                        "200": _answer("the recording's state", _ref("RecordingStatus")),
                        "404": _answer("a recording the relay does not know", ERROR),
                        **COMMON,
                    },
                },
            },
            "/v1/recordings/{recording_id}/replay": {
                "parameters": [_path_param("recording_id")],
                "post": {
                    "operationId": "replay",
                    "summary": "The recording's events again, with the same webhook-ids",
                    "requestBody": _body("ReplayRequest", required=False),
                    "responses": {
                        "202": _answer("queued", _ref("Queued")),
                        "404": _answer("a recording the relay does not know", ERROR),
                        **BAD_BODY,
                        **COMMON,
                    },
                },
            },
            "/v1/backfills": {
                "post": {
                    "operationId": "createBackfill",
                    "summary": "Take up the recordings of a past window the relay never saw",
                    "requestBody": _body("BackfillRequest"),
                    "responses": {
                        "202": _answer(
                            "in the line (queued or running), or asked for before and not ended",
                            _ref("Backfill"),
                        ),
                        **BAD_BODY,
                        **COMMON,
                    },
                    "links": {
                        "GetBackfill": {
                            "operationId": "getBackfill",
                            "parameters": {"backfill_id": "$response.body#/id"},
                        },
                        "CancelBackfill": {
                            "operationId": "cancelBackfill",
                            "parameters": {"backfill_id": "$response.body#/id"},
                        },
                    },
                },
                "get": {
                    "operationId": "listBackfills",
                    "summary": "The latest 50 backfills, newest first",
                    "responses": {
                        "200": _answer(
                            "the backfills",
                            {
                                "type": "object",
                                "properties": {
                                    "data": {"type": "array", "items": _ref("Backfill")}
                                },
                                "required": ["data"],
                            },
                        ),
                        **COMMON,
                    },
                },
            },
            "/v1/health": {
                "get": {
                    "operationId": "getHealth",
                    "summary": "The deployment's health: workers, queues, Redis, warnings",
                    "responses": {
                        "200": _answer("the health report", _ref("HealthReport")),
                        **COMMON,
                    },
                },
            },
            "/v1/backfills/{backfill_id}": {
                "parameters": [_path_param("backfill_id")],
                "get": {
                    "operationId": "getBackfill",
                    "summary": "A backfill's progress",
                    "responses": {
                        "200": _answer("its window, status and counts", _ref("Backfill")),
                        "404": _answer("no such backfill", ERROR),
                        **COMMON,
                    },
                },
                "delete": {
                    "operationId": "cancelBackfill",
                    "summary": "Cancel a backfill (a running one stops after the page at hand)",
                    "responses": {
                        "200": _answer("cancelled (an ended one: as it is)", _ref("Backfill")),
                        "404": _answer("no such backfill", ERROR),
                        **COMMON,
                    },
                },
            },
            "/media/{name}": {
                "parameters": [
                    {**_path_param("name"), "description": "<recording_id>.<format>"},
                    *[
                        {"name": name, "in": "query", "required": False, "schema": schema}
                        for name, schema in [
                            ("expires", {"type": "string"}),
                            ("signature", {"type": "string"}),
                            ("type", {"type": "string", "enum": ["original"]}),
                        ]
                    ],
                ],
                "get": {
                    "operationId": "getMedia",
                    "summary": "A recording's audio, by the signed link in its events' data.media",
                    "security": [],
                    "responses": {
                        "200": AUDIO,
                        "206": {**AUDIO, "description": "the part asked for with Range"},
                        "307": {"description": "to a short-lived signed URL of the bucket"},
                        "400": _answer("a type other than original", ERROR),
                        "403": _answer("not a link the relay signed, or an expired one", ERROR),
                        "404": _answer("an unknown recording, or audio it cannot have", ERROR),
                        "416": {"description": "a range outside the audio"},
                        "502": _answer("Plivo did not serve audio not yet archived", ERROR),
                        "503": _answer("Redis or the archive is unreachable", ERROR),
                    },
                },
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _answer("the OpenAPI document", {"type": "object"})},
                },
            },
        },
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document())
