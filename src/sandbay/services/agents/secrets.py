"""Credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`. The key
comes from the settings (`SANDBAY_SECRETS_KEY`, which replicas must share) or is
generated once in the data directory, readable by the server's user only."""

import hashlib
import hmac
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from sandbay.domain.errors import ApiError

log = logging.getLogger(__name__)
KEY_FILE = "secrets.key"


class SecretBox:
    """Encrypts and decrypts credentials; never logs or returns them on its own."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def derive_key(self, purpose: str) -> bytes:
        """A key of its own for `purpose` (HMAC of it under this key): signing with
        it never exposes, or can be turned into, the encryption key."""
        return hmac.new(self._key, f"sandbay:{purpose}".encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:  # keep the key out of any debug output
        return "SecretBox(…)"

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ApiError(
                "a stored credential cannot be decrypted: was SANDBAY_SECRETS_KEY changed?"
            ) from exc


def load_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, else the one in the data dir (made on first use, mode 0600)."""
    if configured:
        return configured.encode()
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    log.info("generated the credentials key in %s", path)
    return key
