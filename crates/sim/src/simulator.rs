//! The discrete-event simulator that turns a [`SimModel`] into events.

use crate::model::{RegionModel, SimModel};
use qunimbus_core::{DataClass, FieldError, RunId, RunMetrics, Telemetry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal};
use std::time::Duration;

/// Smallest `eph_delivered` a generated run reports (the field must be > 0).
pub const MIN_EPH_DELIVERED: f64 = 1e-6;

/// How many times an out-of-range `eta_ent` sample is redrawn before it is
/// clamped into `[0, 1]`.
const ETA_REDRAWS: usize = 64;

/// Longest run-id prefix kept, in characters.
const MAX_PREFIX_LEN: usize = 64;

/// Longest region component of a run id, in characters.
const MAX_REGION_ID_LEN: usize = 40;

/// One completed run reported by a simulated runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedRun {
    /// `"{prefix}-{region lowercase}-{counter}"`; always a valid
    /// [`RunId`] and unique within one simulator.
    pub run_id: String,
    /// Name of the region that ran it, exactly as in the model.
    pub region: String,
    /// Regulatory data class.
    pub data_class: DataClass,
    /// The measured quantities; always pass [`RunMetrics::validate`].
    pub metrics: RunMetrics,
}

impl SimulatedRun {
    /// The run as a telemetry report, ready to send to the node.
    /// Fails only if `run_id` is not a valid [`RunId`], which the simulator
    /// never produces.
    pub fn to_telemetry(&self) -> Result<Telemetry, FieldError> {
        Ok(Telemetry {
            run_id: RunId::parse(&self.run_id)?,
            region: self.region.clone(),
            data_class: self.data_class,
            metrics: self.metrics,
        })
    }
}

/// Something that happened in the simulated network.
#[derive(Debug, Clone, PartialEq)]
pub enum SimEvent {
    /// A run completed and is reported.
    Run(SimulatedRun),
    /// The region failed; it emits no runs until the matching `RegionUp`.
    RegionDown {
        /// Name of the region.
        region: String,
    },
    /// The region recovered.
    RegionUp {
        /// Name of the region.
        region: String,
    },
}

/// The sampling state of one region, built from a [`RegionModel`] with
/// every parameter coerced into range.
#[derive(Debug, Clone)]
struct RegionState {
    name: String,
    /// `"{prefix}-{region lowercase}-"`.
    id_stem: String,
    /// Inter-arrival distribution of runs; `None` = the region gets no runs.
    arrivals: Option<Exp<f64>>,
    /// Up-time distribution; `None` = the region never fails.
    up_time: Option<Exp<f64>>,
    /// Outage-duration distribution; `None` = outages end at once.
    down_time: Option<Exp<f64>>,
    eta: Option<Normal<f64>>,
    eta_mean: f64,
    coherence: Option<LogNormal<f64>>,
    coherence_median: f64,
    runtime: Option<LogNormal<f64>>,
    runtime_median: f64,
    pairs_per_hour: f64,
    itar_fraction: f64,
    personal_fraction: f64,
    up: bool,
    /// Simulated time (seconds) of the next run; infinite while down.
    next_arrival: f64,
    /// Simulated time (seconds) of the next up/down transition.
    next_transition: f64,
}

/// `x` if it is finite and ≥ `min`, else `fallback`.
fn at_least(x: f64, min: f64, fallback: f64) -> f64 {
    if x.is_finite() && x >= min {
        x
    } else {
        fallback
    }
}

/// `x` if it is finite and > 0, else `fallback`.
fn positive(x: f64, fallback: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        fallback
    }
}

/// `x` clamped into `[0, 1]`, with NaN mapped to 0.
fn unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Exponential distribution with the given mean; `None` when the mean is
/// infinite (the event never happens) or not a positive number.
fn exp_with_mean(mean: f64) -> Option<Exp<f64>> {
    if mean.is_finite() && mean > 0.0 {
        Exp::new(1.0 / mean).ok()
    } else {
        None
    }
}

