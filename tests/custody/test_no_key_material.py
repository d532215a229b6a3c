"""The secret canary: no API, page, log, exception, repr, database row, backup or export shows a private key or
a mnemonic (REQ-42, REQ-43, REQ-56, REQ-57).

The scan runs after every other test. Marker mnemonics known to the test in advance (tests/custody/conftest.py)
are real wallets: of the chain tests' database, whose mirror signs every chain transaction with a marker key,
and of the session's database, where addresses are derived from them and statements and transactions signed.
The scan then exports and hands over (holders registry, statements, reconciliation report, the encrypted
handover package), backs the session's database up, and searches everything the platform produced during the
whole test session for every marker and every other secret of the vaults, in every form a leak takes: the
phrase or its first words in any case with any separators, hex keys in any case with or without 0x, a BIP-39
seed, and base64 (standard and URL-safe, at every alignment inside a longer blob). PDFs are read as text
through their fonts' Unicode maps. It must find nothing.
"""

import asyncio
import base64
import logging
import re
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_account.hdaccount.mnemonic import Mnemonic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody.chain import in_process_chain
from dfa.custody.errors import SigningRefused
from dfa.custody.service import handover, wallets
from dfa.custody.service.mirror import Mirror
from dfa.custody.service.signing import Signer, SigningPurpose
from dfa.custody.vault import Vault, key_ring_from_settings
from dfa.ledger import service as ledger
from dfa.platform import backup as backups
from dfa.platform import service as platform
from dfa.platform.database import Database, driver_connection
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.service.parties import local_today
from dfa.platform.settings import Settings
from dfa.reconciliation.exports import FONT, DejaVuPdf
from tests.backup_state import dump_as_sql
from tests.custody.conftest import MARKER_MNEMONICS, Canary
from tests.evidence import record
from tests.factories import funded_accounts, make_account, make_asset, make_party
from tests.http import post
from tests.identity import Users
from tests.market import fund
from tests.recording import LOG_LINES, RESPONSES, LogRecorder, RecordedResponse

STAFF = ("compliance_officer", "operator_admin", "auditor")
# The vault's own tables hold nothing but wrapped data keys and sealed ciphertext.
VAULT_TABLES = ("custody_data_keys", "custody_secrets")
FIRST_WORDS = 4
# Between a phrase's words a leak may put spaces, commas, quotes, line breaks, or nothing (a wrapped PDF line).
_BETWEEN_WORDS = rb"[^a-z]{0,6}"
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


# --- what is searched for ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Secret:
    """A secret to search for; `label` says whose it is and never shows it."""

    label: str
    value: bytes
    mnemonic: bool = False


@dataclass(frozen=True)
class Occurrence:
    where: str
    secret: str
    form: str
    count: int

    def __str__(self) -> str:
        return f"{self.secret} found as {self.form} in {self.where} ({self.count} times)"


