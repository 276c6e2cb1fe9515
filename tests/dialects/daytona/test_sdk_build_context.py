"""Builds with local files through the unchanged Daytona SDK: `Image.add_local_file`,
`add_local_dir` and a Dockerfile's COPY are uploaded by the SDK to object storage
(the credentials from `/object-storage/push-access`), and the server builds with
them. The bucket is moto's S3 server on loopback. The SDK's S3 client accepts only
HTTPS and trusts only the system's CA bundle (it clears the environment while it
builds its client, so SSL_CERT_FILE cannot help): the SDK's uploads therefore run in
a subprocess with a private mount namespace where a bundle holding the test CA is
bind-mounted over the system's."""

import contextlib
import datetime
import io
import ipaddress
import json
import shutil
import ssl
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import docker
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sts.models import sts_backends
from werkzeug.serving import make_server

from tests.support.polling import eventually
from tests.support.postgres import create_database, drop_database
from tests.support.server import ADMIN_KEY, LiveServer, free_port, new_server, remove_engine_objects

#: Exercises the engine and the HTTP shapes; every database path it touches runs on both
#: databases elsewhere (tests/api, tests/services).
pytestmark = pytest.mark.usefixtures("sqlite_only")

BUCKET = "sandbay-build-contexts"
KEY_ID, SECRET = "sandbay-contexts", "sandbay-contexts-secret"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sandbay-build-contexts"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: Organizations seen per server instance: the images built for them are removed after.
_ORGS: dict[str, set[str]] = {}

#: Run by the subprocess: the SDK, unchanged, builds a snapshot from local files and a
#: sandbox from a Dockerfile whose COPY reads a file next to it.
SDK_SCRIPT = """
import json, sys
from daytona import CreateSandboxFromImageParams, CreateSnapshotParams, Daytona, DaytonaConfig
from daytona import Image
url, key, name, file, folder, dockerfile = sys.argv[1:]
daytona = Daytona(DaytonaConfig(api_key=key, api_url=url))
image = (
    Image.base("sandbay-base:latest")
    .add_local_file(file, "/opt/app/x.txt")
    .add_local_dir(folder, "/opt/app/d")
)
snapshot = daytona.snapshot.create(CreateSnapshotParams(name=name, image=image), timeout=180)
sandbox = daytona.create(
    CreateSandboxFromImageParams(image=Image.from_dockerfile(dockerfile)), timeout=180
)
answer = {"state": str(snapshot.state), "error": snapshot.error_reason, "sandbox": sandbox.id}
print(json.dumps(answer))
"""

#: The same with the async SDK: a snapshot from a local file, a sandbox from a local folder.
ASYNC_SDK_SCRIPT = """
import asyncio, json, sys
from daytona import AsyncDaytona, CreateSandboxFromImageParams, CreateSnapshotParams
from daytona import DaytonaConfig, Image
url, key, name, file, folder = sys.argv[1:]

async def main() -> None:
    async with AsyncDaytona(DaytonaConfig(api_key=key, api_url=url)) as daytona:
        image = Image.base("sandbay-base:latest").add_local_file(file, "/opt/async/x.txt")
        snapshot = await daytona.snapshot.create(
            CreateSnapshotParams(name=name, image=image), timeout=180
        )
        own = Image.base("sandbay-base:latest").add_local_dir(folder, "/opt/async/d")
        sandbox = await daytona.create(CreateSandboxFromImageParams(image=own), timeout=180)
        print(json.dumps({"state": str(snapshot.state), "sandbox": sandbox.id}))

asyncio.run(main())
"""


@dataclass
class Store:
    endpoint: str
    ca: Path
    bundle: Path

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
            verify=str(self.ca),
        )


