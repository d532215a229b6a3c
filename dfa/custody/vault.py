"""The custody key vault: secrets (mnemonic phrases) encrypted at rest by envelope encryption (REQ-42).

Each secret is encrypted with AES-256-GCM under a data key of its own; the data key is stored only
wrapped by a key-encryption key (KEK) that never enters the database: a raw key from a file
(development) or the environment, or an AES key that never leaves a PKCS#11 token (HSM). The
associated data binds every ciphertext to its row, so a ciphertext copied onto another row does not
decrypt. Rotating the KEK rewraps the small data keys only, never the secrets, in short
transactions beside normal traffic.

Nothing here puts key material into a message, a log line or a repr: errors name rows and KEK ids.
"""

import base64
import binascii
import hashlib
import logging
import secrets
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn, Protocol

import pkcs11
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody.models import SECRET_KINDS, DataKey, SealedSecret
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.identity.crypto import KeyMissing, load_or_generate
from dfa.platform.settings import Settings

log = logging.getLogger(__name__)

KEY_BYTES = 32  # AES-256, for data keys and raw KEKs alike
NONCE_BYTES = 12  # the GCM standard nonce; random, so never reused under one key in practice
REWRAP_BATCH_MAX = 10_000
VAULT_ACTOR = "service:custody-vault"


class VaultError(Exception):
    """A secret could not be sealed or unsealed, or a data key not wrapped or unwrapped.

    The message names secrets, rows and KEK ids, never key material or plaintext.
    """


class Secret:
    """Plaintext taken out of the vault; shows itself as `Secret(<hidden>)` anywhere it is printed."""

    __slots__ = ("_plaintext",)

    def __init__(self, plaintext: bytes) -> None:
        self._plaintext = plaintext

    def reveal(self) -> bytes:
        """The plaintext: call it at the last moment, where it is used, and keep no copy."""
        return self._plaintext

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        # Pickling would carry the plaintext into caches, queues or files outside the vault.
        raise TypeError("a Secret cannot be pickled")


class KeyEncryptionKey(Protocol):
    """Wraps data keys; its `kek_id` is stored beside each wrapped key so the ring can find it again."""

    kek_id: str

    def wrap(self, data_key: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes) -> bytes: ...


def _gcm_wrapped(nonce: bytes, ciphertext: bytes) -> bytes:
    return nonce + ciphertext


def _gcm_parts(wrapped: bytes, kek_id: str) -> tuple[bytes, bytes]:
    # A nonce, a 32-byte key and a 16-byte tag; anything shorter was cut or is not ours.
    if len(wrapped) != NONCE_BYTES + KEY_BYTES + 16:
        raise VaultError(f"a data key wrapped by {kek_id} has the wrong length")
    return wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]


def _check_data_key(data_key: bytes, kek_id: str) -> bytes:
    if len(data_key) != KEY_BYTES:
        raise VaultError(f"a data key unwrapped by {kek_id} is not {KEY_BYTES} bytes")
    return data_key


class AesKek:
    """A raw 32-byte KEK held in memory (from a file or the environment); AES-256-GCM wrapping.

    The KEK's id is derived from the key itself, so the same key always has the same id and two
    keys never share one; the id (64 bits of a domain-separated SHA-256) reveals nothing usable.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise VaultError(f"a key-encryption key must be exactly {KEY_BYTES} bytes")
        self.kek_id = "aes:" + hashlib.sha256(b"dfa-kek-id|" + key).hexdigest()[:16]
        self._aead = AESGCM(key)  # the raw key is kept nowhere else on this object

    def wrap(self, data_key: bytes) -> bytes:
        """The data key encrypted and authenticated under this KEK, bound to its id."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        data_key = _check_data_key(data_key, self.kek_id)
        return _gcm_wrapped(nonce, self._aead.encrypt(nonce, data_key, self.kek_id.encode()))

    def unwrap(self, wrapped: bytes) -> bytes:
        """The data key, or VaultError when `wrapped` was not made by this very key or was altered."""
        nonce, ciphertext = _gcm_parts(wrapped, self.kek_id)
        try:
            return _check_data_key(self._aead.decrypt(nonce, ciphertext, self.kek_id.encode()), self.kek_id)
        except InvalidTag:
            raise VaultError(f"a data key does not unwrap under {self.kek_id}: wrong key or altered") from None

    def __repr__(self) -> str:
        return f"AesKek({self.kek_id})"


