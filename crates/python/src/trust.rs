//! The Trust Kernel's rules for Python (SPEC §6), from the node's trust
//! crate: region health from failure/recovery events (availability, MTBF,
//! uptime), the computed trust score, the rollout plan for a canary, and
//! the Cedar compliance policy's decisions.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use qunimbus_core::DataClass;
use qunimbus_trust::health::{self, HealthEvent, HealthEventKind, Mtbf, RegionHealth};
use qunimbus_trust::policy::PolicyEngine;
use qunimbus_trust::rollout::{plan_for_canary, Phase};

fn mtbf_into(dict: &Bound<'_, PyDict>, mtbf: Mtbf, target_hours: f64) -> PyResult<()> {
    let (hours, at_least) = match mtbf {
        Mtbf::Hours(h) => (Some(h), None),
        Mtbf::NoFailures { at_least_hours } => (None, Some(at_least_hours)),
    };
    dict.set_item("mtbf_hours", hours)?;
    dict.set_item("mtbf_at_least_hours", at_least)?;
    dict.set_item("mtbf_meets_target", mtbf.meets(target_hours))?;
    Ok(())
}

fn region_dict<'py>(
    py: Python<'py>,
    h: &RegionHealth,
    target_hours: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("up_now", h.up_now)?;
    dict.set_item("availability", h.availability())?;
    dict.set_item("failures", h.failures)?;
    dict.set_item("up_hours", h.up_hours())?;
    dict.set_item("observed_hours", h.observed_hours())?;
    dict.set_item("uptime_hours", h.uptime_hours())?;
    mtbf_into(&dict, h.mtbf(), target_hours)?;
    Ok(dict)
}

/// Assesses regions at `now_us` over `window_us`: each region is its
/// events (`("failure" | "recovery", at_us)`) and when tracking began.
/// Returns `{"regions": [...], "mesh": {...}}` with availability,
/// failures, up and observed hours, uptime since the last recovery and
/// MTBF (measured hours, or "no failures, at least"), and whether each
/// meets `mtbf_target_hours` (`None` while the evidence cannot tell).
#[pyfunction]
pub fn assess_regions<'py>(
    py: Python<'py>,
    regions: Vec<(Vec<(String, i64)>, i64)>,
    window_us: i64,
    now_us: i64,
    mtbf_target_hours: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let mut assessed = Vec::with_capacity(regions.len());
    for (events, tracked_since) in &regions {
        let events = events
            .iter()
            .map(|(kind, at)| {
                HealthEventKind::parse(kind)
                    .map(|kind| HealthEvent { kind, at: *at })
                    .ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "a health event is failure or recovery, not {kind:?}"
                        ))
                    })
            })
            .collect::<PyResult<Vec<_>>>()?;
        assessed.push(health::assess(&events, *tracked_since, window_us, now_us));
    }
    let list = PyList::empty(py);
    for h in &assessed {
        list.append(region_dict(py, h, mtbf_target_hours)?)?;
    }
    let mesh = PyDict::new(py);
    mtbf_into(&mesh, health::combined_mtbf(&assessed), mtbf_target_hours)?;
    let out = PyDict::new(py);
    out.set_item("regions", list)?;
    out.set_item("mesh", mesh)?;
    Ok(out)
}

/// The computed trust score: availability − 0.25 × open findings, in 0–1.
#[pyfunction]
pub fn trust_score(availability: f64, open_findings: u32) -> f64 {
    health::trust_score(availability, open_findings)
}

/// Rollout phases as Python sees them: `(percent, regions)` in order.
type PhasePlan = Vec<(u8, Vec<String>)>;

/// The phases of a rollout whose canary is `canary`, from `template`
/// (`(percent, regions)` rising to 100 %, every region once); returns the
/// phases and the canary's canonical spelling. `ValueError` for a plan the
/// node would refuse or an unknown canary.
#[pyfunction]
pub fn rollout_plan(template: PhasePlan, canary: &str) -> PyResult<(PhasePlan, String)> {
    let template: Vec<Phase> = template
        .into_iter()
        .map(|(percent, regions)| Phase { percent, regions })
        .collect();
    let (phases, canonical) =
        plan_for_canary(&template, canary).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((
        phases.into_iter().map(|p| (p.percent, p.regions)).collect(),
        canonical,
    ))
}

/// A compliance policy (Cedar, the node's schema) loaded for a set of
/// regions; the default is the node's built-in policy.
#[pyclass(frozen, module = "qunimbus._native")]
pub struct Policy {
    engine: PolicyEngine,
    sha256: String,
}

#[pymethods]
impl Policy {
    #[new]
    #[pyo3(signature = (regions, text=None))]
    fn new(regions: Vec<String>, text: Option<&str>) -> PyResult<Self> {
        let text = text.unwrap_or(qunimbus_trust::policy::DEFAULT_POLICY);
        let engine =
            PolicyEngine::load(text, &regions).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let sha256 = qunimbus_ledger::hex::sha256_hex(text.as_bytes());
        Ok(Self { engine, sha256 })
    }

    /// SHA-256 of the policy text (hex), as the node's policy blocks name it.
    #[getter]
    fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Whether a record of `data_class` (`public`, `personal`, `itar`) may
    /// be accepted in `region`: `{"allowed", "rules", "frameworks"}`.
    fn accept<'py>(
        &self,
        py: Python<'py>,
        data_class: &str,
        region: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let class = DataClass::parse(data_class).ok_or_else(|| {
            PyValueError::new_err(format!(
                "data_class must be public, personal or itar, not {data_class:?}"
            ))
        })?;
        let decision = self.engine.accept(class, region);
        let dict = PyDict::new(py);
        dict.set_item("allowed", decision.allowed)?;
        dict.set_item("rules", decision.rules)?;
        dict.set_item("frameworks", decision.frameworks)?;
        Ok(dict)
    }
}

/// Registers the trust functions and `Policy`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Policy>()?;
    m.add("DEFAULT_POLICY", qunimbus_trust::policy::DEFAULT_POLICY)?;
    m.add(
        "DEFAULT_PHASES",
        qunimbus_trust::rollout::default_phases()
            .into_iter()
            .map(|p| (p.percent, p.regions))
            .collect::<Vec<_>>(),
    )?;
    m.add_function(wrap_pyfunction!(assess_regions, m)?)?;
    m.add_function(wrap_pyfunction!(trust_score, m)?)?;
    m.add_function(wrap_pyfunction!(rollout_plan, m)?)?;
    Ok(())
}
