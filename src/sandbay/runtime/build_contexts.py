"""Build contexts in an S3-compatible bucket: the credentials a client uploads with,
and the builder's download of an organization's contexts (one tar each). boto3 is
imported only when a bucket is configured (`pip install sandbay[s3]`)."""

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sandbay.domain.build_contexts import PushAccess, context_key, owner_prefix, session_policy
from sandbay.domain.errors import RuntimeFailure


class ContextMissing(RuntimeFailure):
    """A build names a context its organization never uploaded: trying again cannot help."""

    permanent = True


@dataclass(frozen=True, slots=True)
class ScopedKeys:
    """Temporary per-organization keys from STS AssumeRole (AWS, MinIO)."""

    role_arn: str
    endpoint: str | None
    seconds: int


class BuildContextStore(Protocol):
    async def push_access(self, org_id: str) -> PushAccess:
        """Where and with what the organization's client uploads its contexts."""
        ...

    async def fetch(self, org_id: str, hashes: list[str], dest: Path) -> list[Path]:
        """Download the organization's contexts into `dest`, one tar each, in order;
        a hash it does not hold raises `ContextMissing`."""
        ...


class S3BuildContexts:
    """Contexts under `{bucket}/{prefix}{org}/{hash}/context.tar`. With `scoped`, a
    client gets a temporary key whose session policy allows its organization's
    prefix only; else the configured key itself (a plain key cannot be narrowed
    here: the operator gives one limited to this bucket and prefix)."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        access_key_id: str,
        secret_access_key: str,
        endpoint: str | None,
        public_endpoint: str | None,
        region: str,
        scoped: ScopedKeys | None = None,
    ) -> None:
        import boto3  # optional dependency: `pip install sandbay[s3]`
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self._key = (access_key_id, secret_access_key)
        self._region = region
        self._public = public_endpoint or endpoint or f"https://s3.{region}.amazonaws.com"
        self._s3: Any = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(s3={"addressing_style": "path"}),
        )
        self._scoped = scoped
        self._sts: Any = None
        if scoped is not None:
            self._sts = boto3.client(
                "sts",
                endpoint_url=scoped.endpoint or endpoint,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
            )

    async def push_access(self, org_id: str) -> PushAccess:
        owner = owner_prefix(self.prefix, org_id)
        key_id, secret, token = self._key[0], self._key[1], ""
        if self._scoped is not None:
            key_id, secret, token = await asyncio.to_thread(self._assume, org_id, owner)
        return PushAccess(
            endpoint=self._public,
            bucket=self.bucket,
            region=self._region,
            access_key_id=key_id,
            secret_access_key=secret,
            session_token=token,
            owner_prefix=owner,
        )

    def _assume(self, org_id: str, owner: str) -> tuple[str, str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        assert self._scoped is not None
        try:
            answer = self._sts.assume_role(
                RoleArn=self._scoped.role_arn,
                RoleSessionName=f"sandbay-{org_id}"[:64],
                Policy=session_policy(self.bucket, owner),
                DurationSeconds=self._scoped.seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise RuntimeFailure(f"object storage gave no scoped credentials: {exc}") from exc
        keys = answer["Credentials"]
        return keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"]

    async def fetch(self, org_id: str, hashes: list[str], dest: Path) -> list[Path]:
        return await asyncio.to_thread(self._fetch, org_id, hashes, dest)

    def _fetch(self, org_id: str, hashes: list[str], dest: Path) -> list[Path]:
        from botocore.exceptions import BotoCoreError, ClientError

        paths = []
        for index, context_hash in enumerate(hashes):
            path = dest / f"{index}.tar"
            try:
                self._s3.download_file(
                    self.bucket, context_key(self.prefix, org_id, context_hash), str(path)
                )
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchKey", "NotFound"):
                    raise ContextMissing(
                        f"build context {context_hash} is not in this organization's object "
                        "storage (the SDK uploads it before asking for the build)"
                    ) from exc
                failure = RuntimeFailure(
                    f"object storage refused build context {context_hash}: {exc}"
                )
                # A key without access stays without it: the build fails, saying why.
                failure.permanent = code in ("403", "AccessDenied")
                raise failure from exc
            except BotoCoreError as exc:
                raise RuntimeFailure(f"object storage unreachable: {exc}") from exc
            paths.append(path)
        return paths