def _certificates(where: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 it signed: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(
        subject: str, issuer: str, key: ec.EllipticCurvePrivateKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = (
        builder("sandbay test ca", "sandbay test ca", ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        builder("127.0.0.1", "sandbay test ca", leaf_key)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = where / "ca.pem", where / "leaf.pem", where / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """moto's S3 over HTTPS on loopback, with the bucket made."""
    where = tmp_path_factory.mktemp("s3")
    ca, cert, key = _certificates(where)
    bundle = where / "bundle.pem"
    bundle.write_bytes(SYSTEM_BUNDLE.read_bytes() + b"\n" + ca.read_bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    port = free_port()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1", port, app, True, request_handler=MotoRequestHandler, ssl_context=context
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        found = Store(endpoint=f"https://127.0.0.1:{port}", ca=ca, bundle=bundle)
        found.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        yield found
    finally:
        server.shutdown()
        thread.join()


@contextlib.contextmanager
def _live_with_store(
    base: Path, database_url: str | None, store: Store, **extra: str
) -> Iterator[LiveServer]:
    """A server whose object storage is the bucket (its own database on PostgreSQL)."""
    own_url = create_database() if database_url else None
    live = new_server(
        base,
        database_url=own_url,
        extra_env={
            "SANDBAY_OBJECT_STORAGE__BUCKET": BUCKET,
            "SANDBAY_OBJECT_STORAGE__ENDPOINT": store.endpoint,
            "SANDBAY_OBJECT_STORAGE__ACCESS_KEY_ID": KEY_ID,
            "SANDBAY_OBJECT_STORAGE__SECRET_ACCESS_KEY": SECRET,
            "SANDBAY_OBJECT_STORAGE__REGION": "us-east-1",
            "AWS_CA_BUNDLE": str(store.ca),
            **extra,
        },
    )
    try:
        live.start()
        yield live
    finally:
        live.stop()
        remove_engine_objects(live.instance)
        _remove_built_images(live)
        if own_url:
            drop_database(own_url)


@pytest.fixture(scope="module")
def s3_server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str | None, store: Store
) -> Iterator[LiveServer]:
    """Object storage with the plain key handed out."""
    with _live_with_store(tmp_path_factory.mktemp("s3-servers"), database_url, store) as live:
        yield live


@pytest.fixture(scope="module")
def scoped_server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str | None, store: Store
) -> Iterator[LiveServer]:
    """Object storage handing out per-organization keys from STS (moto's, same endpoint)."""
    with _live_with_store(
        tmp_path_factory.mktemp("s3-scoped-servers"),
        database_url,
        store,
        SANDBAY_OBJECT_STORAGE__SCOPED_CREDENTIALS="true",
        SANDBAY_OBJECT_STORAGE__ROLE_ARN=ROLE_ARN,
    ) as live:
        yield live


def _remove_built_images(live: LiveServer) -> None:
    """The images this server built (labelled with its organizations' ids)."""
    engine = docker.from_env()
    try:
        for org in _ORGS.pop(live.instance, set()):
            for image in engine.api.images(filters={"label": f"sandbay.org={org}"}):
                for tag in image.get("RepoTags") or [image["Id"]]:
                    with contextlib.suppress(docker.errors.APIError):
                        engine.images.remove(tag, force=True)
    finally:
        engine.close()


def _remember_org(live: LiveServer, owner_prefix: str) -> str:
    """The organization id in a push-access prefix, noted for the image clean-up."""
    org = owner_prefix.rsplit("/", 1)[-1]
    _ORGS.setdefault(live.instance, set()).add(org)
    return org


def _push_access(live: LiveServer, key: str | None = None) -> dict[str, str]:
    with live.client(key=key) as client:
        answer = client.get("/object-storage/push-access")
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    _remember_org(live, body["organizationId"])
    return body


def _can_unshare_mounts() -> bool:
    if shutil.which("unshare") is None or not SYSTEM_BUNDLE.exists():
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
    )
    return probe.returncode == 0


def _run_sdk(
    live: LiveServer, store: Store, name: str, *paths: Path, script: str = SDK_SCRIPT
) -> dict[str, str]:
    """The script's answer (SDK_SCRIPT's by default), run where the test CA is in the
    system bundle."""
    command = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        'mount --bind "$1" /etc/ssl/certs/ca-certificates.crt && shift && exec "$@"',
        "sh", str(store.bundle),
        sys.executable, "-c", script, live.url, live.key, name, *map(str, paths),
    ]  # fmt: skip
    ran = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:] + live.tail()
    result: dict[str, str] = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["state"].lower().endswith("active"), result
    return result


def _local_files(where: Path) -> tuple[Path, Path, Path]:
    """A file, a folder (with a subfolder) and a Dockerfile whose COPY reads a file."""
    file = where / "x.txt"
    file.write_text("hello from a local file")
    folder = where / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.txt").write_text("beta")
    project = where / "project"
    project.mkdir()
    (project / "data.txt").write_text("copied by the Dockerfile")
    (project / "Dockerfile").write_text(
        "FROM sandbay-base:latest\nCOPY data.txt /opt/df/data.txt\n"
    )
    return file, folder, project / "Dockerfile"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _snapshot_failure(daytona: Daytona, name: str) -> str:
    """The reason the snapshot's build failed, once it has."""

    def failed() -> str | None:
        snapshot = daytona.snapshot.get(name)
        done = str(snapshot.state).lower().endswith("build_failed")
        return str(snapshot.error_reason) if done else None

    return str(eventually(failed, what=f"snapshot {name} to fail", timeout=120))


