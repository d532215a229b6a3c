"""The `dfa` command: serve, migrate, verify the ledger and the security-event log, expire holds, back up and
restore, rotate the custody key, compare the chain with the ledger, hand the platform over, write the
cybersecurity test protocol."""

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from dfa.platform.database import Database, resolve_database_url, run_migrations, run_migrations_async
from dfa.platform.logs import configure_logging
from dfa.platform.settings import get_settings


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    configure_logging(settings.log_level)
    print(f"DFA platform starting on http://{host}:{port}", flush=True)
    print(f"  API documentation: http://{host}:{port}/docs", flush=True)
    print(f"  Health:            http://{host}:{port}/healthz", flush=True)
    uvicorn.run("dfa.main:create_app", factory=True, host=host, port=port, log_config=None)
    return 0


def migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    run_migrations(resolve_database_url(settings))
    print("database schema is up to date")
    return 0


async def _with_database(work):
    settings = get_settings()
    url = resolve_database_url(settings)
    await run_migrations_async(url)
    database = Database.from_url(url, settings)
    try:
        return await work(database, settings)
    finally:
        await database.dispose()


def _vault(settings):
    from dfa.custody.vault import Vault, key_ring_from_settings

    return Vault(key_ring_from_settings(settings))


def verify(args: argparse.Namespace) -> int:
    from dfa.ledger import service

    async def work(database, settings):
        async with database.read() as session:
            return await service.verify(session)

    result = asyncio.run(_with_database(work))
    print(json.dumps(asdict(result), indent=2, default=str))
    return 0 if result.ok else 1


def expire_holds(args: argparse.Namespace) -> int:
    from dfa.ledger import jobs

    released = asyncio.run(_with_database(jobs.expire_holds_once))
    print(f"released {released} expired holds")
    return 0


