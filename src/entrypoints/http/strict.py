"""Requests are read exactly as the OpenAPI document describes them, and hostile ones get a clean 4xx.

Litestar converts bodies and query strings leniently (``msgspec.convert(..., strict=False)``): the
string ``"9"`` or the float ``9.0`` pass as an integer, ``1`` as ``true``, ``cursor=1e3`` as 1000, and
its path converter is ``int()``, which also takes full-width or Arabic-Indic digits and ``"9_0"``. A body in invalid
UTF-8 or nested thousands of levels deep raised out of its decoder as a 500. So:

- ``StrictJsonRequest`` decodes a JSON body itself, straight into the handler's msgspec type with
  ``strict=True`` (Litestar's own conversion then passes the finished Struct through untouched), and
  answers 415 for anything but ``application/json``, 400 for malformed, non-UTF-8, too deeply nested
  or duplicate-key JSON, 422 naming the field for a wrong type or value.
- ``canonical_numbers`` (a guard, run after authentication) refuses integer query values that are not
  ASCII digits (422) and integer path segments that are not the canonical spelling of the id (404).
"""

from __future__ import annotations

import json
import re
import types
from typing import Any, Union, get_args, get_origin

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import DependencyKwarg, ParameterKwarg

from entrypoints.http.errors import RequestRejected

_INTEGER = re.compile(r"-?[0-9]+")
_body_types: dict[BaseRouteHandler, Any] = {}
_integer_queries: dict[BaseRouteHandler, tuple[str, ...]] = {}


class StrictJsonRequest(Request):
    """A request whose ``json()`` is the handler's typed body, decoded strictly (see the module docstring)."""

    async def json(self) -> Any:
        return await self.json_as(_body_type(self.route_handler))

    async def json_as(self, target: Any) -> Any:
        """The body as ``target``, read as strictly (for handlers whose body is optional)."""
        media_type, options = self.content_type
        if media_type != "application/json" or options.get("charset", "utf-8").lower() != "utf-8":
            raise RequestRejected(415, "unsupported_media_type", "send the body as Content-Type: application/json")
        return decode_body(await self.body(), target)


def decode_body(body: bytes, target: Any) -> Any:
    """The body as ``target``: ``RequestRejected`` (400) unless it is one JSON value in UTF-8 with no key twice,
    ``ValidationException`` (422) if it does not fit the type."""
    try:
        # The stdlib decoder first: it is the only one here that shows every key of an object (msgspec,
        # like most decoders, keeps the last of two equal keys, and a client that sent both meant something
        # else), and it checks the whole body before any field is judged. Bodies are at most 64 KiB and our
        # objects flat: a few microseconds.
        json.loads(body.decode("utf-8"), object_pairs_hook=_check_pairs)
    except UnicodeDecodeError:
        raise RequestRejected(400, "malformed_json", "the body is not valid UTF-8") from None
    except RecursionError:
        raise RequestRejected(400, "malformed_json", "the body is nested too deeply") from None
    except _DuplicateKey as error:
        key = error.args[0]
        raise RequestRejected(400, "malformed_json", f"the key {key!r} appears twice", field=key) from None
    except ValueError as error:
        raise RequestRejected(400, "malformed_json", f"the body is not valid JSON: {error}") from None
    try:
        return msgspec.json.decode(body, type=target, strict=True)
    except msgspec.ValidationError as error:
        raise ValidationException(detail=str(error), extra=[{"message": str(error)}]) from None
    except (msgspec.DecodeError, RecursionError) as error:  # NaN and Infinity, which the stdlib allows
        raise RequestRejected(400, "malformed_json", f"the body is not valid JSON: {error}") from None


class _DuplicateKey(Exception):
    pass


def _check_pairs(pairs: list[tuple[str, Any]]) -> None:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise _DuplicateKey(next(key for key in keys if keys.count(key) > 1))


def _body_type(handler: BaseRouteHandler) -> Any:
    if handler not in _body_types:
        _body_types[handler] = handler.parsed_fn_signature.parameters["data"].annotation
    return _body_types[handler]


async def canonical_numbers(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard: integer path ids spelled as the id itself (else 404), integer query values in ASCII digits (else 422)."""
    if connection.scope.get("path_params"):
        # Compared segment by segment with the route's template: the id's own segment must spell it
        # (the "1" of /api/1/ must not vouch for a full-width digit one in the id segment).
        segments = connection.scope["path"].split("/")
        template = (connection.scope.get("path_template") or "").split("/")
        for name, value in connection.scope["path_params"].items():
            if type(value) is not int:
                continue
            position = template.index(f"{{{name}}}") if f"{{{name}}}" in template else -1
            if position < 0 or position >= len(segments) or segments[position] != str(value):
                raise RequestRejected(404, "not_found", "no such resource: ids are written in ASCII digits")
    if connection.scope.get("query_string"):
        query = connection.query_params
        for name in _integer_query_names(handler):
            for value in query.getall(name, ()):
                if not _INTEGER.fullmatch(value):
                    raise RequestRejected(422, "validation_error", f"{name}: expected an integer", field=name)


def _integer_query_names(handler: BaseRouteHandler) -> tuple[str, ...]:
    if handler not in _integer_queries:
        names = []
        for name, field in handler.parsed_fn_signature.parameters.items():
            kwarg = field.kwarg_definition
            if isinstance(kwarg, DependencyKwarg):
                continue
            if isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie):
                continue
            if _is_integer(field.annotation):
                names.append(kwarg.query if isinstance(kwarg, ParameterKwarg) and kwarg.query else name)
        _integer_queries[handler] = tuple(names)
    return _integer_queries[handler]


def _is_integer(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_integer(arg) for arg in get_args(annotation) if arg is not type(None))
    return annotation is int