def _context_tar(archive_path: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(archive_path)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _create_snapshot(client: httpx.Client, name: str, dockerfile: str, hashes: list[str]) -> None:
    answer = client.post(
        "/snapshots",
        json={
            "name": name,
            "buildInfo": {"dockerfileContent": dockerfile, "contextHashes": hashes},
        },
    )
    assert answer.status_code in (200, 201), answer.text


def test_push_access_names_the_bucket_key_and_the_organizations_prefix(
    s3_server: LiveServer, store: Store
) -> None:
    access = _push_access(s3_server)
    assert access["storageUrl"] == store.endpoint
    assert access["bucket"] == BUCKET
    assert (access["accessKey"], access["secret"]) == (KEY_ID, SECRET)
    assert access["region"] == "us-east-1"
    assert access["organizationId"].startswith("build-contexts/org")
    with s3_server.client(key="") as anonymous:
        assert anonymous.get("/object-storage/push-access").status_code == 401


@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs a private mount namespace (unshare)")
def test_local_files_and_a_dockerfile_copy_are_built_into_the_image(
    s3_server: LiveServer, store: Store, tmp_path: Path
) -> None:
    _push_access(s3_server)
    file, folder, dockerfile = _local_files(tmp_path)
    name = _name("local-files")
    result = _run_sdk(s3_server, store, name, file, folder, dockerfile)
    assert result["state"].lower().endswith("active"), result
    # The contexts are in the organization's prefix, where the SDK put them.
    org_prefix = _push_access(s3_server)["organizationId"]
    listed = store.client().list_objects_v2(Bucket=BUCKET, Prefix=org_prefix + "/")  # type: ignore[attr-defined]
    keys = [o["Key"] for o in listed["Contents"]]
    assert len(keys) == 3 and all(k.endswith("/context.tar") for k in keys)

    daytona = Daytona(DaytonaConfig(api_key=s3_server.key, api_url=s3_server.url))
    from_snapshot = daytona.create(CreateSandboxFromSnapshotParams(snapshot=name), timeout=120)
    from_image = daytona.get(result["sandbox"])
    try:
        assert from_snapshot.fs.download_file("/opt/app/x.txt") == b"hello from a local file"
        assert from_snapshot.fs.download_file("/opt/app/d/a.txt") == b"alpha"
        assert from_snapshot.fs.download_file("/opt/app/d/sub/b.txt") == b"beta"
        assert from_image.fs.download_file("/opt/df/data.txt") == b"copied by the Dockerfile"
    finally:
        daytona.delete(from_snapshot, timeout=120)
        daytona.delete(from_image, timeout=120)


@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs a private mount namespace (unshare)")
def test_the_async_sdk_builds_with_local_files_too(
    s3_server: LiveServer, store: Store, tmp_path: Path
) -> None:
    _push_access(s3_server)
    file, folder, _ = _local_files(tmp_path)
    name = _name("async-local")
    result = _run_sdk(s3_server, store, name, file, folder, script=ASYNC_SDK_SCRIPT)
    daytona = Daytona(DaytonaConfig(api_key=s3_server.key, api_url=s3_server.url))
    from_snapshot = daytona.create(CreateSandboxFromSnapshotParams(snapshot=name), timeout=120)
    from_image = daytona.get(result["sandbox"])
    try:
        assert from_snapshot.fs.download_file("/opt/async/x.txt") == b"hello from a local file"
        assert from_image.fs.download_file("/opt/async/d/sub/b.txt") == b"beta"
    finally:
        daytona.delete(from_snapshot, timeout=120)
        daytona.delete(from_image, timeout=120)


def test_a_context_not_in_the_store_fails_the_build_naming_it(s3_server: LiveServer) -> None:
    _push_access(s3_server)
    daytona = Daytona(DaytonaConfig(api_key=s3_server.key, api_url=s3_server.url))
    name, missing = _name("missing-context"), uuid.uuid4().hex
    with s3_server.client() as client:
        _create_snapshot(client, name, "FROM sandbay-base:latest\nCOPY x /opt/x\n", [missing])
    reason = _snapshot_failure(daytona, name)
    assert missing in reason and "not in this organization's object storage" in reason


def test_a_context_with_an_entry_outside_it_fails_the_build(
    s3_server: LiveServer, store: Store
) -> None:
    access = _push_access(s3_server)
    daytona = Daytona(DaytonaConfig(api_key=s3_server.key, api_url=s3_server.url))
    name, context_hash = _name("escape"), uuid.uuid4().hex
    store.client().put_object(  # type: ignore[attr-defined]
        Bucket=BUCKET,
        Key=f"{access['organizationId']}/{context_hash}/context.tar",
        Body=_context_tar("../escape.txt", b"out"),
    )
    with s3_server.client() as client:
        _create_snapshot(
            client, name, "FROM sandbay-base:latest\nCOPY escape.txt /opt/x\n", [context_hash]
        )
    assert "points outside the context" in _snapshot_failure(daytona, name)


def test_a_context_hash_that_is_a_path_is_refused(s3_server: LiveServer) -> None:
    with s3_server.client() as client:
        answer = client.post(
            "/snapshots",
            json={
                "name": _name("path-hash"),
                "buildInfo": {
                    "dockerfileContent": "FROM sandbay-base:latest\nCOPY x /opt/x\n",
                    "contextHashes": ["../other-org/abc"],
                },
            },
        )
    assert answer.status_code == 400 and "not a plain name" in answer.text


def test_another_organizations_context_is_not_usable(s3_server: LiveServer, store: Store) -> None:
    """A context uploaded to one organization's prefix builds there, and not for another
    organization that names its hash."""
    with s3_server.client(key=ADMIN_KEY) as admin:
        created = admin.post("/v1/orgs", json={"name": _name("contexts-other")})
        assert created.status_code == 201, created.text
        other_key = created.json()["api_key"]["key"]
    mine, theirs = _push_access(s3_server), _push_access(s3_server, other_key)
    assert mine["organizationId"] != theirs["organizationId"]
    context_hash = uuid.uuid4().hex
    store.client().put_object(  # type: ignore[attr-defined]
        Bucket=BUCKET,
        Key=f"{mine['organizationId']}/{context_hash}/context.tar",
        Body=_context_tar("secret.txt", b"only ours"),
    )
    dockerfile = "FROM sandbay-base:latest\nCOPY secret.txt /opt/secret.txt\n"
    ours = Daytona(DaytonaConfig(api_key=s3_server.key, api_url=s3_server.url))
    other = Daytona(DaytonaConfig(api_key=other_key, api_url=s3_server.url))
    ours_name, theirs_name = _name("ours"), _name("theirs")
    with s3_server.client() as client:
        _create_snapshot(client, ours_name, dockerfile, [context_hash])
    with s3_server.client(key=other_key) as client:
        _create_snapshot(client, theirs_name, dockerfile, [context_hash])
    eventually(
        lambda: str(ours.snapshot.get(ours_name).state).lower().endswith("active"),
        what="our build",
        timeout=120,
    )
    reason = _snapshot_failure(other, theirs_name)
    assert context_hash in reason and "not in this organization's object storage" in reason


@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs a private mount namespace (unshare)")
def test_scoped_credentials_are_a_temporary_key_limited_to_the_organizations_prefix(
    scoped_server: LiveServer, store: Store, tmp_path: Path
) -> None:
    access = _push_access(scoped_server)
    assert access["accessKey"] != KEY_ID and access["sessionToken"]
    assumed = sts_backends[ACCOUNT]["aws"].get_assumed_role_from_access_key(access["accessKey"])
    assert assumed is not None and assumed.role_arn == ROLE_ARN
    allowed = json.loads(assumed.policy)["Statement"][0]
    assert allowed["Resource"] == [f"arn:aws:s3:::{BUCKET}/{access['organizationId']}/*"]
    assert "s3:PutObject" in allowed["Action"] and "s3:DeleteObject" not in allowed["Action"]
    # The SDK uploads with the temporary key (and its session token) and the build works.
    name = _name("scoped")
    result = _run_sdk(scoped_server, store, name, *_local_files(tmp_path))
    daytona = Daytona(DaytonaConfig(api_key=scoped_server.key, api_url=scoped_server.url))
    sandbox = daytona.get(result["sandbox"])
    try:
        assert sandbox.fs.download_file("/opt/df/data.txt") == b"copied by the Dockerfile"
    finally:
        daytona.delete(sandbox, timeout=120)
