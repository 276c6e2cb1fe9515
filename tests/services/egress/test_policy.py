"""The domain policy the egress proxy gets for an environment: its lists and its
secrets' values decrypted (a secret deleted since it was given is absent), and when
its traffic goes through the proxy at all."""

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import OrganizationModel
from sandbay.domain.org_secrets import SecretCreate
from sandbay.services.agents.secrets import SecretBox
from sandbay.services.egress import secrets
from sandbay.services.egress.policy import domain_policy
from sandbay.services.environments.records import network_rules
from tests.support.records import Key, create_environment_record

pytestmark = pytest.mark.anyio


async def test_the_policy_holds_the_lists_and_the_values_of_existing_secrets(
    session: AsyncSession, org: OrganizationModel, owner: Key
) -> None:
    box = SecretBox(Fernet.generate_key())
    made = {}
    for name, value, hosts in (("alpha", "value-a", ["api.a.test"]), ("beta", "value-b", [])):
        body = SecretCreate.model_validate({"name": name, "value": value, "hosts": hosts})
        made[name] = await secrets.create_secret(session, owner.principal, box, body)
    env = await create_environment_record(
        session,
        org=org,
        network_domain_allow_list=["*.a.test", "b.test"],
        network_domain_deny_list=["bad.a.test"],
        secrets={"A": "alpha", "B": "beta", "A2": "alpha", "GONE": "gamma"},
    )
    policy = await domain_policy(session, env, box)
    assert policy.allow == ("*.a.test", "b.test") and policy.deny == ("bad.a.test",)
    assert [(s.name, s.placeholder, s.value, s.hosts) for s in policy.secrets] == [
        ("alpha", made["alpha"].placeholder, "value-a", ("api.a.test",)),
        ("beta", made["beta"].placeholder, "value-b", ()),
    ]
    assert "value-a" not in repr(policy)
    await secrets.delete_secret(session, owner.principal, "beta")
    assert [s.name for s in (await domain_policy(session, env, box)).secrets] == ["alpha"]


async def test_traffic_is_proxied_with_a_domain_policy_or_secrets_unless_blocked(
    session: AsyncSession, org: OrganizationModel
) -> None:
    cases = (
        ({}, False),
        ({"network_allow_list": ["10.0.0.0/8"]}, False),
        ({"network_domain_allow_list": ["a.test"]}, True),
        ({"network_domain_deny_list": ["a.test"]}, True),
        ({"secrets": {"A": "alpha"}}, True),
        ({"secrets": {"A": "alpha"}, "network_block_all": True}, False),
    )
    for fields, proxied in cases:
        env = await create_environment_record(session, org=org, **fields)
        assert network_rules(env).proxied is proxied, fields
