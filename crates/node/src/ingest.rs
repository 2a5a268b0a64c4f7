//! The ingest service: a validated run is checked against the compliance
//! policy, priced, drafted as its ledger block (personal-class runs under a
//! salted reference) and stored durably; metrics and the recent history
//! follow what was stored.

use crate::ledger::valuation_draft;
use crate::metrics::RegionLabel;
use crate::Node;
use qunimbus_core::region::metric_label;
use qunimbus_core::time::now_micros;
use qunimbus_core::{DataClass, FieldError, FieldErrorCode, RunMetrics, Telemetry};
use qunimbus_storage::{RunEntry, RunRecord, StorageError, Stored};
use qunimbus_valuation::Valuation;
use std::time::Instant;
use thiserror::Error;

/// Why a run was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A field is invalid.
    Invalid(FieldError),
    /// A compliance rule forbids this data class in this region.
    Policy(String),
}

/// One refused item of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRefusal {
    /// Position in the batch (0-based).
    pub index: usize,
    /// Why.
    pub refusal: Refusal,
}

/// Why an ingest stored nothing.
#[derive(Debug, Error)]
pub enum IngestError {
    /// The run is refused.
    #[error("the run is refused")]
    Refused(Refusal),
    /// Items of the batch are refused (all listed); nothing was stored.
    #[error("{} runs of the batch are refused", .0.len())]
    Batch(Vec<ItemRefusal>, usize),
    /// Storage failed or pushed back.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Node {
    /// Checks `telemetry` against the policy, prices it and drafts its block.
    fn value_run(&self, telemetry: Telemetry) -> Result<RunEntry, Refusal> {
        let policy = self
            .trust
            .check_accept(telemetry.data_class, &telemetry.region)
            .map_err(|decision| {
                let rule = if decision.errors.is_empty() {
                    format!("rule {}", decision.rules.join(", "))
                } else {
                    format!("policy evaluation error ({})", decision.errors.join("; "))
                };
                let frameworks = if decision.frameworks.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", decision.frameworks.join(", "))
                };
                Refusal::Policy(format!(
                    "{rule}{frameworks} forbids accepting {} runs in region {}; nothing was stored",
                    telemetry.data_class.as_str(),
                    telemetry.region
                ))
            })?;
        let valuation = self.quote(&telemetry.metrics).map_err(Refusal::Invalid)?;
        let erasure_salt = (telemetry.data_class == DataClass::Personal).then(|| {
            let salt: [u8; 16] = rand::random();
            qunimbus_ledger::hex::encode(&salt)
        });
        let record = RunRecord {
            valuation,
            telemetry,
            accepted_at: now_micros(),
            block_index: None,
            feed_seq: None,
            erasure_salt,
            policy_sha256: Some(policy.sha256.to_string()),
        };
        let draft = valuation_draft(&record, &self.frameworks, &policy);
        Ok((record, draft))
    }

    /// Prices `metrics` without recording anything, refusing inputs whose
    /// figures would not be finite.
    pub fn quote(&self, metrics: &RunMetrics) -> Result<Valuation, FieldError> {
        let valuation = self.engine.value(metrics);
        if valuation.is_finite() {
            return Ok(valuation);
        }
        Err(FieldError::field(
            "eph_delivered",
            FieldErrorCode::OutOfRange,
            format!(
                "eph_delivered {} is too small: eph_price = phi_qevf / eph_delivered is not a finite number",
                metrics.eph_delivered
            ),
        ))
    }

    /// Ingests one run received (its body read) at `received`: stored with
    /// its block, or the original of its `run_id`.
    pub async fn ingest(
        &self,
        telemetry: Telemetry,
        received: Instant,
    ) -> Result<Stored, IngestError> {
        self.trust.note_report(&telemetry.region);
        let entry = self.value_run(telemetry).map_err(IngestError::Refused)?;
        let mut stored = self.store_runs(vec![entry], received).await?;
        stored.pop().ok_or_else(|| {
            StorageError::CommitFailed("the store returned no outcome".into()).into()
        })
    }

    /// Ingests a batch: every run valid and allowed → all stored in one
    /// transaction; otherwise every refused item is listed, with how many
    /// items there were, and nothing is stored.
    pub async fn ingest_batch(
        &self,
        items: Vec<Result<Telemetry, FieldError>>,
        received: Instant,
    ) -> Result<Vec<Stored>, IngestError> {
        let total = items.len();
        self.note_batch_reports(&items);
        let mut runs = Vec::with_capacity(total);
        let mut refused = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            match item
                .map_err(Refusal::Invalid)
                .and_then(|t| self.value_run(t))
            {
                Ok(entry) => runs.push(entry),
                Err(refusal) => refused.push(ItemRefusal { index, refusal }),
            }
        }
        if !refused.is_empty() {
            return Err(IngestError::Batch(refused, total));
        }
        self.store_runs(runs, received).await
    }

    /// A batch is one report from each region it carries runs of.
    fn note_batch_reports(&self, items: &[Result<Telemetry, FieldError>]) {
        let regions: std::collections::BTreeSet<&str> = items
            .iter()
            .filter_map(|i| i.as_ref().ok().map(|t| t.region.as_str()))
            .collect();
        for region in regions {
            self.trust.note_report(region);
        }
    }

    async fn store_runs(
        &self,
        runs: Vec<RunEntry>,
        received: Instant,
    ) -> Result<Vec<Stored>, IngestError> {
        let stored = self
            .store
            .append_runs_received(runs, Some(received))
            .await?;
        self.note_stored(&stored);
        Ok(stored)
    }

    /// Updates metrics and the recent history for newly stored runs.
    fn note_stored(&self, stored: &[Stored]) {
        let mut created = 0;
        for s in stored {
            let record = s.record();
            if s.is_created() {
                created += 1;
                let label = RegionLabel {
                    region: metric_label(&record.telemetry.region),
                };
                self.metrics
                    .ingest
                    .runs_accepted
                    .get_or_create(&label)
                    .inc();
                self.metrics
                    .ingest
                    .phi_qevf
                    .get_or_create(&label)
                    .set(record.valuation.phi_qevf);
                self.record_history(record.valuation.phi_qevf);
            } else {
                self.metrics.ingest.runs_duplicate.inc();
            }
        }
        self.metrics.ingest.stored_runs.inc_by(created);
    }
}
