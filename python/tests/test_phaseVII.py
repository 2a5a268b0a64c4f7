"""The seed's Phase VII API (quasim.qunimbus.phaseVII): every documented
call, with real figures, and a ledger whose every block is checked."""

from __future__ import annotations

import hashlib
import math

import pytest
import rfc8785

from quasim.qunimbus.phaseVII import DVLLedger, ValuationEngine

SEED_FRAMEWORKS = ["DO-178C", "NIST-800-53", "CMMC-2.0", "ISO-27001", "ITAR", "GDPR"]


# ---- ValuationEngine ---------------------------------------------------------


def test_the_seed_valuation_example_prices_the_reference_run():
    engine = ValuationEngine(base_phi_value=1000.0, eta_baseline=0.95, coherence_variance_threshold=0.02)
    phi = engine.calculate_phi_qevf(eta_ent=0.97, coherence_variance=0.015, runtime_hours=100.0)
    assert phi == 212.71929824561406
    metrics = engine.map_eta_to_price_metrics(eta_ent=0.97)
    assert metrics["phi_qevf"] == phi
    assert metrics["eta_ent"] == 0.97 and metrics["coherence_variance"] == 0.015
    assert metrics["eph_price"] == phi / 1000.0
    assert metrics["coherence_within_threshold"] is True
    assert metrics["price_multiplier"] == 1.2000000000000002
    assert metrics["market_value"] == phi * metrics["price_multiplier"]


def test_the_coherence_penalty_and_runtime_cap_follow_the_formula():
    engine = ValuationEngine()
    low = engine.calculate_phi_qevf(0.97, 0.01, 100.0)
    high = engine.calculate_phi_qevf(0.97, 0.019, 100.0)
    assert low > high > 0
    assert engine.calculate_phi_qevf(0.97, 0.02, 100.0) == 0.0
    assert engine.calculate_phi_qevf(0.97, 0.015, 500.0) == engine.calculate_phi_qevf(0.97, 0.015, 120.0)
    over = engine.map_eta_to_price_metrics(0.97, coherence_variance=0.025)
    assert over["coherence_within_threshold"] is False and over["phi_qevf"] == 0.0


def test_history_is_bounded_summarised_and_reset():
    engine = ValuationEngine()
    assert engine.get_valuation_metrics()["avg_phi_qevf"] is None
    etas = [0.5 + i * 0.0004 for i in range(1100)]
    for eta in etas:
        engine.map_eta_to_price_metrics(eta_ent=eta)
    assert len(engine.valuation_history) == 1000
    assert engine.valuation_history[0]["eta_ent"] == etas[100]
    kept = [r["phi_qevf"] for r in engine.valuation_history]
    metrics = engine.get_valuation_metrics()
    assert metrics["history_records"] == 1000
    assert metrics["base_phi_value"] == 1000.0 and metrics["eta_baseline"] == 0.95
    assert metrics["coherence_variance_threshold"] == 0.02
    assert math.isclose(metrics["avg_phi_qevf"], sum(kept) / len(kept), rel_tol=1e-12)
    assert metrics["min_phi_qevf"] == min(kept) and metrics["max_phi_qevf"] == max(kept)
    assert metrics["p50_phi_qevf"] == sorted(kept)[499]
    engine.reset_history()
    assert engine.valuation_history == [] and engine.get_valuation_metrics()["history_records"] == 0


def test_bad_parameters_and_inputs_raise_value_errors_naming_them():
    with pytest.raises(ValueError, match="eta_baseline"):
        ValuationEngine(eta_baseline=0.0)
    with pytest.raises(ValueError, match="coherence_variance_threshold"):
        ValuationEngine(coherence_variance_threshold=-0.02)
    engine = ValuationEngine()
    with pytest.raises(ValueError, match="eta_ent"):
        engine.map_eta_to_price_metrics(eta_ent=1.2)
    with pytest.raises(ValueError, match="runtime_hours"):
        engine.calculate_phi_qevf(0.9, 0.01, -1.0)
    assert engine.valuation_history == []


# ---- DVLLedger ---------------------------------------------------------------


def jcs_hash(block) -> str:
    content = {k: v for k, v in block.to_dict().items() if k != "hash"}
    return hashlib.sha256(rfc8785.dumps(content)).hexdigest()