/// Replaces every character a [`RunId`] does not allow by `_`, lowercases
/// if asked, truncates to `max` characters and substitutes `empty` for an
/// empty result.
fn id_component(text: &str, lowercase: bool, max: usize, empty: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                if lowercase {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if cleaned.is_empty() {
        empty.to_string()
    } else {
        cleaned
    }
}

impl RegionState {
    fn new(model: &RegionModel, rate: f64, prefix: &str) -> Self {
        let eta_mean = unit(model.eta_mean);
        let coherence_median = positive(model.coherence_variance_median, 0.01);
        let runtime_median = positive(model.runtime_hours_median, 1.0);
        let itar_fraction = unit(model.itar_fraction);
        let personal_fraction = unit(model.personal_fraction).min(1.0 - itar_fraction);
        let region_id = id_component(&model.name, true, MAX_REGION_ID_LEN, "region");
        Self {
            name: model.name.clone(),
            id_stem: format!("{prefix}-{region_id}-"),
            arrivals: if rate.is_finite() && rate > 0.0 {
                Exp::new(rate).ok()
            } else {
                None
            },
            up_time: exp_with_mean(model.mean_time_between_outages_secs),
            down_time: exp_with_mean(model.mean_outage_secs),
            eta: Normal::new(eta_mean, at_least(model.eta_sd, 0.0, 0.0)).ok(),
            eta_mean,
            coherence: LogNormal::new(
                coherence_median.ln(),
                at_least(model.coherence_variance_sigma, 0.0, 0.0),
            )
            .ok(),
            coherence_median,
            runtime: LogNormal::new(
                runtime_median.ln(),
                at_least(model.runtime_hours_sigma, 0.0, 0.0),
            )
            .ok(),
            runtime_median,
            pairs_per_hour: positive(model.pairs_per_hour, 1.0),
            itar_fraction,
            personal_fraction,
            up: true,
            next_arrival: f64::INFINITY,
            next_transition: f64::INFINITY,
        }
    }

    /// Time of the next run after `now`, or infinity if the region gets none.
    fn draw_arrival(&self, now: f64, rng: &mut ChaCha8Rng) -> f64 {
        match &self.arrivals {
            Some(d) => now + d.sample(rng),
            None => f64::INFINITY,
        }
    }

    /// Time of the next failure after `now`, or infinity if it never fails.
    fn draw_failure(&self, now: f64, rng: &mut ChaCha8Rng) -> f64 {
        match &self.up_time {
            Some(d) => now + d.sample(rng),
            None => f64::INFINITY,
        }
    }

    /// Time of the recovery from an outage starting at `now`.
    fn draw_recovery(&self, now: f64, rng: &mut ChaCha8Rng) -> f64 {
        match &self.down_time {
            Some(d) => now + d.sample(rng),
            None => now,
        }
    }

    /// Draws the metrics and class of one run. Every result is valid.
    fn draw_run(&self, rng: &mut ChaCha8Rng) -> (DataClass, RunMetrics) {
        let eta_ent = match &self.eta {
            Some(d) => {
                let mut x = d.sample(rng);
                for _ in 0..ETA_REDRAWS {
                    if (0.0..=1.0).contains(&x) {
                        break;
                    }
                    x = d.sample(rng);
                }
                if x.is_nan() {
                    self.eta_mean
                } else {
                    x.clamp(0.0, 1.0)
                }
            }
            None => self.eta_mean,
        };
        let coherence_variance = match &self.coherence {
            Some(d) => at_least(d.sample(rng), 0.0, self.coherence_median),
            None => self.coherence_median,
        };
        let runtime_hours = match &self.runtime {
            Some(d) => at_least(d.sample(rng), 0.0, self.runtime_median),
            None => self.runtime_median,
        };
        let eph = runtime_hours * self.pairs_per_hour * eta_ent;
        let eph_delivered = if eph.is_finite() {
            eph.max(MIN_EPH_DELIVERED)
        } else {
            f64::MAX
        };
        let u: f64 = rng.random();
        let data_class = if u < self.itar_fraction {
            DataClass::Itar
        } else if u < self.itar_fraction + self.personal_fraction {
            DataClass::Personal
        } else {
            DataClass::Public
        };
        let metrics = RunMetrics {
            eta_ent,
            coherence_variance,
            runtime_hours,
            eph_delivered,
        };
        (data_class, metrics)
    }
}

/// What happens next in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Transition,
    Arrival,
}

/// The seeded discrete-event simulator of a [`SimModel`].
///
/// Pure: it keeps its own simulated clock, which moves only when
/// [`Simulator::advance`] is called. All randomness comes from one
/// `ChaCha8Rng` seeded with `seed_from_u64(seed)` and is drawn in event
/// order, so the event stream depends only on the seed, the model and the
/// prefix: slicing the same total time into different `dt` steps yields the
/// same events, just grouped differently.
#[derive(Debug, Clone)]
pub struct Simulator {
    model: SimModel,
    rng: ChaCha8Rng,
    regions: Vec<RegionState>,
    /// Simulated time elapsed (exact, so step boundaries never drift).
    elapsed: Duration,
    /// Number of runs emitted so far (the last run id's counter).
    counter: u64,
}

