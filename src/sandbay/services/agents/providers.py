"""An organization's model providers: base URLs, models and a credential that is
encrypted at rest, never returned, logged or put in an event, and decrypted only to
hand it to an agent process (`resolve`)."""

from dataclasses import dataclass, field

from sandbay.db.models import ModelProviderModel
from sandbay.db.queries import agents as queries
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.agents import (
    AGENT_PROVIDERS,
    DEFAULT_BASE_URLS,
    AgentKind,
    ModelProvider,
    ModelProviderPut,
    ProviderKind,
    secret_hint,
)
from sandbay.domain.errors import FailedDependency, InvalidRequest, NotFound
from sandbay.domain.keys import Permission, Principal
from sandbay.kit.clock import utcnow
from sandbay.services.agents.secrets import SecretBox
from sandbay.services.events.record import record_event
from sandbay.services.tenancy.auth import require, require_organization_wide

PROVIDER_ID = "mp"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A provider resolved for one agent process. `repr` never shows the key."""

    provider: str
    kind: ProviderKind
    base_url: str
    models: list[str]
    default_model: str | None
    api_key: str = field(repr=False)


def to_api(row: ModelProviderModel) -> ModelProvider:
    return ModelProvider(
        name=row.name,
        kind=ProviderKind(row.kind),
        base_url=row.base_url,
        models=list(row.models or []),
        default_model=row.default_model,
        api_key_hint=row.secret_hint,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def put_provider(
    session: AsyncSession, principal: Principal, box: SecretBox, name: str, body: ModelProviderPut
) -> ModelProvider:
    """Create or replace a provider; the credential is encrypted before it is stored.
    A key limited to given environments may not: the provider serves the whole
    organization (and a new base_url would receive its stored key)."""
    org_id = require_organization_wide(principal, Permission.MODEL_PROVIDERS_WRITE)
    if body.kind is ProviderKind.OPENAI_COMPATIBLE and not body.base_url:
        raise InvalidRequest("base_url is required for an openai-compatible provider")
    row = await queries.provider_named(session, org_id, name)
    secret = body.api_key.get_secret_value() if body.api_key is not None else None
    if row is None and not secret:
        raise InvalidRequest("api_key is required when creating a provider")
    now = utcnow()
    if row is None:
        row = ModelProviderModel(
            id=ids.new_id(PROVIDER_ID), org_id=org_id, name=name, created_at=now
        )
        session.add(row)
    row.kind = body.kind.value
    row.base_url = body.base_url
    row.models = list(body.models)
    row.default_model = body.default_model or (body.models[0] if body.models else None)
    if secret:
        row.secret_ciphertext = box.encrypt(secret)
        row.secret_hint = secret_hint(secret)
    row.updated_at = now
    record_event(
        session,
        org_id=org_id,
        type="model_provider.updated",
        actor=principal.actor,
        data={"name": name, "kind": body.kind.value, "credential_changed": bool(secret)},
    )
    await session.flush()
    return to_api(row)


async def get_provider(session: AsyncSession, principal: Principal, name: str) -> ModelProvider:
    org_id = require(principal, Permission.MODEL_PROVIDERS_READ)
    row = await queries.provider_named(session, org_id, name)
    if row is None:
        raise NotFound(f"no model provider {name!r}")
    return to_api(row)


async def org_providers(session: AsyncSession, org_id: str) -> list[ModelProviderModel]:
    return await queries.providers_of(session, org_id)


async def list_providers(session: AsyncSession, principal: Principal) -> list[ModelProvider]:
    org_id = require(principal, Permission.MODEL_PROVIDERS_READ)
    return [to_api(row) for row in await org_providers(session, org_id)]


async def delete_provider(session: AsyncSession, principal: Principal, name: str) -> None:
    org_id = require_organization_wide(principal, Permission.MODEL_PROVIDERS_WRITE)
    row = await queries.provider_named(session, org_id, name)
    if row is None:
        raise NotFound(f"no model provider {name!r}")
    await session.delete(row)
    record_event(
        session,
        org_id=org_id,
        type="model_provider.deleted",
        actor=principal.actor,
        data={"name": name},
    )
    await session.flush()


def usable_by(agent: AgentKind, rows: list[ModelProviderModel]) -> list[ModelProviderModel]:
    """The providers an agent can use, in its order of preference of kinds."""
    kinds = AGENT_PROVIDERS[agent]
    return sorted(
        (r for r in rows if r.kind in kinds), key=lambda r: kinds.index(ProviderKind(r.kind))
    )


def credentials(box: SecretBox, row: ModelProviderModel) -> Credentials:
    kind = ProviderKind(row.kind)
    return Credentials(
        provider=row.name,
        kind=kind,
        base_url=row.base_url or DEFAULT_BASE_URLS[kind],
        models=list(row.models or []),
        default_model=row.default_model,
        api_key=box.decrypt(row.secret_ciphertext),
    )


async def resolve(
    session: AsyncSession,
    box: SecretBox,
    org_id: str,
    *,
    kinds: tuple[ProviderKind, ...],
    name: str | None,
) -> Credentials:
    """The credentials to give an agent: the named provider, else the first stored one
    of an acceptable kind. 424 when the organization has none it can use."""
    rows = await org_providers(session, org_id)
    if name is not None:
        row = next((r for r in rows if r.name == name), None)
        if row is None:
            raise FailedDependency(f"no model provider {name!r} in this organization")
        if row.kind not in kinds:
            wanted = ", ".join(k.value for k in kinds)
            raise FailedDependency(f"model provider {name!r} is {row.kind}; this needs {wanted}")
        return credentials(box, row)
    for kind in kinds:
        row = next((r for r in rows if r.kind == kind), None)
        if row is not None:
            return credentials(box, row)
    wanted = " or ".join(k.value for k in kinds)
    raise FailedDependency(
        f"no credentials: store a {wanted} model provider (PUT /v1/model-providers/{{name}})"
    )
