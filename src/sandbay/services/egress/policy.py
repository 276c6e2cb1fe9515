"""The domain policy the egress proxy enforces for one environment: its allow and
deny lists and the secrets it is given, decrypted. The only place a secret's value
is decrypted; what it returns goes to the proxy alone (`EgressSecret` never shows
its value in a repr)."""

from typing import TYPE_CHECKING

from sandbay.db.models import EnvironmentModel
from sandbay.db.queries import egress as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.egress import DomainPolicy, EgressSecret

if TYPE_CHECKING:  # only its `decrypt` is called; the platform builds it
    from sandbay.services.agents.secrets import SecretBox


async def domain_policy(
    session: AsyncSession, env: EnvironmentModel, box: "SecretBox"
) -> DomainPolicy:
    """The environment's policy now. A secret deleted since it was given is absent
    (its placeholder then passes the proxy unchanged)."""
    attached = dict(env.secrets or {})
    rows = await queries.secrets_named(session, env.org_id, attached.values())
    by_name = {row.name: row for row in rows}
    secrets = tuple(
        EgressSecret(
            name=row.name,
            placeholder=row.placeholder,
            value=box.decrypt(row.ciphertext),
            hosts=tuple(row.hosts or ()),
        )
        for row in (by_name[name] for name in dict.fromkeys(attached.values()) if name in by_name)
    )
    return DomainPolicy(
        allow=tuple(env.network_domain_allow_list or ()),
        deny=tuple(env.network_domain_deny_list or ()),
        secrets=secrets,
    )