def _encoded_cores(data: bytes) -> Iterable[tuple[str, bytes]]:
    """Base64 and base64url of `data` as they read inside a longer encoded blob at each of the three byte
    alignments: only the characters that depend on `data` alone."""
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + data)
        core = encoded[-(-8 * shift // 6) : 8 * (shift + len(data)) // 6]
        yield f"base64 at byte offset {shift}", core
        yield f"base64url at byte offset {shift}", core.translate(_URL_SAFE)


class Scanner:
    """Searches haystacks for every form of every secret in one pass per kind of form: the phrases' words by a
    pattern each; hex and base64 by sliding over every run of such characters once and looking each position's
    first characters up in a table of the needles, so the cost grows with the haystack, not with the secrets."""

    PREFIX = 16  # every hex and base64 needle is longer than this

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.secrets = list({s.value: s for s in secrets}.values())
        self.hex: dict[bytes, list[tuple[bytes, str, str]]] = {}
        self.encoded: dict[bytes, list[tuple[bytes, str, str]]] = {}
        self.words: list[tuple[str, re.Pattern[bytes]]] = []
        for secret in self.secrets:
            if secret.mnemonic:
                words = secret.value.decode().split()
                pattern = _BETWEEN_WORDS.join(re.escape(word.encode()) for word in words[:FIRST_WORDS])
                self.words.append((secret.label, re.compile(pattern)))
                seed = Mnemonic.to_seed(secret.value.decode())
                self._add(self.hex, secret.label, "its BIP-39 seed in hex (first half)", seed[:32].hex().encode())
                self._add(self.hex, secret.label, "its BIP-39 seed in hex (second half)", seed[32:].hex().encode())
                for form, core in _encoded_cores(seed):
                    self._add(self.encoded, secret.label, f"its BIP-39 seed in {form}", core)
            else:
                self._add(self.hex, secret.label, "hex (any case, with or without 0x)", secret.value.hex().encode())
            for form, core in _encoded_cores(secret.value):
                self._add(self.encoded, secret.label, form, core)
        self.hex_runs = re.compile(rb"[0-9a-f]{%d,}" % self._shortest(self.hex))  # in the lower-cased haystack
        self.encoded_runs = re.compile(rb"[A-Za-z0-9+/_-]{%d,}" % self._shortest(self.encoded))

    def _add(self, table: dict[bytes, list[tuple[bytes, str, str]]], label: str, form: str, needle: bytes) -> None:
        assert len(needle) > self.PREFIX, "a needle this short could occur by chance"
        table.setdefault(needle[: self.PREFIX], []).append((needle, label, form))

    @staticmethod
    def _shortest(table: dict[bytes, list[tuple[bytes, str, str]]]) -> int:
        return min((len(needle) for needles in table.values() for needle, _, _ in needles), default=1 << 20)

    @property
    def forms(self) -> int:
        """How many distinct forms are searched for (a phrase's pattern counts once)."""
        return len(self.words) + sum(map(len, self.hex.values())) + sum(map(len, self.encoded.values()))

    def _slide(self, runs: Iterable[re.Match[bytes]], table, found: Counter) -> None:
        prefix = self.PREFIX
        for run in runs:
            chars = run.group()
            for start in range(len(chars) - prefix + 1):
                if candidates := table.get(chars[start : start + prefix]):
                    for needle, label, form in candidates:
                        if chars.startswith(needle, start):
                            found[label, form] += 1

    def find(self, where: str, haystack: bytes | str) -> list[Occurrence]:
        if isinstance(haystack, str):
            haystack = haystack.encode("utf-8", "surrogatepass")
        lowered = haystack.lower()
        found: Counter[tuple[str, str]] = Counter()
        for label, pattern in self.words:
            if hits := len(pattern.findall(lowered)):
                found[label, "its words (any case, any separator)"] += hits
        self._slide(self.hex_runs.finditer(lowered), self.hex, found)
        self._slide(self.encoded_runs.finditer(haystack), self.encoded, found)
        return [Occurrence(where, secret, form, count) for (secret, form), count in found.items()]

    def find_in_each(self, kind: str, items: Sequence[tuple[str, bytes | str]]) -> list[Occurrence]:
        """Search many items at once; only when something is found are they searched one by one, to name them."""
        joined = b"\n\x00\n".join(i.encode("utf-8", "surrogatepass") if isinstance(i, str) else i for _, i in items)
        if not self.find(kind, joined):
            return []
        return [o for name, item in items for o in self.find(f"{kind} {name}", item)]


def mnemonic_secret(label: str, mnemonic: str) -> Secret:
    return Secret(label, mnemonic.encode(), mnemonic=True)


def keys_of(mnemonic: str, accounts: Iterable[int]) -> list[bytes]:
    """The private keys of these accounts of a wallet, as `wallets.derive` makes them, the seed stretched once."""
    seed = seed_from_mnemonic(mnemonic, "")
    return [key_from_seed(seed, wallets.derivation_path(account)) for account in accounts]


async def vault_secrets(database: Database, vault: Vault, *, name: str) -> list[Secret]:
    """Every mnemonic the vault keeps for `database`'s wallets and the private key of every address opened."""
    found: list[Secret] = []
    async with database.read() as session:
        for wallet in await wallets.list_wallets(session):
            mnemonic = await wallets.mnemonic_of(session, vault, wallet)
            found.append(mnemonic_secret(f"the mnemonic of wallet {wallet.id} ({name})", mnemonic))
            rows = (
                await session.execute(
                    text("SELECT address, account FROM custody_addresses WHERE wallet_id = :id"), {"id": wallet.id}
                )
            ).all()
            keys = keys_of(mnemonic, [account for _, account in rows])
            found += [Secret(f"the key of {address} ({name})", key) for (address, _), key in zip(rows, keys, strict=True)]
    return found


async def marker_secrets(databases: dict[str, Database]) -> list[Secret]:
    """The marker mnemonics and the keys of every address opened in a marker wallet, derived from the markers
    as the test knows them (not as any vault returns them)."""
    markers = [mnemonic_secret(f"the marker mnemonic of the {s} segment", m) for s, m in MARKER_MNEMONICS.items()]
    by_fingerprint = {wallets.wallet_fingerprint(m): m for m in MARKER_MNEMONICS.values()}
    for name, database in databases.items():
        async with database.read() as session:
            rows = await session.execute(
                text(
                    "SELECT a.address, a.account, w.fingerprint FROM custody_addresses a "
                    "JOIN custody_wallets w ON w.id = a.wallet_id WHERE w.fingerprint = ANY(:markers)"
                ),
                {"markers": list(by_fingerprint)},
            )
            by_wallet: dict[str, list[tuple[str, int]]] = {}
            for address, account, fingerprint in rows:
                by_wallet.setdefault(fingerprint, []).append((address, account))
            for fingerprint, opened in by_wallet.items():
                keys = keys_of(by_fingerprint[fingerprint], [account for _, account in opened])
                markers += [
                    Secret(f"the marker key of {address} ({name})", key)
                    for (address, _), key in zip(opened, keys, strict=True)
                ]
    return markers


# --- where it is searched -----------------------------------------------------------------------------------


async def scan_tables(session: AsyncSession, scanner: Scanner, *, name: str) -> tuple[int, int, list[Occurrence]]:
    """Every row of every table outside the vault's own, as text (PostgreSQL's own rendering of the row, bytea as
    hex), and the outbox's payloads on their own: (rows, outbox rows, occurrences)."""
    tables = (
        await session.execute(
            text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_type = 'BASE TABLE' AND NOT (table_name = ANY(:vault)) ORDER BY table_name"
            ),
            {"vault": list(VAULT_TABLES)},
        )
    ).scalars().all()
    assert "outbox_messages" in tables and "security_events" in tables
    driver = await driver_connection(session)
    rows, found = 0, []

    async def copied(query: str) -> tuple[int, bytes]:
        chunks: list[bytes] = []

        async def keep(chunk: bytes) -> None:
            chunks.append(chunk)

        status = await driver.copy_from_query(query, output=keep)
        return int(status.split()[-1]), b"".join(chunks)

    for table in tables:
        count, copy = await copied(f'SELECT t::text FROM "{table}" AS t')
        rows += count
        found += scanner.find(f"table {table} of the {name}", copy)
    outbox_rows, payloads = await copied("SELECT payload::text FROM outbox_messages")
    found += scanner.find(f"outbox payloads of the {name}", payloads)
    return rows, outbox_rows, found


_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)
_CMAP_ENTRY = re.compile(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]{4,})>")
_LITERAL = re.compile(rb"\((?:\\.|[^\\)])*\)", re.DOTALL)
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|\r\n|.)", re.DOTALL)
_ESCAPED = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f", b"\r\n": b"", b"\n": b"", b"\r": b""}


