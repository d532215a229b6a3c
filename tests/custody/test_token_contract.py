"""The permissioned token contract itself, on the in-process EVM: only the operator changes anything."""

import os

import pytest
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from dfa.custody.contract import BURN, FORCED_MOVE, MINT, MOVE, PAUSE, UNPAUSE, token_contract

REF = b"\x01" * 32
NOWHERE = "0x" + "00" * 20
# The in-process EVM reports a revert as its own exception; web3 as ContractLogicError elsewhere.
REVERTED = (ContractLogicError, TransactionFailed)


@pytest.fixture
def evm():
    genesis = PyEVMBackend.generate_genesis_params(overrides={"extra_data": os.urandom(32)})
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend=PyEVMBackend(genesis_parameters=genesis))))
    operator, holder_a, holder_b, outsider = w3.eth.accounts[:4]
    compiled = token_contract()
    factory = w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor("KZDFA0001-2026-000001", "Steppe Grain 2026").transact({"from": operator})
    )
    token = w3.eth.contract(address=receipt.contractAddress, abi=compiled.abi)
    return w3, token, operator, holder_a, holder_b, outsider


def _apply(token, sender, seq, ops):
    return token.functions.apply_batch(seq, ops).transact({"from": sender})


def test_the_contract_carries_the_emissions_registration_number(evm):
    _, token, operator, *_ = evm
    assert token.functions.registration_number().call() == "KZDFA0001-2026-000001"
    assert token.functions.operator().call() == operator
    assert token.functions.decimals().call() == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda t, a, b: t.functions.mint(a, 1, REF),
        lambda t, a, b: t.functions.burn(a, 1, REF),
        lambda t, a, b: t.functions.move(a, b, 1, REF),
        lambda t, a, b: t.functions.force_move(a, b, 1, REF),
        lambda t, a, b: t.functions.pause(),
        lambda t, a, b: t.functions.set_operator(a),
        lambda t, a, b: t.functions.apply_batch(0, [(MINT, NOWHERE, a, 1, REF)]),
    ],
)
def test_only_the_operator_mints_burns_moves_pauses_or_hands_over(evm, call):
    _, token, operator, a, b, outsider = evm
    token.functions.mint(a, 10, REF).transact({"from": operator})
    for anyone in (outsider, a):  # a holder cannot move even its own units
        with pytest.raises(REVERTED, match="only the operator"):
            call(token, a, b).transact({"from": anyone})


def test_a_batch_applies_every_op_in_order_and_emits_an_event_for_each(evm):
    w3, token, operator, a, b, _ = evm
    receipt = w3.eth.wait_for_transaction_receipt(
        _apply(token, operator, 0, [(MINT, NOWHERE, a, 100, REF), (MOVE, a, b, 30, REF), (BURN, b, NOWHERE, 5, REF)])
    )
    assert (token.functions.balanceOf(a).call(), token.functions.balanceOf(b).call()) == (70, 25)
    assert token.functions.totalSupply().call() == 95
    assert [e.args.amount for e in token.events.Minted().process_receipt(receipt, errors=DISCARD)] == [100]
    assert [e.args.amount for e in token.events.Moved().process_receipt(receipt, errors=DISCARD)] == [30]
    assert [e.args.amount for e in token.events.Burned().process_receipt(receipt, errors=DISCARD)] == [5]
    assert token.events.BatchApplied().process_receipt(receipt, errors=DISCARD)[0].args.seq == 0


def test_a_batch_is_applied_once_and_only_in_sequence(evm):
    _, token, operator, a, _, _ = evm
    _apply(token, operator, 0, [(MINT, NOWHERE, a, 1, REF)])
    for seq in (0, 2):
        with pytest.raises(REVERTED, match="batch out of sequence"):
            _apply(token, operator, seq, [(MINT, NOWHERE, a, 1, REF)])
    assert token.functions.totalSupply().call() == 1
    assert token.functions.next_batch().call() == 1


def test_a_batch_that_fails_anywhere_changes_nothing(evm):
    _, token, operator, a, b, _ = evm
    with pytest.raises(REVERTED):
        _apply(token, operator, 0, [(MINT, NOWHERE, a, 10, REF), (MOVE, a, b, 11, REF)])
    assert token.functions.totalSupply().call() == 0
    assert token.functions.next_batch().call() == 0


def test_a_pause_stops_every_change_but_a_forced_move(evm):
    _, token, operator, a, b, _ = evm
    _apply(token, operator, 0, [(MINT, NOWHERE, a, 10, REF), (PAUSE, NOWHERE, NOWHERE, 0, REF)])
    assert token.functions.paused().call()
    for op in [(MINT, NOWHERE, a, 1, REF), (MOVE, a, b, 1, REF), (BURN, a, NOWHERE, 1, REF)]:
        with pytest.raises(REVERTED, match="paused"):
            _apply(token, operator, 1, [op])
    _apply(token, operator, 1, [(FORCED_MOVE, a, b, 4, REF), (UNPAUSE, NOWHERE, NOWHERE, 0, REF)])
    assert token.functions.balanceOf(b).call() == 4
    assert not token.functions.paused().call()


def test_the_operator_hands_control_to_a_successor(evm):
    _, token, operator, a, _, successor = evm
    token.functions.set_operator(successor).transact({"from": operator})
    with pytest.raises(REVERTED, match="only the operator"):
        token.functions.mint(a, 1, REF).transact({"from": operator})
    token.functions.mint(a, 1, REF).transact({"from": successor})
    assert token.functions.balanceOf(a).call() == 1
