"""The custody key vault (REQ-42): mnemonics encrypted at rest under data keys of their own, wrapped by a
key-encryption key (KEK) from a file, the environment or a PKCS#11 token, rotated without downtime."""

import asyncio
import base64
import os
import pickle
import secrets
import shutil
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive
from pydantic import SecretStr
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody.models import DataKey, SealedSecret
from dfa.custody.vault import (
    AesKek,
    KeyRing,
    Pkcs11Kek,
    Secret,
    Vault,
    VaultError,
    create_pkcs11_kek,
    key_ring_from_settings,
)
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.identity.crypto import KeyMissing
from dfa.platform.settings import Settings

SOFTHSM_LIBRARY = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL, USER_PIN, SO_PIN = "dfa-test", "1234", "5678"


def new_kek() -> AesKek:
    return AesKek(secrets.token_bytes(32))


def mnemonic() -> bytes:
    """A distinct phrase per call, so a leak of one test's plaintext is attributable."""
    return b"legal winner thank year wave sausage worth useful legal winner thank " + secrets.token_hex(8).encode()


async def stored(session: AsyncSession, secret_id: uuid.UUID):
    return (
        await session.execute(
            select(
                SealedSecret.data_key_id, SealedSecret.nonce, SealedSecret.ciphertext, DataKey.kek_id, DataKey.wrapped
            )
            .join(DataKey, DataKey.id == SealedSecret.data_key_id)
            .where(SealedSecret.id == secret_id)
        )
    ).one()


def flip_bit(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def offline_settings(tmp_path: Path, **values) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, demo_data=False, **values)


# Sealing and unsealing


async def test_a_sealed_mnemonic_unseals_to_the_same_bytes_and_is_stored_only_encrypted(session):
    """REQ-42: neither the secret's row nor its data key's row holds the plaintext."""
    vault = Vault(KeyRing(new_kek()))
    phrase = mnemonic()

    secret_id = await vault.seal(session, kind="mnemonic", plaintext=phrase)
    secret = await vault.unseal(session, secret_id)

    assert secret.reveal() == phrase
    row = await stored(session, secret_id)
    for column in (row.ciphertext, row.wrapped, row.nonce):
        assert phrase not in column and phrase[:16] not in column
    assert row.kek_id == vault.ring.current.kek_id
    assert repr(secret) == str(secret) == f"{secret}" == "Secret(<hidden>)"
    assert phrase.decode() not in repr([secret])


def test_an_unsealed_secret_cannot_be_printed_or_pickled():
    """REQ-42: plaintext out of the vault does not slip into a log line, a cache or a queue by accident."""
    phrase = mnemonic()
    secret = Secret(phrase)
    assert phrase.decode() not in repr(secret) + str(secret) + f"{secret!r} {[secret]}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


async def test_every_secret_gets_its_own_data_key(session):
    vault = Vault(KeyRing(new_kek()))
    phrase = mnemonic()
    first = await stored(session, await vault.seal(session, kind="mnemonic", plaintext=phrase))
    second = await stored(session, await vault.seal(session, kind="mnemonic", plaintext=phrase))
    assert first.data_key_id != second.data_key_id
    assert first.ciphertext != second.ciphertext


async def test_an_unknown_secret_or_kind_is_refused(session):
    vault = Vault(KeyRing(new_kek()))
    with pytest.raises(VaultError, match="no sealed secret"):
        await vault.unseal(session, uuid.uuid4())
    with pytest.raises(VaultError, match="unknown secret kind"):
        await vault.seal(session, kind="private_key", plaintext=b"x")


async def test_a_ciphertext_copied_onto_another_secret_row_does_not_unseal(session):
    """REQ-42: the associated data binds a ciphertext to its row; with the data key copied as well,
    only that binding stands between an attacker with write access and a swapped mnemonic."""
    vault = Vault(KeyRing(new_kek()))
    phrase = mnemonic()
    source = await vault.seal(session, kind="mnemonic", plaintext=phrase)
    target = await vault.seal(session, kind="mnemonic", plaintext=mnemonic())
    copied = await stored(session, source)

    await session.execute(
        update(SealedSecret)
        .where(SealedSecret.id == target)
        .values(data_key_id=copied.data_key_id, nonce=copied.nonce, ciphertext=copied.ciphertext)
    )

    with pytest.raises(VaultError, match="altered or moved") as refused:
        await vault.unseal(session, target)
    assert phrase.decode() not in str(refused.value)
    assert (await vault.unseal(session, source)).reveal() == phrase


