"""The cybersecurity test protocol the operator hands the National Bank before its first issuance (REQ-60): what
the proof suites did to the platform, how, what they counted, and a verdict per requirement REQ-54 to REQ-58,
signed by the operator as canonical JSON (authoritative) and rendered as PDF.

The suites live with the tests (`tests/fault`, `tests/attack`, the authorization matrix, the secret canary).
Each leaves a record of its run (`tests/evidence.py`: suite, requirements, method, figures, violations, test
file) in the evidence directory; a run through this module also leaves pytest's JUnit results there, so a
suite whose test failed before it could record counts against its requirements too. A requirement is met
when at least one suite proves it, every such suite recorded no violation and none of their tests failed.
"""

import base64
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fpdf.enums import WrapMode

from dfa.custody.service.handover import key_fingerprint
from dfa.platform.settings import Settings
from dfa.reconciliation.exports import DejaVuPdf, signature_section
from dfa.reconciliation.service.reports import canonical, public_key_pem, seal, signature_valid

FORMAT = "dfa-security-test-protocol/1"
EVIDENCE_DIR_ENV = "DFA_EVIDENCE_DIR"
DEFAULT_EVIDENCE_DIR = Path("test-artifacts/protocol")
RESULTS_FILE = "junit.xml"
OUTPUT_PREFIX = "security-protocol-"
# What `--run` runs: every suite that records evidence.
SUITE_PATHS = (
    "tests/fault",
    "tests/attack",
    "tests/platform/test_authorization_matrix.py",
    "tests/custody/test_no_key_material.py",
)


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    clause: str
    obligation: str


REQUIREMENTS = (
    Requirement(
        "REQ-54", "Identification, authentication, authorisation", "Rules p.28(1)",
        "Identify, authenticate and authorise users: every request authenticated and authorised by role; staff "
        "and client identities distinct.",
    ),
    Requirement(
        "REQ-55", "Security events and incidents", "Rules p.28(2), (3), (10), (11), (14)",
        "Record and store cybersecurity events in a tamper-evident log; detect and analyse threats, counter "
        "attacks and investigate incidents.",
    ),
    Requirement(
        "REQ-56", "Protection of information; backup", "Rules p.28(4), (5)",
        "Protect information from unauthorised access, leakage, modification, destruction and blocking; back up "
        "and restore information.",
    ),
    Requirement(
        "REQ-57", "Personal data and secure transactions", "Rules p.28(7), (8)",
        "Process personal data lawfully and with minimal access; ensure transactions are concluded securely.",
    ),
    Requirement(
        "REQ-58", "Controls, tools, perimeter", "Rules p.28(9), (12), (16), (17), (18)",
        "Select and apply methods and tools of cybersecurity control, automate them and keep them working.",
    ),
)


class Verdict(StrEnum):
    MET = "met"
    NOT_MET = "not met"
    NOT_SHOWN = "not shown"  # no suite recorded evidence for the requirement


def evidence_dir() -> Path:
    return Path(os.environ.get(EVIDENCE_DIR_ENV) or DEFAULT_EVIDENCE_DIR)


def _evidence_paths(directory: Path) -> list[Path]:
    return sorted(path for path in directory.glob("*.json") if not path.name.startswith(OUTPUT_PREFIX))


def read_evidence(directory: Path) -> list[dict[str, Any]]:
    """The suites' records in `directory`, by suite name."""
    found = []
    for path in _evidence_paths(directory):
        record = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(record, dict) and "suite" in record and "requirements" in record:
            found.append(record)
    return found


def _test_file(classname: str) -> str:
    """`tests.fault.test_bank.TestX` → `tests/fault/test_bank.py`."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        if parts[end - 1].startswith("test"):
            return "/".join(parts[:end]) + ".py"
    return "/".join(parts) + ".py"


def read_test_results(path: Path) -> dict[str, dict[str, int]]:
    """Tests run, failed and skipped per test file, from pytest's JUnit XML; empty without the file."""
    if not path.is_file():
        return {}
    results: dict[str, dict[str, int]] = defaultdict(lambda: {"tests": 0, "failed": 0, "skipped": 0})
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        counts = results[_test_file(case.get("classname", ""))]
        counts["tests"] += 1
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
    return dict(results)


