//! The Trust Kernel's background task.

use super::*;

/// The Trust Kernel's background task: reloads the policy when its file
/// changes, re-gathers compliance evidence, drives the rollout controller
/// and writes the scheduled attestation (after a fresh chain verification),
/// until `stop`. The trust gauges are computed when `/metrics` is scraped.
pub async fn run_controller(state: Arc<crate::Node>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let kernel = state.trust.clone();
    let settings = kernel.settings.clone();
    let attestation_micros =
        i64::try_from(settings.attestation_interval.as_micros()).unwrap_or(i64::MAX);
    // Without an earlier scheduled attestation the first is due one interval
    // after this start.
    let mut last_attestation = Some(
        last_scheduled_attestation(&state.store)
            .await
            .unwrap_or_else(|| now_micros().timestamp_micros()),
    );
    if let Err(e) = state.verify_and_record().await {
        tracing::warn!(error = %e, "the start-up ledger verification could not run");
    }
    let mut last_evaluation: Option<std::time::Instant> = None;
    loop {
        if kernel.policy_changed_on_disk() {
            // A refused file is logged and reported; the old policy stays.
            let _ = kernel.reload_policy().await;
            last_evaluation = None;
        }
        let now = now_micros().timestamp_micros();
        let attestation_due =
            last_attestation.is_none_or(|t| now.saturating_sub(t) >= attestation_micros);
        if attestation_due {
            if let Err(e) = state.verify_and_record().await {
                tracing::warn!(error = %e, "ledger verification for the attestation failed to run");
            }
            match evaluate_now(&state).await {
                Ok(snapshot) => match kernel.attest(&snapshot, true).await {
                    Ok(index) => {
                        tracing::info!(block = index, "scheduled compliance attestation written");
                        last_attestation = Some(now);
                        last_evaluation = Some(std::time::Instant::now());
                    }
                    Err(e) => tracing::warn!(error = %e, "could not write the attestation"),
                },
                Err(e) => tracing::warn!(error = %e, "compliance evaluation failed"),
            }
        } else if last_evaluation.is_none_or(|t| t.elapsed() >= settings.compliance_interval) {
            match evaluate_now(&state).await {
                Ok(_) => last_evaluation = Some(std::time::Instant::now()),
                Err(e) => tracing::warn!(error = %e, "compliance evaluation failed"),
            }
        }
        if let Err(e) = kernel.detect_health().await {
            tracing::warn!(error = %e, "region health detection failed; retrying next tick");
        }
        if let Err(e) = kernel.tick_rollouts().await {
            tracing::warn!(error = %e, "rollout controller pass failed; retrying next tick");
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.controller_interval) => {}
            _ = stop.changed() => break,
        }
    }
}
