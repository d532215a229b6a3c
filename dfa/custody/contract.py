"""The permissioned token contract (contracts/DfaToken.vy), compiled from source by the vyper package."""

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from eth_utils import keccak, to_canonical_address, to_checksum_address

SOURCE = Path(__file__).resolve().parents[2] / "contracts" / "DfaToken.vy"

# Op kinds of `apply_batch`, as the contract numbers them.
MINT, BURN, MOVE, FORCED_MOVE, PAUSE, UNPAUSE = 1, 2, 3, 4, 5, 6
MAX_OPS = 256


@dataclass(frozen=True)
class CompiledContract:
    abi: list[dict[str, Any]]
    bytecode: bytes
    source_sha256: str


@functools.cache
def token_contract() -> CompiledContract:
    """Compile once per process (about half a second)."""
    import vyper  # imported lazily: only the processes that talk to a chain need the compiler

    source = SOURCE.read_text()
    output = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    return CompiledContract(
        abi=output["abi"],
        bytecode=bytes.fromhex(output["bytecode"].removeprefix("0x")),
        source_sha256=hashlib.sha256(source.encode()).hexdigest(),
    )


def created_address(sender: str, nonce: int) -> str:
    """The address of the contract that `sender`'s transaction with `nonce` deploys (CREATE)."""
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(sender), nonce]))[12:])
