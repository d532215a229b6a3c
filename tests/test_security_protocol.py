"""`dfa security-protocol`: the signed cybersecurity test protocol (REQ-60) with a verdict per REQ-54..REQ-58,
built from what the proof suites recorded and how their tests ended."""

import json
from pathlib import Path

import pytest

from dfa import cli
from dfa import security_protocol as protocol
from dfa.platform.identity.crypto import Keys
from tests.evidence import EVIDENCE_DIR_ENV, record

SUITE_FILE = "tests/fault/test_example.py"


@pytest.fixture
def evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings) -> Path:
    """An evidence directory with two suites that passed: one proving REQ-54 and REQ-58, one REQ-56 and REQ-57."""
    directory = tmp_path / "evidence"
    monkeypatch.setenv(EVIDENCE_DIR_ENV, str(directory))
    monkeypatch.setenv("PYTEST_CURRENT_TEST", f"{SUITE_FILE}::test_one (call)")
    record("hostile", title="Hostile input", requirements=["REQ-54", "REQ-58"], method="Sent hostile requests.",
           form="short", figures={"attacks": 120, "got_through": 0}, violations=[])
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/fault/test_other.py::test_two (call)")
    record("bank", title="Bank under crashes", requirements=["REQ-56", "REQ-57"], method="Killed the server.",
           form="short", figures={"operations": 5_000, "app_kills": 3, "lost": 0}, violations=[])
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    return directory


def _junit(directory: Path, *, failed_in: str | None = None) -> None:
    failure = "<failure message='boom'/>" if failed_in else ""
    classname = (failed_in or SUITE_FILE).removesuffix(".py").replace("/", ".")
    (directory / protocol.RESULTS_FILE).write_text(
        f"<testsuites><testsuite><testcase classname='{classname}' name='test_one'>{failure}</testcase>"
        "<testcase classname='tests.fault.test_other' name='test_two'/></testsuite></testsuites>"
    )


def _signed(directory: Path) -> dict:
    (path,) = directory.glob(f"{protocol.OUTPUT_PREFIX}*.json")
    return json.loads(path.read_text())


def test_each_requirement_is_met_only_by_suites_that_prove_it_and_a_requirement_nobody_tested_is_not_shown(
    evidence, settings
):
    _junit(evidence)
    document = protocol.build(evidence, settings=settings)
    assert {r["id"]: r["verdict"] for r in document["requirements"]} == {
        "REQ-54": "met", "REQ-55": "not shown", "REQ-56": "met", "REQ-57": "met", "REQ-58": "met",
    }
    assert document["test_results"] == {"files": 2, "tests": 2, "failed": 0, "skipped": 0}
    assert document["operator"]["nbk_registration_number"] == settings.operator_nbk_registration_number


def test_a_suite_whose_test_failed_fails_its_requirements_even_when_its_record_found_nothing(evidence, settings):
    _junit(evidence, failed_in=SUITE_FILE)
    verdicts = {r["id"]: r["verdict"] for r in protocol.build(evidence, settings=settings)["requirements"]}
    assert verdicts["REQ-54"] == verdicts["REQ-58"] == "not met"
    assert verdicts["REQ-56"] == "met"


def test_a_violation_a_suite_recorded_fails_its_requirements(evidence, settings):
    record("bank", title="Bank under crashes", requirements=["REQ-56", "REQ-57"], method="Killed the server.",
           form="short", figures={"lost": 1}, violations=["transfer 7 acknowledged but not in the journal"])
    verdicts = {r["id"]: r["verdict"] for r in protocol.build(evidence, settings=settings)["requirements"]}
    assert verdicts["REQ-56"] == verdicts["REQ-57"] == "not met"


def test_the_command_writes_a_signed_json_and_a_pdf_and_says_every_verdict(evidence, settings, capsys):
    _junit(evidence)
    assert cli.main(["security-protocol"]) == 2  # REQ-55 was not shown by these two suites
    out = capsys.readouterr().out
    assert "REQ-55 Security events and incidents: not shown" in out
    signed = _signed(evidence)
    assert signed["document"]["suites"][0]["figures"]
    assert protocol.signature_holds(signed, public_key=Keys.load(settings).signing_key.public_key())
    (pdf,) = evidence.glob(f"{protocol.OUTPUT_PREFIX}*.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    (json_path,) = evidence.glob(f"{protocol.OUTPUT_PREFIX}*.json")
    assert cli.main(["security-protocol", "--verify", str(json_path)]) == 0


def test_a_protocol_changed_after_signing_is_refused(evidence, settings, capsys):
    cli.main(["security-protocol"])
    (json_path,) = evidence.glob(f"{protocol.OUTPUT_PREFIX}*.json")
    signed = json.loads(json_path.read_text())
    signed["document"]["requirements"][1]["verdict"] = "met"
    json_path.write_text(json.dumps(signed))
    assert cli.main(["security-protocol", "--verify", str(json_path)]) == 1
    assert "NOT the protocol" in capsys.readouterr().err


def test_without_results_the_command_writes_nothing_and_says_how_to_get_them(tmp_path, settings, monkeypatch, capsys):
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    assert cli.main(["security-protocol", "--evidence", str(tmp_path)]) == 1
    assert "run the suites" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
