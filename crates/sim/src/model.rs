//! The parameters of the simulated regions and their validation.

use qunimbus_core::DEFAULT_REGIONS;

/// Longest accepted region name, in bytes.
pub const MAX_REGION_NAME_LEN: usize = 64;

/// Statistical model of one region: how much of the run traffic it carries,
/// how good its runs are, what data classes they carry and how often the
/// region fails.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionModel {
    /// Region name as configured on the node (for example `"Americas"`).
    pub name: String,
    /// Share of run traffic: the region's arrival rate is
    /// `runs_per_second * weight / sum(weights)` while it is up. Finite, ≥ 0.
    pub weight: f64,
    /// Mean of the normal distribution of `eta_ent`, in `[0, 1]`. Samples
    /// outside `[0, 1]` are redrawn, so the observed mean is slightly lower
    /// when the mean is close to 1.
    pub eta_mean: f64,
    /// Standard deviation of `eta_ent`. Finite, ≥ 0.
    pub eta_sd: f64,
    /// Median of the lognormal distribution of `coherence_variance`
    /// (a fraction: 0.01 = 1 %). Finite, > 0.
    pub coherence_variance_median: f64,
    /// Shape (σ of the underlying normal) of the lognormal
    /// `coherence_variance`. Finite, ≥ 0.
    pub coherence_variance_sigma: f64,
    /// Median run length in hours (lognormal). Finite, > 0.
    pub runtime_hours_median: f64,
    /// Shape (σ of the underlying normal) of the lognormal run length.
    /// Finite, ≥ 0.
    pub runtime_hours_sigma: f64,
    /// Entanglement pair-hours delivered per hour of runtime at
    /// `eta_ent = 1`: `eph_delivered = runtime_hours * pairs_per_hour * eta_ent`.
    /// Finite, > 0.
    pub pairs_per_hour: f64,
    /// Fraction of the region's runs that are `itar`, in `[0, 1]`.
    pub itar_fraction: f64,
    /// Fraction of the region's runs that are `personal`, in `[0, 1]`;
    /// `itar_fraction + personal_fraction ≤ 1`, the rest is `public`.
    pub personal_fraction: f64,
    /// Mean up time between outages in seconds (exponential). > 0;
    /// `f64::INFINITY` means the region never fails.
    pub mean_time_between_outages_secs: f64,
    /// Mean outage duration in seconds (exponential). Finite, > 0.
    pub mean_outage_secs: f64,
}

impl RegionModel {
    /// The long-run fraction of time the region is up:
    /// `mtbo / (mtbo + mean_outage)` (1 when it never fails).
    pub fn availability(&self) -> f64 {
        let up = self.mean_time_between_outages_secs;
        let down = self.mean_outage_secs;
        if up.is_infinite() {
            1.0
        } else {
            up / (up + down)
        }
    }

    /// Checks every field, naming the first bad one as `field`.
    fn validate_fields(&self) -> Result<(), (&'static str, String)> {
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        let pos = |v: f64| v.is_finite() && v > 0.0;
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        let checks: [(&'static str, f64, bool, &str); 12] = [
            (
                "weight",
                self.weight,
                nonneg(self.weight),
                "finite and >= 0",
            ),
            ("eta_mean", self.eta_mean, unit(self.eta_mean), "in [0, 1]"),
            (
                "eta_sd",
                self.eta_sd,
                nonneg(self.eta_sd),
                "finite and >= 0",
            ),
            (
                "coherence_variance_median",
                self.coherence_variance_median,
                pos(self.coherence_variance_median),
                "finite and > 0",
            ),
            (
                "coherence_variance_sigma",
                self.coherence_variance_sigma,
                nonneg(self.coherence_variance_sigma),
                "finite and >= 0",
            ),
            (
                "runtime_hours_median",
                self.runtime_hours_median,
                pos(self.runtime_hours_median),
                "finite and > 0",
            ),
            (
                "runtime_hours_sigma",
                self.runtime_hours_sigma,
                nonneg(self.runtime_hours_sigma),
                "finite and >= 0",
            ),
            (
                "pairs_per_hour",
                self.pairs_per_hour,
                pos(self.pairs_per_hour),
                "finite and > 0",
            ),
            (
                "itar_fraction",
                self.itar_fraction,
                unit(self.itar_fraction),
                "in [0, 1]",
            ),
            (
                "personal_fraction",
                self.personal_fraction,
                unit(self.personal_fraction),
                "in [0, 1]",
            ),
            (
                "mean_time_between_outages_secs",
                self.mean_time_between_outages_secs,
                self.mean_time_between_outages_secs > 0.0,
                "> 0 (infinity = never fails)",
            ),
            (
                "mean_outage_secs",
                self.mean_outage_secs,
                pos(self.mean_outage_secs),
                "finite and > 0",
            ),
        ];
        for (field, value, ok, range) in checks {
            if !ok {
                return Err((field, format!("must be {range}, got {value}")));
            }
        }
        let classed = self.itar_fraction + self.personal_fraction;
        if classed > 1.0 {
            return Err((
                "personal_fraction",
                format!("itar_fraction + personal_fraction must be <= 1, got {classed}"),
            ));
        }
        Ok(())
    }
}

/// The whole simulated network: the regions and the aggregate run rate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimModel {
    /// The simulated regions, in a fixed order (the order only breaks ties
    /// between simultaneous events).
    pub regions: Vec<RegionModel>,
    /// Aggregate run arrival rate over all regions when all are up, in runs
    /// per second. Finite, ≥ 0.
    pub runs_per_second: f64,
}

