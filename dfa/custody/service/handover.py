"""The handover of the platform to a successor operator on liquidation (REQ-66).

The liquidated operator hands all its data and the wallets' mnemonic phrases to one named receiving
operator, formalised by an acceptance-transfer act the two sign. The package is a directory:

    data/<table>.csv        every business table, one consistent snapshot (PostgreSQL COPY, CSV)
    keys.enc                the wallets' mnemonics, encrypted to the receiver's X25519 public key
    acceptance-act.json     the act: wallets, addresses, fingerprints, counts, emissions, file hashes
    acceptance-act.md       the same act for people to read and sign
    manifest.json           format, operator, receiver, schema revision, every file's SHA-256 and rows
    manifest.sig            base64 Ed25519 signature of manifest.json by the operator's platform key
    operator-public-key.pem the key that verifies manifest.sig

The manifest lists the act's files by hash, so its one signature covers the act and every file.
`keys.enc` is the only place key material appears; its associated data binds it to the receiver's
name and to the digest of the data files, so it neither opens for anyone else nor travels with
other data. The importer checks everything (signature, hashes, row counts, the act against the
data, every wallet's fingerprint and every address against its mnemonic) before it writes anything,
then loads all in one transaction. Nothing here logs, raises or prints a mnemonic or a key.
"""

import asyncio
import base64
import csv
import hashlib
import io
import json
import logging
import re
import secrets
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody.errors import HandoverInvalid
from dfa.custody.service import wallets
from dfa.custody.vault import Secret, Vault
from dfa.platform.audit import service as audit
from dfa.platform.database import Database, driver_connection, set_statement_timeout
from dfa.platform.errors import invariant
from dfa.platform.identity.crypto import Keys
from dfa.platform.settings import Settings, get_settings

log = logging.getLogger(__name__)

PACKAGE_FORMAT = "dfa-handover/1"
KEYS_FORMAT = "dfa-handover-keys/1"
ACT_FORMAT = "dfa-handover-act/1"
KEYS_ALGORITHM = "X25519-HKDF-SHA256-AES-256-GCM"
ACTOR = "service:handover"

DATA_DIR = "data"
KEYS_FILE = "keys.enc"
ACT_JSON = "acceptance-act.json"
ACT_MD = "acceptance-act.md"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
OPERATOR_KEY_FILE = "operator-public-key.pem"

# Limits: the JSON files are read whole, so a hostile package cannot make the importer swallow
# gigabytes; data files are streamed and have none. A COPY of a large journal outlasts the
# platform's ordinary statement timeout, so the handover's transactions get their own.
JSON_FILE_MAX_BYTES = 256 * 1024 * 1024
RECEIVER_NAME_MAX_CHARS = 300
HASH_CHUNK_BYTES = 1 << 20
STATEMENT_TIMEOUT_MS = 6 * 3600 * 1000
NONCE_BYTES = 12

# The receiving operator's users sign in again only after password recovery, which confirms their
# identity (REQ-19); this is not an argon2 hash, so no password ever matches it.
PASSWORD_RESET_MARKER = "!handover: set a new password through password recovery"
# A credential's secret stays with the liquidated operator; no secret digests to the empty string.
CREDENTIAL_SECRET_WITHHELD = "'\\x'::bytea"
# The ledger's trigger that publishes every DFA movement to the outbox for the chain: the imported
# history is already on chain, so the load must not publish it again.
MOVEMENT_TRIGGER = "ledger_transfers_dfa_movements"

_COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class TableSpec:
    """How one table goes into the package and back out of it."""

    name: str
    order_by: str
    columns: tuple[str, ...] | None = None  # None: every column
    where: str | None = None
    # Columns withheld from the package (secrets), filled on import with this SQL expression.
    fill_on_import: tuple[tuple[str, str], ...] = ()
    # The migration seeds the table's single row: the package's row replaces it.
    seeded: bool = False

    @property
    def path(self) -> str:
        return f"{DATA_DIR}/{self.name}.csv"


