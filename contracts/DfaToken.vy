# pragma version ~=0.4.3
"""
@title DFA token: the on-chain mirror of one emission's holders ledger
@notice The operator's ledger is the system of record; this contract mirrors it. Only the operator
        mints, burns and moves units (holders never sign anything), and only the operator pauses.
        A forced move (ordered by a court, or a recovery) works while the token is paused.
        `apply_batch` applies many ledger movements in one transaction, exactly once: each batch
        carries the next sequence number and a batch with any other number is refused.
"""

struct Op:
    kind: uint8  # MINT, BURN, MOVE, FORCED_MOVE, PAUSE or UNPAUSE
    source: address  # empty for a mint, a pause and an unpause
    target: address  # empty for a burn, a pause and an unpause
    amount: uint256
    ref: bytes32  # the ledger transfer this op mirrors

MINT: constant(uint8) = 1
BURN: constant(uint8) = 2
MOVE: constant(uint8) = 3
FORCED_MOVE: constant(uint8) = 4
PAUSE: constant(uint8) = 5
UNPAUSE: constant(uint8) = 6
MAX_OPS: constant(uint256) = 256

event Minted:
    target: indexed(address)
    amount: uint256
    ref: bytes32

event Burned:
    source: indexed(address)
    amount: uint256
    ref: bytes32

event Moved:
    source: indexed(address)
    target: indexed(address)
    amount: uint256
    ref: bytes32

event ForcedMove:
    source: indexed(address)
    target: indexed(address)
    amount: uint256
    ref: bytes32

event BatchApplied:
    seq: indexed(uint256)
    ops: uint256

event Paused:
    operator: indexed(address)

event Unpaused:
    operator: indexed(address)

event OperatorChanged:
    previous: indexed(address)
    current: indexed(address)

registration_number: public(String[50])
name: public(String[200])
decimals: public(constant(uint8)) = 0
operator: public(address)
paused: public(bool)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
# The sequence number the next batch must carry (= the number of batches applied so far).
next_batch: public(uint256)


@deploy
def __init__(registration_number: String[50], name: String[200]):
    self.registration_number = registration_number
    self.name = name
    self.operator = msg.sender
    log OperatorChanged(previous=empty(address), current=msg.sender)


@internal
def _only_operator():
    assert msg.sender == self.operator, "only the operator"


@internal
def _apply(op: Op):
    if op.kind == PAUSE:
        self._pause(True)
        return
    if op.kind == UNPAUSE:
        self._pause(False)
        return
    assert op.amount > 0, "amount must be positive"
    if op.kind == MINT:
        assert op.target != empty(address), "mint to nowhere"
        self.totalSupply += op.amount
        self.balanceOf[op.target] += op.amount
        log Minted(target=op.target, amount=op.amount, ref=op.ref)
    elif op.kind == BURN:
        assert op.source != empty(address), "burn from nowhere"
        self.balanceOf[op.source] -= op.amount
        self.totalSupply -= op.amount
        log Burned(source=op.source, amount=op.amount, ref=op.ref)
    elif op.kind == MOVE or op.kind == FORCED_MOVE:
        assert op.source != empty(address) and op.target != empty(address), "move needs both ends"
        assert op.source != op.target, "move to itself"
        self.balanceOf[op.source] -= op.amount
        self.balanceOf[op.target] += op.amount
        if op.kind == MOVE:
            log Moved(source=op.source, target=op.target, amount=op.amount, ref=op.ref)
        else:
            log ForcedMove(source=op.source, target=op.target, amount=op.amount, ref=op.ref)
    else:
        raise "unknown op"
    # Only a forced move goes through a pause.
    assert op.kind == FORCED_MOVE or not self.paused, "paused"


@external
def mint(target: address, amount: uint256, ref: bytes32):
    self._only_operator()
    self._apply(Op(kind=MINT, source=empty(address), target=target, amount=amount, ref=ref))


@external
def burn(source: address, amount: uint256, ref: bytes32):
    self._only_operator()
    self._apply(Op(kind=BURN, source=source, target=empty(address), amount=amount, ref=ref))


@external
def move(source: address, target: address, amount: uint256, ref: bytes32):
    self._only_operator()
    self._apply(Op(kind=MOVE, source=source, target=target, amount=amount, ref=ref))


@external
def force_move(source: address, target: address, amount: uint256, ref: bytes32):
    """@notice A move ordered by a court or made on recovery; allowed while paused."""
    self._only_operator()
    self._apply(Op(kind=FORCED_MOVE, source=source, target=target, amount=amount, ref=ref))


@external
def apply_batch(seq: uint256, ops: DynArray[Op, MAX_OPS]):
    """@notice Apply ledger movements in order, all or none; `seq` must be `next_batch`."""
    self._only_operator()
    assert seq == self.next_batch, "batch out of sequence"
    for op: Op in ops:
        self._apply(op)
    self.next_batch = seq + 1
    log BatchApplied(seq=seq, ops=len(ops))


@internal
def _pause(paused: bool):
    assert self.paused != paused, "already so"
    self.paused = paused
    if paused:
        log Paused(operator=msg.sender)
    else:
        log Unpaused(operator=msg.sender)


@external
def pause():
    self._only_operator()
    self._pause(True)


@external
def unpause():
    self._only_operator()
    self._pause(False)


@external
def set_operator(new_operator: address):
    """@notice Hand control to another operator's key (liquidation handover)."""
    self._only_operator()
    assert new_operator != empty(address), "operator cannot be empty"
    log OperatorChanged(previous=self.operator, current=new_operator)
    self.operator = new_operator