impl Default for SimModel {
    /// The documented six-region model, [`SimModel::six_regions`].
    fn default() -> Self {
        Self::six_regions()
    }
}

/// One row of the default model, in the order of the fields of [`RegionModel`].
type Row = (
    &'static str,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
);

/// The default model (see the table in the crate documentation).
const SIX_REGIONS: [Row; 6] = [
    // name, weight, eta mean, sd, cv median, sigma, runtime median, sigma,
    // pairs/h, itar, personal, mtbo s, outage s
    (
        "Americas", 0.30, 0.975, 0.012, 0.0080, 0.45, 24.0, 0.90, 60.0, 0.05, 0.0, 1800.0, 12.0,
    ),
    (
        "EU", 0.22, 0.965, 0.014, 0.0090, 0.45, 20.0, 0.90, 55.0, 0.0, 0.10, 1500.0, 15.0,
    ),
    (
        "MENA", 0.12, 0.955, 0.016, 0.0100, 0.50, 16.0, 0.90, 45.0, 0.0, 0.0, 900.0, 20.0,
    ),
    (
        "APAC", 0.20, 0.960, 0.015, 0.0095, 0.50, 18.0, 0.90, 50.0, 0.0, 0.0, 1200.0, 18.0,
    ),
    (
        "Polar", 0.06, 0.940, 0.020, 0.0130, 0.55, 6.0, 0.80, 30.0, 0.0, 0.0, 240.0, 35.0,
    ),
    (
        "Orbit", 0.10, 0.930, 0.022, 0.0140, 0.60, 4.0, 0.75, 40.0, 0.0, 0.0, 180.0, 25.0,
    ),
];

impl SimModel {
    /// Default aggregate run rate of [`SimModel::six_regions`], runs per second.
    pub const DEFAULT_RUNS_PER_SECOND: f64 = 20.0;

    /// The documented default model of the six regions
    /// ([`qunimbus_core::DEFAULT_REGIONS`]) at 20 runs/s; the parameters
    /// and the reasons behind them are in the crate documentation.
    pub fn six_regions() -> Self {
        let regions = SIX_REGIONS
            .iter()
            .map(
                |&(name, w, em, es, cm, cs, rm, rs, pph, itar, personal, mtbo, mo)| RegionModel {
                    name: name.to_string(),
                    weight: w,
                    eta_mean: em,
                    eta_sd: es,
                    coherence_variance_median: cm,
                    coherence_variance_sigma: cs,
                    runtime_hours_median: rm,
                    runtime_hours_sigma: rs,
                    pairs_per_hour: pph,
                    itar_fraction: itar,
                    personal_fraction: personal,
                    mean_time_between_outages_secs: mtbo,
                    mean_outage_secs: mo,
                },
            )
            .collect::<Vec<_>>();
        debug_assert!(regions
            .iter()
            .zip(DEFAULT_REGIONS)
            .all(|(r, name)| r.name == name));
        Self {
            regions,
            runs_per_second: Self::DEFAULT_RUNS_PER_SECOND,
        }
    }

