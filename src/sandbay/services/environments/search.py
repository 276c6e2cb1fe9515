"""The filtered, sorted listing (`domain.search`): one page of the caller's
environments and the cursor of the next (an offset: the listing is a snapshot per
page, as Daytona's is eventually consistent)."""

from pydantic import TypeAdapter

from sandbay.db.queries import environments as queries
from sandbay.db.queries.search import search_rows
from sandbay.db.session import AsyncSession
from sandbay.domain.environments import Environment
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.search import EnvironmentSearch
from sandbay.services.tenancy.auth import require

_ENVIRONMENTS = TypeAdapter(list[Environment])
CURSOR_PREFIX = "o"


def offset_of(cursor: str | None) -> int:
    """The offset a cursor of `search_environments` stands for."""
    if not cursor:
        return 0
    digits = cursor.removeprefix(CURSOR_PREFIX)
    if not cursor.startswith(CURSOR_PREFIX) or not digits.isdigit() or len(digits) > 9:
        raise InvalidRequest("invalid cursor")
    return int(digits)


async def search_environments(
    session: AsyncSession, principal: Principal, search: EnvironmentSearch
) -> tuple[list[Environment], str | None]:
    org_id = require(principal, Permission.ENVIRONMENTS_READ)
    rows = await search_rows(
        session, search, org_id, principal.environment_ids, queries.SHAPE_COLUMNS
    )
    more = len(rows) > search.limit
    page = _ENVIRONMENTS.validate_python(rows[: search.limit])
    cursor = f"{CURSOR_PREFIX}{search.offset + len(page)}" if more else None
    return page, cursor
