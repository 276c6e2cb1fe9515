"""Build contexts: the local files a build copies (the Daytona SDK's `add_local_file`,
`add_local_dir`, …), uploaded by the client to object storage as one tar per source,
named by a hash, under its organization's key prefix. The pure rules: which hashes a
build may name and where each one lives."""

import json
import re
from dataclasses import dataclass

from sandbay.domain.errors import InvalidRequest

#: The SDK names a context by an MD5 hex digest; anything path-like is refused, so a
#: hash can never reach outside its organization's prefix.
_HASH = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_CONTEXTS = 256
CONTEXT_FILE = "context.tar"


@dataclass(frozen=True, slots=True)
class PushAccess:
    """Where and with what a client uploads its build contexts (Daytona's
    StorageAccessDto). `owner_prefix` is the key prefix of the organization: the
    client puts `{owner_prefix}/{hash}/context.tar`."""

    endpoint: str
    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str
    session_token: str
    owner_prefix: str


def check_context_hashes(hashes: list[str]) -> None:
    """Refuse hashes that are not plain names (the key is built from them)."""
    if len(hashes) > MAX_CONTEXTS:
        raise InvalidRequest(f"a build may name at most {MAX_CONTEXTS} contexts")
    for value in hashes:
        if not _HASH.match(value):
            raise InvalidRequest(f"context hash {value[:80]!r} is not a plain name")


def owner_prefix(prefix: str, org_id: str) -> str:
    """The organization's key prefix in the bucket (`prefix` is empty or ends in /)."""
    return f"{prefix}{org_id}"


def context_key(prefix: str, org_id: str, context_hash: str) -> str:
    """The object a context hash of the organization names."""
    return f"{owner_prefix(prefix, org_id)}/{context_hash}/{CONTEXT_FILE}"


def session_policy(bucket: str, owner: str) -> str:
    """The session policy of an organization's temporary key: its own prefix only.
    ListBucket is on the bucket as a whole because a HEAD of a missing object
    answers 404 (not 403) only with it, and the SDK checks with HEAD before it
    uploads; it reveals key names, never contents."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "s3:PutObject",
                        "s3:GetObject",
                        "s3:AbortMultipartUpload",
                        "s3:ListMultipartUploadParts",
                    ],
                    "Resource": [f"arn:aws:s3:::{bucket}/{owner}/*"],
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": [f"arn:aws:s3:::{bucket}"],
                },
            ],
        }
    )