impl Simulator {
    /// A simulator for `model`, seeded with `seed`; every region starts up.
    ///
    /// Run ids are `"{run_id_prefix}-{region lowercase}-{counter}"`, the
    /// counter global over all regions and increasing from 1. Characters a
    /// [`RunId`] does not allow are replaced by `_`, the prefix is cut to 64
    /// characters (an empty one becomes `sim`) and the region part to 40, so
    /// every id is a valid, unique [`RunId`].
    ///
    /// The model should pass [`SimModel::validate`]; this never panics on
    /// one that does not: out-of-range parameters are coerced into range
    /// (a negative or NaN weight gives the region no runs, fractions are
    /// clamped, an invalid mean time between outages means "never fails")
    /// and every run is still valid.
    pub fn new(seed: u64, model: SimModel, run_id_prefix: &str) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let prefix = id_component(run_id_prefix, false, MAX_PREFIX_LEN, "sim");
        let weight = |r: &RegionModel| at_least(r.weight, 0.0, 0.0);
        let total: f64 = model.regions.iter().map(weight).sum();
        let rps = at_least(model.runs_per_second, 0.0, 0.0);
        let mut regions: Vec<RegionState> = model
            .regions
            .iter()
            .map(|r| {
                let rate = if total > 0.0 && total.is_finite() {
                    rps * weight(r) / total
                } else {
                    0.0
                };
                RegionState::new(r, rate, &prefix)
            })
            .collect();
        for region in &mut regions {
            region.next_arrival = region.draw_arrival(0.0, &mut rng);
            region.next_transition = region.draw_failure(0.0, &mut rng);
        }
        Self {
            model,
            rng,
            regions,
            elapsed: Duration::ZERO,
            counter: 0,
        }
    }

    /// Events of the next `dt` of simulated time, in time order.
    ///
    /// Deterministic in (seed, model, prefix, sequence of `dt` values). Runs
    /// arrive as a Poisson process at `runs_per_second` split by weight among
    /// the regions; a region that is down emits no runs (its share is lost,
    /// not moved to other regions). Each region alternates up/down with
    /// exponentially distributed up time (mean
    /// `mean_time_between_outages_secs`) and down time (mean
    /// `mean_outage_secs`), emitting [`SimEvent::RegionDown`] /
    /// [`SimEvent::RegionUp`] at the transitions, in time order across
    /// regions. Events at exactly the end of the step are included.
    ///
    /// The work done is proportional to the number of events in `dt`
    /// (about `runs_per_second * dt`), so callers step in small increments.
    pub fn advance(&mut self, dt: Duration) -> Vec<SimEvent> {
        self.elapsed = self.elapsed.saturating_add(dt);
        let end = self.elapsed.as_secs_f64();
        let mut events = Vec::new();
        loop {
            let mut best: Option<(f64, usize, Next)> = None;
            for (i, region) in self.regions.iter().enumerate() {
                let mut consider = |t: f64, next: Next| {
                    if t <= end && best.is_none_or(|(bt, _, _)| t < bt) {
                        best = Some((t, i, next));
                    }
                };
                consider(region.next_transition, Next::Transition);
                if region.up {
                    consider(region.next_arrival, Next::Arrival);
                }
            }
            let Some((t, i, next)) = best else { break };
            let Some(region) = self.regions.get_mut(i) else {
                break;
            };
            match next {
                Next::Transition if region.up => {
                    region.up = false;
                    region.next_arrival = f64::INFINITY;
                    region.next_transition = region.draw_recovery(t, &mut self.rng);
                    events.push(SimEvent::RegionDown {
                        region: region.name.clone(),
                    });
                }
                Next::Transition => {
                    region.up = true;
                    region.next_transition = region.draw_failure(t, &mut self.rng);
                    region.next_arrival = region.draw_arrival(t, &mut self.rng);
                    events.push(SimEvent::RegionUp {
                        region: region.name.clone(),
                    });
                }
                Next::Arrival => {
                    let (data_class, metrics) = region.draw_run(&mut self.rng);
                    region.next_arrival = region.draw_arrival(t, &mut self.rng);
                    self.counter = self.counter.saturating_add(1);
                    events.push(SimEvent::Run(SimulatedRun {
                        run_id: format!("{}{}", region.id_stem, self.counter),
                        region: region.name.clone(),
                        data_class,
                        metrics,
                    }));
                }
            }
        }
        events
    }

    /// Whether the named region is currently up (`false` for a region not
    /// in the model).
    pub fn is_up(&self, region: &str) -> bool {
        self.regions
            .iter()
            .find(|r| r.name == region)
            .is_some_and(|r| r.up)
    }

    /// Simulated time elapsed since the simulator was created.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Number of runs emitted so far.
    pub fn runs_emitted(&self) -> u64 {
        self.counter
    }

    /// The model the simulator was created with.
    pub fn model(&self) -> &SimModel {
        &self.model
    }
}