def _suite_passed(record: dict[str, Any], results: dict[str, dict[str, int]]) -> bool:
    counts = results.get(record.get("test_file", ""))
    return bool(record["passed"]) and not (counts and counts["failed"])


def verdicts(evidence: list[dict[str, Any]], results: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """Each requirement with the suites that prove it and its verdict."""
    out = []
    for requirement in REQUIREMENTS:
        suites = [record for record in evidence if requirement.id in record["requirements"]]
        if not suites:
            verdict = Verdict.NOT_SHOWN
        elif all(_suite_passed(record, results) for record in suites):
            verdict = Verdict.MET
        else:
            verdict = Verdict.NOT_MET
        out.append({
            "id": requirement.id, "title": requirement.title, "clause": requirement.clause,
            "obligation": requirement.obligation, "verdict": str(verdict),
            "suites": [record["suite"] for record in suites],
        })
    return out


def _platform_version() -> str:
    version = metadata.version("dfa")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version} (commit {commit})"


def build(directory: Path, *, settings: Settings, produced_at: datetime | None = None) -> dict[str, Any]:
    """The protocol's document from the evidence and test results in `directory`."""
    evidence = read_evidence(directory)
    results = read_test_results(directory / RESULTS_FILE)
    recorded = sorted(record["recorded_at"] for record in evidence)
    suites = []
    for record in evidence:
        counts = results.get(record.get("test_file", ""))
        suites.append({**record, "tests": counts, "passed": _suite_passed(record, results)})
    return {
        "format": FORMAT,
        "operator": {
            "name": settings.operator_name, "bin": settings.operator_bin,
            "nbk_registration_number": settings.operator_nbk_registration_number,
        },
        "platform_version": _platform_version(),
        "environment": f"Python {platform.python_version()} on {platform.system()} {platform.machine()}",
        "produced_at": (produced_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "evidence_recorded": {"from": recorded[0], "to": recorded[-1]} if recorded else None,
        "forms": sorted({record["form"] for record in evidence}),
        "test_results": {
            "files": len(results),
            "tests": sum(c["tests"] for c in results.values()),
            "failed": sum(c["failed"] for c in results.values()),
            "skipped": sum(c["skipped"] for c in results.values()),
        } if results else None,
        "requirements": verdicts(evidence, results),
        "suites": suites,
    }


@dataclass(frozen=True)
class Written:
    json_path: Path
    pdf_path: Path


def write(document: dict[str, Any], *, signing_key: Ed25519PrivateKey, out_dir: Path) -> Written:
    """Sign the document and write it as JSON (the document, its SHA-256, the signature and the key to check it
    with) and as PDF (the same, for reading, with the hash and signature to check a printout against)."""
    sealed = seal(document, signing_key=signing_key)
    signature_b64 = base64.b64encode(sealed.signature).decode()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{OUTPUT_PREFIX}{document['produced_at'][:10]}"
    signed = {
        "document": document,
        "content_sha256": sealed.content_sha256.hex(),
        "signature": signature_b64,
        "signing_key_sha256": sealed.signing_key_sha256,
        "public_key": public_key_pem(signing_key),
    }
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(signed, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    pdf_path = stem.with_suffix(".pdf")
    pdf_path.write_bytes(
        protocol_pdf(document, content_sha256=signed["content_sha256"], signature_b64=signature_b64,
                     signing_key_sha256=sealed.signing_key_sha256)
    )
    return Written(json_path, pdf_path)


def signature_holds(signed: dict[str, Any], *, public_key: Ed25519PublicKey) -> bool:
    """Whether a written protocol is, byte for byte, the document the holder of `public_key` signed."""
    content = canonical(signed["document"])
    return (
        hashlib.sha256(content).hexdigest() == signed.get("content_sha256")
        and key_fingerprint(public_key) == signed.get("signing_key_sha256")
        and signature_valid(content=content, signature=base64.b64decode(signed["signature"]), public_key=public_key)
    )


def run_suites(directory: Path, *, long_form: bool) -> int:
    """Run every suite afresh (from a checkout of the platform's source, where the tests are), leaving their
    records and JUnit results in `directory`; returns pytest's exit status."""
    if not all(Path(path).exists() for path in SUITE_PATHS):
        raise FileNotFoundError("the proof suites are run from the root of a checkout of the platform's source")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (*_evidence_paths(directory), directory / RESULTS_FILE):
        stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", *SUITE_PATHS, f"--junitxml={directory / RESULTS_FILE}", "-p",
               "no:cacheprovider"]
    if long_form:
        command.append("--long-form")
    return subprocess.run(command, env={**os.environ, EVIDENCE_DIR_ENV: str(directory)}, check=False).returncode


# --- the printable protocol ---------------------------------------------------------------------------------


def _figure(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    return str(value)


def protocol_pdf(document: dict[str, Any], *, content_sha256: str, signature_b64: str, signing_key_sha256: str) -> bytes:
    operator = document["operator"]
    pdf = DejaVuPdf(f"Cybersecurity test protocol of {operator['name']}, {document['produced_at'][:10]}")
    pdf.set_title("Cybersecurity test protocol")
    pdf.set_author(operator["name"])
    pdf.add_page()
    pdf.heading("Protocol of testing the digital platform's compliance with cybersecurity requirements", size_pt=15)
    recorded = document["evidence_recorded"]
    results = document["test_results"]
    pdf.pairs([
        ("Operator", operator["name"]),
        ("BIN", operator["bin"]),
        ("NBK registration number", operator["nbk_registration_number"]),
        ("Platform version", document["platform_version"]),
        ("Test environment", document["environment"]),
        ("Produced at (UTC)", document["produced_at"]),
        ("Results recorded (UTC)", f"{recorded['from']} to {recorded['to']}" if recorded else "none"),
        ("Form of the run", ", ".join(document["forms"]) or "none"),
        ("Test cases", f"{results['tests']} run, {results['failed']} failed, {results['skipped']} skipped"
         if results else "not read (records only)"),
    ])
    pdf.paragraph(
        "Under the Rules p.28 the operator submits this protocol to the National Bank of the Republic of Kazakhstan "
        "10 business days before DFA issuance begins on the platform. Every test below was run against the "
        "platform itself: its HTTP API and pages served by a real server, a real PostgreSQL database, real "
        "cryptography and a real EVM node, with the failures injected from outside (processes killed, the "
        "database stopped) and hostile requests sent as an attacker would."
    )
    pdf.heading("Verdicts")
    pdf.grid(
        ["Requirement", "Clause", "Verdict", "Shown by"],
        [[f"{r['id']} {r['title']}", r["clause"], r["verdict"], ", ".join(r["suites"]) or "nothing"]
         for r in document["requirements"]],
        widths=(60, 35, 20, 65),
    )
    for requirement in document["requirements"]:
        pdf.heading(f"{requirement['id']} {requirement['title']}: {requirement['verdict']}")
        pdf.paragraph(f"{requirement['clause']}. {requirement['obligation']}")
    pdf.heading("Suites", size_pt=13)
    for suite in document["suites"]:
        pdf.heading(f"{suite['title']} ({suite['suite']}): {'passed' if suite['passed'] else 'FAILED'}")
        pdf.paragraph(suite["method"])
        tests = suite.get("tests")
        pdf.pairs([
            ("Requirements", ", ".join(suite["requirements"])),
            ("Form", suite["form"]),
            ("Recorded at (UTC)", suite["recorded_at"]),
            ("Test file", suite.get("test_file") or "-"),
            ("Test cases", f"{tests['tests']} run, {tests['failed']} failed" if tests else "not read"),
            *((name.replace("_", " "), _figure(value)) for name, value in suite["figures"].items()),
        ])
        if suite["violations"]:
            pdf.paragraph("Violations found:")
            for violation in suite["violations"]:
                pdf.paragraph(f"- {violation}")
        else:
            pdf.paragraph("Violations found: none.")
    signature_section(
        pdf, what="protocol", content_sha256=content_sha256, signature_b64=signature_b64,
        signing_key_sha256=signing_key_sha256,
    )
    pdf.pairs([("Check with", "dfa security-protocol --verify <protocol.json>")], wrapmode=WrapMode.CHAR)
    return bytes(pdf.output())