def _unescaped(literal: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        escape = match.group(1)
        if escape[:1].isdigit():
            return bytes([int(escape, 8) & 0xFF])
        return _ESCAPED.get(escape, escape)

    return _ESCAPE.sub(one, literal[1:-1])


def pdf_text(pdf: bytes) -> bytes:
    """The text a PDF shows, as its fonts' Unicode maps (ToUnicode) read its glyph codes: once per map, each
    text string joined to the next without a break so a line wrapped inside a value still reads whole."""
    streams = []
    for match in _STREAM.finditer(pdf):
        try:
            streams.append(zlib.decompress(match.group(1)))
        except zlib.error:
            streams.append(match.group(1))
    maps = [
        {int(code, 16): bytes.fromhex(target.decode()).decode("utf-16-be", "replace") for code, target in entries}
        for stream in streams
        if b"begincmap" in stream and (entries := _CMAP_ENTRY.findall(stream.split(b"endcodespacerange")[-1]))
    ]
    strings = [_unescaped(s) for stream in streams if b"Tj" in stream or b"TJ" in stream for s in _LITERAL.findall(stream)]
    texts = [
        "".join(glyphs.get(int.from_bytes(s[i : i + 2]), "\ufffd") for s in strings for i in range(0, len(s) - 1, 2))
        for glyphs in maps
    ]
    return "\n\n".join(texts).encode("utf-8", "surrogatepass")


def readable(name: str, content: bytes) -> list[tuple[str, bytes]]:
    """An export as it is searched: its bytes, and for a PDF also the text it shows."""
    if content.startswith(b"%PDF"):
        return [(name, content), (f"{name} (its text)", pdf_text(content))]
    return [(name, content)]


# --- using the markers ---------------------------------------------------------------------------------------


def _exercise_custody_api(users: Users) -> None:
    for role in (*STAFF, "investor", "issuer", "other_investor"):
        client = users.client(role)
        assert client.get("/v1/wallet-addresses").status_code == 200
        if role not in STAFF:
            assert post(client, "/v1/wallet-addresses", {}, key=f"scan-{role}").status_code == 201
    staff = users.client("compliance_officer")
    for path in ("/v1/wallets", "/v1/chain/status", "/v1/chain/tokens", "/v1/chain/comparison"):
        assert staff.get(path).status_code == 200, path


async def _marker_signatures(chain_database: Database) -> int:
    """How many chain transactions the chain tests' mirror signed, all with the marker chain operator's key."""
    async with chain_database.read() as session:
        signatures, fingerprints = (
            await session.execute(
                text(
                    "SELECT count(*), array_agg(DISTINCT w.fingerprint) FROM security_events e "
                    "JOIN custody_addresses a ON a.address = e.subject JOIN custody_wallets w ON w.id = a.wallet_id "
                    "WHERE e.kind = 'custody.signature' AND a.purpose = 'chain_operator'"
                )
            )
        ).one()
    assert signatures == 0 or fingerprints == [wallets.wallet_fingerprint(MARKER_MNEMONICS["operator_own"])]
    return signatures


async def _mirror_signs_with_the_marker_key(chain_database: Database, vault: Vault, settings: Settings) -> int:
    """The chain tests' mirror signs with the marker chain operator's key; when they did not run in this session,
    units issued to two holders and moved between them are mirrored to a new chain here. Returns the signatures."""
    if signatures := await _marker_signatures(chain_database):
        return signatures
    async with chain_database.unit_of_work() as session:
        asset = await make_asset(session, kind="dfa")
        issuer = await make_party(session, kind="legal_entity")
        issued = await make_account(session, asset=asset, owner=issuer, kind="issued")
        holders = [await make_account(session, asset=asset) for _ in range(2)]
        await ledger.post_transfers(
            session, transfers=[ledger.TransferSpec(uuid.uuid4(), issued.id, h.id, 100) for h in holders]
        )
        await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), holders[0].id, holders[1].id, 7))
    mirror = Mirror(
        database=chain_database, chain=in_process_chain(), vault=vault, signer=Signer(vault), settings=settings
    )
    await mirror.drain()
    [comparison] = await mirror.compare(asset_id=asset.id)
    assert comparison.in_sync, comparison
    return await _marker_signatures(chain_database)


