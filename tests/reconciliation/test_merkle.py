"""Holder inclusion proofs: Merkle-sum trees over an emission's positions, their proofs, the verifier and
`dfa verify-proof`. Pure: no database."""

import hashlib
import hmac
import io
import json
import re
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfa import cli
from dfa.reconciliation.merkle import (
    SUM_LIMIT,
    Leaf,
    Proof,
    ProofMalformed,
    ProofStep,
    Root,
    Verdict,
    inclusion_proof,
    leaf_nonce,
    leaf_nonces,
    root_of,
    verify,
)

REPORT_ID = 7
ASSET_CODE = "KZDFA0001-2026-000017"
TREE = {"report_id": REPORT_ID, "asset_code": ASSET_CODE}
SECRET = bytes(range(32))
VALID = Verdict(ok=True, reason="")

THREE = [
    Leaf(account_id=11, quantity=100, nonce=b"\x11" * 32),
    Leaf(account_id=12, quantity=0, nonce=b"\x22" * 32),
    Leaf(account_id=13, quantity=250, nonce=b"\x33" * 32),
]
FIVE = [
    *THREE,
    Leaf(account_id=20, quantity=5000, nonce=b"\x44" * 32),
    Leaf(account_id=31, quantity=1, nonce=b"\x55" * 32),
]

# The test vectors of docs/holder-proofs.md, computed once and checked against an independent reimplementation.
EMPTY_ROOT_HEX = "26a7e06bd96c48a182563b904276771633840400dc01455ea163ed42e0c3f966"
NONCE_OF_ACCOUNT_12_HEX = "4b2308fdc284a87ae87030c754df9d5c2d9ce090256fadc6c34fafa760b0852c"
THREE_ROOT_HEX = "1feca416034aaa016e9f90a2f42c41dee571cc30aaae7d30ace1aa5ef4a2785f"
FIVE_ROOT_HEX = "8983c5f25ccdc684d9b0b3419c64d39a7f6bccf22c2ce8d199954dd4d36683c1"
PROOF_OF_ACCOUNT_13_IN_FIVE = {
    "format": "dfa-holder-proof/1",
    "report_id": 7,
    "asset_code": "KZDFA0001-2026-000017",
    "leaf": {"account_id": 13, "quantity": 250, "nonce": "33" * 32},
    "index": 2,
    "leaf_count": 5,
    "path": [
        {"hash": "86b62d7e27be23b890da74427ec73bcf2ccdcee5aaa10ea56446f1878681005f", "sum": 5000},
        {"hash": "cef2079aa5706ee34391d3cf5760303ae368d7b262cfea1cae8babd401ac0a0e", "sum": 100},
        {"hash": "0c07a2e4b6d0c79aebd284726b3c4e9efed1dcf249417025c87505689ac5cf11", "sum": 1},
    ],
    "root": {"hash": FIVE_ROOT_HEX, "total": 5351, "leaf_count": 5},
}


