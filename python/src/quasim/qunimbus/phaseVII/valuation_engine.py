"""The Dynamic Phi-Valuation Engine of the seed, computed by the node's own
engine (SPEC §3): the same formulas in the same order, bit for bit."""

from __future__ import annotations

from typing import Any, Optional

from qunimbus import _native

from ._time import now

#: The run the seed's examples describe, and SPEC §2's reference run:
#: coherence variance 1.5 %, 100 h, 1000 EPH delivered. ``calculate_phi_qevf(
#: 0.97, 0.015, 100.0)`` and ``map_eta_to_price_metrics(0.97)`` both price it:
#: phi_qevf 212.71929824561406.
REFERENCE_COHERENCE_VARIANCE = 0.015
REFERENCE_RUNTIME_HOURS = 100.0
REFERENCE_EPH_DELIVERED = 1000.0


class ValuationEngine:
    """Maps entanglement efficiency to economic value (``phi_qevf``, USD).

    Parameters are validated like the node's configuration (``ValueError``
    naming the parameter); inputs like the node's ingest (``ValueError``
    naming the field: ``eta_ent`` in 0–1, variance and runtime ≥ 0, EPH > 0).
    """

    #: Records kept in :attr:`valuation_history` (oldest dropped first).
    HISTORY_LIMIT = 1000

    def __init__(
        self,
        base_phi_value: float = 1000.0,
        eta_baseline: float = 0.95,
        coherence_variance_threshold: float = 0.02,
        runtime_cap_hours: float = 120.0,
        price_sensitivity: float = 10.0,
    ) -> None:
        self._engine = _native.ValuationEngine(
            base_phi_value=base_phi_value,
            eta_baseline=eta_baseline,
            coherence_variance_threshold=coherence_variance_threshold,
            runtime_cap_hours=runtime_cap_hours,
            price_sensitivity=price_sensitivity,
        )
        self.valuation_history: list[dict[str, Any]] = []

    @property
    def base_phi_value(self) -> float:
        return self._engine.params["base_phi_value"]

    @property
    def eta_baseline(self) -> float:
        return self._engine.params["eta_baseline"]

    @property
    def coherence_variance_threshold(self) -> float:
        return self._engine.params["coherence_variance_threshold"]

    @property
    def runtime_cap_hours(self) -> float:
        return self._engine.params["runtime_cap_hours"]

    @property
    def price_sensitivity(self) -> float:
        return self._engine.params["price_sensitivity"]

    def calculate_phi_qevf(self, eta_ent: float, coherence_variance: float, runtime_hours: float) -> float:
        """``base × (eta/eta_baseline) × max(0, 1 − cv/threshold) × min(runtime, cap)/cap``."""
        return self._engine.value(eta_ent, coherence_variance, runtime_hours, REFERENCE_EPH_DELIVERED)["phi_qevf"]

    def map_eta_to_price_metrics(
        self,
        eta_ent: float,
        coherence_variance: float = REFERENCE_COHERENCE_VARIANCE,
        runtime_hours: float = REFERENCE_RUNTIME_HOURS,
        eph_delivered: float = REFERENCE_EPH_DELIVERED,
        market_context: Optional[dict[str, Any]] = None,
    ) -> dict[str, Any]:
        """Prices a run (by default the reference run at ``eta_ent``) and
        records it in :attr:`valuation_history`."""
        v = self._engine.value(eta_ent, coherence_variance, runtime_hours, eph_delivered)
        metrics = {
            "eta_ent": eta_ent,
            "phi_qevf": v["phi_qevf"],
            "eph_price": v["eph_price"],
            "coherence_variance": coherence_variance,
            "coherence_within_threshold": v["coherence_within_threshold"],
            "price_multiplier": v["price_multiplier"],
            "market_value": v["market_value"],
            "runtime_hours": runtime_hours,
            "eph_delivered": eph_delivered,
            "valuation_timestamp": now(),
        }
        record = {**metrics, "market_context": market_context}
        self.valuation_history.append(record)
        del self.valuation_history[: max(0, len(self.valuation_history) - self.HISTORY_LIMIT)]
        return metrics

    def get_valuation_metrics(self) -> dict[str, Any]:
        """The parameters and statistics of the recorded history (count,
        mean, min, max, p50, p95 of ``phi_qevf``; ``None`` while empty)."""
        stats = _native.phi_stats([r["phi_qevf"] for r in self.valuation_history])
        return {
            **self._engine.params,
            "history_records": len(self.valuation_history),
            "history_limit": self.HISTORY_LIMIT,
            "avg_phi_qevf": stats["mean"],
            "min_phi_qevf": stats["min"],
            "max_phi_qevf": stats["max"],
            "p50_phi_qevf": stats["p50"],
            "p95_phi_qevf": stats["p95"],
            "timestamp": now(),
        }

    def reset_history(self) -> None:
        """Forgets the recorded valuations."""
        self.valuation_history = []