async def _exports(
    users: Users, database: Database, settings: Settings, vault: Vault, destination
) -> list[tuple[str, bytes]]:
    """Everything the platform exports, each made as its user makes it: the holders registry (CSV and JSONL),
    an investor's statement (CSV and PDF), a reconciliation report (CSV and PDF) and the handover package."""
    async with database.unit_of_work() as session:
        emission = await make_asset(session, kind="dfa")
        await funded_accounts(session, count=3, amount=250, asset=emission)
    await fund(database, settings, users["investor"].party_id, money=123_45, reference="canary statement")
    staff, investor = users.client("compliance_officer"), users.client("investor")
    today = local_today(settings).isoformat()
    answers = {
        f"holders registry {emission.code}.{fmt}": staff.get(
            f"/v1/ledger/assets/{emission.code}/holders/export", params={"format": fmt}
        )
        for fmt in ("csv", "jsonl")
    }
    for fmt in ("csv", "pdf"):
        answers[f"statement.{fmt}"] = investor.get(
            "/statements/download", params={"from": today, "to": today, "format": fmt}
        )
    run = post(staff, "/v1/reconciliation/runs", {"force": True})
    assert run.status_code == 201, run.text
    for fmt in ("csv", "pdf"):
        answers[f"reconciliation report.{fmt}"] = staff.get(
            f"/v1/reconciliation/reports/{run.json()['report_id']}/export", params={"format": fmt}
        )
    for name, answer in answers.items():
        assert answer.status_code == 200 and answer.content, (name, answer.status_code, answer.text[:300])
    _, receiver_public_pem = handover.generate_receiver_keys()
    package = destination / "handover"
    await handover.export_package(
        database, vault, receiver="Canary Successor Operator LLP", receiver_public_key_pem=receiver_public_pem,
        destination=package, keys=Keys.load(settings), settings=settings,
    )
    files = sorted(p for p in package.rglob("*") if p.is_file())
    assert (package / handover.KEYS_FILE) in files and len(files) > 10
    return [
        *((name, answer.content) for name, answer in answers.items()),
        *((f"handover {p.relative_to(package)}", p.read_bytes()) for p in files),
    ]


