"""DVLLedger(path=…): a SQLite file written by the node's storage, which the
node's own `qunimbus ledger verify` accepts, signature included, and whose
changed bytes it (and a reopened DVLLedger) refuses, naming the block."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess

import pytest

from quasim.qunimbus.phaseVII import DVLLedger
from qunimbus import verify_checkpoint


def ledger_verify(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.environ["QUNIMBUS_BIN"], "ledger", "verify", "--database-url", f"sqlite:{path}",
         "--public-key", path + ".vkey"],
        capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("QUNIMBUS_")},
    )


def test_a_ledger_file_verifies_with_the_node_and_survives_reopening(tmp_path):
    path = str(tmp_path / "dvl.db")
    with DVLLedger(compliance_frameworks=["ISO-27001", "GDPR"], path=path) as ledger:
        for i in range(5):
            ledger.add_block(phi_qevf=100.0 + i, eta_ent=0.9, compliance_attestations={"GDPR": "verified"})
        assert ledger.verify_chain()
        note = ledger.checkpoint()
        assert verify_checkpoint(note, ledger.verifier_key)["size"] == 6
        hashes = [b.hash for b in ledger.chain]
    assert stat.S_IMODE(os.stat(path + ".key").st_mode) == 0o600

    checked = ledger_verify(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "signature verified" in checked.stdout and "ledger OK" in checked.stdout

    with DVLLedger(path=path) as reopened:
        assert [b.hash for b in reopened.chain] == hashes
        assert sorted(reopened.compliance_frameworks) == ["GDPR", "ISO-27001"]
        reopened.add_block(phi_qevf=7.0, eta_ent=0.5)
        assert len(reopened.chain) == 7 and reopened.verify_chain()
    assert ledger_verify(path).returncode == 0

    with pytest.raises(ValueError, match="ITAR"):
        DVLLedger(compliance_frameworks=["ITAR"], path=path)


def test_a_changed_byte_in_the_file_is_named(tmp_path):
    path = str(tmp_path / "dvl.db")
    with DVLLedger(path=path) as ledger:
        ledger.add_block(phi_qevf=1000.0, eta_ent=0.97)
        ledger.add_block(phi_qevf=1050.0, eta_ent=0.98)
    with sqlite3.connect(path) as db:
        assert db.execute("UPDATE blocks SET phi_qevf = 2000.0 WHERE idx = 1").rowcount == 1
    checked = ledger_verify(path)
    assert checked.returncode == 1, checked.stdout
    assert "FAILED at block 1" in checked.stdout
    with DVLLedger(path=path) as reopened:
        assert reopened.verify_chain() is False
        assert reopened.verification()["failure"]["index"] == 1


def test_a_file_without_its_key_is_not_extended(tmp_path):
    path = str(tmp_path / "dvl.db")
    DVLLedger(path=path).close()
    os.remove(path + ".key")
    with pytest.raises(ValueError, match="signing key"):
        DVLLedger(path=path)