def _flipped(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


def _proof_of_account_12() -> Proof:
    """A proof whose path turns both ways: index 1 of 5, siblings left, right, right."""
    return inclusion_proof(FIVE, 1, **TREE)


def _leaves(positions: list[tuple[int, int]]) -> list[Leaf]:
    return [
        Leaf(account_id=account_id, quantity=quantity, nonce=leaf_nonce(SECRET, **TREE, account_id=account_id))
        for account_id, quantity in positions
    ]


position_lists = st.lists(
    st.tuples(st.integers(1, SUM_LIMIT - 1), st.integers(0, 2**55)), max_size=200, unique_by=lambda p: p[0]
).map(sorted)


@settings(max_examples=60, deadline=None)
@given(position_lists)
def test_every_holders_proof_verifies_against_the_streamed_root_of_the_outstanding_total(positions):
    leaves = _leaves(positions)

    root = root_of(iter(leaves), **TREE)

    assert root.total == sum(quantity for _, quantity in positions)
    assert root.leaf_count == len(leaves)
    for index in range(len(leaves)):
        proof = inclusion_proof(leaves, index, **TREE)
        assert proof.root == root
        assert verify(proof, root_hash=root.hash, total=root.total) == VALID
        assert Proof.from_json(json.loads(json.dumps(proof.to_json()))) == proof


def test_a_hundred_thousand_holders_stream_into_the_root_of_the_full_tree():
    leaves = [Leaf(account_id=n, quantity=n % 7, nonce=n.to_bytes(32, "big")) for n in range(1, 100_001)]

    root = root_of((leaf for leaf in leaves), **TREE)

    assert (root.total, root.leaf_count) == (sum(n % 7 for n in range(1, 100_001)), 100_000)
    assert inclusion_proof(leaves, 99_999, **TREE).root == root


def test_the_fixed_vectors_give_the_documented_roots_nonce_and_proof():
    assert root_of([], **TREE) == Root(hash=bytes.fromhex(EMPTY_ROOT_HEX), total=0, leaf_count=0)
    assert leaf_nonce(SECRET, **TREE, account_id=12).hex() == NONCE_OF_ACCOUNT_12_HEX
    assert root_of(THREE, **TREE) == Root(hash=bytes.fromhex(THREE_ROOT_HEX), total=350, leaf_count=3)
    assert root_of(FIVE, **TREE) == Root(hash=bytes.fromhex(FIVE_ROOT_HEX), total=5351, leaf_count=5)
    assert inclusion_proof(FIVE, 2, **TREE).to_json() == PROOF_OF_ACCOUNT_13_IN_FIVE


@settings(max_examples=50, deadline=None)
@given(secret=st.binary(min_size=32, max_size=200), account_ids=st.lists(st.integers(1, 2**63 - 1), max_size=5))
def test_a_trees_nonces_are_hmac_sha256_of_its_context_and_the_account(secret, account_ids):
    context = b"dfa-holder-proof/1" + struct.pack(">Q", TREE["report_id"]) + bytes([len(TREE["asset_code"])])
    context += TREE["asset_code"].encode()
    nonces = leaf_nonces(secret, **TREE)
    for account_id in account_ids:
        expected = hmac.digest(secret, context + struct.pack(">Q", account_id), "sha256")
        assert nonces(account_id) == leaf_nonce(secret, **TREE, account_id=account_id) == expected


TAMPERINGS = {
    "quantity": lambda p: replace(p, leaf=replace(p.leaf, quantity=p.leaf.quantity + 1)),
    "account id": lambda p: replace(p, leaf=replace(p.leaf, account_id=p.leaf.account_id + 1)),
    "nonce": lambda p: replace(p, leaf=replace(p.leaf, nonce=_flipped(p.leaf.nonce))),
    "index": lambda p: replace(p, index=0),
    "index beyond the leaves": lambda p: replace(p, index=5),
    "report id": lambda p: replace(p, report_id=p.report_id + 1),
    "asset code": lambda p: replace(p, asset_code="KZDFA0001-2026-000018"),
    "path hash": lambda p: replace(p, path=(p.path[0], replace(p.path[1], hash=_flipped(p.path[1].hash)), p.path[2])),
    "path sum": lambda p: replace(p, path=(p.path[0], replace(p.path[1], sum=p.path[1].sum + 1), p.path[2])),
    "path cut short": lambda p: replace(p, path=p.path[:-1]),
    "path made longer": lambda p: replace(p, path=(*p.path, p.path[0])),
    "root hash": lambda p: replace(p, root=replace(p.root, hash=_flipped(p.root.hash))),
    "root total": lambda p: replace(p, root=replace(p.root, total=p.root.total + 1)),
    "root leaf count": lambda p: replace(p, root=replace(p.root, leaf_count=6)),
}


@pytest.mark.parametrize("field", TAMPERINGS)
def test_a_proof_with_any_field_tampered_is_refused_with_a_reason(field):
    honest = _proof_of_account_12()
    tampered = TAMPERINGS[field](honest)

    for verdict in (verify(tampered), verify(tampered, root_hash=honest.root.hash, total=honest.root.total)):
        assert not verdict.ok
        assert verdict.reason


def test_a_proof_is_refused_when_its_root_is_not_the_published_one():
    proof = _proof_of_account_12()

    assert (
        verify(proof, root_hash=bytes.fromhex(THREE_ROOT_HEX)).reason == "the root hash differs from the published one"
    )
    assert verify(proof, total=5350).reason == "the total differs from the published outstanding total"
    assert verify(proof, root_hash=proof.root.hash, total=proof.root.total) == VALID


def test_a_leaf_from_another_report_or_emission_does_not_verify_against_this_root():
    published = root_of(FIVE, **TREE)

    for other in (
        {"report_id": 8, "asset_code": ASSET_CODE},
        {"report_id": REPORT_ID, "asset_code": "KZDFA0001-2026-9"},
    ):
        proof = inclusion_proof(FIVE, 1, **other)
        assert verify(proof) == VALID
        assert verify(proof, root_hash=published.hash, total=published.total).reason == (
            "the root hash differs from the published one"
        )


def test_a_negative_sibling_sum_that_keeps_the_total_is_refused():
    honest = inclusion_proof(FIVE, 4, **TREE)  # leaf quantity 1, one sibling: the first four, 5350 units
    inflated = replace(honest.leaf, quantity=6001)
    sibling = ProofStep(hash=honest.path[0].hash, sum=-650)
    # The root a verifier with wrapping 64-bit sums would accept: 6001 - 650 is the unchanged total.
    wrapped_root = hashlib.sha256(
        b"\x01"
        + sibling.hash
        + struct.pack(">Q", 2**64 - 650)
        + root_of([inflated], **TREE).hash
        + struct.pack(">Q", 6001)
    ).digest()
    forged = replace(honest, leaf=inflated, path=(sibling,), root=replace(honest.root, hash=wrapped_root))

    verdict = verify(forged, root_hash=wrapped_root, total=honest.root.total)

    assert verdict == Verdict(ok=False, reason="a sibling sum on the path is outside 0 .. 2^63-1")


@pytest.mark.parametrize(
    ("sibling_sum", "reason"),
    [
        (SUM_LIMIT, "a sibling sum on the path is outside 0 .. 2^63-1"),
        (SUM_LIMIT - 1, "the sums along the path reach 2^63"),
    ],
)
def test_sibling_sums_that_overflow_are_refused(sibling_sum, reason):
    honest = inclusion_proof(FIVE, 4, **TREE)
    forged = replace(honest, path=(ProofStep(hash=honest.path[0].hash, sum=sibling_sum),))

    assert verify(forged) == Verdict(ok=False, reason=reason)


@pytest.mark.parametrize(
    "leaves",
    [
        [FIVE[1], FIVE[0]],
        [FIVE[0], FIVE[0]],
        [Leaf(account_id=0, quantity=1, nonce=b"\x11" * 32)],
        [Leaf(account_id=1, quantity=-1, nonce=b"\x11" * 32)],
        [Leaf(account_id=1, quantity=1, nonce=b"\x11" * 31)],
        [Leaf(account_id=1, quantity=SUM_LIMIT - 1, nonce=b"\x11" * 32), FIVE[0]],
    ],
    ids=["out of order", "account twice", "account id zero", "negative quantity", "short nonce", "total overflows"],
)
def test_a_tree_is_not_built_over_positions_that_break_the_rules(leaves):
    with pytest.raises(ValueError):
        root_of(leaves, **TREE)


def test_no_proof_is_made_for_a_position_outside_the_tree():
    with pytest.raises(ValueError):
        inclusion_proof(FIVE, 5, **TREE)
    with pytest.raises(ValueError):
        inclusion_proof([], 0, **TREE)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a dfa-holder-proof/1 document"),
        ({**PROOF_OF_ACCOUNT_13_IN_FIVE, "format": "dfa-holder-proof/2"}, "not a dfa-holder-proof/1 document"),
        ({key: value for key, value in PROOF_OF_ACCOUNT_13_IN_FIVE.items() if key != "index"}, "the proof lacks index"),
        ({**PROOF_OF_ACCOUNT_13_IN_FIVE, "owner": "x"}, "the proof has unknown fields owner"),
        ({**PROOF_OF_ACCOUNT_13_IN_FIVE, "index": True}, "index is not an integer"),
        ({**PROOF_OF_ACCOUNT_13_IN_FIVE, "asset_code": 17}, "asset_code is not a string"),
        ({**PROOF_OF_ACCOUNT_13_IN_FIVE, "path": {}}, "path is not a list"),
        (
            {**PROOF_OF_ACCOUNT_13_IN_FIVE, "leaf": {"account_id": 13, "quantity": "250", "nonce": "33" * 32}},
            "leaf.quantity is not an integer",
        ),
        (
            {**PROOF_OF_ACCOUNT_13_IN_FIVE, "leaf": {"account_id": 13, "quantity": 250, "nonce": "3" * 63}},
            "leaf.nonce is not 64 lowercase hex digits",
        ),
        (
            {**PROOF_OF_ACCOUNT_13_IN_FIVE, "root": {"hash": FIVE_ROOT_HEX.upper(), "total": 5351, "leaf_count": 5}},
            "root.hash is not 64 lowercase hex digits",
        ),
        ({**PROOF_OF_ACCOUNT_13_IN_FIVE, "path": [{"hash": "00" * 32}]}, "path[0] lacks sum"),
    ],
)
def test_a_malformed_proof_document_is_refused_with_what_is_wrong(document, message):
    with pytest.raises(ProofMalformed, match=re.escape(message)):
        Proof.from_json(document)