async def test_a_flipped_bit_in_the_ciphertext_or_the_wrapped_key_is_detected(session):
    vault = Vault(KeyRing(new_kek()))
    in_ciphertext = await vault.seal(session, kind="mnemonic", plaintext=mnemonic())
    in_wrapped_key = await vault.seal(session, kind="mnemonic", plaintext=mnemonic())
    row = await stored(session, in_ciphertext)
    await session.execute(
        update(SealedSecret).where(SealedSecret.id == in_ciphertext).values(ciphertext=flip_bit(row.ciphertext, 3))
    )
    row = await stored(session, in_wrapped_key)
    await session.execute(
        update(DataKey).where(DataKey.id == row.data_key_id).values(wrapped=flip_bit(row.wrapped, 20))
    )

    with pytest.raises(VaultError):
        await vault.unseal(session, in_ciphertext)
    with pytest.raises(VaultError, match="does not unwrap"):
        await vault.unseal(session, in_wrapped_key)


async def test_a_data_key_does_not_unwrap_under_the_wrong_kek(session):
    """REQ-42: a wrong KEK fails loudly instead of yielding garbage, and says so without key material."""
    right_key, wrong_key = secrets.token_bytes(32), secrets.token_bytes(32)
    right, wrong = AesKek(right_key), AesKek(wrong_key)
    secret_id = await Vault(KeyRing(right)).seal(session, kind="mnemonic", plaintext=mnemonic())

    with pytest.raises(VaultError, match="holds no key-encryption key"):
        await Vault(KeyRing(wrong)).unseal(session, secret_id)
    wrong.kek_id = right.kek_id  # an impostor under the right name: a misconfigured ring
    with pytest.raises(VaultError, match="does not unwrap") as refused:
        await Vault(KeyRing(wrong)).unseal(session, secret_id)
    with pytest.raises(VaultError):
        AesKek(wrong_key).unwrap(right.wrap(secrets.token_bytes(32)))

    message = str(refused.value) + repr(right) + repr(KeyRing(right, [wrong]))
    for key in (right_key, wrong_key):
        assert key.hex() not in message and base64.b64encode(key).decode() not in message


# The KEK from the settings


