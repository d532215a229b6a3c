"""The handover of the platform to a successor operator on liquidation (REQ-66): all data, the wallets'
mnemonics encrypted to the receiver, an acceptance act, verified and loaded on the receiving side.

The source and the receiver are two freshly migrated databases with vaults under different KEKs, as
two operators' platforms would be.
"""

import asyncio
import base64
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from sqlalchemy import select, text

from dfa.custody.errors import HandoverInvalid
from dfa.custody.models import Wallet, WalletAddress
from dfa.custody.service import handover, wallets
from dfa.custody.service.signing import Signer, SigningPurpose
from dfa.custody.vault import AesKek, KeyRing, Vault
from dfa.ledger import service as ledger
from dfa.ledger.models import Account as LedgerAccount
from dfa.platform.audit import service as audit
from dfa.platform.database import Database, run_migrations
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.service import users
from dfa.platform.settings import Settings
from tests.conftest import outside_transaction, url_of
from tests.factories import make_account, make_asset, make_party

RECEIVER = "Successor DFA Operator LLP"
PASSWORD = "correct-horse-battery-staple"
STATEMENT = b"REQ-66: the receiving operator controls this address"


@asynccontextmanager
async def migrated_database(database: Database, database_url: str, settings: Settings) -> AsyncIterator[Database]:
    """A new database on the test server, migrated to head; dropped at the end."""
    name = f"dfa_handover_{uuid.uuid4().hex[:12]}"
    await outside_transaction(database, f'CREATE DATABASE "{name}"')
    url = url_of(database_url, name)
    db = Database.from_url(url, settings)
    try:
        await asyncio.to_thread(run_migrations, url)
        yield db
    finally:
        await db.dispose()
        await outside_transaction(database, f'DROP DATABASE "{name}" WITH (FORCE)')


@dataclass
class Source:
    database: Database
    vault: Vault
    client_addresses: list[str]
    undelivered_outbox: int


@dataclass
class Package:
    path: Path
    manifest: handover.Manifest
    mnemonics: list[str]
    private_keys: list[str]


async def build_platform(db: Database, vault: Vault, settings: Settings) -> Source:
    """An operator's platform in miniature: wallets, an emission placed with two investors, money,
    a hold, a user, chain movements in the outbox (one of them already delivered)."""
    async with db.unit_of_work() as session:
        await wallets.ensure_segment_wallets(session, vault, settings=settings)
        issuer = await make_party(session, kind="legal_entity", name="Issuer | JSC")
        investors = [await make_party(session, name=f"Investor {i}") for i in range(2)]
        emission = await make_asset(session, kind="dfa")
        issued = await make_account(session, asset=emission, owner=issuer, kind="issued")
        holdings = [await make_account(session, asset=emission, owner=investor) for investor in investors]
        await ledger.post_transfers(
            session,
            transfers=[
                ledger.TransferSpec(uuid.uuid4(), issued.id, holdings[0].id, 100),
                ledger.TransferSpec(uuid.uuid4(), issued.id, holdings[1].id, 50),
            ],
        )
        await ledger.post_transfer(
            session, transfer=ledger.TransferSpec(uuid.uuid4(), holdings[0].id, holdings[1].id, 7)
        )
        money = await make_asset(session, kind="money")
        bank = await make_account(session, asset=money, owner=issuer, kind="client_money")
        cash = await make_account(session, asset=money, owner=investors[0])
        await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), bank.id, cash.id, 1_000_00))
        await ledger.place_hold(session, hold_id=uuid.uuid4(), account_id=cash.id, amount=250_00)
        await users.create_user(
            session,
            login=f"investor-{uuid.uuid4().hex[:6]}",
            password=PASSWORD,
            roles=["investor"],
            party_id=investors[0].id,
            actor="test",
            settings=settings,
        )
        addresses = [
            (
                await wallets.open_address(session, vault, party_id=investor.id, segment="client", purpose="holdings")
            ).address
            for investor in investors
        ]
        # The mirror delivered the first movement already; the rest wait for the chain.
        await session.execute(
            text("UPDATE outbox_messages SET delivered_at = now() WHERE id = (SELECT min(id) FROM outbox_messages)")
        )
        undelivered = (
            await session.execute(text("SELECT count(*) FROM outbox_messages WHERE delivered_at IS NULL"))
        ).scalar_one()
    return Source(db, vault, addresses, undelivered)