def _recorded(scanner: Scanner) -> tuple[list[Occurrence], int, int]:
    """Every response and log line of the session: (occurrences, responses, log lines)."""
    responses, lines = list(RESPONSES), list(LOG_LINES)
    found = scanner.find_in_each(
        "response", [(f"{r.method} {r.path} {r.status}", r.headers + b"\n" + r.body) for r in responses]
    )
    found += scanner.find_in_each("log line", [(str(n), line) for n, line in enumerate(lines)])
    return found, len(responses), len(lines)


@pytest.mark.scans_the_session
async def test_no_response_log_row_backup_or_export_ever_shows_a_marker_key_or_a_mnemonic(
    users: Users, database: Database, database_url: str, settings: Settings, canary: Canary,
    chain_database: Database, vault: Vault, tmp_path,
):
    """REQ-56, REQ-57: the marker secrets, used for everything wallets are used for, and every other secret of
    the vaults, never appear in what the platform said, logged, stored outside the vault, backed up or exported."""
    started = time.perf_counter()
    _exercise_custody_api(users)
    app_vault = Vault(key_ring_from_settings(settings))
    signer = Signer(app_vault)
    mirror = Mirror(database=database, chain=in_process_chain(), vault=app_vault, signer=signer, settings=settings)
    await mirror.drain()
    chain_signatures = await _mirror_signs_with_the_marker_key(chain_database, vault, settings)
    async with database.unit_of_work() as session:
        client_address = (
            await wallets.list_addresses(session, party_id=users["investor"].party_id, after=None, limit=1)
        )[0]
        with pytest.raises(SigningRefused) as refusal:
            await signer.sign_transaction(
                session, address=client_address.address, transaction={}, purpose=SigningPurpose.CHAIN_MIRROR
            )
        secret = await app_vault.unseal(session, (await wallets.list_wallets(session))[0].secret_id)
    exports = await _exports(users, database, settings, app_vault, tmp_path)
    dump = await asyncio.to_thread(backups.backup, database_url, tmp_path / "backup")
    dump_bytes, dump_sql = dump.read_bytes(), await asyncio.to_thread(dump_as_sql, dump)

    databases = {"session's database": database, "chain tests' database": chain_database}
    markers = await marker_secrets(databases)
    secrets = [
        *markers,
        *await vault_secrets(database, app_vault, name="session's database"),
        *await vault_secrets(chain_database, vault, name="chain tests' database"),
        Secret("the custody key-encryption key", (settings.data_dir / "keys" / "custody-kek").read_bytes()),
    ]
    vault_values = {s.value for s in secrets[len(markers) :]}
    used = {m.value for m in markers}
    assert {m.encode() for m in MARKER_MNEMONICS.values()} <= vault_values, "the markers are wallets in the vaults"
    assert used <= vault_values and len(used) > 2 * len(MARKER_MNEMONICS), "the markers' keys are in use"
    scanner = Scanner(secrets)

    searching = time.perf_counter()
    found: list[Occurrence] = []
    rows = outbox_rows = 0
    for name, db in databases.items():
        async with db.read() as session:
            counted, outbox, occurrences = await scan_tables(session, scanner, name=name)
        rows, outbox_rows, found = rows + counted, outbox_rows + outbox, found + occurrences
    found += scanner.find("the backup's dump", dump_bytes) + scanner.find("the backup as SQL", dump_sql)
    readable_exports = [part for name, content in exports for part in readable(name, content)]
    found += scanner.find_in_each("export", readable_exports)
    reprs = [str(refusal.value), repr(refusal.value), repr(app_vault), repr(app_vault.ring), repr(signer),
             repr(mirror), repr(secret), str(secret)]
    found += scanner.find_in_each("repr", [(str(n), r) for n, r in enumerate(reprs)])
    recorded, responses, log_lines = _recorded(scanner)
    found += recorded
    search_s = time.perf_counter() - searching

    record(
        "secret-canary",
        title="Secret canary: no key or mnemonic in any response, log line, database row, backup or export",
        requirements=["REQ-56", "REQ-57"],
        method=(
            "Wallets were created from marker mnemonics known to the test and used for address derivation, chain "
            "signing, exports and a handover; then every response, log line (platform logs at DEBUG), database row "
            "outside the vault, outbox payload, a backup and every export of the session were searched for the "
            "markers and every other vault secret in each form a leak takes."
        ),
        form="short",
        figures={
            "markers": len(markers),
            "secrets": len(scanner.secrets),
            "forms_searched": scanner.forms,
            "responses_scanned": responses,
            "log_lines_scanned": log_lines,
            "db_rows_scanned": rows,
            "outbox_rows_scanned": outbox_rows,
            "backup_bytes_scanned": len(dump_bytes) + len(dump_sql),
            "exports_scanned": len(exports),
            "handover_files_scanned": sum(name.startswith("handover ") for name, _ in exports),
            "chain_signatures_by_marker_key": chain_signatures,
            "occurrences": sum(o.count for o in found),
            "search_s": round(search_s, 1),
            "duration_s": round(time.perf_counter() - started, 1),
        },
        violations=[str(o) for o in found],
    )
    assert any(r.path == "/v1/wallet-addresses" for r in RESPONSES), "the responses were recorded"
    assert canary.addresses and chain_signatures > 0 and log_lines > 0 and rows > 0 and outbox_rows > 0
    assert found == [], "key material left the vault"


