"""The OpenAPI 3.1 document, generated: the paths from the app's routes and the `@documented` note on each,
the schemas by pydantic from the models the routes answer with (`vihtr.app.schemas`). Served at /openapi.json.

    @bp.post("/api/predict")
    @documented("Read line images", form=ImagesForm, responses={200: reply("one per image", PredictAnswer)})
    def predict(): ...
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from vihtr.app.schemas import ErrorAnswer

REF = "#/components/schemas/{model}"
JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    description: str
    models: tuple[type[BaseModel], ...] = ()  # several: the answer is one of them
    media: str = JSON


def reply(description: str, *models: type[BaseModel], media: str = JSON) -> Reply:
    return Reply(description, models, media)


def failure(description: str, *models: type[BaseModel]) -> Reply:
    """An error answer: `ErrorAnswer`, or one of `models` where a route answers its failures with more."""
    return Reply(description, (ErrorAnswer, *models))


SERVER_FAULT = failure("a server failure (not the request's), logged under the `reference` it answers")


@dataclass(frozen=True)
class Operation:
    summary: str
    description: str = ""  # may name the server's limits: {max_files}, {max_upload_mb}, {max_pixels}...
    form: type[BaseModel] | None = None  # a multipart/form-data body
    query: type[BaseModel] | None = None
    responses: Mapping[int, Reply] = field(default_factory=dict)


def documented(summary: str, **details) -> Callable:
    """Note a view's operation for the document (see `Operation` for the details)."""

    def note(view: Callable) -> Callable:
        view.openapi = Operation(summary, **details)
        return view

    return note


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _content(reply: Reply) -> dict:
    answer: dict = {"description": reply.description}
    if reply.models:
        refs = [_ref(m) for m in reply.models]
        answer["content"] = {reply.media: {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}}
    elif reply.media != JSON:
        answer["content"] = {reply.media: {}}
    return answer


def _parameters(rule_arguments, query: type[BaseModel] | None, schemas: dict) -> list[dict]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in sorted(rule_arguments)
    ]
    if query is not None:
        for name, schema in schemas[query.__name__]["properties"].items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schemas[query.__name__].get("required", []),
                    "schema": schema,
                }
            )
    return parameters


def _operation(op: Operation, rule_arguments, limits: Mapping, schemas: dict) -> dict:
    answer: dict = {"summary": op.summary}
    if op.description:
        answer["description"] = op.description.format(**limits)
    parameters = _parameters(rule_arguments, op.query, schemas)
    if parameters:
        answer["parameters"] = parameters
    if op.form is not None:
        answer["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": _ref(op.form)}},
        }
    responses = {**op.responses, 500: SERVER_FAULT}  # any route may fail on a bug
    answer["responses"] = {str(status): _content(r) for status, r in sorted(responses.items())}
    return answer


STATIC = Operation(
    "The page's script, style sheet and images",
    responses={200: reply("the file", media="*/*"), 404: failure("no such file")},
)


def openapi_spec(app: Flask, version: str, limits: Mapping) -> dict:
    """The document of `app`: every route with its `@documented` operation (a route without one is an
    error, so nothing is served undocumented)."""
    operations = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        op = STATIC if rule.endpoint == "static" else getattr(view, "openapi", None)
        if op is None:
            raise ValueError(f"route {rule.rule} ({rule.endpoint}) has no @documented operation")
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operations.append((path, method.lower(), op, rule.arguments))
    models: dict[str, type[BaseModel]] = {}
    for _, _, op, _ in operations:
        for model in [op.form, op.query, *(m for r in op.responses.values() for m in r.models)]:
            if model is not None:
                models[model.__name__] = model
    requests = {op.form for _, _, op, _ in operations} | {op.query for _, _, op, _ in operations}
    _, generated = models_json_schema(
        [(m, "validation" if m in requests else "serialization") for m in models.values()],
        ref_template=REF,
    )
    schemas = generated.get("$defs", {})
    paths: dict = {}
    for path, method, op, arguments in operations:
        paths.setdefault(path, {})[method] = _operation(op, arguments, limits, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vihtr",
            "version": version,
            "description": "Vietnamese handwritten text recognition: send line or page images, get their text.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }
