//! The stored form of an accepted run.

use crate::StorageError;
use chrono::{DateTime, Utc};
use qunimbus_core::{time::rfc3339_micros, DataClass, RunId, RunMetrics, Telemetry};
use qunimbus_valuation::Valuation;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// The columns of `runs` in the order `from_row` reads them.
pub(crate) const COLUMNS: &str = "run_id, region, data_class, eta_ent, coherence_variance, \
runtime_hours, eph_delivered, efficiency_multiplier, coherence_penalty, runtime_factor, \
phi_qevf, price_multiplier, market_value, eph_price, coherence_within_threshold, accepted_at";

/// An accepted run: the validated telemetry, its valuation and when the node accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// What the runtime reported.
    pub telemetry: Telemetry,
    /// What the engine computed.
    pub valuation: Valuation,
    /// When the node accepted it (UTC, whole microseconds).
    pub accepted_at: DateTime<Utc>,
}

/// The outcome of storing one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// The record is new and now durable.
    Created(RunRecord),
    /// A record with the same `run_id` was already stored; this is that original.
    Existing(RunRecord),
}

impl Stored {
    /// The record that is stored under the run id.
    pub fn record(&self) -> &RunRecord {
        match self {
            Self::Created(r) | Self::Existing(r) => r,
        }
    }

    /// Whether the record was newly created.
    pub fn is_created(&self) -> bool {
        matches!(self, Self::Created(_))
    }
}

impl RunRecord {
    pub(crate) fn from_row(row: &SqliteRow) -> Result<Self, StorageError> {
        let corrupt = |what: &str| StorageError::Corrupt(what.to_string());
        let run_id: String = row.try_get("run_id")?;
        let data_class: String = row.try_get("data_class")?;
        let accepted_at: String = row.try_get("accepted_at")?;
        Ok(Self {
            telemetry: Telemetry {
                run_id: RunId::parse(&run_id).map_err(|_| corrupt("run_id"))?,
                region: row.try_get("region")?,
                data_class: DataClass::parse(&data_class).ok_or_else(|| corrupt("data_class"))?,
                metrics: RunMetrics {
                    eta_ent: row.try_get("eta_ent")?,
                    coherence_variance: row.try_get("coherence_variance")?,
                    runtime_hours: row.try_get("runtime_hours")?,
                    eph_delivered: row.try_get("eph_delivered")?,
                },
            },
            valuation: Valuation {
                efficiency_multiplier: row.try_get("efficiency_multiplier")?,
                coherence_penalty: row.try_get("coherence_penalty")?,
                runtime_factor: row.try_get("runtime_factor")?,
                phi_qevf: row.try_get("phi_qevf")?,
                price_multiplier: row.try_get("price_multiplier")?,
                market_value: row.try_get("market_value")?,
                eph_price: row.try_get("eph_price")?,
                coherence_within_threshold: row.try_get("coherence_within_threshold")?,
            },
            accepted_at: DateTime::parse_from_rfc3339(&accepted_at)
                .map_err(|_| corrupt("accepted_at"))?
                .with_timezone(&Utc),
        })
    }

    pub(crate) fn accepted_at_text(&self) -> String {
        rfc3339_micros(self.accepted_at)
    }
}