def test_development_generates_the_kek_file_once_with_owner_only_permissions(tmp_path):
    settings = offline_settings(tmp_path, environment="development")
    first = key_ring_from_settings(settings)

    kek_file = tmp_path / "keys" / "custody-kek"
    assert stat.S_IMODE(kek_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(kek_file.parent.stat().st_mode) == 0o700
    assert len(kek_file.read_bytes()) == 32
    assert key_ring_from_settings(settings).current.kek_id == first.current.kek_id
    assert first.current.kek_id == AesKek(kek_file.read_bytes()).kek_id


def test_production_refuses_the_file_provider(tmp_path):
    kek_file = tmp_path / "kek"
    kek_file.write_bytes(secrets.token_bytes(32))
    with pytest.raises(KeyMissing, match="development only"):
        key_ring_from_settings(offline_settings(tmp_path, environment="production"))
    with pytest.raises(KeyMissing, match="development only"):
        key_ring_from_settings(offline_settings(tmp_path, environment="production", custody_kek_file=kek_file))
    assert not (tmp_path / "keys").exists()


@pytest.mark.parametrize(
    "value",
    [
        None,
        "not base64 at all!",
        base64.b64encode(secrets.token_bytes(16)).decode(),
        base64.b64encode(secrets.token_bytes(33)).decode(),
    ],
)
def test_production_refuses_a_missing_or_invalid_custody_kek_without_showing_it(tmp_path, value):
    settings = offline_settings(tmp_path, environment="production", custody_kek_provider="env", custody_kek=value)
    with pytest.raises(KeyMissing, match="CUSTODY_KEK") as refused:
        key_ring_from_settings(settings)
    if value is not None:
        assert value not in str(refused.value)


def test_production_accepts_a_valid_custody_kek_from_the_environment(tmp_path, monkeypatch):
    key = secrets.token_bytes(32)
    monkeypatch.setenv("CUSTODY_KEK_PROVIDER", "env")
    monkeypatch.setenv("CUSTODY_KEK", base64.b64encode(key).decode())
    ring = key_ring_from_settings(offline_settings(tmp_path, environment="production"))
    assert ring.current.kek_id == AesKek(key).kek_id
    assert not (tmp_path / "keys").exists()


def test_retired_keks_from_the_settings_join_the_ring(tmp_path):
    current, retired_env, retired_file = (secrets.token_bytes(32) for _ in range(3))
    (tmp_path / "old-kek").write_bytes(retired_file)
    ring = key_ring_from_settings(
        offline_settings(
            tmp_path,
            environment="production",
            custody_kek_provider="env",
            custody_kek=base64.b64encode(current).decode(),
            custody_kek_retired=[base64.b64encode(retired_env).decode()],
            custody_kek_retired_files=[tmp_path / "old-kek"],
        )
    )
    assert ring.current.kek_id == AesKek(current).kek_id
    assert set(ring.retired_ids) == {AesKek(retired_env).kek_id, AesKek(retired_file).kek_id}
    with pytest.raises(VaultError):
        ring.for_id(new_kek().kek_id)


def test_the_public_view_of_the_settings_hides_every_custody_key(tmp_path):
    keys = [base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(2)]
    settings = offline_settings(
        tmp_path, custody_kek=keys[0], custody_kek_retired=[keys[1]], custody_pkcs11_pin="918273645"
    )
    shown = str(settings.public_view())
    assert keys[0] not in shown and keys[1] not in shown and "918273645" not in shown


# Rotation


@asynccontextmanager
async def cleaned_up(database: Database) -> AsyncIterator[list[uuid.UUID]]:
    """Collects the ids of secrets a test commits and deletes them and their data keys afterwards."""
    secret_ids: list[uuid.UUID] = []
    try:
        yield secret_ids
    finally:
        async with database.unit_of_work() as session:
            data_key_ids = (
                (await session.execute(select(SealedSecret.data_key_id).where(SealedSecret.id.in_(secret_ids))))
                .scalars()
                .all()
            )
            await session.execute(delete(SealedSecret).where(SealedSecret.id.in_(secret_ids)))
            await session.execute(delete(DataKey).where(DataKey.id.in_(data_key_ids)))


async def seal_committed(database: Database, vault: Vault, count: int) -> dict[uuid.UUID, bytes]:
    phrases = {}
    async with database.unit_of_work() as session:
        for _ in range(count):
            phrase = mnemonic()
            phrases[await vault.seal(session, kind="mnemonic", plaintext=phrase)] = phrase
    return phrases


async def unseal_all(database: Database, vault: Vault, phrases: dict[uuid.UUID, bytes]) -> None:
    async with database.read() as session:
        for secret_id, phrase in phrases.items():
            assert (await vault.unseal(session, secret_id)).reveal() == phrase


async def rotation_events(database: Database, kek_id: str):
    async with database.read() as session:
        return await audit.search(session, kind="custody.kek-rotated", subject=kek_id, limit=100)


async def test_rotation_rewraps_every_data_key_while_secrets_are_sealed_and_unsealed(database):
    """REQ-42: the KEK is rotated with no downtime; two rewraps side by side share the work through
    FOR UPDATE SKIP LOCKED (without the row locks both would rewrap the same keys and their counts
    would add up to more than there are keys), and live seals and unseals never fail."""
    old, new, foreign = new_kek(), new_kek(), new_kek()
    async with cleaned_up(database) as secret_ids:
        before = await seal_committed(database, Vault(KeyRing(old)), 30)
        outside_ring = await seal_committed(database, Vault(KeyRing(foreign)), 1)
        secret_ids += [*before, *outside_ring]
        rotating = Vault(KeyRing(new, [old]))
        await unseal_all(database, rotating, before)

        during: dict[uuid.UUID, bytes] = {}

        async def live_traffic() -> None:
            for _ in range(10):
                sealed = await seal_committed(database, rotating, 1)
                during.update(sealed)
                secret_ids.extend(sealed)
                await unseal_all(database, rotating, before)

        first, second, _ = await asyncio.gather(
            rotating.rewrap(database, batch_size=3), rotating.rewrap(database, batch_size=3), live_traffic()
        )

        assert first + second == len(before)
        assert await rotating.rewrap(database, batch_size=3) == 0
        async with database.read() as session:
            counts = await rotating.key_counts(session)
        assert old.kek_id not in counts
        assert counts[new.kek_id] == len(before) + len(during)
        assert counts[foreign.kek_id] == 1  # not in the ring: left alone, and shown for the operator
        await unseal_all(database, Vault(KeyRing(new)), before | during)
        events = await rotation_events(database, new.kek_id)
        assert sum(event.details["rewrapped"] for event in events) == len(before)
        assert {(event.actor, event.outcome) for event in events} == {("service:custody-vault", "success")}


class FailingAfter:
    """A KEK that wraps a few data keys, then fails, as a token that goes away mid-rotation."""

    def __init__(self, kek: AesKek, *, wraps: int) -> None:
        self.kek, self.kek_id, self.wraps = kek, kek.kek_id, wraps

    def wrap(self, data_key: bytes) -> bytes:
        self.wraps -= 1
        if self.wraps < 0:
            raise VaultError("the token went away")
        return self.kek.wrap(data_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        return self.kek.unwrap(wrapped)


async def test_an_interrupted_rotation_keeps_its_finished_batches_and_resumes(database):
    old, new = new_kek(), new_kek()
    async with cleaned_up(database) as secret_ids:
        phrases = await seal_committed(database, Vault(KeyRing(old)), 7)
        secret_ids += phrases

        with pytest.raises(VaultError, match="went away"):
            await Vault(KeyRing(FailingAfter(new, wraps=5), [old])).rewrap(database, batch_size=2)
        async with database.read() as session:
            counts = await Vault(KeyRing(new)).key_counts(session)
        assert (counts[old.kek_id], counts[new.kek_id]) == (3, 4)  # two batches committed, the third undone
        await unseal_all(database, Vault(KeyRing(new, [old])), phrases)

        assert await Vault(KeyRing(new, [old])).rewrap(database, batch_size=2) == 3
        await unseal_all(database, Vault(KeyRing(new)), phrases)


# PKCS#11 (SoftHSM2 standing in for the HSM)


def _install_softhsm() -> None:
    """Best effort: install SoftHSM2 where the tests run as root on a Debian-like system."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "softhsm2"]
    if subprocess.run(install, env=environment, check=False, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=environment, check=False, capture_output=True, timeout=600)
        subprocess.run(install, env=environment, check=False, capture_output=True, timeout=600)


@pytest.fixture(scope="session")
def softhsm_library() -> Path:
    if not SOFTHSM_LIBRARY.exists():
        _install_softhsm()
    if not SOFTHSM_LIBRARY.exists() or shutil.which("softhsm2-util") is None:
        pytest.skip(f"SoftHSM2 is not installed ({SOFTHSM_LIBRARY}); install softhsm2 to run the PKCS#11 tests")
    return SOFTHSM_LIBRARY


@pytest.fixture(scope="module")
def hsm_settings(softhsm_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings for a fresh SoftHSM2 token in a temporary directory, holding the KEK."""
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    config = directory / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(config))
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", USER_PIN, "--so-pin", SO_PIN],
            check=True,
            capture_output=True,
            timeout=60,
        )
        settings = offline_settings(
            directory,
            environment="production",
            custody_kek_provider="pkcs11",
            custody_pkcs11_library=softhsm_library,
            custody_pkcs11_token_label=TOKEN_LABEL,
            custody_pkcs11_pin=USER_PIN,
        )
        create_pkcs11_kek(settings)
        yield settings
        # SoftHSM reads its configuration when initialised: let a later user start afresh.
        pkcs11.lib(str(softhsm_library)).finalize()


