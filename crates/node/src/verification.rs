//! The ledger as the node checks and attests it: full verification (one
//! at a time, shared by callers that arrive while one runs) and manual
//! attestation blocks.

use crate::ledger::{verify_ledger, verify_timestamps, VerifyReport};
use crate::{lock, Node};
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_ledger::block::{AttestationStatus, Block, BlockDraft, BlockKind};
use qunimbus_storage::StorageError;
use std::collections::BTreeMap;
use std::time::Instant;

impl Node {
    /// Verifies the whole chain and the newest checkpoint token, counts a
    /// failure and keeps the report as the node's last verification. At
    /// most one verification runs at a time; a caller that waited for one
    /// that started after it asked gets that one's report instead of
    /// starting another, so a burst of requests costs at most two passes
    /// over the ledger.
    pub async fn verify_and_record(&self) -> Result<VerifyReport, StorageError> {
        let asked = Instant::now();
        let mut last_started = self.verification_turn.lock().await;
        if last_started.is_some_and(|started| started >= asked) {
            if let Some(report) = lock(&self.last_verification).clone() {
                return Ok(report);
            }
        }
        let started = Instant::now();
        let reader = self.store.reader();
        let report = verify_ledger(reader, Some(&self.verifier), |_| {}).await?;
        let timestamps = verify_timestamps(reader, self.stamper.anchors(), true).await?;
        let report = report.with_timestamps(timestamps);
        if !report.ok {
            self.metrics.ledger.verify_failures.inc();
            tracing::error!(failure = ?report.failure, "ledger verification failed");
        }
        *lock(&self.last_verification) = Some(report.clone());
        *last_started = Some(started);
        Ok(report)
    }

    /// Appends an operator's `attestation` block with these statuses.
    pub async fn attest_manually(
        &self,
        statuses: BTreeMap<String, AttestationStatus>,
    ) -> Result<Block, StorageError> {
        let draft = BlockDraft {
            timestamp: rfc3339_micros(now_micros()),
            kind: BlockKind::Attestation,
            phi_qevf: None,
            eta_ent: None,
            compliance_attestations: statuses,
            region: None,
            run_id: None,
            payload: None,
        };
        let mut blocks = self.store.append_blocks(vec![draft]).await?;
        blocks
            .pop()
            .ok_or_else(|| StorageError::CommitFailed("the store returned no block".into()))
    }
}
