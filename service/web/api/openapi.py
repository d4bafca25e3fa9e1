"""The OpenAPI document of the management API, served at `GET /v1/openapi.json`, assembled
from the code: the paths from the app's route table, each operation from the `@documented`
declaration beside its handler (`service.web.api.operation`), the bodies' and answers' schemas
from the pydantic models the handlers read and return. A route without a declaration is not
part of the API (the dashboard, the probes, Plivo's endpoints)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from service.web.api.operation import COMMON, Answer, Operation, documented, operation_of

JSON = "application/json"


class Components:
    """The document's schemas, each model's once, named as its class."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            },
        }

    def ref(self, model: type, mode: str = "serialization") -> dict[str, str]:
        """A reference to `model`'s schema (a pydantic model or a dataclass), added once."""
        name = model.__name__
        if name not in self.schemas:
            assert issubclass(model, BaseModel) or dataclasses.is_dataclass(model), model
            schema = TypeAdapter(model).json_schema(
                ref_template="#/components/schemas/{model}",
                mode="validation" if mode == "validation" else "serialization",
            )
            self.schemas.update(schema.pop("$defs", {}))
            self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def answer(self, answer: Answer) -> dict[str, Any]:
        """An answer: a description, with its JSON body's schema when it has one."""
        if isinstance(answer, dict):
            return answer  # written out whole (the audio's media types)
        if isinstance(answer, str):
            return {"description": answer}
        description, schema = answer
        if schema is None:
            return {"description": description}
        if isinstance(schema, type):
            schema = self.ref(schema)
        return {"description": description, "content": {JSON: {"schema": schema}}}


def _operation(operation: Operation, components: Components) -> dict[str, Any]:
    spec: dict[str, Any] = {"operationId": operation.id}
    if operation.summary:
        spec["summary"] = operation.summary
    if operation.query:
        spec["parameters"] = list(operation.query)
    if operation.body is not None:
        body = components.ref(operation.body, mode="validation")
        spec["requestBody"] = {
            "required": operation.body_required,
            "content": {JSON: {"schema": body}},
        }
    answers = dict(operation.answers) if operation.public else {**operation.answers, **COMMON}
    spec["responses"] = {str(code): components.answer(a) for code, a in answers.items()}
    if operation.links:
        success = next(code for code in spec["responses"] if code.startswith("2"))
        spec["responses"][success] = {**spec["responses"][success], "links": operation.links}
    if operation.public:
        spec["security"] = []
    return {**spec, **operation.extra}


def _path_parameter(name: str, description: str | None) -> dict[str, Any]:
    parameter = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    return {**parameter, "description": description} if description else parameter


def document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of every documented route in `routes`."""
    components = Components()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = operation_of(route.endpoint) if isinstance(route, Route) else None
        if operation is None or not isinstance(route, Route):
            continue
        item = paths.setdefault(route.path, {})
        names = list(route.param_convertors)
        if names:
            item["parameters"] = [
                _path_parameter(n, operation.path_parameters.get(n)) for n in names
            ]
        for method in sorted((route.methods or set()) - {"HEAD"}):
            item[method.lower()] = _operation(operation, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "recording-relay management API", "version": "1"},
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"admin": []}],
        "paths": paths,
    }


_documents: dict[int, dict[str, Any]] = {}


@documented(
    "openapi",
    {200: ("the OpenAPI document", {"type": "object"})},
    summary="This document",
    public=True,
)
async def openapi(request: Request) -> JSONResponse:
    routes = request.app.routes
    if id(routes) not in _documents:  # one app's routes do not change
        _documents[id(routes)] = document(routes)
    return JSONResponse(_documents[id(routes)])
