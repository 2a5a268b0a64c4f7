"""QuNimbus for Python.

- :class:`ValuationEngine`: the node's valuation engine (SPEC §3), native,
  so a price computed here is the node's to the last bit.
- Ledger checks with the node's own code: :func:`block_hash`,
  :func:`leaf_hash`, :func:`verify_chain`, :func:`verify_inclusion`,
  :func:`verify_consistency`, :func:`verify_checkpoint`.
- :class:`Client`: a node's HTTP API with typed errors (:mod:`qunimbus.errors`).

The seed's Phase VII API is :mod:`quasim.qunimbus.phaseVII`.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Iterable, Mapping, Union

from . import _native
from ._native import DEFAULT_FRAMEWORKS, GENESIS_PREVIOUS_HASH, ValuationEngine, VerificationError, phi_stats
from .client import Client
from .errors import ApiError, QunimbusError, TransportError

Block = Union[Mapping[str, Any], str]
HashLike = Union[bytes, str]

__all__ = [
    "ApiError",
    "Client",
    "DEFAULT_FRAMEWORKS",
    "GENESIS_PREVIOUS_HASH",
    "QunimbusError",
    "TransportError",
    "ValuationEngine",
    "VerificationError",
    "block_hash",
    "leaf_hash",
    "phi_stats",
    "verify_chain",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]


def _text(block: Block) -> str:
    return block if isinstance(block, str) else json.dumps(dict(block), allow_nan=False)


def _hash(value: HashLike) -> bytes:
    """A 32-byte hash given as bytes, or as base64 the way the node serves it."""
    return base64.b64decode(value, validate=True) if isinstance(value, str) else bytes(value)


def block_hash(block: Block) -> str:
    """``hex(SHA-256(JCS(block without "hash")))`` (SPEC §4)."""
    return _native.block_hash(_text(block))


def leaf_hash(block: Block) -> bytes:
    """The block's RFC 6962 leaf hash (JCS bytes of the whole block)."""
    return _native.leaf_hash(_text(block))


def verify_chain(blocks: Iterable[Block]) -> dict[str, Any]:
    """Verifies blocks in index order as the node does, genesis included:
    ``{"ok", "size", "root", "failure"}`` (the first bad block's index and reason)."""
    return _native.verify_chain([_text(b) for b in blocks])


def verify_inclusion(index: int, size: int, leaf: HashLike, proof: Iterable[HashLike], root: HashLike) -> None:
    """Checks an RFC 6962 inclusion proof; raises :class:`VerificationError`."""
    _native.verify_inclusion(index, size, _hash(leaf), [_hash(h) for h in proof], _hash(root))


def verify_consistency(
    first: int, second: int, first_root: HashLike, second_root: HashLike, proof: Iterable[HashLike]
) -> None:
    """Checks an RFC 6962 consistency proof; raises :class:`VerificationError`."""
    _native.verify_consistency(first, second, _hash(first_root), _hash(second_root), [_hash(h) for h in proof])


def verify_checkpoint(note: str, verifier_key: str) -> dict[str, Any]:
    """Verifies a signed checkpoint note against the published verifier key;
    returns ``{"origin", "size", "root"}``; raises :class:`VerificationError`."""
    return _native.verify_checkpoint(note, verifier_key)
