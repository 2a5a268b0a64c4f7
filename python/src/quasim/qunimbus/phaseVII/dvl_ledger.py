"""The Decentralized Verification Ledger of the seed, built by the node's
ledger code (SPEC §4): RFC 8785 (JCS) hashes, the node's block rules, and a
verification that checks every block, genesis included, so a changed field
anywhere in :attr:`DVLLedger.chain` is found."""

from __future__ import annotations

import json
import math
import os
import secrets
from typing import Any, Iterable, Optional, Union

from qunimbus import _native

from ._time import now

#: The statuses a block may attest for a framework.
STATUSES = ("verified", "failed", "pending", "waived", "genesis")

_REQUIRED = ("index", "timestamp", "kind", "phi_qevf", "eta_ent", "compliance_attestations", "previous_hash", "hash")
_OPTIONAL = ("region", "run_id", "payload")


class DVLBlock:
    """One block; its attributes are the block's fields and may be changed
    (a changed block no longer verifies)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        for name in _REQUIRED:
            setattr(self, name, fields[name])
        for name in _OPTIONAL:
            setattr(self, name, fields.get(name))

    def to_dict(self) -> dict[str, Any]:
        """The block's JSON form, as the node serves it."""
        out = {name: getattr(self, name) for name in _REQUIRED}
        out.update({name: getattr(self, name) for name in _OPTIONAL if getattr(self, name) is not None})
        return out

    def __repr__(self) -> str:
        return f"DVLBlock(index={self.index}, kind={self.kind!r}, hash={self.hash[:12]}…)"


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