def _pkcs11_session(library: Path, token_label: str, pin: str, *, rw: bool = False) -> pkcs11.Session:
    """A logged-in session on the token; configuration faults become KeyMissing (the platform cannot start)."""
    try:
        token = pkcs11.lib(str(library)).get_token(token_label=token_label)
    except PKCS11Error as error:
        raise KeyMissing(
            f"no PKCS#11 token labelled {token_label!r} through {library} ({type(error).__name__})"
        ) from None
    try:
        return token.open(rw=rw, user_pin=pin)
    except PKCS11Error as error:
        raise KeyMissing(f"the PKCS#11 token {token_label!r} refused the session ({type(error).__name__})") from None


def _pkcs11_kek_id(key_label: str, key_id: bytes) -> str:
    # The label finds the key; its random CKA_ID tells a recreated key of the same label apart.
    return f"pkcs11:{key_label}:{key_id.hex()[:16]}" if key_id else f"pkcs11:{key_label}"


class Pkcs11Kek:
    """An AES key inside a PKCS#11 token (HSM), found by label; the token does every wrap and unwrap.

    The key is non-extractable and sensitive: it never leaves the token, only data keys cross the
    boundary. Wrapping is CKM_AES_GCM with a random nonce and the KEK id as associated data, the same
    format as `AesKek`. The session stays open and logged in for the life of the process.
    """

    def __init__(self, *, library: Path, token_label: str, pin: str, key_label: str) -> None:
        self._session = _pkcs11_session(library, token_label, pin)
        try:
            self._key = self._session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=key_label)
            key_id = bytes(self._key[Attribute.ID] or b"")
        except PKCS11Error as error:
            self._session.close()
            raise KeyMissing(
                f"no single AES key labelled {key_label!r} in the PKCS#11 token {token_label!r} "
                f"({type(error).__name__}); create it once with create_pkcs11_kek"
            ) from None
        self.kek_id = _pkcs11_kek_id(key_label, key_id)

    def _params(self, nonce: bytes) -> GCMParams:
        return GCMParams(nonce, self.kek_id.encode(), 128)

    def wrap(self, data_key: bytes) -> bytes:
        """The data key encrypted by the token under this KEK, bound to its id."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        try:
            ciphertext = self._key.encrypt(
                _check_data_key(data_key, self.kek_id), mechanism=Mechanism.AES_GCM, mechanism_param=self._params(nonce)
            )
        except PKCS11Error as error:
            raise VaultError(
                f"the token could not wrap a data key under {self.kek_id} ({type(error).__name__})"
            ) from None
        return _gcm_wrapped(nonce, bytes(ciphertext))

    def unwrap(self, wrapped: bytes) -> bytes:
        """The data key, or VaultError when the token cannot authenticate it under this KEK."""
        nonce, ciphertext = _gcm_parts(wrapped, self.kek_id)
        try:
            data_key = self._key.decrypt(ciphertext, mechanism=Mechanism.AES_GCM, mechanism_param=self._params(nonce))
        except PKCS11Error as error:
            raise VaultError(
                f"a data key does not unwrap under {self.kek_id}: wrong key or altered ({type(error).__name__})"
            ) from None
        return _check_data_key(bytes(data_key), self.kek_id)

    def close(self) -> None:
        """End the token session (logging out)."""
        self._session.close()

    def __repr__(self) -> str:
        return f"Pkcs11Kek({self.kek_id})"


def _pkcs11_config(settings: Settings) -> tuple[Path, str, str]:
    """The token's library, label and PIN, or KeyMissing naming the settings that are not set."""
    library, token_label, pin = (
        settings.custody_pkcs11_library,
        settings.custody_pkcs11_token_label,
        settings.custody_pkcs11_pin,
    )
    if library is None or not token_label or pin is None:
        missing = [
            name
            for name, value in (
                ("CUSTODY_PKCS11_LIBRARY", library),
                ("CUSTODY_PKCS11_TOKEN_LABEL", token_label),
                ("CUSTODY_PKCS11_PIN", pin),
            )
            if not value
        ]
        raise KeyMissing(f"the pkcs11 key-encryption key provider needs {', '.join(missing)}")
    return library, token_label, pin.get_secret_value()


