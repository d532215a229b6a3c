"""Merkle-sum trees over an emission's holder positions, inclusion proofs, and the proof verifier.

Each daily reconciliation report fixes, per emission, one tree whose root commits to every holder's
position and to their sum, the outstanding total. A holder's proof shows that their position, with
its quantity, is one of the leaves that total is made of. The algorithm is specified byte for byte in
`docs/holder-proofs.md` so that anyone can reimplement the verifier. This module is pure: no database,
no I/O.
"""

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Self

PROOF_FORMAT = "dfa-holder-proof/1"
SUM_LIMIT = 2**63  # exclusive bound of account ids, quantities and every subtree sum
HASH_SIZE = 32
ASSET_CODE_MAX_LENGTH = 50
SECRET_MIN_SIZE = 32

_DOMAIN = PROOF_FORMAT.encode("ascii")
_LEAF, _INNER, _EMPTY = b"\x00", b"\x01", b"\x02"
_U64 = struct.Struct(">Q")
# Callers check every hash is 32 bytes first: "32s" would silently pad or cut one that is not.
_LEAF_FIELDS = struct.Struct(">QQ32s")  # account_id, quantity, nonce
_INNER_FIELDS = struct.Struct(">c32sQ32sQ")  # 0x01, left hash, left sum, right hash, right sum
_HEX_DIGITS = frozenset("0123456789abcdef")
_ACCOUNT_OUT_OF_RANGE = "the account id is outside 1 .. 2^63-1"
_SHA256_BLOCK = 64

_Node = tuple[bytes, int]  # (hash, sum) of a subtree


class ProofMalformed(ValueError):
    """A document that is not a well-formed dfa-holder-proof/1 proof; the message says what is wrong."""


@dataclass(frozen=True)
class Leaf:
    """One holder's position in an emission: their account, its quantity in whole units, and the
    32-byte nonce that blinds the leaf (see `leaf_nonce`)."""

    account_id: int
    quantity: int
    nonce: bytes


@dataclass(frozen=True)
class Root:
    """What a report publishes per emission: the root hash, the outstanding total it commits to, and
    the number of holders (not bound by the hash; the signed report vouches for it)."""

    hash: bytes
    total: int
    leaf_count: int


@dataclass(frozen=True)
class ProofStep:
    """A sibling subtree on the way from the leaf to the root: its hash and its sum."""

    hash: bytes
    sum: int


