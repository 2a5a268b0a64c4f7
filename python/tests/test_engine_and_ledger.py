"""The native engine and ledger helpers against independent computations:
the SPEC §3 formulas in plain Python floats, RFC 8785 from the `rfc8785`
package, RFC 6962 from hashlib."""

from __future__ import annotations

import hashlib
import json

import pytest
import rfc8785

import qunimbus
from qunimbus import _native


def spec_phi(eta, cv, rt, base=1000.0, baseline=0.95, threshold=0.02, cap=120.0):
    return base * (eta / baseline) * max(0.0, 1.0 - cv / threshold) * (min(rt, cap) / cap)


def test_the_reference_run_is_priced_to_the_bit():
    v = qunimbus.ValuationEngine().value(0.97, 0.015, 100.0, 1000.0)
    assert v["phi_qevf"] == 212.71929824561406 == spec_phi(0.97, 0.015, 100.0)
    assert v["price_multiplier"] == 1.2000000000000002
    assert v["market_value"] == v["phi_qevf"] * v["price_multiplier"]
    assert v["eph_price"] == v["phi_qevf"] / 1000.0
    assert v["coherence_within_threshold"] is True


@pytest.mark.parametrize("eta,cv,rt", [(0.0, 0.0, 0.0), (1.0, 0.019999, 120.0), (0.5, 0.03, 500.0), (0.123456789, 0.001, 7.25)])
def test_every_run_matches_the_formula(eta, cv, rt):
    assert qunimbus.ValuationEngine().value(eta, cv, rt, 1.0)["phi_qevf"] == spec_phi(eta, cv, rt)


def test_bad_parameters_and_inputs_name_themselves():
    with pytest.raises(ValueError, match="eta_baseline"):
        qunimbus.ValuationEngine(eta_baseline=0.0)
    with pytest.raises(ValueError, match="price_sensitivity"):
        qunimbus.ValuationEngine(price_sensitivity=float("nan"))
    engine = qunimbus.ValuationEngine()
    with pytest.raises(ValueError, match="eta_ent"):
        engine.value(1.5, 0.01, 1.0, 1.0)
    with pytest.raises(ValueError, match="eph_delivered"):
        engine.value(0.9, 0.01, 1.0, 0.0)
    with pytest.raises(ValueError, match="coherence_variance"):
        engine.value(0.9, float("inf"), 1.0, 1.0)


def jcs_hash(block: dict) -> str:
    content = {k: v for k, v in block.items() if k != "hash"}
    return hashlib.sha256(rfc8785.dumps(content)).hexdigest()


def test_block_hashes_are_rfc8785_sha256():
    genesis = json.loads(_native.genesis_block("2026-12-03T10:00:00.000001Z", ["ISO-27001", "GDPR"]))
    assert genesis["previous_hash"] == "0" * 64
    assert genesis["hash"] == jcs_hash(genesis) == qunimbus.block_hash(genesis)
    draft = {
        "timestamp": "2026-12-03T10:00:01.5Z",
        "kind": "valuation",
        "phi_qevf": 212.71929824561406,
        "eta_ent": 0.97,
        "compliance_attestations": {"GDPR": "verified", "ISO-27001": "pending"},
        "region": "EU",
    }
    block = json.loads(_native.seal_block(json.dumps(draft), 1, genesis["hash"]))
    assert block["hash"] == jcs_hash(block)
    leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(block)).digest()
    assert qunimbus.leaf_hash(block) == leaf
    report = qunimbus.verify_chain([genesis, block])
    assert report["ok"] and report["size"] == 2
    root = hashlib.sha256(b"\x01" + hashlib.sha256(b"\x00" + rfc8785.dumps(genesis)).digest() + leaf).digest()
    assert report["root"] == root


def test_a_changed_block_or_a_broken_link_is_named():
    genesis = json.loads(_native.genesis_block("2026-12-03T10:00:00.000001Z", ["ITAR"]))
    draft = {"timestamp": "2026-12-03T10:00:01Z", "kind": "valuation", "phi_qevf": 1.0, "eta_ent": 0.9,
             "compliance_attestations": {"ITAR": "verified"}}
    block = json.loads(_native.seal_block(json.dumps(draft), 1, genesis["hash"]))
    changed = dict(block, phi_qevf=2.0)
    report = qunimbus.verify_chain([genesis, changed])
    assert not report["ok"] and report["failure"]["index"] == 1, report
    tampered_genesis = dict(genesis, timestamp="2026-12-03T10:00:00.000002Z")
    assert qunimbus.verify_chain([tampered_genesis, block])["failure"]["index"] == 0
    with pytest.raises(qunimbus.VerificationError, match="genesis"):
        _native.seal_block(json.dumps(dict(draft, kind="genesis")), 1, genesis["hash"])