async def secrets_of(db: Database, vault: Vault) -> tuple[list[str], list[str]]:
    """Every wallet's mnemonic and every address's private key (hex), to look for in the package."""
    mnemonics, private_keys = [], []
    async with db.read() as session:
        by_wallet = {}
        for wallet in (await session.execute(select(Wallet))).scalars():
            by_wallet[wallet.id] = await wallets.mnemonic_of(session, vault, wallet)
        for address in (await session.execute(select(WalletAddress))).scalars():
            private_keys.append(
                wallets.derive(by_wallet[address.wallet_id], address.account).key.hex().removeprefix("0x")
            )
        mnemonics = list(by_wallet.values())
    return mnemonics, private_keys


@pytest.fixture(scope="module")
def receiver_keys() -> tuple[bytes, bytes]:
    return handover.generate_receiver_keys()


@pytest.fixture(scope="module")
def receiver_vault() -> Vault:
    return Vault(KeyRing(AesKek(os.urandom(32))))


@pytest.fixture(scope="module")
def operator_keys(settings: Settings) -> Keys:
    return Keys.load(settings)


@pytest.fixture(scope="module")
async def source(database: Database, database_url: str, settings: Settings) -> AsyncIterator[Source]:
    async with migrated_database(database, database_url, settings) as db:
        yield await build_platform(db, Vault(KeyRing(AesKek(os.urandom(32)))), settings)