def test_the_seed_ledger_example():
    ledger = DVLLedger(compliance_frameworks=SEED_FRAMEWORKS)
    block = ledger.add_block(
        phi_qevf=1000.0, eta_ent=0.97, compliance_attestations={"DO-178C": "verified", "ISO-27001": "verified"}
    )
    assert block.index == 1 and block.phi_qevf == 1000.0 and block.eta_ent == 0.97
    assert block.previous_hash == ledger.chain[0].hash
    assert block.compliance_attestations["DO-178C"] == "verified"
    assert block.compliance_attestations["ITAR"] == "pending"
    assert ledger.verify_chain() is True
    summary = ledger.get_chain_summary()
    assert summary["chain_length"] == 2 and summary["is_valid"] is True
    assert summary["latest_phi_qevf"] == 1000.0 and summary["latest_eta_ent"] == 0.97
    assert summary["compliance_frameworks"] == SEED_FRAMEWORKS
    assert summary["genesis_hash"] == ledger.chain[0].hash and summary["latest_hash"] == block.hash
    assert ledger.get_latest_block() is block


def test_every_hash_is_rfc8785_and_the_genesis_is_a_real_block():
    ledger = DVLLedger()
    assert ledger.compliance_frameworks == SEED_FRAMEWORKS
    genesis = ledger.chain[0]
    assert genesis.index == 0 and genesis.kind == "genesis" and genesis.previous_hash == "0" * 64
    assert set(genesis.compliance_attestations.values()) == {"genesis"}
    for i in range(3):
        ledger.add_block(phi_qevf=100.0 * i, eta_ent=0.9)
    assert all(b.hash == jcs_hash(b) for b in ledger.chain)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: setattr(c[1], "phi_qevf", 2000.0),
        lambda c: setattr(c[0], "timestamp", "2020-01-01T00:00:00.000000Z"),
        lambda c: c[0].compliance_attestations.update({"ITAR": "verified"}),
        lambda c: setattr(c[2], "previous_hash", c[0].hash),
        lambda c: setattr(c[2], "index", 7),
        lambda c: setattr(c[1], "phi_qevf", float("nan")),
        lambda c: setattr(c[1], "eta_ent", "0.97"),
        lambda c: c.pop(1),
    ],
)
def test_any_tampering_fails_verification(tamper):
    ledger = DVLLedger()
    ledger.add_block(phi_qevf=1000.0, eta_ent=0.97)
    ledger.add_block(phi_qevf=1050.0, eta_ent=0.98)
    assert ledger.verify_chain()
    tamper(ledger.chain)
    assert ledger.verify_chain() is False
    assert ledger.get_chain_summary()["is_valid"] is False
    assert ledger.get_chain_summary()["first_bad_block"]["index"] in (0, 1, 2)


def test_genesis_tampering_is_named_block_0():
    ledger = DVLLedger()
    ledger.chain[0].compliance_attestations["GDPR"] = "verified"
    failure = ledger.verification()["failure"]
    assert failure["index"] == 0, failure


def test_export_for_grafana_and_attestation_history():
    ledger = DVLLedger()
    ledger.add_block(phi_qevf=1000.0, eta_ent=0.97, compliance_attestations={"ISO-27001": "verified"})
    ledger.add_block(phi_qevf=1050.0, eta_ent=0.98, compliance_attestations={"ISO-27001": "failed"})
    rows = ledger.export_for_grafana()
    assert len(rows) == 3
    assert [r["hash"] for r in rows] == [b.hash for b in ledger.chain]
    assert all(isinstance(r["time"], int) and "timestamp" in r for r in rows)
    assert rows[1]["attestation_ISO-27001"] == "verified" and rows[1]["phi_qevf"] == 1000.0
    history = ledger.get_attestation_history("ISO-27001")
    assert [h["attestation"] for h in history] == ["genesis", "verified", "failed"]
    assert [h["block_index"] for h in history] == [0, 1, 2]
    with pytest.raises(ValueError, match="SOC-2"):
        ledger.get_attestation_history("SOC-2")


def test_bad_blocks_are_refused_and_change_nothing():
    ledger = DVLLedger(compliance_frameworks=["ISO-27001", "GDPR"])
    assert len(ledger.chain[0].compliance_attestations) == 2
    for bad in [
        dict(phi_qevf=float("inf"), eta_ent=0.9),
        dict(phi_qevf="1000", eta_ent=0.9),
        dict(phi_qevf=1.0, eta_ent=1.5),
        dict(phi_qevf=1.0, eta_ent=0.9, compliance_attestations={"ITAR": "verified"}),
        dict(phi_qevf=1.0, eta_ent=0.9, compliance_attestations={"GDPR": "ok"}),
    ]:
        with pytest.raises(ValueError):
            ledger.add_block(**bad)
    assert len(ledger.chain) == 1 and ledger.verify_chain()
    with pytest.raises(ValueError):
        DVLLedger(compliance_frameworks=[])