# Every business table, in foreign-key order (the import loads them in this order).
TABLES: tuple[TableSpec, ...] = (
    TableSpec("parties", "id"),
    TableSpec("biometric_checks", "id"),
    TableSpec("kyc_events", "id"),
    TableSpec(
        "users",
        "id",
        columns=(
            "id",
            "login",
            "roles",
            "party_id",
            "status",
            "failed_sign_ins",
            "locked_until",
            "password_changed_at",
            "created_at",
        ),
        fill_on_import=(("password_hash", "'" + PASSWORD_RESET_MARKER + "'"),),
    ),
    TableSpec(
        "api_credentials",
        "id",
        columns=(
            "id",
            "client_id",
            "kind",
            "user_id",
            "label",
            "created_at",
            "rotated_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ),
        fill_on_import=(("secret_hash", CREDENTIAL_SECRET_WITHHELD),),
    ),
    TableSpec("calendar_day_overrides", "day"),
    TableSpec("ledger_assets", "id"),
    TableSpec("ledger_accounts", "id"),
    TableSpec("ledger_batches", "id"),
    TableSpec("ledger_transfers", "id"),
    TableSpec("ledger_entries", "account_id, seq"),
    TableSpec("ledger_holds", "id"),
    TableSpec("security_events", "seq"),
    TableSpec("security_event_head", "id", seeded=True),
    # secret_id names a row of this operator's vault; the receiver seals the mnemonic in its own.
    TableSpec(
        "custody_wallets", "id", columns=("id", "segment", "activity", "fingerprint", "next_account", "created_at")
    ),
    TableSpec("custody_addresses", "address"),
    TableSpec("custody_tokens", "chain_id, asset_id"),
    TableSpec("custody_chain_senders", "chain_id, address"),
    TableSpec("custody_chain_batches", "id"),
    TableSpec("settlement_payment_references", "party_id"),
    TableSpec("settlement_bank_accounts", "id"),
    TableSpec("settlement_statement_imports", "id"),
    TableSpec("settlement_statement_lines", "id"),
    TableSpec("settlement_payment_runs", "message_id"),
    TableSpec("settlement_withdrawals", "id"),
    TableSpec("settlement_trading_status", "asset_id"),
    TableSpec("settlement_instructions", "id"),
    TableSpec("settlement_instruction_events", "id"),
    TableSpec("settlement_orders", "id"),
    TableSpec("settlement_trades", "id"),
    TableSpec("issuance_issuers", "party_id"),
    TableSpec("issuance_representatives", "id"),
    TableSpec("issuance_issuer_blocks", "id"),
    TableSpec("issuance_underlying_assets", "id"),
    TableSpec("issuance_applications", "id"),
    TableSpec("issuance_application_events", "id"),
    TableSpec("issuance_documents", "id"),
    TableSpec("issuance_certifications", "id"),
    TableSpec("issuance_emissions", "asset_id"),
    TableSpec("issuance_placements", "id"),
    TableSpec("issuance_subscriptions", "seq"),
    TableSpec("issuance_snapshots", "id"),
    TableSpec("issuance_snapshot_positions", "snapshot_id, party_id"),
    # A money freeze on redeemed units' proceeds names the freeze it follows, made before it.
    TableSpec("issuance_freezes", "created_at, id"),
    TableSpec("issuance_forced_transfers", "id"),
    TableSpec("issuance_redemptions", "id"),
    TableSpec("issuance_redemption_payments", "redemption_id, party_id"),
    TableSpec("issuance_default_events", "id"),
    TableSpec("issuance_suspensions", "id"),
    TableSpec("issuance_trading_platforms", "code"),
    TableSpec("issuance_platform_transfers", "id"),
    TableSpec("issuance_platform_messages", "id"),
    TableSpec("reconciliation_runs", "id"),
    TableSpec("reconciliation_reports", "id"),
    TableSpec("reconciliation_coverage", "report_id, asset_id"),
    TableSpec("reconciliation_holder_trees", "report_id, asset_id"),
    TableSpec("reconciliation_holder_leaves", "report_id, asset_id, account_id"),
    TableSpec("reconciliation_breaches", "id"),
    TableSpec("reconciliation_sign_offs", "report_id"),
    TableSpec("reconciliation_notices", "created_at, id"),
    # Delivered messages are done with; pending ones (movements not yet on chain) the receiver sends.
    TableSpec("outbox_messages", "id", where="delivered_at IS NULL"),
)

# Tables deliberately left out: request replay records, sign-in state, single-use grants, and the
# vault (its key material travels only inside keys.enc). The receiver migrates its own schema.
EXCLUDED_TABLES = frozenset(
    {
        "alembic_version",
        "idempotency_records",
        "user_sessions",
        "rate_counters",
        "identity_grants",
        "custody_data_keys",
        "custody_secrets",
    }
)

_BY_NAME = {spec.name: spec for spec in TABLES}


# --- the package's documents -----------------------------------------------------------------------


@dataclass(frozen=True)
class PackageFile:
    path: str
    sha256: str
    rows: int | None  # data rows of a CSV file (the header not counted); None for other files


@dataclass(frozen=True)
class Manifest:
    """What the package holds; its signature vouches for every file through the hashes listed."""

    format: str
    operator: dict[str, str]
    receiver: str
    created_at: str
    schema_revision: str
    receiver_key_fingerprint: str
    operator_key_fingerprint: str
    data_digest: str
    files: tuple[PackageFile, ...]

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Manifest":
        """The manifest, or HandoverInvalid when it is not one of this format."""
        try:
            document = json.loads(raw)
            files = tuple(PackageFile(**entry) for entry in document.pop("files"))
            manifest = cls(**document, files=files)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise HandoverInvalid(f"{MANIFEST_FILE} is malformed") from None
        if manifest.format != PACKAGE_FORMAT:
            raise HandoverInvalid(f"the package format {manifest.format!r} is not {PACKAGE_FORMAT!r}")
        return manifest

    def file(self, path: str) -> PackageFile:
        for entry in self.files:
            if entry.path == path:
                return entry
        raise HandoverInvalid(f"{MANIFEST_FILE} does not list {path}")


@dataclass(frozen=True)
class HandedOverWallet:
    """A wallet as the act names it: never its mnemonic, only the mnemonic's fingerprint."""

    id: str
    segment: str
    activity: str
    fingerprint: str


@dataclass(frozen=True)
class ImportReport:
    operator: dict[str, str]
    receiver: str
    created_at: str
    counts: dict[str, int]
    rows: dict[str, int]
    wallets: tuple[HandedOverWallet, ...]
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class _WalletKey:
    """A wallet with its mnemonic; the mnemonic is a Secret, so printing this shows no key."""

    wallet: HandedOverWallet
    mnemonic: Secret


# --- receiver keys -----------------------------------------------------------------------------------


def generate_receiver_keys() -> tuple[bytes, bytes]:
    """A new X25519 key pair for the receiving operator: (private PEM, public PEM).

    The receiver makes it and sends only the public PEM; the private one never leaves it, so the
    package's key material opens nowhere else.
    """
    private = X25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def _raw(public_key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_fingerprint(public_key: X25519PublicKey | Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key: what the two operators compare when they sign the act."""
    return hashlib.sha256(_raw(public_key)).hexdigest()


def _receiver_public_key(pem: bytes) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, X25519PublicKey):
        raise HandoverInvalid("the receiver's public key is not an X25519 public key in PEM")
    return key


def _receiver_private_key(pem: bytes) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, X25519PrivateKey):
        raise HandoverInvalid("the receiver's private key is not an unencrypted X25519 private key in PEM")
    return key


def _check_receiver(receiver: str) -> str:
    """The receiver's name, which the keys are bound to: present, short, printable."""
    name = receiver.strip()
    if not name or len(name) > RECEIVER_NAME_MAX_CHARS or not name.isprintable():
        raise HandoverInvalid(
            f"the receiving operator needs a printable name of at most {RECEIVER_NAME_MAX_CHARS} characters"
        )
    return name


# --- keys.enc: hybrid encryption to the receiver --------------------------------------------------------


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _keys_associated_data(receiver: str, data_digest: str) -> bytes:
    # Binds the ciphertext to whom it is for and to the data it came with.
    return _canonical([KEYS_FORMAT, receiver, data_digest])


def _keys_aead(shared: bytes, *, ephemeral: bytes, recipient: bytes, receiver: str) -> AESGCM:
    # Both public keys in the salt tie the derived key to this very exchange.
    key = HKDF(
        algorithm=SHA256(), length=32, salt=ephemeral + recipient, info=_canonical([KEYS_FORMAT, receiver])
    ).derive(shared)
    return AESGCM(key)


def _seal_keys(plaintext: bytes, *, recipient: X25519PublicKey, receiver: str, data_digest: str) -> bytes:
    """keys.enc: an ephemeral X25519 agreement with the receiver's key, HKDF-SHA256, AES-256-GCM."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = _raw(ephemeral.public_key())
    aead = _keys_aead(
        ephemeral.exchange(recipient), ephemeral=ephemeral_raw, recipient=_raw(recipient), receiver=receiver
    )
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = aead.encrypt(nonce, plaintext, _keys_associated_data(receiver, data_digest))
    envelope = {
        "format": KEYS_FORMAT,
        "algorithm": KEYS_ALGORITHM,
        "receiver": receiver,
        "ephemeral_public_key": base64.b64encode(ephemeral_raw).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    return (json.dumps(envelope, indent=2, ensure_ascii=False) + "\n").encode()


def _open_keys(envelope_bytes: bytes, *, private_key: X25519PrivateKey, receiver: str, data_digest: str) -> bytes:
    """keys.enc's plaintext, or HandoverInvalid when it was not made for this key, name and data."""
    try:
        envelope = json.loads(envelope_bytes)
        if envelope["format"] != KEYS_FORMAT or envelope["algorithm"] != KEYS_ALGORITHM:
            raise ValueError
        ephemeral_raw = base64.b64decode(envelope["ephemeral_public_key"], validate=True)
        nonce = base64.b64decode(envelope["nonce"], validate=True)
        ciphertext = base64.b64decode(envelope["ciphertext"], validate=True)
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
    except (ValueError, TypeError, KeyError):
        raise HandoverInvalid(f"{KEYS_FILE} is malformed") from None
    aead = _keys_aead(shared, ephemeral=ephemeral_raw, recipient=_raw(private_key.public_key()), receiver=receiver)
    try:
        return aead.decrypt(nonce, ciphertext, _keys_associated_data(receiver, data_digest))
    except (InvalidTag, ValueError):
        raise HandoverInvalid(f"{KEYS_FILE} does not open with this receiver's key, name and data") from None


def _keys_document(wallet_keys: Sequence[_WalletKey]) -> bytes:
    return _canonical(
        {
            "format": KEYS_FORMAT,
            "wallets": [{**asdict(k.wallet), "mnemonic": k.mnemonic.reveal().decode()} for k in wallet_keys],
        }
    )


def _wallet_keys_from_document(plaintext: bytes) -> list[_WalletKey]:
    try:
        document = json.loads(plaintext)
        invariant(document["format"] == KEYS_FORMAT, "keys.enc holds a keys document of this format")
        return [
            _WalletKey(
                HandedOverWallet(entry["id"], entry["segment"], entry["activity"], entry["fingerprint"]),
                Secret(entry["mnemonic"].encode()),
            )
            for entry in document["wallets"]
        ]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise HandoverInvalid(f"the keys document in {KEYS_FILE} is malformed") from None


# --- files -------------------------------------------------------------------------------------------


def _digest_and_rows(path: Path, *, csv_file: bool) -> tuple[str, int | None]:
    """The file's SHA-256 and, for a CSV file, its records: newlines outside quotes, less the header.

    PostgreSQL's CSV quotes with `"` and escapes a quote by doubling it, so every `"` toggles
    "inside quotes" and a doubled one toggles twice: counting needs no parser (and no field limit).
    """
    digest, inside, newlines = hashlib.sha256(), False, 0
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            if csv_file:
                for index, part in enumerate(chunk.split(b'"')):
                    inside = inside != (index > 0)
                    if not inside:
                        newlines += part.count(b"\n")
    return digest.hexdigest(), (max(newlines - 1, 0) if csv_file else None)


def _entry(root: Path, relative: str, *, csv_file: bool = False) -> PackageFile:
    return PackageFile(relative, *_digest_and_rows(root / relative, csv_file=csv_file))


def _data_digest(files: Iterable[PackageFile]) -> str:
    """One digest of every data file (path, hash, rows): what keys.enc is bound to."""
    data = sorted((f.path, f.sha256, f.rows) for f in files if f.path.startswith(f"{DATA_DIR}/"))
    return hashlib.sha256(_canonical(data)).hexdigest()


def _read_bounded(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            raw = file.read(JSON_FILE_MAX_BYTES + 1)
    except OSError:
        raise HandoverInvalid(f"the package has no readable {path.name}") from None
    if len(raw) > JSON_FILE_MAX_BYTES:
        raise HandoverInvalid(f"{path.name} is larger than {JSON_FILE_MAX_BYTES} bytes")
    return raw


def _iter_rows(path: Path) -> Iterator[dict[str, str]]:
    """A data file's rows, streamed: the journal's tables may not fit in memory."""
    with path.open(newline="", encoding="utf-8") as file:
        yield from csv.DictReader(file)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(_iter_rows(path))


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as file:
        columns = next(csv.reader(file), [])
    if not columns or not all(_COLUMN_NAME.match(c) for c in columns):
        raise HandoverInvalid(f"{path.name} has no valid header of column names")
    return columns


def _write_json(path: Path, document: Any) -> None:
    path.write_bytes((json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())


# --- the acceptance act --------------------------------------------------------------------------------


def _emissions(data: Path) -> list[dict[str, Any]]:
    """Each emission with its outstanding units: the negated balance of its issued account."""
    issued = {
        row["asset_id"]: -int(row["balance"])
        for row in _iter_rows(data / "ledger_accounts.csv")
        if row["kind"] == "issued"
    }
    return [
        {
            "asset_id": int(row["id"]),
            "code": row["code"],
            "name": row["name"],
            "outstanding_units": issued.get(row["id"], 0),
        }
        for row in _iter_rows(data / "ledger_assets.csv")
        if row["kind"] == "dfa"
    ]


def _wallets_and_addresses(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The act's wallets (by fingerprint, never a phrase) and every address with its wallet's segment."""
    wallet_rows = _rows(data / "custody_wallets.csv")
    by_id = {row["id"]: row for row in wallet_rows}
    addresses = [
        {
            "address": row["address"],
            "segment": by_id.get(row["wallet_id"], {}).get("segment"),
            "activity": by_id.get(row["wallet_id"], {}).get("activity"),
            "purpose": row["purpose"],
            "path": row["path"],
            "party_id": row["party_id"],
            "wallet_id": row["wallet_id"],
        }
        for row in _iter_rows(data / "custody_addresses.csv")
    ]
    per_wallet = Counter(a["wallet_id"] for a in addresses)
    wallet_list = [
        {
            "id": row["id"],
            "segment": row["segment"],
            "activity": row["activity"],
            "fingerprint": row["fingerprint"],
            "addresses": per_wallet[row["id"]],
        }
        for row in wallet_rows
    ]
    return wallet_list, addresses


def _act(manifest: Manifest, data: Path) -> dict[str, Any]:
    """The act, computed from the data files alone, so the importer can recompute it and compare."""
    rows = {f.path: f.rows or 0 for f in manifest.files}
    wallet_list, addresses = _wallets_and_addresses(data)
    counts = {
        what: rows[f"{DATA_DIR}/{table}.csv"]
        for what, table in (
            ("parties", "parties"),
            ("accounts", "ledger_accounts"),
            ("transfers", "ledger_transfers"),
            ("wallets", "custody_wallets"),
            ("addresses", "custody_addresses"),
            ("tokens", "custody_tokens"),
        )
    }
    return {
        "format": ACT_FORMAT,
        "title": "Acceptance-transfer act: handover of the DFA platform on liquidation (REQ-66)",
        "operator": manifest.operator,
        "receiver": manifest.receiver,
        "created_at": manifest.created_at,
        "key_fingerprints": {
            "receiver_public_key_sha256": manifest.receiver_key_fingerprint,
            "operator_signing_key_sha256": manifest.operator_key_fingerprint,
        },
        "keys_file": {"path": KEYS_FILE, "algorithm": KEYS_ALGORITHM, "wallets": len(wallet_list)},
        "counts": counts,
        "emissions": _emissions(data),
        "wallets": wallet_list,
        "addresses": addresses,
        "files": [asdict(f) for f in manifest.files if f.path not in (ACT_JSON, ACT_MD)],
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headings: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _act_markdown(act: dict[str, Any]) -> bytes:
    """The act for people: every wallet and address, fingerprints, counts, emissions, file hashes."""
    operator, keys = act["operator"], act["key_fingerprints"]
    lines = [
        f"# {act['title']}",
        "",
        (
            f"- Transferring operator: {operator['name']} (BIN {operator['bin']}, "
            f"NBK registration {operator['nbk_registration_number']})"
        ),
        f"- Receiving operator: {act['receiver']}",
        f"- Package created (UTC): {act['created_at']}",
        "",
        (
            "The transferring operator hands over all information recorded on its platform and the mnemonic "
            f"phrases of the {act['keys_file']['wallets']} wallets listed below, which give access to and "
            f"control of every address listed. The phrases are in `{act['keys_file']['path']}`, encrypted "
            f"({act['keys_file']['algorithm']}) to the receiving operator's key; this act names them only "
            "by fingerprint."
        ),
        "",
        "## Key fingerprints (SHA-256)",
        "",
        f"- Receiving operator's public key: `{keys['receiver_public_key_sha256']}`",
        f"- Transferring operator's signing key: `{keys['operator_signing_key_sha256']}`",
        "",
        "## Counts",
        "",
        *_table(("what", "count"), act["counts"].items()),
        "## Emissions and their outstanding units",
        "",
        *_table(
            ("asset id", "code", "name", "outstanding units"),
            ((e["asset_id"], e["code"], e["name"], e["outstanding_units"]) for e in act["emissions"]),
        ),
        "## Wallets",
        "",
        *_table(
            ("wallet id", "segment", "activity", "mnemonic fingerprint", "addresses"),
            ((w["id"], w["segment"], w["activity"], f"`{w['fingerprint']}`", w["addresses"]) for w in act["wallets"]),
        ),
        "## Addresses",
        "",
        *_table(
            ("address", "segment", "activity", "purpose", "derivation path", "party id"),
            (
                (a["address"], a["segment"], a["activity"], a["purpose"], a["path"], a["party_id"])
                for a in act["addresses"]
            ),
        ),
        "## Files",
        "",
        *_table(
            ("file", "SHA-256", "rows"),
            ((f["path"], f"`{f['sha256']}`", f["rows"] if f["rows"] is not None else "") for f in act["files"]),
        ),
        "## Signatures",
        "",
        "Handed over by the transferring operator: ______________________ (name, position, signature, date)",
        "",
        "Accepted by the receiving operator: ______________________ (name, position, signature, date)",
        "",
    ]
    return "\n".join(lines).encode()


# --- export ----------------------------------------------------------------------------------------------


def _quoted(name: str) -> str:
    invariant(_COLUMN_NAME.match(name) is not None, f"{name!r} is a plain SQL name")
    return f'"{name}"'


def _export_query(spec: TableSpec) -> str:
    columns = ", ".join(_quoted(c) for c in spec.columns) if spec.columns else "*"
    where = f" WHERE {spec.where}" if spec.where else ""
    return f"SELECT {columns} FROM {_quoted(spec.name)}{where} ORDER BY {spec.order_by}"


async def _begin_snapshot(session: AsyncSession) -> None:
    """One read-only REPEATABLE READ transaction: every file is of the same instant."""
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
    await set_statement_timeout(session, STATEMENT_TIMEOUT_MS)


async def _require_classified_tables(session: AsyncSession) -> None:
    """Every table is either exported or deliberately left out: a new table nobody classified would
    silently be missing from the handover (REQ-66 asks for all information)."""
    names = set(
        (
            await session.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                )
            )
        ).scalars()
    )
    unknown = sorted(names - set(_BY_NAME) - EXCLUDED_TABLES)
    invariant(not unknown, f"tables {unknown} are neither in handover.TABLES nor in handover.EXCLUDED_TABLES")


async def _schema_revision(session: AsyncSession) -> str:
    return (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()


async def _export_tables(session: AsyncSession, root: Path) -> list[PackageFile]:
    """Every table of TABLES as CSV with a header, written by PostgreSQL's COPY (DESIGN §5: about 7×
    faster than fetching rows into Python)."""
    driver = await driver_connection(session)
    (root / DATA_DIR).mkdir(mode=0o700)
    files = []
    for spec in TABLES:
        await driver.copy_from_query(_export_query(spec), output=root / spec.path, format="csv", header=True)
        files.append(_entry(root, spec.path, csv_file=True))
    return files


async def _exported_wallet_keys(session: AsyncSession, vault: Vault) -> list[_WalletKey]:
    """Every wallet with its mnemonic from the vault, each checked against its stored fingerprint."""
    rows = await session.execute(
        text("SELECT id, segment, activity, fingerprint, secret_id FROM custody_wallets ORDER BY id")
    )
    found = []
    for row in rows.all():
        mnemonic = await vault.unseal(session, row.secret_id)
        invariant(
            wallets.wallet_fingerprint(mnemonic.reveal().decode()) == row.fingerprint,
            f"the mnemonic of wallet {row.id} matches its fingerprint",
        )
        found.append(_WalletKey(HandedOverWallet(str(row.id), row.segment, row.activity, row.fingerprint), mnemonic))
    return found


def _work_directory(destination: Path) -> Path:
    """A private sibling directory the package is built in; renamed onto `destination` only when
    complete, so a package found under its name is never half-written."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise FileExistsError(f"{destination} exists and is not an empty directory; a package is never overwritten")
    work = destination.with_name(f".{destination.name}.partial-{secrets.token_hex(4)}")
    work.mkdir(mode=0o700, parents=False)
    return work


def _make_private(work: Path) -> None:
    """Owner-only files: the package holds every client's personal data."""
    for path in work.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def _operator(settings: Settings) -> dict[str, str]:
    return {
        "name": settings.operator_name,
        "bin": settings.operator_bin,
        "nbk_registration_number": settings.operator_nbk_registration_number,
    }


def _write_signed_documents(work: Path, manifest_head: Manifest, keys: Keys) -> Manifest:
    """Write the act (JSON and Markdown), then the manifest listing them, its signature and the
    operator's public key. Returns the final manifest."""
    act = _act(manifest_head, work / DATA_DIR)
    _write_json(work / ACT_JSON, act)
    (work / ACT_MD).write_bytes(_act_markdown(act))
    manifest = Manifest(
        **{**asdict(manifest_head), "files": manifest_head.files + (_entry(work, ACT_JSON), _entry(work, ACT_MD))}
    )
    manifest_bytes = manifest.to_json()
    (work / MANIFEST_FILE).write_bytes(manifest_bytes)
    (work / SIGNATURE_FILE).write_bytes(base64.b64encode(keys.signing_key.sign(manifest_bytes)) + b"\n")
    (work / OPERATOR_KEY_FILE).write_bytes(
        keys.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return manifest


async def export_package(
    database: Database,
    vault: Vault,
    *,
    receiver: str,
    receiver_public_key_pem: bytes,
    destination: Path,
    keys: Keys,
    settings: Settings | None = None,
) -> Manifest:
    """Write the handover package for `receiver` into `destination` (REQ-66) and record the export.

    The data is one consistent snapshot; the mnemonics open only with the receiver's private key;
    the manifest (and through it every file) is signed with the operator's platform key. The
    package appears under `destination` only when complete. `settings` names the operator (the
    environment's settings when not given).

    Errors: HandoverInvalid (the receiver's name or public key is not usable), FileExistsError
    (`destination` holds something), VaultError (a wallet's mnemonic cannot be unsealed).
    """
    receiver = _check_receiver(receiver)
    recipient = _receiver_public_key(receiver_public_key_pem)
    settings = settings or get_settings()
    destination = Path(destination)
    work = _work_directory(destination)
    published = False
    try:
        async with database.read() as session:
            await _begin_snapshot(session)
            await _require_classified_tables(session)
            revision = await _schema_revision(session)
            data_files = await _export_tables(session, work)
            wallet_keys = await _exported_wallet_keys(session, vault)
        data_digest = _data_digest(data_files)
        (work / KEYS_FILE).write_bytes(
            _seal_keys(_keys_document(wallet_keys), recipient=recipient, receiver=receiver, data_digest=data_digest)
        )
        del wallet_keys
        manifest = _write_signed_documents(
            work,
            Manifest(
                format=PACKAGE_FORMAT,
                operator=_operator(settings),
                receiver=receiver,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                schema_revision=revision,
                receiver_key_fingerprint=key_fingerprint(recipient),
                operator_key_fingerprint=key_fingerprint(keys.signing_key.public_key()),
                data_digest=data_digest,
                files=(*data_files, _entry(work, KEYS_FILE)),
            ),
            keys,
        )
        _make_private(work)
        async with database.unit_of_work() as session:
            await audit.record(
                session,
                kind="custody.handover-exported",
                actor=ACTOR,
                subject=receiver,
                outcome="success",
                details=_event_details(manifest),
            )
            work.rename(destination)  # inside the unit: a failed rename records no export
            published = True
    except BaseException:
        shutil.rmtree(destination if published else work, ignore_errors=True)
        raise
    log.info("handover package for %s written to %s (data digest %s)", receiver, destination, manifest.data_digest)
    return manifest


def _event_details(manifest: Manifest) -> dict[str, Any]:
    """What the security log keeps of a handover: whom, which key, which data; never key material."""
    rows = {f.path: f.rows for f in manifest.files}
    return {
        "receiver_key_fingerprint": manifest.receiver_key_fingerprint,
        "operator_key_fingerprint": manifest.operator_key_fingerprint,
        "data_digest": manifest.data_digest,
        "package_created_at": manifest.created_at,
        "wallets": rows[f"{DATA_DIR}/custody_wallets.csv"],
        "addresses": rows[f"{DATA_DIR}/custody_addresses.csv"],
        "parties": rows[f"{DATA_DIR}/parties.csv"],
        "transfers": rows[f"{DATA_DIR}/ledger_transfers.csv"],
    }


# --- verification on the receiving side -------------------------------------------------------------------


def _verified_manifest(source: Path, expected_operator_key_fingerprint: str | None) -> Manifest:
    """The manifest, once its signature verifies with the package's operator key (and that key is the
    one the act on paper names, when given)."""
    manifest_bytes = _read_bounded(source / MANIFEST_FILE)
    try:
        operator_key = serialization.load_pem_public_key(_read_bounded(source / OPERATOR_KEY_FILE))
        signature = base64.b64decode(_read_bounded(source / SIGNATURE_FILE).strip(), validate=True)
    except (ValueError, TypeError):
        raise HandoverInvalid(f"{OPERATOR_KEY_FILE} or {SIGNATURE_FILE} is malformed") from None
    if not isinstance(operator_key, Ed25519PublicKey):
        raise HandoverInvalid(f"{OPERATOR_KEY_FILE} is not an Ed25519 public key")
    try:
        operator_key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise HandoverInvalid(f"the signature in {SIGNATURE_FILE} does not verify {MANIFEST_FILE}") from None
    manifest = Manifest.from_json(manifest_bytes)
    fingerprint = key_fingerprint(operator_key)
    if manifest.operator_key_fingerprint != fingerprint:
        raise HandoverInvalid("the manifest names another operator key than the one that signed it")
    if expected_operator_key_fingerprint is not None and expected_operator_key_fingerprint.lower() != fingerprint:
        raise HandoverInvalid(f"the package is signed by operator key {fingerprint}, not the one expected")
    return manifest


def _verify_files(source: Path, manifest: Manifest) -> None:
    """Exactly the files listed, each with its hash and row count, and a data file for every table."""
    expected = {spec.path for spec in TABLES} | {KEYS_FILE, ACT_JSON, ACT_MD}
    listed = [f.path for f in manifest.files]
    if sorted(listed) != sorted(expected):
        raise HandoverInvalid("the manifest does not list exactly the files of this package format")
    present = {f"{DATA_DIR}/{p.name}" for p in (source / DATA_DIR).iterdir()} if (source / DATA_DIR).is_dir() else set()
    extra = sorted(present - expected)
    if extra:
        raise HandoverInvalid(f"the package holds files its manifest does not list: {extra}")
    for entry in manifest.files:
        if not (source / entry.path).is_file():
            raise HandoverInvalid(f"the package lacks {entry.path}")
        found = _entry(source, entry.path, csv_file=entry.path.startswith(f"{DATA_DIR}/"))
        if found.sha256 != entry.sha256:
            raise HandoverInvalid(f"{entry.path} differs from its SHA-256 in the manifest")
        if found.rows != entry.rows:
            raise HandoverInvalid(f"{entry.path} holds {found.rows} rows, the manifest says {entry.rows}")
    if _data_digest(manifest.files) != manifest.data_digest:
        raise HandoverInvalid("the manifest's data digest does not match its data files")


def _verify_act(source: Path, manifest: Manifest) -> None:
    """The act signed on paper says exactly what the data holds."""
    try:
        act = json.loads(_read_bounded(source / ACT_JSON))
    except ValueError:
        raise HandoverInvalid(f"{ACT_JSON} is malformed") from None
    expected = _act(manifest, source / DATA_DIR)
    if act != expected:
        raise HandoverInvalid(f"{ACT_JSON} does not match the package's data")
    if _read_bounded(source / ACT_MD) != _act_markdown(expected):
        raise HandoverInvalid(f"{ACT_MD} does not match {ACT_JSON}")


def _verify_wallet_keys(data: Path, wallet_keys: Sequence[_WalletKey]) -> list[str]:
    """Every wallet's mnemonic has its recorded fingerprint, and every address derives from its
    wallet's mnemonic at its path: the keys handed over control exactly the addresses listed.
    Returns the verified addresses. CPU-bound (key derivation): run it off the event loop."""
    exported = {
        row["id"]: HandedOverWallet(row["id"], row["segment"], row["activity"], row["fingerprint"])
        for row in _rows(data / "custody_wallets.csv")
    }
    by_id = {k.wallet.id: k for k in wallet_keys}
    if len(by_id) != len(wallet_keys) or set(by_id) != set(exported):
        raise HandoverInvalid(f"{KEYS_FILE} does not hold exactly the package's wallets")
    for wallet_id, key in by_id.items():
        if key.wallet != exported[wallet_id]:
            raise HandoverInvalid(f"{KEYS_FILE} describes wallet {wallet_id} otherwise than the data")
        if _fingerprint(key) != key.wallet.fingerprint:
            raise HandoverInvalid(f"the mnemonic of wallet {wallet_id} does not match its fingerprint")
    verified = []
    for row in _iter_rows(data / "custody_addresses.csv"):
        key = by_id.get(row["wallet_id"])
        if key is None:
            raise HandoverInvalid(f"address {row['address']} belongs to no wallet of the package")
        account = int(row["account"])
        if row["path"] != wallets.derivation_path(account) or _address(key, account) != row["address"]:
            raise HandoverInvalid(
                f"address {row['address']} does not derive from its wallet's mnemonic at {row['path']}"
            )
        verified.append(row["address"])
    return verified


def _fingerprint(key: _WalletKey) -> str:
    try:
        return wallets.wallet_fingerprint(key.mnemonic.reveal().decode())
    except (ValueError, ValidationError):  # the library's message would quote the words
        raise HandoverInvalid(f"the mnemonic of wallet {key.wallet.id} is not a valid BIP-39 phrase") from None


def _address(key: _WalletKey, account: int) -> str:
    try:
        return wallets.derive(key.mnemonic.reveal().decode(), account).address
    except (ValueError, ValidationError):  # the library's message would quote the words
        raise HandoverInvalid(f"the mnemonic of wallet {key.wallet.id} does not derive account {account}") from None


# --- import ------------------------------------------------------------------------------------------------


async def _require_same_schema(session: AsyncSession, revision: str) -> None:
    found = await _schema_revision(session)
    if found != revision:
        raise HandoverInvalid(f"the package is of schema revision {revision}, this database is at {found}")


async def _require_empty(session: AsyncSession) -> None:
    """A fresh, migrated database: no business rows, no vault secrets, only the log's genesis head."""
    checked = [spec.name for spec in TABLES if not spec.seeded] + ["custody_secrets", "custody_data_keys"]
    union = " UNION ALL ".join(
        f"SELECT {index} WHERE EXISTS (SELECT 1 FROM {_quoted(name)})" for index, name in enumerate(checked)
    )
    occupied = [checked[i] for i in (await session.execute(text(union))).scalars()]
    head_seq = (await session.execute(text("SELECT seq FROM security_event_head WHERE id = 1"))).scalar_one_or_none()
    if occupied or head_seq not in (0, None):
        raise HandoverInvalid(
            f"the target database is not empty ({', '.join(occupied) or 'security events'}): "
            "a handover loads only into a freshly migrated database"
        )


def _with_secret_ids(path: Path, secret_ids: dict[str, uuid.UUID]) -> io.BytesIO:
    """The wallets' CSV with each wallet's new secret_id (its mnemonic as sealed by this vault)."""
    rows = _rows(path)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*_header(path), "secret_id"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**row, "secret_id": str(secret_ids[row["id"]])} for row in rows)
    return io.BytesIO(out.getvalue().encode())


async def _copy_in(
    session: AsyncSession,
    spec: TableSpec,
    data: Path,
    *,
    source: io.BytesIO | None = None,
    added_columns: Sequence[str] = (),
) -> None:
    """COPY one table in, with the columns its header names (and `added_columns`, when `source`
    replaces the file with a version that has them); columns withheld from the package get their
    fill for the duration of the load."""
    driver = await driver_connection(session)
    table = _quoted(spec.name)
    columns = [*_header(data / f"{spec.name}.csv"), *added_columns]
    if spec.seeded:
        await session.execute(text(f"DELETE FROM {table}"))
    for column, expression in spec.fill_on_import:
        await session.execute(text(f"ALTER TABLE {table} ALTER COLUMN {_quoted(column)} SET DEFAULT {expression}"))
    await driver.copy_to_table(
        spec.name,
        source=source if source is not None else data / f"{spec.name}.csv",
        columns=columns,
        format="csv",
        header=True,
    )
    for column, _ in spec.fill_on_import:
        await session.execute(text(f"ALTER TABLE {table} ALTER COLUMN {_quoted(column)} DROP DEFAULT"))


async def _seal_wallet_keys(
    session: AsyncSession, vault: Vault, wallet_keys: Sequence[_WalletKey]
) -> dict[str, uuid.UUID]:
    """Each mnemonic sealed in the receiver's own vault; the wallet id → the new secret's id."""
    return {
        key.wallet.id: await vault.seal(session, kind="mnemonic", plaintext=key.mnemonic.reveal())
        for key in wallet_keys
    }


async def _load(session: AsyncSession, vault: Vault, data: Path, wallet_keys: Sequence[_WalletKey]) -> None:
    """Every table in foreign-key order, with the movement feed off so history is not re-sent to
    the chain. The trigger is re-enabled in the same transaction; should the load fail, the rollback
    undoes the disabling too."""
    await session.execute(text(f"ALTER TABLE ledger_transfers DISABLE TRIGGER {MOVEMENT_TRIGGER}"))
    for spec in TABLES:
        try:
            if spec.name == "custody_wallets":
                secret_ids = await _seal_wallet_keys(session, vault, wallet_keys)
                rewritten = _with_secret_ids(data / "custody_wallets.csv", secret_ids)
                await _copy_in(session, spec, data, source=rewritten, added_columns=("secret_id",))
            else:
                await _copy_in(session, spec, data)
        except asyncpg.PostgresError as error:
            # Name the table and the rule; the server's detail may quote personal data.
            constraint = getattr(error, "constraint_name", None)
            raise HandoverInvalid(
                f"{spec.path} does not load into this database ({error.sqlstate}"
                f"{', constraint ' + constraint if constraint else ''})"
            ) from None
    await session.execute(text(f"ALTER TABLE ledger_transfers ENABLE TRIGGER {MOVEMENT_TRIGGER}"))


async def _reset_sequences(session: AsyncSession) -> None:
    """Every serial or identity column of a loaded table continues after its largest loaded value."""
    rows = await session.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ANY(:tables) "
            "AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')"
        ),
        {"tables": [spec.name for spec in TABLES]},
    )
    for table, column in rows.all():
        await session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                f"coalesce((SELECT max({_quoted(column)}) FROM {_quoted(table)}), 0) + 1, false)"
            ),
            {"table": table, "column": column},
        )
    # Emission numbers end in a serial of their own sequence; none of the loaded ones may be drawn again.
    await session.execute(
        text(
            "SELECT setval('issuance_registration_serial', greatest(coalesce(("
            "SELECT max(split_part(registration_number, '-', -1)::bigint) FROM issuance_emissions), 0), 1), "
            "EXISTS (SELECT 1 FROM issuance_emissions))"
        )
    )