def create_pkcs11_kek(settings: Settings, *, key_label: str | None = None) -> str:
    """One-time setup: generate the AES-256 KEK inside the configured token; returns its KEK id.

    Run once per KEK (and again, with a new label, for a rotation). The key is generated by the
    token, stored on it, sensitive and non-extractable, and may only encrypt and decrypt; a key with
    the same label is never overwritten (VaultError), since that would orphan every data key it wraps.
    """
    library, token_label, pin = _pkcs11_config(settings)
    label = key_label or settings.custody_pkcs11_key_label
    with _pkcs11_session(library, token_label, pin, rw=True) as session:
        if list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label})):
            raise VaultError(f"the token {token_label!r} already holds a key labelled {label!r}")
        key_id = secrets.token_bytes(8)
        try:
            session.generate_key(
                KeyType.AES,
                KEY_BYTES * 8,
                label=label,
                id=key_id,
                store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True},
            )
        except PKCS11Error as error:
            raise VaultError(f"the token {token_label!r} could not generate the key ({type(error).__name__})") from None
    kek_id = _pkcs11_kek_id(label, key_id)
    log.info("created the custody key-encryption key %s in token %s", kek_id, token_label)
    return kek_id


class KeyRing:
    """The current KEK, which wraps every new data key, and retired KEKs that only unwrap until a
    rotation has moved their data keys to the current one."""

    def __init__(self, current: KeyEncryptionKey, retired: Iterable[KeyEncryptionKey] = ()) -> None:
        self.current = current
        self.retired = tuple(kek for kek in retired if kek.kek_id != current.kek_id)
        self._by_id = {kek.kek_id: kek for kek in (*self.retired, current)}

    def for_id(self, kek_id: str) -> KeyEncryptionKey:
        """The KEK with this id, or VaultError when the ring does not hold it."""
        try:
            return self._by_id[kek_id]
        except KeyError:
            raise VaultError(f"the key ring holds no key-encryption key {kek_id}") from None

    @property
    def retired_ids(self) -> tuple[str, ...]:
        return tuple(kek.kek_id for kek in self.retired)

    def __repr__(self) -> str:
        return f"KeyRing(current={self.current.kek_id}, retired={list(self.retired_ids)})"


def _aes_kek_from_base64(value: str, *, what: str) -> AesKek:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        # The value itself is never repeated: it may be a real key with one typo.
        raise KeyMissing(f"{what} must be the base64 of exactly {KEY_BYTES} random bytes (openssl rand -base64 32)")
    return AesKek(key)


def _aes_kek_from_file(path: Path, *, what: str) -> AesKek:
    try:
        key = path.read_bytes()
    except OSError as error:
        raise KeyMissing(f"the {what} file {path} cannot be read ({error.strerror})") from None
    if len(key) != KEY_BYTES:
        raise KeyMissing(f"the {what} file {path} must hold exactly {KEY_BYTES} raw bytes")
    return AesKek(key)