def _written(tmp_path: Path, document: object) -> str:
    path = tmp_path / "proof.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_dfa_verify_proof_accepts_a_valid_proof_against_the_published_root(tmp_path, capsys):
    proof = _written(tmp_path, PROOF_OF_ACCOUNT_13_IN_FIVE)

    assert cli.main(["verify-proof", proof, "--root", FIVE_ROOT_HEX, "--total", "5351"]) == 0
    assert capsys.readouterr().out == (
        f"valid: account 13 holds 250 units of {ASSET_CODE} within the total 5351 of report 7; "
        "it matches the published root and total\n"
    )


def test_dfa_verify_proof_without_the_published_root_says_it_was_not_compared(tmp_path, capsys):
    assert cli.main(["verify-proof", _written(tmp_path, PROOF_OF_ACCOUNT_13_IN_FIVE)]) == 0
    assert "the root was not compared with the published one" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("document", "arguments", "output"),
    [
        (
            {**PROOF_OF_ACCOUNT_13_IN_FIVE, "leaf": {**PROOF_OF_ACCOUNT_13_IN_FIVE["leaf"], "quantity": 2500}},
            [],
            "invalid: the path does not lead to the root hash\n",
        ),
        (
            PROOF_OF_ACCOUNT_13_IN_FIVE,
            ["--total", "5352"],
            "invalid: the total differs from the published outstanding total\n",
        ),
        (
            PROOF_OF_ACCOUNT_13_IN_FIVE,
            ["--root", THREE_ROOT_HEX],
            "invalid: the root hash differs from the published one\n",
        ),
        ('{"format": "dfa-holder-proof/1",', [], "invalid: the proof is not JSON: "),
        ({"format": "dfa-holder-proof/1"}, [], "invalid: malformed proof: the proof lacks report_id, "),
    ],
    ids=["tampered quantity", "other total", "other root", "not JSON", "missing fields"],
)
def test_dfa_verify_proof_refuses_a_tampered_or_malformed_proof(tmp_path, capsys, document, arguments, output):
    assert cli.main(["verify-proof", _written(tmp_path, document), *arguments]) == 1
    assert capsys.readouterr().out.startswith(output)


def test_dfa_verify_proof_reads_standard_input(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(PROOF_OF_ACCOUNT_13_IN_FIVE)))

    assert cli.main(["verify-proof", "-", "--root", FIVE_ROOT_HEX, "--total", "5351"]) == 0
    assert capsys.readouterr().out.startswith("valid: account 13 holds 250 units")


def test_the_installed_dfa_command_verifies_a_proof_offline():
    run = subprocess.run(
        [str(Path(sys.executable).with_name("dfa")), "verify-proof", "-", "--root", FIVE_ROOT_HEX, "--total", "5351"],
        input=json.dumps(PROOF_OF_ACCOUNT_13_IN_FIVE),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.startswith("valid: account 13 holds 250 units")
