"""Holder trees: each report fixes, per emission, a Merkle-sum tree over its holders' positions whose root
commits to the units held here; a holder's inclusion proof is rebuilt from the leaves the report stored
(see docs/holder-proofs.md for the algorithm a holder verifies with)."""

import hashlib
import hmac
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.service import emissions as issuance_emissions
from dfa.ledger import service as ledger
from dfa.platform.errors import invariant
from dfa.reconciliation import errors, merkle
from dfa.reconciliation.models import HolderTree, Report
from dfa.reconciliation.repository import reports as repository


def nonce_key(secret_key: bytes) -> bytes:
    """The key leaf nonces are derived with: the operator's secret, narrowed to this one purpose."""
    return hmac.new(secret_key, b"dfa-holder-proof-nonces", hashlib.sha256).digest()


def _leaves(rows: Iterable[tuple[int, int]], *, key: bytes, report_id: int, asset_code: str) -> list[merkle.Leaf]:
    nonce = merkle.leaf_nonces(key, report_id=report_id, asset_code=asset_code)
    return [merkle.Leaf(account_id, quantity, nonce(account_id)) for account_id, quantity in rows]


@dataclass(frozen=True)
class FixedTree:
    asset_id: int
    asset_code: str
    root: merkle.Root


async def fix_trees(
    session: AsyncSession, *, report_id: int, assets: dict[int, str], secret_key: bytes
) -> list[FixedTree]:
    """Store every holder position of the emissions `assets` (asset id -> code) as the report's leaves and
    return each emission's root (to `record_roots` once the report is written); an emission nobody holds
    gets the empty tree's root."""
    key = nonce_key(secret_key)
    roots: dict[int, merkle.Root] = {}
    current: int | None = None
    positions: list[tuple[int, int]] = []

    def close(asset_id: int) -> None:
        roots[asset_id] = merkle.positions_root(positions, secret=key, report_id=report_id, asset_code=assets[asset_id])
        positions.clear()

    # Holdings arrive ordered by asset: each emission's tree is finished, and its positions let go of,
    # before the next one's start, so memory follows the largest emission, not the whole platform.
    async for chunk in ledger.stream_holdings(session, asset_ids=list(assets)):
        await repository.copy_leaves(
            session, records=[(report_id, h.asset_id, h.account_id, h.owner_party_id, h.quantity) for h in chunk]
        )
        for holding in chunk:
            if holding.asset_id != current:
                if current is not None:
                    close(current)
                current = holding.asset_id
            positions.append((holding.account_id, holding.quantity))
    if current is not None:
        close(current)
    for asset_id in assets.keys() - roots.keys():
        close(asset_id)  # nobody holds it: the empty tree
    trees = [FixedTree(asset_id, code, roots[asset_id]) for asset_id, code in assets.items()]
    return trees


async def record_roots(session: AsyncSession, *, report_id: int, trees: list[FixedTree]) -> None:
    """Store the roots beside the report that publishes them (written after it)."""
    await repository.insert_trees(session, rows=[
        {"report_id": report_id, "asset_id": t.asset_id, "root_hash": t.root.hash, "total_units": t.root.total,
         "leaf_count": t.root.leaf_count}
        for t in trees
    ])


async def holder_proof(
    session: AsyncSession, *, report: Report, asset_code: str, party_id: uuid.UUID, secret_key: bytes
) -> merkle.Proof:
    """The party's inclusion proof in the emission's tree of `report`.

    Raises EmissionNotFound, ProofNotFound.
    """
    emission = await issuance_emissions.get_emission(session, asset_code)
    tree = await repository.get_tree(session, report_id=report.id, asset_id=emission.asset_id)
    if tree is None:
        raise errors.ProofNotFound(f"report {report.id} fixed no holder tree for {asset_code}")
    rows = await repository.tree_leaves(session, report_id=report.id, asset_id=emission.asset_id)
    index = next((i for i, row in enumerate(rows) if row.owner_party_id == party_id), None)
    if index is None:
        raise errors.ProofNotFound(f"the holder had no units of {asset_code} when report {report.id} was written")
    leaves = _leaves(((r.account_id, r.quantity) for r in rows), key=nonce_key(secret_key), report_id=report.id,
                     asset_code=asset_code)
    proof = merkle.inclusion_proof(leaves, index, report_id=report.id, asset_code=asset_code)
    invariant(proof.root.hash == tree.root_hash and proof.root.total == tree.total_units,
              f"the stored leaves of report {report.id} no longer give its {asset_code} root")
    return proof


async def trees_of(session: AsyncSession, *, asset_code: str, limit: int) -> list[tuple[HolderTree, Report]]:
    """The emission's published roots, newest report first. Raises EmissionNotFound."""
    emission = await issuance_emissions.get_emission(session, asset_code)
    return await repository.latest_trees(session, asset_id=emission.asset_id, limit=limit)
