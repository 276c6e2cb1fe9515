"""/v1/pools: the caller's organization's warm pools."""

from fastapi import APIRouter

from sandbay.api.deps import EnvironmentsDep, PrincipalDep, SessionDep
from sandbay.domain.pools import WarmPoolStatus

router = APIRouter(prefix="/v1/pools", tags=["pools"])


@router.get("")
async def list_pools(
    session: SessionDep, principal: PrincipalDep, environments: EnvironmentsDep
) -> list[WarmPoolStatus]:
    """Warm pools of this organization, configured (SANDBAY_WARM_POOLS) or made
    through Daytona's `/warm-pools`: size, ready and warming members. A create with a
    matching image and shape and no workload of its own is served from a ready member
    and answers `running` at once."""
    return await environments.pool_status(session, principal)