@dataclass(frozen=True)
class Proof:
    """A holder's inclusion proof: the leaf at `index` of a `leaf_count`-leaf tree, the siblings from
    the leaf up to the root (RFC 6962 section 2.1.1's audit path, with sums), and the root."""

    report_id: int
    asset_code: str
    leaf: Leaf
    index: int
    leaf_count: int
    path: tuple[ProofStep, ...]
    root: Root

    def to_json(self) -> dict:
        """The proof as a JSON-ready dict in the dfa-holder-proof/1 format, bytes as lowercase hex."""
        return {
            "format": PROOF_FORMAT,
            "report_id": self.report_id,
            "asset_code": self.asset_code,
            "leaf": {
                "account_id": self.leaf.account_id,
                "quantity": self.leaf.quantity,
                "nonce": self.leaf.nonce.hex(),
            },
            "index": self.index,
            "leaf_count": self.leaf_count,
            "path": [{"hash": step.hash.hex(), "sum": step.sum} for step in self.path],
            "root": {"hash": self.root.hash.hex(), "total": self.root.total, "leaf_count": self.root.leaf_count},
        }

    @classmethod
    def from_json(cls, data: dict) -> Self:
        """The proof a dfa-holder-proof/1 document holds, every field of the right JSON type and every
        hash 64 lowercase hex digits; raises `ProofMalformed` otherwise. Whether the numbers make a
        valid proof is `verify`'s question."""
        if not isinstance(data, dict) or data.get("format") != PROOF_FORMAT:
            raise ProofMalformed(f'not a {PROOF_FORMAT} document: its "format" must be "{PROOF_FORMAT}"')
        _, report_id, asset_code, leaf, index, leaf_count, path, root = _json_fields(
            data, ("format", "report_id", "asset_code", "leaf", "index", "leaf_count", "path", "root"), "the proof"
        )
        account_id, quantity, nonce = _json_fields(leaf, ("account_id", "quantity", "nonce"), "leaf")
        root_hash, total, root_leaf_count = _json_fields(root, ("hash", "total", "leaf_count"), "root")
        if not isinstance(asset_code, str):
            raise ProofMalformed("asset_code is not a string")
        if not isinstance(path, list):
            raise ProofMalformed("path is not a list")
        return cls(
            report_id=_integer(report_id, "report_id"),
            asset_code=asset_code,
            leaf=Leaf(
                account_id=_integer(account_id, "leaf.account_id"),
                quantity=_integer(quantity, "leaf.quantity"),
                nonce=_digest(nonce, "leaf.nonce"),
            ),
            index=_integer(index, "index"),
            leaf_count=_integer(leaf_count, "leaf_count"),
            path=tuple(_step(step, f"path[{position}]") for position, step in enumerate(path)),
            root=Root(
                hash=_digest(root_hash, "root.hash"),
                total=_integer(total, "root.total"),
                leaf_count=_integer(root_leaf_count, "root.leaf_count"),
            ),
        )


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying a proof; `reason` says why it failed and is empty when `ok`."""

    ok: bool
    reason: str


def leaf_nonce(secret: bytes, *, report_id: int, asset_code: str, account_id: int) -> bytes:
    """The nonce of a holder's leaf in one report's tree for one emission:
    HMAC-SHA256(secret, context_bytes || u64(account_id)).

    Unpredictable without the operator's secret, so the sibling hashes in another holder's proof
    cannot be matched against guessed (account, quantity) pairs; deterministic, so the same report
    always rebuilds the same tree. Raises ValueError for a secret shorter than 32 bytes or an
    argument outside the algorithm's ranges.
    """
    return leaf_nonces(secret, report_id=report_id, asset_code=asset_code)(account_id)


def leaf_nonces(secret: bytes, *, report_id: int, asset_code: str) -> Callable[[int], bytes]:
    """`leaf_nonce` for every account of one tree, with the key and the context absorbed once (RFC 2104's
    inner and outer states): the same bytes at half the cost, which a million holders notice.
    Raises ValueError as `leaf_nonce` does."""
    if len(secret) < SECRET_MIN_SIZE:
        raise ValueError(f"the nonce secret must be at least {SECRET_MIN_SIZE} bytes")
    block = (hashlib.sha256(secret).digest() if len(secret) > _SHA256_BLOCK else secret).ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + _context(report_id, asset_code))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def nonce(account_id: int) -> bytes:
        if not _is_integer_in(account_id, 1, SUM_LIMIT):
            raise ValueError(_ACCOUNT_OUT_OF_RANGE)
        digest = inner.copy()
        digest.update(_U64.pack(account_id))
        result = outer.copy()
        result.update(digest.digest())
        return result.digest()

    return nonce


def root_of(leaves: Iterable[Leaf], *, report_id: int, asset_code: str) -> Root:
    """The root of the tree over `leaves`, streamed: memory stays O(log n) however many holders.

    Raises ValueError (a caller's bug) when the leaves are not in strictly ascending account id
    order, a leaf is outside the algorithm's ranges, or the total reaches 2^63.
    """
    return _root(_fields(leaves), _context(report_id, asset_code))


def positions_root(
    positions: Iterable[tuple[int, int]], *, secret: bytes, report_id: int, asset_code: str
) -> Root:
    """`root_of` the leaves of (account id, quantity) positions, each with its `leaf_nonce` from `secret`,
    without a `Leaf` per holder. Raises ValueError as `root_of` and `leaf_nonce` do."""
    nonce = leaf_nonces(secret, report_id=report_id, asset_code=asset_code)
    return _root(((account_id, quantity, nonce(account_id)) for account_id, quantity in positions),
                 _context(report_id, asset_code))


def _root(fields: Iterable[tuple[int, int, bytes]], context: bytes) -> Root:
    top, count = _streamed_root(_leaf_nodes(fields, context))
    if top is None:
        return Root(hash=hashlib.sha256(_EMPTY + context).digest(), total=0, leaf_count=0)
    return Root(hash=top[0], total=top[1], leaf_count=count)


def inclusion_proof(leaves: Sequence[Leaf], index: int, *, report_id: int, asset_code: str) -> Proof:
    """The proof that `leaves[index]` is in the tree over `leaves`, with the root built from the
    tree's recursive definition (so it can be checked against `root_of`'s streamed one).

    Raises ValueError (a caller's bug) for an index outside the leaves and as `root_of` does.
    """
    context = _context(report_id, asset_code)
    nodes = list(_leaf_nodes(_fields(leaves), context))
    if not _is_integer_in(index, 0, len(nodes)):
        raise ValueError(f"index {index!r} is not a position among {len(nodes)} leaves")
    top, siblings = _root_and_path(nodes, index, 0, len(nodes))
    return Proof(
        report_id=report_id,
        asset_code=asset_code,
        leaf=leaves[index],
        index=index,
        leaf_count=len(nodes),
        path=tuple(ProofStep(hash=sibling[0], sum=sibling[1]) for sibling in siblings),
        root=Root(hash=top[0], total=top[1], leaf_count=len(nodes)),
    )


def verify(proof: Proof, *, root_hash: bytes | None = None, total: int | None = None) -> Verdict:
    """Whether the proof's path leads from its leaf to its root and, when the published `root_hash`
    and `total` are given, whether that root is the published one.

    Never raises, whatever numbers, bytes and strings the proof holds: the first thing wrong is the
    verdict's reason.
    """
    reason = _value_problem(proof) or _path_problem(proof) or _published_problem(proof.root, root_hash, total)
    return Verdict(ok=not reason, reason=reason)


def _is_integer_in(value: object, low: int, high: int) -> bool:
    return type(value) is int and low <= value < high


def _is_hash(value: object) -> bool:
    return type(value) is bytes and len(value) == HASH_SIZE


def _context_problem(report_id: object, asset_code: object) -> str:
    if not _is_integer_in(report_id, 1, 2**64):
        return "the report id is outside 1 .. 2^64-1"
    if not (isinstance(asset_code, str) and asset_code.isascii() and 1 <= len(asset_code) <= ASSET_CODE_MAX_LENGTH):
        return f"the asset code is not 1 to {ASSET_CODE_MAX_LENGTH} ASCII characters"
    return ""


def _context(report_id: int, asset_code: str) -> bytes:
    """context_bytes of the tree of one report for one emission; raises ValueError if out of range."""
    _require(_context_problem(report_id, asset_code))
    code = asset_code.encode("ascii")
    return _DOMAIN + _U64.pack(report_id) + bytes([len(code)]) + code


def _leaf_problem(account_id: object, quantity: object, nonce: object) -> str:
    if not _is_integer_in(account_id, 1, SUM_LIMIT):
        return _ACCOUNT_OUT_OF_RANGE
    if not _is_integer_in(quantity, 0, SUM_LIMIT):
        return "the quantity is outside 0 .. 2^63-1"
    if not _is_hash(nonce):
        return "the nonce is not 32 bytes"
    return ""


def _require(problem: str) -> None:
    if problem:
        raise ValueError(problem)


def _leaf_node(prefix: bytes, account_id: int, quantity: int, nonce: bytes) -> _Node:
    """The leaf's node; `prefix` is 0x00 || context_bytes."""
    return hashlib.sha256(prefix + _LEAF_FIELDS.pack(account_id, quantity, nonce)).digest(), quantity


def _inner(left: _Node, right: _Node) -> _Node:
    total = left[1] + right[1]
    if total >= SUM_LIMIT:
        raise ValueError("a subtree sum reaches 2^63")
    return hashlib.sha256(_INNER_FIELDS.pack(_INNER, left[0], left[1], right[0], right[1])).digest(), total


def _fields(leaves: Iterable[Leaf]) -> Iterator[tuple[int, int, bytes]]:
    return ((leaf.account_id, leaf.quantity, leaf.nonce) for leaf in leaves)


def _leaf_nodes(fields: Iterable[tuple[int, int, bytes]], context: bytes) -> Iterator[_Node]:
    """The nodes of the leaves given by their (account id, quantity, nonce), refusing leaves out of range
    or out of strictly ascending account id order. The checks are inlined: a run hashes millions."""
    prefix = _LEAF + context
    previous_account_id = 0
    for account_id, quantity, nonce in fields:
        if not (type(account_id) is int and type(quantity) is int and type(nonce) is bytes
                and previous_account_id < account_id < SUM_LIMIT and 0 <= quantity < SUM_LIMIT
                and len(nonce) == HASH_SIZE):
            _require(_leaf_problem(account_id, quantity, nonce))
            raise ValueError("leaves must be in strictly ascending account id order")
        previous_account_id = account_id
        yield _leaf_node(prefix, account_id, quantity, nonce)


def _streamed_root(nodes: Iterable[_Node]) -> tuple[_Node | None, int]:
    """The root node of the RFC 6962 tree over `nodes` (None if there are none) and their count.

    The stack holds the complete subtrees of the binary decomposition of the count so far: the
    n-th node completes as many subtrees as n has trailing zero bits. Folding the rest right to left at
    the end gives the RFC 6962 shape, whose left part is always the largest complete subtree.
    """
    stack: list[_Node] = []
    count = 0
    for count, node in enumerate(nodes, start=1):
        bits = count
        while not bits & 1:
            node = _inner(stack.pop(), node)
            bits >>= 1
        stack.append(node)
    if not stack:
        return None, 0
    top = stack.pop()
    while stack:
        top = _inner(stack.pop(), top)
    return top, count


def _split(size: int) -> int:
    """k of RFC 6962 section 2.1: the largest power of two smaller than `size` (> 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def _tree(nodes: list[_Node], low: int, high: int) -> _Node:
    """MTH(nodes[low:high]) of RFC 6962 section 2.1, by its recursive definition."""
    if high - low == 1:
        return nodes[low]
    middle = low + _split(high - low)
    return _inner(_tree(nodes, low, middle), _tree(nodes, middle, high))


def _root_and_path(nodes: list[_Node], index: int, low: int, high: int) -> tuple[_Node, list[_Node]]:
    """MTH(nodes[low:high]) and PATH(index - low, nodes[low:high]) of RFC 6962 section 2.1.1, the
    siblings ordered from the leaf up."""
    if high - low == 1:
        return nodes[low], []
    middle = low + _split(high - low)
    if index < middle:
        left, path = _root_and_path(nodes, index, low, middle)
        right = _tree(nodes, middle, high)
        path.append(right)
    else:
        left = _tree(nodes, low, middle)
        right, path = _root_and_path(nodes, index, middle, high)
        path.append(left)
    return _inner(left, right), path


def _value_problem(proof: Proof) -> str:
    """What puts one of the proof's values outside the algorithm's ranges, or "" (checked before any
    hashing, which relies on them)."""
    leaf = proof.leaf
    problem = _context_problem(proof.report_id, proof.asset_code) or _leaf_problem(
        leaf.account_id, leaf.quantity, leaf.nonce
    )
    if problem:
        return problem
    if not _is_integer_in(proof.leaf_count, 1, SUM_LIMIT) or proof.leaf_count != proof.root.leaf_count:
        return "the leaf count is not a positive count equal to the root's"
    if not _is_integer_in(proof.index, 0, proof.leaf_count):
        return f"the index is not a position among {proof.leaf_count} leaves"
    if not _is_hash(proof.root.hash) or not _is_integer_in(proof.root.total, 0, SUM_LIMIT):
        return "the root is not a 32-byte hash with a total in 0 .. 2^63-1"
    for step in proof.path:
        if not _is_hash(step.hash):
            return "a sibling hash on the path is not 32 bytes"
        # A negative sum would let a leaf claim more than its share of an unchanged total.
        if not _is_integer_in(step.sum, 0, SUM_LIMIT):
            return "a sibling sum on the path is outside 0 .. 2^63-1"
    return ""


def _path_problem(proof: Proof) -> str:
    """Whether the path leads from the leaf to the proof's root, or "". Left and right come from
    (index, leaf_count) as in RFC 9162 section 2.1.3.2, never from the proof."""
    node = _leaf_node(_LEAF + _context(proof.report_id, proof.asset_code), proof.leaf.account_id, proof.leaf.quantity,
                      proof.leaf.nonce)
    position, last = proof.index, proof.leaf_count - 1
    for step in proof.path:
        if last == 0:
            return f"the path is longer than a leaf at index {proof.index} of {proof.leaf_count} has"
        if node[1] + step.sum >= SUM_LIMIT:
            return "the sums along the path reach 2^63"
        sibling = (step.hash, step.sum)
        if position & 1 or position == last:
            node = _inner(sibling, node)
            while position and not position & 1:
                position, last = position >> 1, last >> 1
        else:
            node = _inner(node, sibling)
        position, last = position >> 1, last >> 1
    if last != 0:
        return f"the path is shorter than a leaf at index {proof.index} of {proof.leaf_count} has"
    if node[0] != proof.root.hash:
        return "the path does not lead to the root hash"
    if node[1] != proof.root.total:
        return "the sums along the path do not add up to the root's total"
    return ""


def _published_problem(root: Root, root_hash: bytes | None, total: int | None) -> str:
    if root_hash is not None and root.hash != root_hash:
        return "the root hash differs from the published one"
    if total is not None and root.total != total:
        return "the total differs from the published outstanding total"
    return ""


def _json_fields(data: object, names: tuple[str, ...], where: str) -> list:
    """The values of exactly the named fields of a JSON object, in order."""
    if not isinstance(data, dict):
        raise ProofMalformed(f"{where} is not a JSON object")
    missing = [name for name in names if name not in data]
    if missing:
        raise ProofMalformed(f"{where} lacks {', '.join(missing)}")
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ProofMalformed(f"{where} has unknown fields {', '.join(unknown)}")
    return [data[name] for name in names]


def _integer(value: object, where: str) -> int:
    if type(value) is not int:
        raise ProofMalformed(f"{where} is not an integer")
    return value


def _digest(value: object, where: str) -> bytes:
    if not (isinstance(value, str) and len(value) == 2 * HASH_SIZE and set(value) <= _HEX_DIGITS):
        raise ProofMalformed(f"{where} is not {2 * HASH_SIZE} lowercase hex digits")
    return bytes.fromhex(value)


def _step(data: object, where: str) -> ProofStep:
    step_hash, step_sum = _json_fields(data, ("hash", "sum"), where)
    return ProofStep(hash=_digest(step_hash, f"{where}.hash"), sum=_integer(step_sum, f"{where}.sum"))