async def import_package(
    database: Database,
    vault: Vault,
    *,
    source: Path,
    receiver_private_key_pem: bytes,
    expected_operator_key_fingerprint: str | None = None,
) -> ImportReport:
    """Take over a liquidated operator's platform from its handover package (REQ-66).

    Verifies before writing anything: the manifest's signature (and the signing key's fingerprint,
    when the act on paper gives it), every file's SHA-256 and row count, the act against the data,
    that the package is addressed to this receiver key, and that every wallet's mnemonic has its
    fingerprint and derives every address listed. Then, in one transaction, into a freshly migrated
    database: every table loaded by COPY, each mnemonic sealed in this operator's vault, the
    sequences moved past the loaded ids, and the import recorded in the security-event log.

    Errors: HandoverInvalid (any check fails, the schema revision differs, the database is not
    empty, or the data does not load); nothing is written then. VaultError (sealing failed).
    """
    source = Path(source)
    manifest = _verified_manifest(source, expected_operator_key_fingerprint)
    _verify_files(source, manifest)
    _verify_act(source, manifest)
    private_key = _receiver_private_key(receiver_private_key_pem)
    if key_fingerprint(private_key.public_key()) != manifest.receiver_key_fingerprint:
        raise HandoverInvalid("the package is addressed to another receiver key")
    wallet_keys = _wallet_keys_from_document(
        _open_keys(
            _read_bounded(source / KEYS_FILE),
            private_key=private_key,
            receiver=manifest.receiver,
            data_digest=manifest.data_digest,
        )
    )
    addresses = await asyncio.to_thread(_verify_wallet_keys, source / DATA_DIR, wallet_keys)
    rows = {spec.name: manifest.file(spec.path).rows or 0 for spec in TABLES}
    async with database.unit_of_work() as session:
        await set_statement_timeout(session, STATEMENT_TIMEOUT_MS)
        await _require_same_schema(session, manifest.schema_revision)
        await _require_empty(session)
        await _load(session, vault, source / DATA_DIR, wallet_keys)
        await _reset_sequences(session)
        await audit.record(
            session,
            kind="custody.handover-imported",
            actor=ACTOR,
            subject=manifest.operator.get("name"),
            outcome="success",
            details={**_event_details(manifest), "receiver": manifest.receiver},
        )
    log.info("handover package from %s imported (data digest %s)", manifest.operator.get("name"), manifest.data_digest)
    act = json.loads(_read_bounded(source / ACT_JSON))
    return ImportReport(
        operator=manifest.operator,
        receiver=manifest.receiver,
        created_at=manifest.created_at,
        counts=act["counts"],
        rows=rows,
        wallets=tuple(key.wallet for key in wallet_keys),
        addresses=tuple(addresses),
    )