# --- the scanner against planted leaks --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted() -> tuple[Scanner, str, bytes]:
    """A scanner for one marker mnemonic and one of its keys, and those two values to plant."""
    mnemonic = MARKER_MNEMONICS["client"]
    key = bytes(wallets.derive(mnemonic, 7).key)
    return Scanner([mnemonic_secret("the planted mnemonic", mnemonic), Secret("the planted key", key)]), mnemonic, key


def test_every_form_of_a_planted_marker_is_found(planted):
    """REQ-56, REQ-57: the scanner is not blind: each form a leak takes, planted in ordinary text, is found."""
    scanner, mnemonic, key = planted
    words = mnemonic.split()
    seed = Mnemonic.to_seed(mnemonic)
    leaks = {
        "phrase": f"restored wallet from '{mnemonic}' ok",
        "first words": f"hint: {' '.join(words[:FIRST_WORDS])}...",
        "upper-case words in a JSON list": str([w.upper() for w in words[:6]]).replace("'", '"'),
        "hex": f"key={key.hex()}",
        "HEX with 0x": f"key=0x{key.hex().upper()}!",
        "hex inside a longer hex blob": f"blob={'ab' * 21}{key.hex()}{'cd' * 9}",
        "base64": base64.b64encode(key).decode(),
        "base64 inside a blob at offset 2": base64.b64encode(b"xy" + key + b"tail").decode(),
        "base64url at offset 1": base64.urlsafe_b64encode(b"z" + key).decode(),
        "base64 of the phrase": base64.b64encode(b"{" + mnemonic.encode() + b"}").decode(),
        "seed hex": f"seed {seed.hex()}",
    }
    missed = [form for form, leak in leaks.items() if not scanner.find(form, leak)]
    clean = scanner.find("ordinary text", f"{key.hex()[:40]} {words[0]} {words[2]} {base64.b64encode(key[:20])}")
    assert missed == [] and clean == []


