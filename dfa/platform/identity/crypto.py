"""The cryptography of identity: password hashing, random tokens, sealed secrets, CSRF and access tokens."""

import base64
import hashlib
import hmac
import logging
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dfa.platform.settings import Settings

log = logging.getLogger(__name__)

# argon2id with OWASP's recommended floor (19 MiB, 2 passes, 1 lane): about 25 ms per check here.
_passwords = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# Checked against when the login does not exist, so a wrong login costs the same time as a wrong password.
_DECOY_HASH = _passwords.hash(secrets.token_urlsafe(16))
TOKEN_ISSUER = "dfa-platform"


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-effort check; a missing hash is checked against a decoy and fails."""
    try:
        return _passwords.verify(password_hash or _DECOY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _passwords.check_needs_rehash(password_hash)


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def same_digest(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


class KeyMissing(RuntimeError):
    """A key production needs is not configured; the platform refuses to start without it."""


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def load_or_generate(configured: Path | None, default: Path, generate, *, settings: Settings, what: str) -> bytes:
    path = configured or default
    if path.exists():
        return path.read_bytes()
    if configured is not None or settings.environment == "production":
        raise KeyMissing(f"the {what} file {path} does not exist")
    try:
        write_private(path, generate())
        log.warning("generated a development %s at %s", what, path)
    except FileExistsError:  # another process generated it first
        pass
    return path.read_bytes()


@dataclass(frozen=True)
class Keys:
    """The platform's identity keys, loaded once at start."""

    secret_key: bytes
    signing_key: Ed25519PrivateKey

    @classmethod
    def load(cls, settings: Settings) -> "Keys":
        keys_dir = settings.data_dir / "keys"
        secret_key = load_or_generate(
            settings.secret_key_file, keys_dir / "secret.key", lambda: secrets.token_bytes(32),
            settings=settings, what="secret key",
        )
        if len(secret_key) != 32:
            raise KeyMissing("the secret key must be exactly 32 bytes")
        pem = load_or_generate(
            settings.signing_key_file,
            keys_dir / "token-signing.pem",
            lambda: Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            settings=settings,
            what="token signing key",
        )
        signing_key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise KeyMissing("the token signing key must be an Ed25519 private key")
        return cls(secret_key=secret_key, signing_key=signing_key)

    def __repr__(self) -> str:
        return "Keys(<hidden>)"

    def _derive(self, purpose: bytes) -> bytes:
        return HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose).derive(self.secret_key)

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        """AES-256-GCM under a key derived for sealing; `context` binds the ciphertext to its owner."""
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(self._derive(b"dfa seal v1")).encrypt(nonce, plaintext, context)

    def unseal(self, sealed: bytes, *, context: bytes) -> bytes:
        return AESGCM(self._derive(b"dfa seal v1")).decrypt(sealed[:12], sealed[12:], context)

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token of a session: an HMAC of its cookie, so it needs no storage and dies with it."""
        mac = hmac.new(self._derive(b"dfa csrf v1"), session_token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def csrf_matches(self, session_token: str, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(self.csrf_token(session_token), offered)

    def sign_access_token(self, *, subject: uuid.UUID, credential_id: uuid.UUID, ttl_s: int) -> tuple[str, datetime]:
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=ttl_s)
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": str(subject),
            "cid": str(credential_id),
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.signing_key, algorithm="EdDSA"), expires_at

    def read_access_token(self, token: str) -> dict[str, Any] | None:
        """The token's claims when its signature, issuer and expiry hold; otherwise None."""
        try:
            return jwt.decode(
                token,
                self.signing_key.public_key(),
                algorithms=["EdDSA"],
                issuer=TOKEN_ISSUER,
                options={"require": ["exp", "iat", "sub", "cid", "iss"]},
            )
        except jwt.PyJWTError:
            return None
