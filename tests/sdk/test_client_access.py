"""The Python SDK issues and revokes SSH credentials, gives preview links and
changes the preview and network settings."""

import uuid

from sandbay.sdk.client import Client
from tests.support.factories import delete
from tests.support.server import LiveServer


def test_sdk_ssh_credentials_preview_links_and_settings(server: LiveServer) -> None:
    with Client(server.url, server.key) as client:
        env = client.create_environment(name=f"sdk-access-{uuid.uuid4().hex[:8]}")
        try:
            cred = client.ssh_credentials(env["id"], expires_in=60)
            assert cred["username"] == env["id"] and cred["port"] == server.ssh_port
            assert client.revoke_ssh_credential(env["id"], cred["id"])["revoked_at"]
            link = client.preview_link(env["id"], 3000)
            assert link["token"] and link["path_url"].endswith(f"/preview/{env['id']}/3000/")
            changed = client.update_environment(env["id"], public=True)
            assert changed["public"] is True
            assert client.preview_link(env["id"], 3000)["token"] is None
        finally:
            with server.client() as api:
                delete(api, env["id"])