@pytest.fixture(scope="module")
async def package(
    source: Source,
    receiver_keys: tuple[bytes, bytes],
    operator_keys: Keys,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Package:
    destination = tmp_path_factory.mktemp("handover") / "package"
    manifest = await handover.export_package(
        source.database,
        source.vault,
        receiver=RECEIVER,
        receiver_public_key_pem=receiver_keys[1],
        destination=destination,
        keys=operator_keys,
        settings=settings,
    )
    return Package(destination, manifest, *await secrets_of(source.database, source.vault))


@pytest.fixture
async def receiver(database: Database, database_url: str, settings: Settings) -> AsyncIterator[Database]:
    async with migrated_database(database, database_url, settings) as db:
        yield db


async def row_counts(db: Database) -> dict[str, int]:
    names = [spec.name for spec in handover.TABLES] + ["custody_secrets", "custody_data_keys"]
    async with db.read() as session:
        return {name: (await session.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one() for name in names}


async def account_states(db: Database) -> list[tuple]:
    async with db.read() as session:
        rows = await session.execute(
            select(
                LedgerAccount.id,
                LedgerAccount.asset_id,
                LedgerAccount.kind,
                LedgerAccount.balance,
                LedgerAccount.version,
                LedgerAccount.last_hash,
            ).order_by(LedgerAccount.id)
        )
        return [tuple(row) for row in rows]


def copy_of(package: Package, tmp_path: Path) -> Path:
    target = tmp_path / "package"
    shutil.copytree(package.path, target)
    return target


# --- the round trip -------------------------------------------------------------------------------------


async def test_the_successor_takes_over_balances_history_and_wallet_keys(
    source: Source,
    package: Package,
    receiver: Database,
    receiver_vault: Vault,
    receiver_keys: tuple[bytes, bytes],
) -> None:
    """REQ-66: after the import every account has its balance, the journal and the security-event log
    verify, and the receiver's own vault signs with the handed-over keys for the listed addresses."""
    report = await handover.import_package(
        receiver, receiver_vault, source=package.path, receiver_private_key_pem=receiver_keys[0]
    )

    assert await account_states(receiver) == await account_states(source.database)
    assert report.counts["wallets"] == 3 and report.counts["addresses"] == 5
    assert set(source.client_addresses) <= set(report.addresses)
    async with receiver.read() as session:
        assert (await ledger.verify(session)).ok
        log = await audit.verify(session)
        assert log.ok, log.problems
        last = (await audit.search(session, limit=1))[0]
        assert (last.kind, last.subject) == ("custody.handover-imported", package.manifest.operator["name"])
        statement_signer = Signer(receiver_vault)
        signature = await statement_signer.sign_statement(
            session, address=source.client_addresses[0], statement=STATEMENT, purpose=SigningPurpose.KEY_PROOF
        )
    recovered = Account.recover_message(encode_defunct(primitive=STATEMENT), signature=signature)
    assert recovered == source.client_addresses[0]


async def test_the_import_neither_resends_history_to_the_chain_nor_loses_pending_movements(
    source: Source,
    package: Package,
    receiver: Database,
    receiver_vault: Vault,
    receiver_keys: tuple[bytes, bytes],
) -> None:
    """REQ-66: movements already on chain stay delivered (the load does not feed the outbox again);
    those the chain has not seen yet are handed over and sent by the receiver."""
    await handover.import_package(
        receiver, receiver_vault, source=package.path, receiver_private_key_pem=receiver_keys[0]
    )

    async with receiver.read() as session:
        pending = (await session.execute(text("SELECT count(*) FROM outbox_messages"))).scalar_one()
        trigger_enabled = (
            await session.execute(
                text("SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'ledger_transfers_dfa_movements'")
            )
        ).scalar_one()
    assert source.undelivered_outbox > 0
    assert pending == source.undelivered_outbox
    assert trigger_enabled == "O"


async def test_the_successor_continues_numbering_and_wallets_after_the_import(
    source: Source,
    package: Package,
    receiver: Database,
    receiver_vault: Vault,
    receiver_keys: tuple[bytes, bytes],
    settings: Settings,
) -> None:
    """REQ-66: the successor keeps operating: new assets and accounts get fresh ids, and a new client
    address comes from the handed-over wallet at its next unused account."""
    await handover.import_package(
        receiver, receiver_vault, source=package.path, receiver_private_key_pem=receiver_keys[0]
    )

    async with receiver.unit_of_work() as session:
        max_asset = (await session.execute(text("SELECT max(id) FROM ledger_assets"))).scalar_one()
        asset = await make_asset(session, kind="dfa")
        account = await make_account(session, asset=asset)
        party = await make_party(session)
        address = await wallets.open_address(
            session, receiver_vault, party_id=party.id, segment="client", purpose="holdings"
        )
    assert asset.id > max_asset and account.id > 0
    assert address.path == wallets.derivation_path(2)  # the two investors' addresses took accounts 0 and 1
    assert address.address not in source.client_addresses


async def test_users_are_handed_over_without_passwords_or_second_factors(
    package: Package,
    receiver: Database,
    receiver_vault: Vault,
    receiver_keys: tuple[bytes, bytes],
) -> None:
    """REQ-66: users come over, but their credentials stay behind: they set a new password through
    recovery (identity confirmed) at the successor."""
    users_csv = (package.path / "data" / "users.csv").read_text()
    assert "password_hash" not in users_csv and "$argon2" not in users_csv and "totp" not in users_csv
    await handover.import_package(
        receiver, receiver_vault, source=package.path, receiver_private_key_pem=receiver_keys[0]
    )
    async with receiver.read() as session:
        hashes = set((await session.execute(text("SELECT password_hash FROM users"))).scalars())
        defaults = (
            await session.execute(
                text(
                    "SELECT count(*) FROM information_schema.columns WHERE table_name IN ('users', 'api_credentials') "
                    "AND column_name IN ('password_hash', 'secret_hash') AND column_default IS NOT NULL"
                )
            )
        ).scalar_one()
    assert hashes == {handover.PASSWORD_RESET_MARKER}
    assert defaults == 0


# --- the package and the act ------------------------------------------------------------------------------


async def test_the_package_reveals_no_mnemonic_or_private_key_outside_the_encrypted_keys_file(package: Package) -> None:
    """REQ-66 (and REQ-42): the act and the data name wallets by fingerprint; the mnemonics and keys
    appear nowhere in clear, not even in keys.enc."""
    assert package.mnemonics and package.private_keys
    needles = []
    for mnemonic in package.mnemonics:
        words = mnemonic.split()
        needles += [" ".join(words[i : i + 3]).encode() for i in range(len(words) - 2)]
    for private_key in package.private_keys:
        needles += [private_key.lower().encode(), private_key.upper().encode()]
    files = [p for p in package.path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"keys.enc", "manifest.json", "manifest.sig", "acceptance-act.md"}
    for path in files:
        content = path.read_bytes()
        leaked = [n for n in needles if n in content]
        assert not leaked, f"{path.name} holds key material"


async def test_the_acceptance_act_lists_every_wallet_address_emission_and_file(
    package: Package, source: Source
) -> None:
    """REQ-66: the act the two operators sign names each wallet by segment, activity and fingerprint,
    each address with its purpose and path, the counts, each emission's outstanding units and every
    file's hash."""
    act = json.loads((package.path / "acceptance-act.json").read_text())
    async with source.database.read() as session:
        wallet_rows = (await session.execute(select(Wallet))).scalars().all()
    assert {(w["segment"], w["activity"], w["fingerprint"]) for w in act["wallets"]} == {
        (w.segment, w.activity, w.fingerprint) for w in wallet_rows
    }
    client = [a for a in act["addresses"] if a["address"] in source.client_addresses]
    assert {(a["segment"], a["purpose"]) for a in client} == {("client", "holdings")}
    assert all(a["path"].startswith("m/44'/60'/") and a["party_id"] for a in act["addresses"])
    assert act["counts"] == {"parties": 4, "accounts": 8, "transfers": 5, "wallets": 3, "addresses": 5, "tokens": 0}
    assert [e["outstanding_units"] for e in act["emissions"]] == [150]
    assert {f["path"] for f in act["files"]} == {spec.path for spec in handover.TABLES} | {"keys.enc"}
    assert act["key_fingerprints"]["receiver_public_key_sha256"] == package.manifest.receiver_key_fingerprint
    markdown = (package.path / "acceptance-act.md").read_text()
    assert all(a["address"] in markdown for a in act["addresses"])
    assert all(w.fingerprint in markdown for w in wallet_rows)


async def test_the_package_leaves_out_sessions_replay_records_and_the_vault(package: Package) -> None:
    """REQ-66: what goes is business data; the vault's rows stay (keys travel only in keys.enc)."""
    data = {p.stem for p in (package.path / "data").iterdir()}
    assert data == {spec.name for spec in handover.TABLES}
    assert not data & handover.EXCLUDED_TABLES
    wallets_header = (package.path / "data" / "custody_wallets.csv").read_text().splitlines()[0]
    assert "secret_id" not in wallets_header


async def test_the_export_is_recorded_as_a_security_event(source: Source, package: Package) -> None:
    """REQ-66: the export is a security event naming the receiver and the key it was made for."""
    async with source.database.read() as session:
        events = await audit.search(session, kind="custody.handover-exported", limit=5)
    assert [e.subject for e in events] == [RECEIVER]
    assert events[0].details["receiver_key_fingerprint"] == package.manifest.receiver_key_fingerprint


async def test_an_export_never_overwrites_an_existing_package(
    source: Source,
    receiver_keys: tuple[bytes, bytes],
    operator_keys: Keys,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """REQ-66: a package directory that holds anything is left alone."""
    (tmp_path / "note.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        await handover.export_package(
            source.database,
            source.vault,
            receiver=RECEIVER,
            receiver_public_key_pem=receiver_keys[1],
            destination=tmp_path,
            keys=operator_keys,
            settings=settings,
        )
    assert [p.name for p in tmp_path.iterdir()] == ["note.txt"]


# --- refusals: nothing is written ---------------------------------------------------------------------------


def _alter_data(path: Path) -> None:
    accounts = path / "data" / "ledger_accounts.csv"
    lines = accounts.read_text().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(",", ",9", 1)
    accounts.write_text("".join(lines))


def _alter_manifest(path: Path) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["receiver"] = "Someone Else"
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _alter_act(path: Path) -> None:
    (path / "acceptance-act.md").write_text((path / "acceptance-act.md").read_text().replace("client", "operator_own"))


def _add_stray_file(path: Path) -> None:
    (path / "data" / "extra.csv").write_text("id\n1\n")


@pytest.mark.parametrize("tamper", [_alter_data, _alter_manifest, _alter_act, _add_stray_file])
async def test_a_tampered_package_is_refused_and_nothing_is_written(
    tamper,
    package: Package,
    receiver: Database,
    receiver_vault: Vault,
    receiver_keys: tuple[bytes, bytes],
    tmp_path: Path,
) -> None:
    """REQ-66: any change to the signed package after export is found before anything is loaded."""
    tampered = copy_of(package, tmp_path)
    tamper(tampered)
    before = await row_counts(receiver)
    with pytest.raises(HandoverInvalid):
        await handover.import_package(
            receiver, receiver_vault, source=tampered, receiver_private_key_pem=receiver_keys[0]
        )
    assert await row_counts(receiver) == before


async def test_a_package_opens_only_with_the_receivers_private_key(
    package: Package,
    receiver: Database,
    receiver_vault: Vault,
) -> None:
    """REQ-66: the keys are for the named receiver alone; another key is refused and nothing is written."""
    other_private, _ = handover.generate_receiver_keys()
    before = await row_counts(receiver)
    with pytest.raises(HandoverInvalid):
        await handover.import_package(
            receiver, receiver_vault, source=package.path, receiver_private_key_pem=other_private
        )
    assert await row_counts(receiver) == before


def test_the_keys_file_is_bound_to_the_receivers_name_and_the_data() -> None:
    """REQ-66: keys.enc opens only for the receiver named and with the data it was exported with."""
    private_pem, public_pem = handover.generate_receiver_keys()
    private = handover._receiver_private_key(private_pem)
    public = handover._receiver_public_key(public_pem)
    sealed = handover._seal_keys(b"phrases", recipient=public, receiver=RECEIVER, data_digest="a" * 64)
    assert handover._open_keys(sealed, private_key=private, receiver=RECEIVER, data_digest="a" * 64) == b"phrases"
    with pytest.raises(HandoverInvalid):
        handover._open_keys(sealed, private_key=private, receiver="Another Operator", data_digest="a" * 64)
    with pytest.raises(HandoverInvalid):
        handover._open_keys(sealed, private_key=private, receiver=RECEIVER, data_digest="b" * 64)
    envelope = json.loads(sealed)
    envelope["ciphertext"] = base64.b64encode(b"\0" * 40).decode()
    with pytest.raises(HandoverInvalid):
        handover._open_keys(json.dumps(envelope).encode(), private_key=private, receiver=RECEIVER, data_digest="a" * 64)


async def test_a_package_signed_by_an_unexpected_operator_key_is_refused(
    package: Package,
    receiver: Database,
    receiver_vault: Vault,
    receiver_keys: tuple[bytes, bytes],
) -> None:
    """REQ-66: the receiver can pin the signing key fingerprint written on the paper act."""
    before = await row_counts(receiver)
    with pytest.raises(HandoverInvalid):
        await handover.import_package(
            receiver,
            receiver_vault,
            source=package.path,
            receiver_private_key_pem=receiver_keys[0],
            expected_operator_key_fingerprint="0" * 64,
        )
    assert await row_counts(receiver) == before


async def test_a_handover_loads_only_into_an_empty_database(
    package: Package,
    receiver: Database,
    receiver_vault: Vault,
    receiver_keys: tuple[bytes, bytes],
) -> None:
    """REQ-66: a database that already holds business data is refused, and keeps exactly what it had."""
    async with receiver.unit_of_work() as session:
        await make_party(session)
    before = await row_counts(receiver)
    with pytest.raises(HandoverInvalid, match="not empty"):
        await handover.import_package(
            receiver, receiver_vault, source=package.path, receiver_private_key_pem=receiver_keys[0]
        )
    assert await row_counts(receiver) == before