def _current_kek(settings: Settings) -> KeyEncryptionKey:
    if settings.custody_kek_provider == "pkcs11":
        library, token_label, pin = _pkcs11_config(settings)
        return Pkcs11Kek(library=library, token_label=token_label, pin=pin, key_label=settings.custody_pkcs11_key_label)
    if settings.custody_kek_provider == "env":
        if settings.custody_kek is None:
            raise KeyMissing("CUSTODY_KEK is not set: the env key-encryption key provider needs it")
        return _aes_kek_from_base64(settings.custody_kek.get_secret_value(), what="CUSTODY_KEK")
    if settings.environment == "production":
        raise KeyMissing(
            "the file key-encryption key provider is for development only; in production set "
            "CUSTODY_KEK_PROVIDER=env with CUSTODY_KEK, or CUSTODY_KEK_PROVIDER=pkcs11"
        )
    default = settings.data_dir / "keys" / "custody-kek"
    key = load_or_generate(
        settings.custody_kek_file,
        default,
        lambda: secrets.token_bytes(KEY_BYTES),
        settings=settings,
        what="custody key-encryption key",
    )
    if len(key) != KEY_BYTES:
        raise KeyMissing(f"the custody key-encryption key file must hold exactly {KEY_BYTES} raw bytes")
    return AesKek(key)


def _retired_keks(settings: Settings) -> list[KeyEncryptionKey]:
    """Every retired KEK configured, whatever the current provider: a rotation may cross providers
    (a development file or an env key moving into an HSM)."""
    retired: list[KeyEncryptionKey] = [
        _aes_kek_from_base64(value.get_secret_value(), what=f"CUSTODY_KEK_RETIRED[{index}]")
        for index, value in enumerate(settings.custody_kek_retired)
    ]
    retired += [
        _aes_kek_from_file(path, what="retired custody key-encryption key")
        for path in settings.custody_kek_retired_files
    ]
    if settings.custody_pkcs11_retired_key_labels:
        library, token_label, pin = _pkcs11_config(settings)
        retired += [
            Pkcs11Kek(library=library, token_label=token_label, pin=pin, key_label=label)
            for label in settings.custody_pkcs11_retired_key_labels
        ]
    return retired


def key_ring_from_settings(settings: Settings) -> KeyRing:
    """The key ring the settings describe; KeyMissing (naming no key) when a key is absent or invalid.

    In development the file provider generates its KEK on first start (mode 0600); production
    refuses the file provider and takes the KEK from CUSTODY_KEK or a PKCS#11 token.
    """
    current = _current_kek(settings)
    try:
        return KeyRing(current, _retired_keks(settings))
    except BaseException:
        if isinstance(current, Pkcs11Kek):
            current.close()  # do not leave a logged-in token session behind a failed start
        raise


def _associated_data(secret_id: uuid.UUID, kind: str) -> bytes:
    # Binds the ciphertext to its row and kind: moved to another row it no longer authenticates.
    return b"dfa-secret|" + str(secret_id).encode() + b"|" + kind.encode()


