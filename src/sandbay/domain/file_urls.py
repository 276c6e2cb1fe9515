"""Signed file URLs (Daytona's `download_url`/`upload_url`): the client signs
`v1:files:{METHOD}:{path}:{expires}` with the sandbox's key (HMAC-SHA256, urlsafe
base64 without padding, prefixed `v1_`), so anyone holding the URL may do that one
operation on that one path until `expires` (unix seconds; 0: never)."""

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

SIGNATURE_PREFIX = "v1_"
#: The file operations a signed URL may name, by HTTP method.
OPERATIONS = frozenset({"GET", "POST"})


def new_signing_key() -> str:
    return secrets.token_urlsafe(32)


def file_url_signature(key: str, method: str, path: str, expires: int) -> str:
    canonical = f"v1:files:{method}:{path}:{expires}".encode()
    digest = hmac.new(key.encode(), canonical, hashlib.sha256).digest()
    return SIGNATURE_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signature_valid(
    key: str, method: str, path: str, expires: int, signature: str, *, now: datetime
) -> bool:
    """Whether `signature` is the key's for this operation and has not expired
    (compared in constant time)."""
    if method not in OPERATIONS or expires < 0:
        return False
    if expires and expires < now.timestamp():
        return False
    expected = file_url_signature(key, method, path, expires)
    return hmac.compare_digest(expected.encode(), signature.encode())
