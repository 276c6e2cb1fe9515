"""The Daytona SDK's routes sandbay refuses on purpose: each answers a clear 400 in
Daytona's error shape saying why, not a bare 404 (a caller learns it is not coming
from a typo). `REFUSED` is the one place the reasons live: the routes are built from
it, and the SDK coverage map (tests/support/daytona_calls.py) reads it. Registered
last, so a route served for real always wins."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter

from sandbay.domain.errors import InvalidRequest

from .errors import DaytonaPrincipal

COMPUTER_USE = (
    "computer use (desktop, mouse, keyboard, screenshots) is not supported by this server"
)
_ANY = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Routes (`methods` on `path`, as FastAPI writes it) refused with `reason`."""

    methods: tuple[str, ...]
    path: str
    reason: str


REFUSED: tuple[Refusal, ...] = (
    Refusal(_ANY, "/toolbox/{sandboxId}/computeruse/{rest:path}", COMPUTER_USE),
)

router = APIRouter(prefix="", tags=["daytona"])


def _refuse(reason: str) -> Callable[[DaytonaPrincipal], Awaitable[None]]:
    async def refuse(principal: DaytonaPrincipal) -> None:
        raise InvalidRequest(reason)

    return refuse


for _refusal in REFUSED:
    router.add_api_route(
        _refusal.path,
        _refuse(_refusal.reason),
        methods=list(_refusal.methods),
        # Not part of the API a client can use: kept out of the OpenAPI document.
        include_in_schema=False,
    )