class DVLLedger:
    """A hash-chained ledger starting with its genesis block: in memory, or
    with ``path=`` in a SQLite file written by the node's storage (blocks,
    Merkle nodes and a checkpoint signed after every block), which
    ``qunimbus ledger verify --database-url sqlite:PATH --public-key
    PATH.vkey`` verifies. The file's signing key is ``PATH.key`` (0600),
    created with the file."""

    def __init__(
        self,
        compliance_frameworks: Optional[Iterable[str]] = None,
        path: Optional[Union[str, "os.PathLike[str]"]] = None,
    ) -> None:
        given = None if compliance_frameworks is None else list(compliance_frameworks)
        frameworks = list(_native.DEFAULT_FRAMEWORKS) if given is None else given
        if not frameworks or not all(isinstance(f, str) and f.strip() for f in frameworks):
            raise ValueError("compliance_frameworks must be a non-empty list of framework names")
        if len(set(frameworks)) != len(frameworks):
            raise ValueError(f"compliance_frameworks lists a framework twice: {frameworks}")
        self.path = None if path is None else os.fspath(path)
        self._file = None
        if self.path is None:
            self.compliance_frameworks = frameworks
            genesis = json.loads(_native.genesis_block(now(), frameworks))
            self.chain: list[DVLBlock] = [DVLBlock(genesis)]
        else:
            self._open(self.path, frameworks, given is not None)

    def _open(self, path: str, frameworks: list[str], frameworks_given: bool) -> None:
        key_path = path + ".key"
        existed = os.path.exists(path)
        if os.path.exists(key_path):
            with open(key_path) as f:
                signing_key = f.read().strip()
        elif existed:
            raise ValueError(f"{path} exists without its signing key {key_path}; it cannot be extended")
        else:
            signing_key = _native.new_signing_key(f"dvl.{secrets.token_hex(4)}", secrets.token_bytes(32))
            _write_private(key_path, signing_key)
            with open(path + ".vkey", "w") as f:
                f.write(_native.verifier_key(signing_key) + "\n")
        self._file = _native.SqliteLedger(path, frameworks, signing_key, now())
        self.chain = [DVLBlock(json.loads(text)) for text in self._file.blocks()]
        stored = list(self.chain[0].compliance_attestations)
        if frameworks_given and set(stored) != set(frameworks):
            self.close()
            raise ValueError(f"{path} attests {stored}, not the compliance_frameworks given {frameworks}")
        self.compliance_frameworks = frameworks if frameworks_given or not existed else stored

    @property
    def verifier_key(self) -> Optional[str]:
        """The published key of the file's checkpoints (``None`` in memory)."""
        if self.path is None:
            return None
        with open(self.path + ".key") as f:
            return _native.verifier_key(f.read())

    def checkpoint(self) -> Optional[str]:
        """The file's newest signed checkpoint note (``None`` in memory)."""
        return None if self._file is None else self._file.checkpoint()

    def close(self) -> None:
        """Closes the file (a ledger in memory has nothing to close)."""
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "DVLLedger":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def add_block(
        self,
        phi_qevf: float,
        eta_ent: float,
        compliance_attestations: Optional[dict[str, str]] = None,
    ) -> DVLBlock:
        """Appends a valuation block. Frameworks not named are ``pending``
        (an attestation is a claim the caller makes, never assumed)."""
        phi = _finite("phi_qevf", phi_qevf)
        eta = _finite("eta_ent", eta_ent)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta_ent must be between 0.0 and 1.0, got {eta_ent!r}")
        attestations = dict.fromkeys(self.compliance_frameworks, "pending")
        for framework, status in (compliance_attestations or {}).items():
            if framework not in attestations:
                raise ValueError(
                    f"compliance_attestations: {framework!r} is not one of this ledger's frameworks "
                    f"{self.compliance_frameworks}"
                )
            if status not in STATUSES[:-1]:
                raise ValueError(
                    f"compliance_attestations[{framework!r}] must be one of {', '.join(STATUSES[:-1])}, got {status!r}"
                )
            attestations[framework] = status
        return self.append("valuation", attestations, phi_qevf=phi, eta_ent=eta)

    def append(
        self,
        kind: str,
        attestations: dict[str, str],
        phi_qevf: Optional[float] = None,
        eta_ent: Optional[float] = None,
        region: Optional[str] = None,
        payload: Optional[dict[str, Any]] = None,
    ) -> DVLBlock:
        """Seals and appends a block of any kind the node writes (the
        Trust Kernel records its changes as ``health`` and ``override``
        blocks)."""
        draft: dict[str, Any] = {
            "timestamp": now(),
            "kind": kind,
            "phi_qevf": phi_qevf,
            "eta_ent": eta_ent,
            "compliance_attestations": attestations,
        }
        if region is not None:
            draft["region"] = region
        if payload is not None:
            draft["payload"] = payload
        text = json.dumps(draft, allow_nan=False)
        if self._file is not None:
            sealed = json.loads(self._file.append(text))
        else:
            sealed = json.loads(_native.seal_block(text, len(self.chain), self.chain[-1].hash))
        block = DVLBlock(sealed)
        self.chain.append(block)
        return block

    def verification(self) -> dict[str, Any]:
        """The full check: ``{"ok", "size", "root", "failure"}`` with the
        first bad block's index and reason, and the Merkle root (hex) of the
        verified prefix."""
        texts = []
        for position, block in enumerate(self.chain):
            try:
                texts.append(json.dumps(block.to_dict(), allow_nan=False))
            except (TypeError, ValueError) as e:
                return {"ok": False, "size": position, "root": None, "failure": {"index": position, "reason": str(e)}}
        report = _native.verify_chain(texts)
        report["root"] = report["root"].hex()
        return report

    def verify_chain(self) -> bool:
        """Whether every block's hash, link and index checks out."""
        return bool(self.verification()["ok"])

    def get_latest_block(self) -> DVLBlock:
        return self.chain[-1]

    def get_chain_summary(self) -> dict[str, Any]:
        latest = self.chain[-1]
        report = self.verification()
        return {
            "chain_length": len(self.chain),
            "is_valid": report["ok"],
            "first_bad_block": report["failure"],
            "merkle_root": report["root"],
            "latest_phi_qevf": latest.phi_qevf,
            "latest_eta_ent": latest.eta_ent,
            "latest_timestamp": latest.timestamp,
            "compliance_frameworks": list(self.compliance_frameworks),
            "genesis_hash": self.chain[0].hash,
            "latest_hash": latest.hash,
        }

    def export_for_grafana(self) -> list[dict[str, Any]]:
        """One flat row per block, as the node's Grafana export (epoch-ms
        ``time``, ``attestation_<framework>`` columns), plus the block's
        RFC 3339 ``timestamp``."""
        rows = []
        for block in self.chain:
            fields = block.to_dict()
            row = json.loads(_native.grafana_row(json.dumps(fields)))
            row["timestamp"] = fields["timestamp"]
            rows.append(row)
        return rows

    def get_attestation_history(self, framework: str) -> list[dict[str, Any]]:
        """Every block's status for ``framework`` (``ValueError`` for a
        framework this ledger does not attest)."""
        if framework not in self.compliance_frameworks:
            raise ValueError(f"{framework!r} is not one of this ledger's frameworks {self.compliance_frameworks}")
        return [
            {
                "block_index": b.index,
                "timestamp": b.timestamp,
                "attestation": b.compliance_attestations.get(framework),
                "phi_qevf": b.phi_qevf,
            }
            for b in self.chain
            if framework in b.compliance_attestations
        ]