def backup_database(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dfa.platform.backup import BackupError, backup, read_manifest

    settings = get_settings()
    destination = Path(args.output) if args.output else None
    if destination is None:
        destination = settings.backup_dir or settings.data_dir / "backups"
        destination.mkdir(parents=True, exist_ok=True)
    try:
        dump = backup(resolve_database_url(settings), destination)
    except BackupError as error:
        print(f"backup failed: {error}", file=sys.stderr)
        return 1
    print(dump)
    print(f"sha256 {read_manifest(dump).sha256}")
    return 0


def restore_database(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dfa.platform.backup import BackupError, restore

    settings = get_settings()
    try:
        # No migrations first: they would create the very tables the restore must find absent.
        restore(resolve_database_url(settings), Path(args.path), replace=args.replace)
    except BackupError as error:
        print(f"restore refused or failed, nothing was restored: {error}", file=sys.stderr)
        return 1
    print(f"restored {args.path}; run `dfa verify-ledger` next")
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    from dfa.platform.audit import service

    async def work(database, settings):
        async with database.read() as session:
            return await service.verify(session)

    result = asyncio.run(_with_database(work))
    print(json.dumps(asdict(result), indent=2))
    return 0 if result.ok else 1


def handover_keygen(args: argparse.Namespace) -> int:
    """The receiving operator's key pair (REQ-66): the private key stays here, the public one goes to
    the liquidated operator."""
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    from dfa.custody.service.handover import generate_receiver_keys, key_fingerprint
    from dfa.platform.identity.crypto import write_private

    out = Path(args.out)
    private_pem, public_pem = generate_receiver_keys()
    try:
        write_private(out / "receiver-private.pem", private_pem)  # mode 0600, never over an existing key
    except FileExistsError:
        print(f"{out / 'receiver-private.pem'} exists; a receiver key is never overwritten", file=sys.stderr)
        return 1
    (out / "receiver-public.pem").write_bytes(public_pem)
    print(f"wrote {out / 'receiver-private.pem'} (keep it offline) and {out / 'receiver-public.pem'}")
    print(f"public key sha256 {key_fingerprint(serialization.load_pem_public_key(public_pem))}")
    return 0


def handover_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dfa.custody.errors import HandoverInvalid
    from dfa.custody.service import handover
    from dfa.platform.identity.crypto import Keys

    receiver_key = Path(args.receiver_key).read_bytes()

    async def work(database, settings):
        return await handover.export_package(
            database, _vault(settings), receiver=args.receiver,
            receiver_public_key_pem=receiver_key, destination=Path(args.out), keys=Keys.load(settings),
            settings=settings,
        )

    try:
        manifest = asyncio.run(_with_database(work))
    except (HandoverInvalid, FileExistsError) as error:
        print(f"handover export refused, no package written: {error}", file=sys.stderr)
        return 1
    print(f"handover package for {manifest.receiver} written to {args.out}")
    print(f"receiver key sha256        {manifest.receiver_key_fingerprint}")
    print(f"operator signing key sha256 {manifest.operator_key_fingerprint}")
    print(f"data digest                {manifest.data_digest}")
    return 0


def handover_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dfa.custody.errors import HandoverInvalid
    from dfa.custody.service import handover

    private_key = Path(args.key).read_bytes()

    async def work(database, settings):
        return await handover.import_package(
            database, _vault(settings), source=Path(args.package),
            receiver_private_key_pem=private_key, expected_operator_key_fingerprint=args.operator_key_fingerprint,
        )

    try:
        report = asyncio.run(_with_database(work))
    except HandoverInvalid as error:
        print(f"handover import refused, nothing was written: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), indent=2, default=str))
    print("imported; run `dfa verify-ledger` and `dfa audit verify` next", file=sys.stderr)
    return 0


def custody_rewrap(args: argparse.Namespace) -> int:
    async def work(database, settings):
        vault = _vault(settings)
        rewrapped = await vault.rewrap(database)
        async with database.read() as session:
            return rewrapped, await vault.key_counts(session), vault.ring.current.kek_id

    rewrapped, counts, current = asyncio.run(_with_database(work))
    print(json.dumps({"rewrapped": rewrapped, "current_kek": current, "data_keys_per_kek": counts}, indent=2))
    return 0 if set(counts) <= {current} else 1


def _mirror(database, settings):
    from dfa.custody.chain import chain_from_settings
    from dfa.custody.service.mirror import Mirror
    from dfa.custody.service.signing import Signer

    vault = _vault(settings)
    return Mirror(
        database=database, chain=chain_from_settings(settings), vault=vault, signer=Signer(vault), settings=settings
    )


def chain_compare(args: argparse.Namespace) -> int:
    async def work(database, settings):
        mirror = _mirror(database, settings)
        if args.catch_up:
            await mirror.drain()
        return await mirror.compare()

    comparisons = asyncio.run(_with_database(work))
    print(json.dumps([asdict(c) | {"in_sync": c.in_sync} for c in comparisons], indent=2, default=str))
    return 0 if all(c.in_sync for c in comparisons) else 1


def verify_proof(args: argparse.Namespace) -> int:
    """A holder's inclusion proof checked offline: no database, network or settings involved."""
    from pathlib import Path

    from dfa.reconciliation.merkle import Proof, verify

    try:
        text = sys.stdin.read() if args.proof == "-" else Path(args.proof).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"invalid: cannot read the proof: {error}")
        return 1
    try:
        proof = Proof.from_json(json.loads(text))
    except json.JSONDecodeError as error:
        print(f"invalid: the proof is not JSON: {error}")
        return 1
    except ValueError as error:
        print(f"invalid: malformed proof: {error}")
        return 1
    verdict = verify(proof, root_hash=args.root, total=args.total)
    if not verdict.ok:
        print(f"invalid: {verdict.reason}")
        return 1
    compared = " and ".join(name for name, value in (("root", args.root), ("total", args.total)) if value is not None)
    outcome = (
        f"it matches the published {compared}"
        if compared
        else "the root was not compared with the published one (give --root and --total from the signed report)"
    )
    print(
        f"valid: account {proof.leaf.account_id} holds {proof.leaf.quantity} units of {proof.asset_code} "
        f"within the total {proof.root.total} of report {proof.report_id}; {outcome}"
    )
    return 0


def reconcile(args: argparse.Namespace) -> int:
    from datetime import date

    from dfa.issuance.custodian import custodian_from_settings
    from dfa.platform.adapters.national_bank import national_bank_from_settings
    from dfa.platform.errors import DomainError
    from dfa.platform.identity.crypto import Keys
    from dfa.platform.identity.service.parties import local_today
    from dfa.reconciliation.jobs import Reconciliation
    from dfa.reconciliation.service.runs import Counterparties
    from dfa.settlement.bank import bank_from_settings

    async def work(database, settings):
        mirror = _mirror(database, settings) if settings.chain_mirror_enabled else None
        custodian, bank, national_bank = (
            custodian_from_settings(settings), bank_from_settings(settings), national_bank_from_settings(settings)
        )
        try:
            reconciliation = Reconciliation(
                database=database, counterparties=Counterparties(custodian=custodian, bank=bank, mirror=mirror),
                national_bank=national_bank, keys=Keys.load(settings), settings=settings,
            )
            day = date.fromisoformat(args.date) if args.date else local_today(settings)
            return await reconciliation.run(day, trigger="command", requested_by="dfa reconcile", force=args.force)
        finally:
            for party in (custodian, bank, national_bank):
                await party.aclose()

    try:
        result = asyncio.run(_with_database(work))
    except DomainError as refused:
        print(f"not reconciled: {refused.detail}", file=sys.stderr)
        return 1
    if result.report is None:
        print(f"{result.run.business_date} has a report already (run {result.run.id} skipped); use --force for a new version")
        return 0
    report = result.report
    print(f"report {report.id} of {report.business_date} version {report.version}: {report.emissions} emissions, "
          f"{report.breaches} breaches; sha256 {report.content_sha256.hex()}")
    return 2 if report.breaches else 0


def catalogs(args: argparse.Namespace) -> int:
    from dfa.cabinet import messages

    for code, lacking in messages.update_catalogs().items():
        print(f"{code}: {lacking} messages without a translation")
    return 0


def security_protocol(args: argparse.Namespace) -> int:
    """The signed cybersecurity test protocol (REQ-60), from the proof suites' latest results or a fresh run."""
    from pathlib import Path

    from dfa import security_protocol as protocol
    from dfa.platform.identity.crypto import Keys

    settings = get_settings()
    signing_key = Keys.load(settings).signing_key
    if args.verify:
        signed = json.loads(Path(args.verify).read_text(encoding="utf-8"))
        if not protocol.signature_holds(signed, public_key=signing_key.public_key()):
            print(f"{args.verify}: NOT the protocol this operator signed", file=sys.stderr)
            return 1
        print(f"{args.verify}: signed by this operator, unchanged")
        return 0
    evidence = Path(args.evidence) if args.evidence else protocol.evidence_dir()
    if args.run_suites:
        status = protocol.run_suites(evidence, long_form=args.long_form)
        print(f"the suites ran (pytest exit status {status})")
    document = protocol.build(evidence, settings=settings)
    if not document["suites"]:
        print(f"no results in {evidence}: run the suites (make test, or this command with --run)", file=sys.stderr)
        return 1
    written = protocol.write(document, signing_key=signing_key, out_dir=Path(args.out) if args.out else evidence)
    for requirement in document["requirements"]:
        print(f"{requirement['id']} {requirement['title']}: {requirement['verdict']}")
    print(f"protocol written: {written.json_path} and {written.pdf_path}")
    return 0 if all(r["verdict"] == protocol.Verdict.MET for r in document["requirements"]) else 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dfa", description="DFA platform operator core")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the platform (migrates first)")
    serve_parser.add_argument("--host", help="listen address (default: HOST setting, 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="listen port (default: PORT setting, 8000)")
    serve_parser.set_defaults(run=serve)
    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(run=migrate)
    commands.add_parser("verify-ledger", help="recompute hash chains and balances").set_defaults(run=verify)
    commands.add_parser("expire-holds", help="release holds past their expiry").set_defaults(run=expire_holds)
    audit_parser = commands.add_parser("audit", help="the security-event log").add_subparsers(dest="audit", required=True)
    audit_parser.add_parser("verify", help="recompute the log's hash chain and report tampering").set_defaults(
        run=audit_verify
    )
    backup_parser = commands.add_parser("backup", help="dump the database to a file with its SHA-256 manifest")
    backup_parser.add_argument(
        "--output", help="dump file, or an existing directory (default: BACKUP_DIR or DATA_DIR/backups)"
    )
    backup_parser.set_defaults(run=backup_database)
    restore_parser = commands.add_parser("restore", help="restore a dump in one transaction, all or nothing")
    restore_parser.add_argument("path", help="the dump written by `dfa backup`")
    restore_parser.add_argument(
        "--replace", action="store_true", help="replace the platform's tables when the database already has them"
    )
    restore_parser.set_defaults(run=restore_database)
    custody_parser = commands.add_parser("custody", help="the key vault").add_subparsers(dest="custody", required=True)
    custody_parser.add_parser(
        "rewrap", help="key rotation: rewrap every data key under the current key-encryption key"
    ).set_defaults(run=custody_rewrap)
    chain_parser = commands.add_parser("chain", help="the chain mirror").add_subparsers(dest="chain", required=True)
    compare_parser = chain_parser.add_parser("compare", help="each emission on chain against the ledger")
    compare_parser.add_argument("--catch-up", action="store_true", help="mirror what is pending first")
    compare_parser.set_defaults(run=chain_compare)
    handover_parser = commands.add_parser(
        "handover", help="hand the platform over to a successor operator on liquidation (REQ-66)"
    ).add_subparsers(dest="handover", required=True)
    keygen_parser = handover_parser.add_parser("keygen", help="receiving side: make the receiver's key pair")
    keygen_parser.add_argument("--out", required=True, help="directory for receiver-private.pem and receiver-public.pem")
    keygen_parser.set_defaults(run=handover_keygen)
    export_parser = handover_parser.add_parser("export", help="write the signed handover package for a receiver")
    export_parser.add_argument("--receiver", required=True, help="the receiving operator's legal name")
    export_parser.add_argument("--receiver-key", required=True, help="the receiver's receiver-public.pem")
    export_parser.add_argument("--out", required=True, help="package directory (must not exist, or be empty)")
    export_parser.set_defaults(run=handover_export)
    import_parser = handover_parser.add_parser("import", help="receiving side: verify and load a handover package")
    import_parser.add_argument("--package", required=True, help="the package directory")
    import_parser.add_argument("--key", required=True, help="the receiver's receiver-private.pem")
    import_parser.add_argument(
        "--operator-key-fingerprint", help="the signing key's SHA-256 as written in the signed act (checked if given)"
    )
    import_parser.set_defaults(run=handover_import)
    proof_parser = commands.add_parser(
        "verify-proof", help="check a holder's inclusion proof offline against the signed report's root"
    )
    proof_parser.add_argument("proof", help="the proof's JSON file, or - for standard input")
    proof_parser.add_argument("--root", type=bytes.fromhex, help="the root hash (hex) published in the signed report")
    proof_parser.add_argument("--total", type=int, help="the outstanding total published in the signed report")
    proof_parser.set_defaults(run=verify_proof)
    reconcile_parser = commands.add_parser(
        "reconcile", help="reconcile a day now: coverage, ledger, chain and client money, with a signed report"
    )
    reconcile_parser.add_argument("--date", help="the day, YYYY-MM-DD (default: today in the operator's time zone)")
    reconcile_parser.add_argument("--force", action="store_true", help="write a new version if the day has a report")
    reconcile_parser.set_defaults(run=reconcile)
    commands.add_parser(
        "catalogs", help="add the cabinet's new messages to the Kazakh and Russian catalogs, drop unused ones"
    ).set_defaults(run=catalogs)
    protocol_parser = commands.add_parser(
        "security-protocol",
        help="write the signed cybersecurity test protocol (PDF and JSON) with a verdict per REQ-54..REQ-58",
    )
    protocol_parser.add_argument(
        "--run", dest="run_suites", action="store_true", help="run the proof suites first (from a checkout)"
    )
    protocol_parser.add_argument("--long-form", action="store_true", help="with --run: the suites' long form")
    protocol_parser.add_argument(
        "--evidence", help="where the suites' results are (default: DFA_EVIDENCE_DIR or test-artifacts/protocol)"
    )
    protocol_parser.add_argument("--out", help="where to write the protocol (default: the evidence directory)")
    protocol_parser.add_argument("--verify", metavar="PROTOCOL_JSON", help="check a written protocol's signature")
    protocol_parser.set_defaults(run=security_protocol)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
