"""A query parameter that takes one value, given twice, is a 400: the framework would
silently keep the last one, so `?limit=1&limit=1000` or `?after=0&after=9` would
mean whatever a proxy or client library last appended. Parameters that take a list
(`label=…&label=…`) may repeat."""

from fastapi import params
from fastapi._compat import field_annotation_is_sequence
from fastapi.dependencies.utils import get_flat_params
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute

from sandbay.domain.errors import InvalidRequest

_ATTRIBUTE = "sandbay_single_valued_query"


def _single_valued(route: BaseRoute) -> frozenset[str]:
    """The names of the route's query parameters that take one value (computed once
    per route, kept on it)."""
    names: frozenset[str] | None = getattr(route, _ATTRIBUTE, None)
    if names is None:
        dependant = getattr(route, "dependant", None)
        fields = get_flat_params(dependant) if dependant is not None else []
        names = frozenset(
            field.alias
            for field in fields
            if isinstance(field.field_info, params.Query)
            and not field_annotation_is_sequence(field.field_info.annotation)
        )
        setattr(route, _ATTRIBUTE, names)
    return names


async def single_valued_query(connection: HTTPConnection) -> None:
    """An app-wide dependency: refuse a single-valued query parameter given twice."""
    route = connection.scope.get("route")
    if route is None or not connection.scope.get("query_string"):
        return
    single = _single_valued(route)
    seen: set[str] = set()
    for name, _ in connection.query_params.multi_items():
        if name in single:
            if name in seen:
                raise InvalidRequest(f"query parameter '{name}' given more than once")
            seen.add(name)