@pytest.fixture
def hsm_ring(hsm_settings: Settings) -> Iterator[KeyRing]:
    ring = key_ring_from_settings(hsm_settings)
    yield ring
    ring.current.close()


def test_the_hsm_kek_is_generated_inside_the_token_and_cannot_be_read_out(hsm_settings):
    """REQ-42: the KEK is sensitive and non-extractable: no call of the token hands out its value."""
    token = pkcs11.lib(str(hsm_settings.custody_pkcs11_library)).get_token(token_label=TOKEN_LABEL)
    with token.open(user_pin=USER_PIN) as session:
        key = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=hsm_settings.custody_pkcs11_key_label)
        assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE] and key[Attribute.TOKEN]
        assert key[Attribute.VALUE_LEN] == 32
        with pytest.raises(AttributeSensitive):
            key[Attribute.VALUE]
    with pytest.raises(VaultError, match="already holds"):
        create_pkcs11_kek(hsm_settings)


async def test_secrets_seal_and_unseal_through_the_hsm_kek(session, hsm_ring):
    """REQ-42: with an HSM the KEK never leaves the token; data keys are wrapped by the token."""
    assert isinstance(hsm_ring.current, Pkcs11Kek)
    vault = Vault(hsm_ring)
    phrase = mnemonic()
    secret_id = await vault.seal(session, kind="mnemonic", plaintext=phrase)

    assert (await vault.unseal(session, secret_id)).reveal() == phrase
    row = await stored(session, secret_id)
    assert row.kek_id == hsm_ring.current.kek_id and row.kek_id.startswith("pkcs11:dfa-custody-kek:")
    tampered = flip_bit(row.wrapped, 30)
    await session.execute(update(DataKey).where(DataKey.id == row.data_key_id).values(wrapped=tampered))
    with pytest.raises(VaultError, match="does not unwrap"):
        await vault.unseal(session, secret_id)


