"""The Trust Kernel of the seed, by the node's rules (SPEC §6): a region's
status changes are its health events, availability, uptime and MTBF are
computed from them by the node's trust code, trust is computed unless an
operator overrides it, every change is a block of the kernel's ledger, and
compliance is judged from evidence (the ledger, the Cedar policy in force,
the records checked against it), never assumed."""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

from qunimbus import _native

from ._time import now_us, rfc3339
from .dvl_ledger import DVLLedger

#: A region's statuses; ``down`` and ``draining`` do not serve.
STATUSES = ("active", "degraded", "down", "draining")
#: The frameworks judged continuously, the data class each governs and
#: where its records may be processed (SPEC §6 defaults).
RESTRICTED = {"ITAR": ("itar", ("Americas",)), "GDPR": ("personal", ("EU",))}
MICROS_PER_HOUR = 3_600_000_000


def _serving(status: str) -> bool:
    return status not in ("down", "draining")


class _Region:
    def __init__(self, tracked_since: int) -> None:
        self.status = "active"
        self.events: list[tuple[str, int]] = []
        self.tracked_since = tracked_since
        self.override: Optional[float] = None


class TrustKernel:
    """Regions, trust, MTBF, canary plans and continuous compliance."""

    REGIONS = ["Americas", "EU", "MENA", "APAC", "Polar", "Orbit"]

    def __init__(
        self,
        regions: Optional[Iterable[str]] = None,
        canary_percentage: float = 0.05,
        mtbf_target_hours: float = 120.0,
        window_hours: float = 720.0,
        policy: Optional[str] = None,
        ledger: Optional[DVLLedger] = None,
    ) -> None:
        names = list(self.REGIONS if regions is None else regions)
        if not names or not all(isinstance(r, str) and r.strip() for r in names) or len(set(names)) != len(names):
            raise ValueError(f"regions must be distinct non-empty names, got {names!r}")
        for name, value, low in (("canary_percentage", canary_percentage, 0.0),
                                 ("mtbf_target_hours", mtbf_target_hours, 0.0),
                                 ("window_hours", window_hours, 0.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= low:
                raise ValueError(f"{name} must be a finite number greater than {low}, got {value!r}")
        if canary_percentage >= 1.0:
            raise ValueError(f"canary_percentage must be below 1, got {canary_percentage!r}")
        self.regions = names
        self.canary_percentage = float(canary_percentage)
        self.mtbf_target_hours = float(mtbf_target_hours)
        self.window_hours = float(window_hours)
        self.policy = _native.Policy(names, policy)
        self.ledger = ledger if ledger is not None else DVLLedger()
        started = now_us()
        self.initialization_timestamp = rfc3339(started)
        self._regions = {name: _Region(started) for name in names}
        self._changes = 0
        self._records = {framework: {"accepted": 0, "rejected": 0} for framework in RESTRICTED}

    # ---- regions -----------------------------------------------------------

    def _region(self, region: str) -> _Region:
        if region not in self._regions:
            raise ValueError(f"unknown region {region!r}; regions are {self.regions}")
        return self._regions[region]

    def _assess(self, at: int) -> dict[str, Any]:
        window = int(self.window_hours * MICROS_PER_HOUR)
        inputs = [(r.events, r.tracked_since) for r in self._regions.values()]
        return _native.assess_regions(inputs, window, at, self.mtbf_target_hours)

    def _status(self, name: str, health: dict[str, Any], at: int) -> dict[str, Any]:
        region = self._regions[name]
        # Open findings are records accepted where the policy forbids them;
        # this kernel's policy never changes and check_record refuses what
        # it forbids, so none can arise and trust is availability.
        computed = _native.trust_score(health["availability"], 0)
        return {
            "region": name,
            "status": region.status,
            "trust_score": computed if region.override is None else region.override,
            "trust_source": "computed" if region.override is None else "override",
            "uptime_hours": health["uptime_hours"],
            "availability": health["availability"],
            "failures": health["failures"],
            "mtbf_hours": health["mtbf_hours"],
            "mtbf_at_least_hours": health["mtbf_at_least_hours"],
            "mtbf_target_hours": self.mtbf_target_hours,
            "timestamp": rfc3339(at),
        }

    def get_region_status(self, region: str) -> dict[str, Any]:
        """A region's status, trust and health figures now."""
        self._region(region)
        return self._status_at(region, now_us())

    def _status_at(self, region: str, at: int) -> dict[str, Any]:
        health = self._assess(at)["regions"][self.regions.index(region)]
        return self._status(region, health, at)

    @property
    def region_status(self) -> dict[str, dict[str, Any]]:
        """Every region's status, trust score and uptime now."""
        at = now_us()
        assessed = self._assess(at)["regions"]
        return {
            name: {k: self._status(name, h, at)[k] for k in ("status", "trust_score", "uptime_hours")}
            for name, h in zip(self.regions, assessed)
        }

    def update_region_status(
        self,
        region: str,
        status: str,
        trust_score: Optional[float] = None,
        uptime_hours: Optional[float] = None,
        reason: Optional[str] = None,
    ) -> dict[str, Any]:
        """Sets a region's status: to ``down``/``draining`` is a failure,
        back is a recovery. ``trust_score`` overrides the computed score
        (clamped to 0–1); ``uptime_hours`` reports how long the region has
        been serving (it may not contradict a recorded event). Every change
        is a ledger block."""
        state = self._region(region)
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        at = now_us()
        since = self._up_since(state, status, uptime_hours, at)
        override = None
        if trust_score is not None:
            if isinstance(trust_score, bool) or not isinstance(trust_score, (int, float)) or math.isnan(trust_score):
                raise ValueError(f"trust_score must be a number, got {trust_score!r}")
            override = min(1.0, max(0.0, float(trust_score)))
        was, now_serving = _serving(state.status), _serving(status)
        event = None
        if was and not now_serving:
            event = ("failure", at)
        elif not was and now_serving:
            event = ("recovery", at if since is None else since)
        payload: dict[str, Any] = {"status": status, "previous_status": state.status, "source": "operator"}
        if event:
            payload["event"] = event[0]
            payload["event_at"] = rfc3339(event[1])
        if override is not None:
            payload["trust_override"] = override
        if uptime_hours is not None:
            payload["uptime_hours"] = uptime_hours
        if reason is not None:
            payload["reason"] = str(reason)[:1000]
        attestations = dict.fromkeys(self.ledger.compliance_frameworks, "pending")
        self.ledger.append("health" if event else "override", attestations, region=region, payload=payload)
        self._changes += 1
        if event:
            state.events.append(event)
        elif since is not None and not state.events:
            state.tracked_since = min(state.tracked_since, since)
        state.status = status
        if override is not None:
            state.override = override
        return self._status_at(region, at)

    @staticmethod
    def _up_since(state: _Region, status: str, uptime_hours: Optional[float], at: int) -> Optional[int]:
        if uptime_hours is None:
            return None
        if isinstance(uptime_hours, bool) or not isinstance(uptime_hours, (int, float)) or not math.isfinite(uptime_hours) or uptime_hours < 0:
            raise ValueError(f"uptime_hours must be a finite number of at least 0, got {uptime_hours!r}")
        if not _serving(status):
            raise ValueError(f"uptime_hours is how long a region has served; a {status} region has none")
        since = at - round(uptime_hours * MICROS_PER_HOUR)
        last = max((t for _, t in state.events), default=None)
        if last is not None and since < last:
            raise ValueError(
                f"uptime_hours {uptime_hours} would start before the {state.events[-1][0]} recorded at {rfc3339(last)}"
            )
        if last is not None and _serving(state.status):
            raise ValueError("the region's current up period began at its last recorded recovery; uptime_hours cannot move it")
        return since

    # ---- mesh and rollout ----------------------------------------------------

    def get_orchestration_mesh_status(self) -> dict[str, Any]:
        """Totals, active regions, average trust and uptime, and the mesh's
        MTBF against the target (``mtbf_compliance`` is ``None`` while the
        evidence cannot tell: no failure and less up time than the target)."""
        at = now_us()
        assessed = self._assess(at)
        statuses = {name: self._status(name, h, at) for name, h in zip(self.regions, assessed["regions"])}
        mesh = assessed["mesh"]
        count = len(self.regions)
        return {
            "total_regions": count,
            "active_regions": sum(1 for s in statuses.values() if s["status"] == "active"),
            "avg_trust_score": sum(s["trust_score"] for s in statuses.values()) / count,
            "avg_uptime_hours": sum(s["uptime_hours"] for s in statuses.values()) / count,
            "mesh_mtbf_hours": mesh["mtbf_hours"],
            "mesh_mtbf_at_least_hours": mesh["mtbf_at_least_hours"],
            "mtbf_target_hours": self.mtbf_target_hours,
            "mtbf_compliance": mesh["mtbf_meets_target"],
            "region_status": statuses,
            "timestamp": rfc3339(at),
        }

    def configure_canary_deployment(self, target_region: Optional[str] = None) -> dict[str, Any]:
        """The blue-green plan with ``target_region`` (default: the plan's
        first region) as the canary at :attr:`canary_percentage`, then the
        node's phases over the other regions."""
        template = self._phase_template()
        canary = target_region if target_region is not None else template[0][1][0]
        self._region(canary)
        phases, canonical = _native.rollout_plan(template, canary)
        return {
            "canary_region": canonical,
            "canary_percentage": self.canary_percentage,
            "deployment_strategy": "blue-green",
            "rollout_regions": [r for _, regions in phases for r in regions if r != canonical],
            "phases": [{"percent": p, "regions": list(r)} for p, r in phases],
            "timestamp": rfc3339(now_us()),
        }

    def _phase_template(self) -> list[tuple[int, list[str]]]:
        """The node's default phases over this kernel's regions (regions
        the defaults do not name join the last phase), the first phase at
        the canary percentage."""
        known = set(self.regions)
        phases = [(p, [r for r in regions if r in known]) for p, regions in _native.DEFAULT_PHASES]
        phases = [(p, regions) for p, regions in phases if regions]
        placed = {r for _, regions in phases for r in regions}
        extra = [r for r in self.regions if r not in placed]
        if not phases:
            phases = [(100, extra)]
        elif extra:
            phases[-1] = (phases[-1][0], phases[-1][1] + extra)
        phases[-1] = (100, phases[-1][1])
        phases[0] = (round(self.canary_percentage * 100), phases[0][1]) if len(phases) > 1 else phases[0]
        return phases

    # ---- compliance ------------------------------------------------------------

    def check_record(self, data_class: str, region: str) -> dict[str, Any]:
        """Asks the policy whether a record of ``data_class`` may be
        processed in ``region``; ITAR and GDPR records are counted as
        evidence (accepted or rejected)."""
        self._region(region)
        decision = self.policy.accept(data_class, region)
        for framework, (cls, _) in RESTRICTED.items():
            if cls == data_class:
                self._records[framework]["accepted" if decision["allowed"] else "rejected"] += 1
        return decision

    def verify_compliance_continuous(self) -> dict[str, Any]:
        """ISO 27001 (A.12.1.2 / A.14.2.2): every change is a block and the
        ledger verifies. ITAR and GDPR: the policy in force accepts their
        records only in the permitted regions. Each check names its evidence."""
        report = self.ledger.verification()
        change_blocks = sum(
            1 for b in self.ledger.chain[1:]
            if b.kind in ("health", "override") and isinstance(b.payload, dict) and b.payload.get("source") == "operator"
        )
        checks: dict[str, Any] = {
            "ISO-27001": {
                "compliant": bool(report["ok"]) and change_blocks == self._changes,
                "controls": ["A.12.1.2", "A.14.2.2"],
                "ledger_valid": report["ok"],
                "first_bad_block": report["failure"],
                "changes": self._changes,
                "change_blocks": change_blocks,
            }
        }
        for framework, (cls, permitted) in RESTRICTED.items():
            accepting = [r for r in self.regions if self.policy.accept(cls, r)["allowed"]]
            outside = [r for r in accepting if r not in permitted]
            checks[framework] = {
                "compliant": not outside,
                "data_class": cls,
                "permitted_regions": list(permitted),
                "accepting_regions": accepting,
                "accepting_outside_permitted": outside,
                "policy_sha256": self.policy.sha256,
                "records_accepted": self._records[framework]["accepted"],
                "records_rejected": self._records[framework]["rejected"],
            }
        return {
            "all_compliant": all(c["compliant"] for c in checks.values()),
            "compliance_checks": checks,
            "timestamp": rfc3339(now_us()),
        }

    def get_metrics(self) -> dict[str, Any]:
        return {
            "initialization_timestamp": self.initialization_timestamp,
            "regions": list(self.regions),
            "canary_percentage": self.canary_percentage,
            "mtbf_target_hours": self.mtbf_target_hours,
            "mesh_status": self.get_orchestration_mesh_status(),
            "compliance_status": self.verify_compliance_continuous(),
            "timestamp": rfc3339(now_us()),
        }
