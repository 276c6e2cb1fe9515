"""What an environment given secrets sees of them: their placeholders, under the
variable names its `secrets` map chooses, in the container's environment and in every
process started in it (exec, process sessions, terminals, SSH). Values are never read
here; a secret deleted since it was given is simply absent."""

from sandbay.db.models import EnvironmentModel
from sandbay.db.queries import egress as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.egress import TRUST_VARIABLES
from sandbay.domain.errors import InvalidRequest, PermissionDenied
from sandbay.domain.keys import Permission, Principal


async def check_attachable(
    session: AsyncSession, principal: Principal, org_id: str, attached: dict[str, str]
) -> None:
    """Refuse to give an environment secrets the caller may not see, or that do not
    exist in its organization (400 naming the first missing one)."""
    if not attached:
        return
    if not principal.allows(Permission.SECRETS_READ):
        raise PermissionDenied(
            f"giving an environment secrets needs the {Permission.SECRETS_READ.value!r} permission"
        )
    found = {row.name for row in await queries.secrets_named(session, org_id, attached.values())}
    for var, name in attached.items():
        if name not in found:
            raise InvalidRequest(f"secrets.{var}: no secret named {name!r} in this organization")


async def placeholders(session: AsyncSession, env: EnvironmentModel) -> dict[str, str]:
    """{variable: placeholder} of the environment's secrets that still exist."""
    attached = dict(env.secrets or {})
    if not attached:
        return {}
    rows = await queries.secrets_named(session, env.org_id, attached.values())
    by_name = {row.name: row.placeholder for row in rows}
    return {var: by_name[name] for var, name in attached.items() if name in by_name}


async def process_variables(
    session: AsyncSession, env: EnvironmentModel
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The variables a process started now gets, and the names it must not inherit
    from the container: the environment's own `env` with its secrets' placeholders
    over it; a variable of a secret since deleted is unset (the container may still
    hold the old placeholder)."""
    if not env.secrets:
        return dict(env.env or {}), tuple(env.env_unset or ())
    given = await placeholders(session, env)
    trust = TRUST_VARIABLES if given else {}  # also when secrets came after the create
    variables = {**trust, **(env.env or {}), **given}
    gone = {var for var in env.secrets or {} if var not in given and var not in variables}
    unset = tuple(sorted((set(env.env_unset or ()) | gone) - set(given)))
    return variables, unset


def unset_after_change(
    env_vars: dict[str, str], unset: list[str], before: dict[str, str], after: dict[str, str]
) -> list[str]:
    """`env_unset` once the secrets map goes from `before` to `after`: a variable no
    longer given (and not one of `env`) is unset for later processes, as a variable
    dropped from `env` is; one given again is not."""
    dropped = set(before) - set(after) - set(env_vars)
    return sorted((set(unset) | dropped) - set(after))
