"""The OpenAPI document of the management API, served at `GET /v1/openapi.json`.

Paths are written out here; request and response bodies come from the pydantic models, so
the document cannot drift from what the API validates.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.events import Event
from service.subscriptions import Subscription, SubscriptionCreate, SubscriptionPatch

ERROR = {"$ref": "#/components/schemas/Error"}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(name: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{name}"}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def document() -> dict[str, Any]:
    subscription = {"$ref": "#/components/schemas/Subscription"}
    errors = {
        "401": _answer("missing or wrong bearer token", ERROR),
        "404": _answer("unknown", ERROR),
    }
    one = {"parameters": [_path_param("subscription_id")]}
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
    }
    for model in (Subscription, SubscriptionCreate, SubscriptionPatch, Event):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
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
                    "summary": "Subscribe a URL to events",
                    "requestBody": _body("SubscriptionCreate"),
                    "responses": {
                        "201": _answer("created, with its signing secret", subscription),
                        "422": _answer("invalid input; the field is named", ERROR),
                        **errors,
                    },
                },
                "get": {
                    "summary": "All subscriptions",
                    "responses": {"200": _answer("the subscriptions"), **errors},
                },
            },
            "/v1/subscriptions/{subscription_id}": {
                **one,
                "get": {"responses": {"200": _answer("the subscription", subscription), **errors}},
                "patch": {
                    "requestBody": _body("SubscriptionPatch"),
                    "responses": {
                        "200": _answer("changed", subscription),
                        "422": _answer("invalid input; the field is named", ERROR),
                        **errors,
                    },
                },
                "delete": {"responses": {"204": _answer("deleted"), **errors}},
            },
            "/v1/subscriptions/{subscription_id}/rotate-secret": {
                **one,
                "post": {
                    "summary": "A new secret; the old one signs alongside for 24 hours",
                    "responses": {"200": _answer("rotated", subscription), **errors},
                },
            },
            "/v1/recordings/{recording_id}": {
                "parameters": [_path_param("recording_id")],
                "get": {
                    "summary": "A recording's pipeline state, steps, Plivo requests and events",
                    "responses": {"200": _answer("the recording's state"), **errors},
                },
            },
        },
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document())
