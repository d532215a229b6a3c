"""No API, page, log, exception, repr or export shows a private key or a mnemonic (REQ-42, REQ-43).

This test runs after every other one: it exercises custody as every role, drives the chain mirror
(which signs with the operator's key), then searches every response the platform sent during the
whole test session and every log line written for every mnemonic and private key in the vault.
"""

import base64

import pytest
from sqlalchemy import text

from dfa.custody.chain import in_process_chain
from dfa.custody.errors import SigningRefused
from dfa.custody.service import wallets
from dfa.custody.service.mirror import Mirror
from dfa.custody.service.signing import Signer, SigningPurpose
from dfa.custody.vault import Vault, key_ring_from_settings
from dfa.platform.database import Database
from dfa.platform.settings import Settings
from tests.identity import Users
from tests.recording import LOG_LINES, RESPONSES

STAFF = ("compliance_officer", "operator_admin", "auditor")


def _exercise_custody_api(users: Users) -> None:
    for role in (*STAFF, "investor", "issuer", "other_investor"):
        client = users.client(role)
        assert client.get("/v1/wallet-addresses").status_code == 200
        if role not in STAFF:
            assert (
                client.post("/v1/wallet-addresses", json={}, headers={"Idempotency-Key": f"scan-{role}"}).status_code
                == 201
            )
    staff = users.client("compliance_officer")
    for path in ("/v1/wallets", "/v1/chain/status", "/v1/chain/tokens", "/v1/chain/comparison"):
        assert staff.get(path).status_code == 200, path


async def _key_material(database: Database, vault: Vault, settings: Settings) -> list[str]:
    """Every mnemonic (whole, and its first words) and private key the vault keeps, in the forms a
    leak would take, and the key-encryption key."""
    found: list[str] = []
    async with database.read() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT w.secret_id, a.account FROM custody_wallets w JOIN custody_addresses a ON a.wallet_id = w.id"
                )
            )
        ).all()
        for secret_id, account in rows:
            mnemonic = (await vault.unseal(session, secret_id)).reveal().decode()
            key = wallets.derive(mnemonic, account).key.hex().removeprefix("0x")
            found += [mnemonic, " ".join(mnemonic.split()[:4]), key, key.upper()]
    kek = (settings.data_dir / "keys" / "custody-kek").read_bytes()
    found += [kek.hex(), base64.b64encode(kek).decode()]
    assert len(found) > 6, "the vault keeps keys"
    return found


@pytest.mark.scans_the_session
async def test_no_response_log_line_or_repr_ever_shows_a_key_or_a_mnemonic(
    users: Users, database: Database, settings: Settings
):
    _exercise_custody_api(users)
    vault = Vault(key_ring_from_settings(settings))
    signer = Signer(vault)
    mirror = Mirror(database=database, chain=in_process_chain(), vault=vault, signer=signer, settings=settings)
    await mirror.drain()
    async with database.unit_of_work() as session:
        client_address = (
            await wallets.list_addresses(session, party_id=users["investor"].party_id, after=None, limit=1)
        )[0]
        with pytest.raises(SigningRefused) as refusal:
            await signer.sign_transaction(
                session, address=client_address.address, transaction={}, purpose=SigningPurpose.CHAIN_MIRROR
            )
        events = (await session.execute(text("SELECT details::text FROM security_events"))).scalars().all()
        secret = await vault.unseal(session, (await wallets.list_wallets(session))[0].secret_id)

    haystack = [
        *(r.body.decode("utf-8", "replace") + r.headers.decode("latin-1") for r in RESPONSES),
        *LOG_LINES,
        *events,
        str(refusal.value),
        repr(refusal.value),
        repr(vault),
        repr(vault.ring),
        repr(signer),
        repr(mirror),
        repr(secret),
        str(secret),
    ]
    assert any(r.path == "/v1/wallet-addresses" for r in RESPONSES), "the responses were recorded"
    everything = "\n".join(haystack)
    for material in await _key_material(database, vault, settings):
        assert material not in everything, "key material left the vault"
