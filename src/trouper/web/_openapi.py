"""The OpenAPI 3.1 document of a gateway's typed routes (``/openapi.json``).

Built from what the routes declare: path and query parameters with their
types, the body's Struct, the returned type, the roles. Schemas come from
msgspec (``msgspec.json.schema_components``), which writes JSON Schema
2020-12, the dialect of OpenAPI 3.1, so they go into
``components/schemas`` as they are.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ._h1 import Response
from ._routes import Param, Route

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{name}"
_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "required": ["error", "message"],
}


def _wanted(annotation: Any) -> bool:
    return annotation is not Any and annotation is not Response and annotation is not None


def openapi_document(routes: list[Route], title: str, version: str) -> dict[str, Any]:
    """The document, as plain data (encode it with msgspec or json)."""
    types: list[Any] = []
    for route in routes:
        types.extend(p.annotation for p in route.params if p.source != "request")
        if _wanted(route.returns):
            types.append(route.returns)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(map(_key, types), schemas, strict=True))
    components = dict(components)
    components["Error"] = _ERROR
    paths: dict[str, dict[str, Any]] = {}
    secured = False
    for route in routes:
        item = paths.setdefault(route.path, {})
        for method in sorted(route.methods):
            operation = _operation(route, schema_of)
            if route.auth or route.roles:
                operation["security"] = [{"bearer": []}]
                secured = True
            item[method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
    if secured:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
    return document


def _key(annotation: Any) -> str:
    return repr(annotation)


def _operation(route: Route, schema_of: dict[str, Any]) -> dict[str, Any]:
    operation_id = re.sub(r"\W+", "_", f"{route.name}").strip("_")
    if len(route.methods) > 1:
        operation_id += "_" + "_".join(sorted(m.lower() for m in route.methods))
    operation: dict[str, Any] = {"operationId": operation_id}
    if route.summary:
        operation["summary"] = route.summary
    if route.tags:
        operation["tags"] = list(route.tags)
    parameters = [_parameter(p, schema_of) for p in route.params if p.source in ("path", "query")]
    if parameters:
        operation["parameters"] = parameters
    body = next((p for p in route.params if p.source == "body"), None)
    if body is not None:
        operation["requestBody"] = {
            "required": body.required,
            "content": {"application/json": {"schema": schema_of[_key(body.annotation)]}},
        }
    responses: dict[str, Any] = {}
    if _wanted(route.returns):
        content = {"application/json": {"schema": schema_of[_key(route.returns)]}}
        responses["200"] = {"description": "OK", "content": content}
    else:
        responses["default"] = {"description": "the handler's response"}
    error = {"content": {"application/json": {"schema": {"$ref": _REF.format(name="Error")}}}}
    if parameters or body is not None:
        responses["422"] = {"description": "a parameter or the body is invalid", **error}
    if route.auth or route.roles:
        responses["401"] = {"description": "no valid bearer token", **error}
    if route.roles:
        responses["403"] = {"description": f"the token lacks {list(route.roles)}", **error}
    operation["responses"] = responses
    return operation


def _parameter(param: Param, schema_of: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.source,
        "required": param.source == "path" or param.required,
        "schema": schema_of[_key(param.annotation)],
    }