async def test_a_planted_leak_is_found_in_every_kind_of_haystack(
    planted, session: AsyncSession, fresh_database: str, settings: Settings, tmp_path
):
    """REQ-56, REQ-57: the same scan reports a marker planted in a log record, a response, a database row, an
    outbox payload, a backup, a PDF and a CSV export, and an unencrypted handover file."""
    scanner, mnemonic, key = planted
    words = " ".join(mnemonic.split()[:FIRST_WORDS])

    lines: list[str] = []
    logger = logging.getLogger("dfa.custody.planted")
    recorder = LogRecorder(level=logging.DEBUG, lines=lines)
    logger.addHandler(recorder)
    logger.propagate = False
    try:
        logger.debug("derived %s", "an address", extra={"key": key.hex()})  # platform DEBUG records are kept
    finally:
        logger.removeHandler(recorder)
        logger.propagate = True
    response = RecordedResponse("GET", "/planted", 200, b"x-debug: " + base64.b64encode(key), b"{}")

    await ledger.create_asset(session, code=f"PL{uuid.uuid4().hex[:6].upper()}", kind="money", scale=2, name=words)
    await platform.enqueue(session, topic="planted", payload={"note": f"0x{key.hex()}"})
    rows, outbox_rows, in_tables = await scan_tables(session, scanner, name="test database")

    backed_up = Database.from_url(fresh_database, settings)
    try:
        async with backed_up.unit_of_work() as fresh:
            await fresh.execute(text("CREATE TABLE notes (body text)"))
            await fresh.execute(text("INSERT INTO notes VALUES (:b)"), {"b": base64.b64encode(b"k" + key).decode()})
    finally:
        await backed_up.dispose()
    dump = await asyncio.to_thread(backups.backup, fresh_database, tmp_path)

    pdf = DejaVuPdf("planted")
    pdf.add_page()
    pdf.set_font(FONT, "", 9)
    pdf.multi_cell(40, 5, text=f"Key {key.hex()} and {words}")  # wrapped over several lines
    found = {
        "log": scanner.find_in_each("log line", [("0", line) for line in lines]),
        "response": scanner.find_in_each("response", [("planted", response.headers + response.body)]),
        "row": [o for o in in_tables if "table ledger_assets" in o.where],
        "outbox": [o for o in in_tables if "outbox payloads" in o.where],
        "backup": scanner.find("backup as SQL", await asyncio.to_thread(dump_as_sql, dump)),
        "pdf": scanner.find_in_each("export", readable("planted.pdf", bytes(pdf.output()))),
        "csv": scanner.find("export planted.csv", f"holder,note\r\n1,{mnemonic}\r\n".encode()),
        "handover": scanner.find("handover data/planted.csv", b"id,secret\n1," + key.hex().encode()),
    }
    assert [kind for kind, occurrences in found.items() if not occurrences] == []
    assert {o.form for o in found["pdf"]} >= {"hex (any case, with or without 0x)", "its words (any case, any separator)"}
    assert rows > 0 and outbox_rows > 0
