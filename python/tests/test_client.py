"""`qunimbus.Client` against a real node: exact figures, typed errors, and
proofs checked here with the node's published key."""

from __future__ import annotations

import base64
import time

import pytest

import qunimbus
from qunimbus import errors


def run(run_id: str, **over):
    return {"run_id": run_id, "region": "EU", "eta_ent": 0.97, "coherence_variance": 0.015,
            "runtime_hours": 100.0, "eph_delivered": 1000.0, **over}


def test_ingest_is_priced_by_the_same_engine(node):
    answer = node.ingest.ingest(run("py-ref-1"))
    expected = qunimbus.ValuationEngine().value(0.97, 0.015, 100.0, 1000.0)
    assert answer["phi_qevf"] == expected["phi_qevf"] == 212.71929824561406
    stored = node.anonymous.valuation("py-ref-1")
    assert stored["phi_qevf"] == expected["phi_qevf"]
    batch = node.ingest.ingest_batch([run(f"py-batch-{i}", eta_ent=0.9 + i / 100) for i in range(5)])
    assert batch["accepted"] == 5


def test_errors_are_typed_and_carry_the_node_code_and_field(node):
    with pytest.raises(errors.Unprocessable) as bad:
        node.ingest.ingest(run("py-bad", eta_ent=1.5))
    assert bad.value.status == 422 and bad.value.field == "eta_ent" and bad.value.code == "out_of_range"
    with pytest.raises(errors.Unauthorized):
        node.anonymous.ingest(run("py-anon"))
    with pytest.raises(errors.Forbidden):
        node.ingest.start_rollout("v-py")
    with pytest.raises(errors.NotFound):
        node.anonymous.valuation("no-such-run")
    with pytest.raises(errors.Unprocessable) as batch:
        node.ingest.ingest_batch([run("py-b-ok"), run("py-b-bad", runtime_hours=-1)])
    assert [item["index"] for item in batch.value.items] == [1]
    with pytest.raises(errors.TransportError):
        qunimbus.Client("http://127.0.0.1:9", timeout=2).ledger()
    with pytest.raises(ValueError, match="url"):
        qunimbus.Client("node.example")


def wait_for_checkpoint(client, size):
    deadline = time.monotonic() + 20
    while True:
        try:
            note = client.checkpoint()
            if int(note.splitlines()[1]) >= size:
                return note
        except errors.NotFound:
            pass
        assert time.monotonic() < deadline, f"no checkpoint of size {size}"
        time.sleep(0.05)


def test_blocks_are_proved_here_with_the_published_key(node):
    node.ingest.ingest(run("py-proof-1"))
    length = node.anonymous.ledger()["chain_length"]
    note = wait_for_checkpoint(node.anonymous, length)
    key = node.anonymous.public_key()
    checkpoint = qunimbus.verify_checkpoint(note, key)
    assert checkpoint["size"] >= length
    proved = node.anonymous.prove_block(length - 1, key)
    assert proved["size"] >= length

    tampered = note.replace(note.splitlines()[1], str(int(note.splitlines()[1]) + 1), 1)
    with pytest.raises(qunimbus.VerificationError):
        qunimbus.verify_checkpoint(tampered, key)
    other = "other.example+deadbeef+" + base64.b64encode(b"\x01" + bytes(32)).decode()
    with pytest.raises(qunimbus.VerificationError):
        qunimbus.verify_checkpoint(note, other)

    proof = node.anonymous.inclusion_proof(0, checkpoint["size"])
    genesis = node.anonymous.block(0)
    qunimbus.verify_inclusion(0, checkpoint["size"], qunimbus.leaf_hash(genesis), proof["hashes"], checkpoint["root"])
    if proof["hashes"]:
        wrong = [base64.b64encode(bytes(32)).decode()] + proof["hashes"][1:]
        with pytest.raises(qunimbus.VerificationError):
            qunimbus.verify_inclusion(0, checkpoint["size"], qunimbus.leaf_hash(genesis), wrong, checkpoint["root"])


def test_consistency_between_two_checkpoints_verifies(node):
    key = node.anonymous.public_key()
    first = qunimbus.verify_checkpoint(wait_for_checkpoint(node.anonymous, 1), key)
    node.ingest.ingest_batch([run(f"py-grow-{i}") for i in range(7)])
    second_note = wait_for_checkpoint(node.anonymous, first["size"] + 7)
    second = qunimbus.verify_checkpoint(second_note, key)
    proof = node.anonymous.consistency_proof(first["size"], second["size"])
    qunimbus.verify_consistency(first["size"], second["size"], first["root"], second["root"], proof["hashes"])
    with pytest.raises(qunimbus.VerificationError):
        qunimbus.verify_consistency(first["size"], second["size"], second["root"], second["root"], proof["hashes"])


def test_a_backup_through_the_client(node):
    taken = node.admin.backup()
    assert taken["manifest"]["tree_size"] >= 1 and taken["bytes"] > 0
