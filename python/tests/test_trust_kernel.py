"""The seed's TrustKernel by the node's rules: health from status changes,
computed trust unless overridden, MTBF from failures, every change a block,
compliance from the ledger and the Cedar policy in force."""

from __future__ import annotations

import pytest

from quasim.qunimbus.phaseVII import DVLLedger, TrustKernel
from qunimbus import _native

SIX = ["Americas", "EU", "MENA", "APAC", "Polar", "Orbit"]


def test_a_new_kernel_is_all_active_and_computes_full_trust():
    kernel = TrustKernel(regions=SIX, canary_percentage=0.05, mtbf_target_hours=120.0)
    status = kernel.get_region_status("Americas")
    assert status["region"] == "Americas" and status["status"] == "active"
    assert status["trust_score"] == 1.0 and status["trust_source"] == "computed"
    assert status["availability"] == 1.0 and status["failures"] == 0 and status["mtbf_hours"] is None
    mesh = kernel.get_orchestration_mesh_status()
    assert mesh["total_regions"] == 6 and mesh["active_regions"] == 6 and mesh["avg_trust_score"] == 1.0
    # A few microseconds of up time cannot show an MTBF of 120 h yet.
    assert mesh["mtbf_compliance"] is None
    assert set(mesh["region_status"]) == set(SIX)


def test_an_update_overrides_trust_clamped_and_reports_uptime():
    kernel = TrustKernel()
    result = kernel.update_region_status("EU", status="degraded", trust_score=0.8, uptime_hours=100.0)
    assert result["status"] == "degraded" and result["trust_score"] == 0.8
    assert result["trust_source"] == "override" and result["uptime_hours"] == 100.0
    assert kernel.update_region_status("Americas", "active", trust_score=1.5)["trust_score"] == 1.0
    assert kernel.update_region_status("Americas", "active", trust_score=-0.5)["trust_score"] == 0.0
    assert kernel.region_status["EU"]["status"] == "degraded"


def test_a_failure_lowers_availability_and_gives_a_measured_mtbf():
    kernel = TrustKernel(regions=["Americas", "EU", "APAC"])
    kernel.update_region_status("EU", "active", uptime_hours=10.0)
    down = kernel.update_region_status("EU", "down")
    assert down["failures"] == 1 and down["uptime_hours"] == 0.0
    assert down["mtbf_hours"] == pytest.approx(10.0, rel=1e-6)
    back = kernel.update_region_status("EU", "active")
    assert back["failures"] == 1 and back["trust_score"] < 1.0 and back["trust_source"] == "computed"
    mesh = kernel.get_orchestration_mesh_status()
    assert mesh["mesh_mtbf_hours"] is not None and mesh["mtbf_compliance"] is False
    with pytest.raises(ValueError, match="uptime_hours"):
        kernel.update_region_status("EU", "active", uptime_hours=50.0)


def test_mtbf_compliance_from_reported_uptime():
    kernel = TrustKernel()
    for region in kernel.regions:
        kernel.update_region_status(region, "active", uptime_hours=125.0)
    mesh = kernel.get_orchestration_mesh_status()
    assert mesh["mtbf_compliance"] is True and mesh["avg_uptime_hours"] >= 120.0


def test_every_change_is_a_block_and_tampering_fails_iso_27001():
    ledger = DVLLedger()
    kernel = TrustKernel(ledger=ledger)
    kernel.update_region_status("MENA", "down", reason="maintenance window")
    kernel.update_region_status("MENA", "active")
    kinds = [b.kind for b in ledger.chain[1:]]
    assert kinds == ["health", "health"]
    assert ledger.chain[1].payload["event"] == "failure" and ledger.chain[1].region == "MENA"
    checks = kernel.verify_compliance_continuous()
    assert checks["all_compliant"] is True
    assert checks["compliance_checks"]["ISO-27001"]["change_blocks"] == 2
    ledger.chain[1].payload["status"] = "active"
    checks = kernel.verify_compliance_continuous()
    assert checks["compliance_checks"]["ISO-27001"]["compliant"] is False
    assert checks["compliance_checks"]["ISO-27001"]["first_bad_block"]["index"] == 1
    assert checks["all_compliant"] is False


def test_itar_and_gdpr_are_judged_from_the_policy_in_force():
    kernel = TrustKernel()
    checks = kernel.verify_compliance_continuous()["compliance_checks"]
    assert checks["ITAR"]["accepting_regions"] == ["Americas"] and checks["ITAR"]["compliant"]
    assert checks["GDPR"]["accepting_regions"] == ["EU"] and checks["GDPR"]["compliant"]
    assert kernel.check_record("itar", "EU")["allowed"] is False
    assert kernel.check_record("itar", "Americas")["allowed"] is True
    checks = kernel.verify_compliance_continuous()["compliance_checks"]
    assert (checks["ITAR"]["records_accepted"], checks["ITAR"]["records_rejected"]) == (1, 1)

    widened = _native.DEFAULT_POLICY.replace('!(["Americas"].contains(resource.region))', '!(["Americas", "EU"].contains(resource.region))')
    assert widened != _native.DEFAULT_POLICY
    loose = TrustKernel(policy=widened)
    itar = loose.verify_compliance_continuous()["compliance_checks"]["ITAR"]
    assert itar["compliant"] is False and itar["accepting_outside_permitted"] == ["EU"]
    with pytest.raises(ValueError, match="policy"):
        TrustKernel(policy="permit (principal, action resource);")


def test_canary_plans_follow_the_node_phases():
    kernel = TrustKernel()
    plan = kernel.configure_canary_deployment()
    assert plan["canary_region"] == "Americas" and plan["canary_percentage"] == 0.05
    assert plan["deployment_strategy"] == "blue-green"
    assert plan["rollout_regions"] == ["EU", "APAC", "MENA", "Polar", "Orbit"]
    assert [p["percent"] for p in plan["phases"]] == [5, 25, 60, 100]
    eu = kernel.configure_canary_deployment(target_region="EU")
    assert eu["phases"][0]["regions"] == ["EU"] and "Americas" in eu["rollout_regions"]
    three = TrustKernel(regions=["Americas", "EU", "APAC"], canary_percentage=0.1).configure_canary_deployment()
    assert [p["percent"] for p in three["phases"]] == [10, 25, 100]
    with pytest.raises(ValueError, match="Atlantis"):
        kernel.configure_canary_deployment(target_region="Atlantis")


def test_bad_input_is_refused_by_name_and_changes_nothing():
    kernel = TrustKernel()
    before = len(kernel.ledger.chain)
    with pytest.raises(ValueError, match="Atlantis"):
        kernel.update_region_status("Atlantis", "active")
    with pytest.raises(ValueError, match="status"):
        kernel.update_region_status("EU", "sleeping")
    with pytest.raises(ValueError, match="trust_score"):
        kernel.update_region_status("EU", "active", trust_score=float("nan"))
    with pytest.raises(ValueError, match="uptime_hours"):
        kernel.update_region_status("EU", "down", uptime_hours=3.0)
    assert len(kernel.ledger.chain) == before and kernel.get_region_status("EU")["status"] == "active"
    for bad in (dict(regions=[]), dict(regions=["EU", "EU"]), dict(canary_percentage=0.0), dict(mtbf_target_hours=-1)):
        with pytest.raises(ValueError):
            TrustKernel(**bad)
    metrics = kernel.get_metrics()
    assert metrics["regions"] == TrustKernel.REGIONS and "mesh_status" in metrics and "compliance_status" in metrics