    /// Checks the model. The error message names the bad field, and for a
    /// region field the region (`regions[4] "Polar": weight must be ...`).
    pub fn validate(&self) -> Result<(), String> {
        if !(self.runs_per_second.is_finite() && self.runs_per_second >= 0.0) {
            return Err(format!(
                "runs_per_second must be finite and >= 0, got {}",
                self.runs_per_second
            ));
        }
        if self.regions.is_empty() {
            return Err("regions must not be empty".to_string());
        }
        for (i, region) in self.regions.iter().enumerate() {
            let name = &region.name;
            if name.trim().is_empty() {
                return Err(format!("regions[{i}].name must not be empty"));
            }
            if name.len() > MAX_REGION_NAME_LEN {
                return Err(format!(
                    "regions[{i}].name must be at most {MAX_REGION_NAME_LEN} bytes, got {}",
                    name.len()
                ));
            }
            if self.regions[..i].iter().any(|other| other.name == *name) {
                return Err(format!("regions[{i}].name {name:?} is a duplicate"));
            }
            region
                .validate_fields()
                .map_err(|(field, msg)| format!("regions[{i}] {name:?}: {field} {msg}"))?;
        }
        let total: f64 = self.regions.iter().map(|r| r.weight).sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(format!(
                "regions weight must sum to a finite value > 0, got {total}"
            ));
        }
        Ok(())
    }

    /// Expected long-run aggregate run rate in runs per second, accounting
    /// for outages: `runs_per_second * Σ weight·availability / Σ weight`.
    /// Returns 0 for a model whose weights do not sum to a positive value.
    pub fn expected_runs_per_second(&self) -> f64 {
        let total: f64 = self.regions.iter().map(|r| r.weight).sum();
        if !(total > 0.0 && total.is_finite()) {
            return 0.0;
        }
        let up: f64 = self
            .regions
            .iter()
            .map(|r| r.weight * r.availability())
            .sum();
        self.runs_per_second * up / total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_is_valid_and_matches_the_default_regions() {
        let model = SimModel::six_regions();
        assert_eq!(model.validate(), Ok(()));
        let names: Vec<&str> = model.regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, DEFAULT_REGIONS);
        assert_eq!(model.runs_per_second, 20.0);
        let total: f64 = model.regions.iter().map(|r| r.weight).sum();
        assert!((total - 1.0).abs() < 1e-12);
        let expected = model.expected_runs_per_second();
        assert!(expected > 19.0 && expected < 20.0, "{expected}");
        assert_eq!(model, SimModel::default());
    }

    #[test]
    fn rejects_negative_weight_naming_region_and_field() {
        let mut model = SimModel::six_regions();
        model.regions[4].weight = -1.0;
        let err = model.validate().unwrap_err();
        assert!(err.contains("weight"), "{err}");
        assert!(err.contains("Polar"), "{err}");
    }

    #[test]
    fn rejects_empty_regions() {
        let model = SimModel {
            regions: Vec::new(),
            runs_per_second: 20.0,
        };
        let err = model.validate().unwrap_err();
        assert!(err.contains("regions"), "{err}");
    }

    #[test]
    fn rejects_other_bad_fields() {
        type Mutation = Box<dyn Fn(&mut SimModel)>;
        let base = SimModel::six_regions();
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|m| m.runs_per_second = f64::NAN),
                "runs_per_second",
            ),
            (Box::new(|m| m.regions[0].eta_mean = 1.5), "eta_mean"),
            (Box::new(|m| m.regions[1].eta_sd = f64::INFINITY), "eta_sd"),
            (
                Box::new(|m| m.regions[2].coherence_variance_median = 0.0),
                "coherence_variance_median",
            ),
            (
                Box::new(|m| m.regions[3].runtime_hours_sigma = -0.1),
                "runtime_hours_sigma",
            ),
            (
                Box::new(|m| m.regions[5].pairs_per_hour = 0.0),
                "pairs_per_hour",
            ),
            (
                Box::new(|m| m.regions[0].itar_fraction = 2.0),
                "itar_fraction",
            ),
            (
                Box::new(|m| {
                    m.regions[0].itar_fraction = 0.6;
                    m.regions[0].personal_fraction = 0.6;
                }),
                "personal_fraction",
            ),
            (
                Box::new(|m| m.regions[1].mean_time_between_outages_secs = f64::NAN),
                "mean_time_between_outages_secs",
            ),
            (
                Box::new(|m| m.regions[1].mean_outage_secs = 0.0),
                "mean_outage_secs",
            ),
            (Box::new(|m| m.regions[1].name = "EU ".repeat(30)), "name"),
            (Box::new(|m| m.regions[1].name = String::new()), "name"),
            (
                Box::new(|m| m.regions[1].name = "Americas".to_string()),
                "duplicate",
            ),
            (
                Box::new(|m| m.regions.iter_mut().for_each(|r| r.weight = 0.0)),
                "weight",
            ),
        ];
        for (mutate, needle) in cases {
            let mut model = base.clone();
            mutate(&mut model);
            let err = model.validate().unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn never_failing_region_is_valid_and_always_available() {
        let mut model = SimModel::six_regions();
        model.regions[0].mean_time_between_outages_secs = f64::INFINITY;
        assert_eq!(model.validate(), Ok(()));
        assert_eq!(model.regions[0].availability(), 1.0);
    }
}