def test_a_wrong_pin_or_missing_key_stops_the_platform_without_showing_the_pin(hsm_settings):
    with pytest.raises(KeyMissing) as refused:
        key_ring_from_settings(hsm_settings.model_copy(update={"custody_pkcs11_pin": SecretStr("987654")}))
    assert "987654" not in str(refused.value)
    with pytest.raises(KeyMissing, match="no single AES key"):
        key_ring_from_settings(hsm_settings.model_copy(update={"custody_pkcs11_key_label": "no-such-key"}))
    with pytest.raises(KeyMissing, match="CUSTODY_PKCS11_PIN"):
        key_ring_from_settings(hsm_settings.model_copy(update={"custody_pkcs11_pin": None}))


async def test_rotation_from_an_environment_kek_into_the_hsm(database, hsm_settings):
    """REQ-42: moving the KEK into an HSM is an ordinary rotation: the old key is retired, rewrap moves
    every data key under the token's key, and afterwards the token alone unseals everything."""
    old_key = secrets.token_bytes(32)
    old = AesKek(old_key)
    migrating = key_ring_from_settings(
        hsm_settings.model_copy(update={"custody_kek_retired": [SecretStr(base64.b64encode(old_key).decode())]})
    )
    async with cleaned_up(database) as secret_ids:
        phrases = await seal_committed(database, Vault(KeyRing(old)), 5)
        secret_ids += phrases
        try:
            assert migrating.retired_ids == (old.kek_id,)
            assert await Vault(migrating).rewrap(database, batch_size=2) == 5
            hsm_only = KeyRing(migrating.current)
            await unseal_all(database, Vault(hsm_only), phrases)
            async with database.read() as session:
                counts = await Vault(hsm_only).key_counts(session)
            assert old.kek_id not in counts and counts[migrating.current.kek_id] >= 5
            [event] = await rotation_events(database, migrating.current.kek_id)
            assert event.details == {"rewrapped": 5}
        finally:
            migrating.current.close()