class Vault:
    """Seals and unseals secrets in the caller's transaction, and rotates the KEK (REQ-42).

    Errors: VaultError (unknown kind, secret missing, tampered or moved ciphertext, KEK not in the ring).
    """

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    async def seal(self, session: AsyncSession, *, kind: str, plaintext: bytes) -> uuid.UUID:
        """Store `plaintext` encrypted under a fresh data key wrapped by the current KEK; flushes, never
        commits, so the secret exists exactly when the caller's work commits. Returns the secret's id."""
        if kind not in SECRET_KINDS:
            raise VaultError(f"unknown secret kind {kind!r}")
        kek = self.ring.current
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        data_key_id, secret_id = uuid.uuid4(), uuid.uuid4()
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _associated_data(secret_id, kind))
        await session.execute(
            DataKey.__table__.insert().values(id=data_key_id, kek_id=kek.kek_id, wrapped=kek.wrap(data_key))
        )
        await session.execute(
            SealedSecret.__table__.insert().values(
                id=secret_id, data_key_id=data_key_id, kind=kind, nonce=nonce, ciphertext=ciphertext
            )
        )
        return secret_id

    async def unseal(self, session: AsyncSession, secret_id: uuid.UUID) -> Secret:
        """The secret's plaintext, or VaultError when it is missing, altered, moved, or its KEK is not in
        the ring. Reads the secret and its data key in one statement, so a concurrent rewrap is seen
        either wholly before or wholly after."""
        row = (
            await session.execute(
                select(SealedSecret.kind, SealedSecret.nonce, SealedSecret.ciphertext, DataKey.kek_id, DataKey.wrapped)
                .join(DataKey, DataKey.id == SealedSecret.data_key_id)
                .where(SealedSecret.id == secret_id)
            )
        ).one_or_none()
        if row is None:
            raise VaultError(f"no sealed secret {secret_id}")
        data_key = self.ring.for_id(row.kek_id).unwrap(row.wrapped)
        try:
            plaintext = AESGCM(data_key).decrypt(row.nonce, row.ciphertext, _associated_data(secret_id, row.kind))
        except InvalidTag:
            raise VaultError(f"the sealed secret {secret_id} does not authenticate: altered or moved") from None
        return Secret(plaintext)

    async def rewrap(self, database: Database, *, batch_size: int = 100) -> int:
        """Rotation: rewrap under the current KEK every data key wrapped by a retired KEK of the ring;
        returns how many this call rewrapped.

        Each batch is its own short transaction and takes its rows FOR UPDATE SKIP LOCKED, so the
        rotation runs beside seals and unseals (no downtime), several rewraps share the work without
        doing any key twice, and an interrupted run simply continues where it stopped. Data keys under
        a KEK the ring does not hold cannot be rewrapped; they are left alone and reported in the log
        and by `key_counts`, so the ring can be completed and rewrap run again.
        """
        if not 1 <= batch_size <= REWRAP_BATCH_MAX:
            raise ValueError(f"batch_size must be between 1 and {REWRAP_BATCH_MAX}")
        rewrapped = 0
        while True:
            async with database.unit_of_work() as session:
                done = await self._rewrap_batch(session, batch_size=batch_size)
            if done == 0:
                break
            rewrapped += done
        async with database.unit_of_work() as session:
            await self._report_rotation(session, rewrapped=rewrapped)
        return rewrapped

    async def _rewrap_batch(self, session: AsyncSession, *, batch_size: int) -> int:
        retired_ids = self.ring.retired_ids
        if not retired_ids:
            return 0
        rows = (
            await session.execute(
                select(DataKey.id, DataKey.kek_id, DataKey.wrapped)
                .where(DataKey.kek_id.in_(retired_ids))
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        current = self.ring.current
        table = DataKey.__table__
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("key_id"))
            .values(kek_id=current.kek_id, wrapped=bindparam("new_wrapped"), rewrapped_at=func.now()),
            [
                {"key_id": row.id, "new_wrapped": current.wrap(self.ring.for_id(row.kek_id).unwrap(row.wrapped))}
                for row in rows
            ],
        )
        return len(rows)

    async def _report_rotation(self, session: AsyncSession, *, rewrapped: int) -> None:
        """Warn about data keys no KEK of the ring can rewrap, and record the rotation as a security event."""
        current_id = self.ring.current.kek_id
        stranded = {
            kek_id: count
            for kek_id, count in (await self.key_counts(session)).items()
            if kek_id != current_id and kek_id not in self.ring.retired_ids
        }
        if stranded:
            log.warning(
                "data keys remain under key-encryption keys outside the ring; add them as retired keys "
                "and rewrap again: %s",
                stranded,
            )
        if rewrapped:
            log.info("rewrapped %d data keys under %s", rewrapped, current_id)
            await audit.record(
                session,
                kind="custody.kek-rotated",
                actor=VAULT_ACTOR,
                subject=current_id,
                details={"rewrapped": rewrapped},
            )

    async def key_counts(self, session: AsyncSession) -> dict[str, int]:
        """How many data keys each KEK wraps: a rotation is complete when only the current one is left."""
        rows = await session.execute(select(DataKey.kek_id, func.count()).group_by(DataKey.kek_id))
        return {kek_id: count for kek_id, count in rows.all()}
