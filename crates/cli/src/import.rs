//! `qunimbus import`: posts telemetry from a JSON-lines file to a running
//! node in batches, with a progress bar.
//!
//! Each batch is all-or-nothing on the node, and `run_id` makes re-sending
//! harmless (duplicates add no block), so an import stopped by a bad line
//! can be re-run from the start once the line is fixed.

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::path::PathBuf;

use crate::partner::credential;

/// Arguments of `qunimbus import`.
#[derive(Args)]
pub struct ImportArgs {
    /// JSON-lines file: one telemetry object per line (blank lines skipped).
    file: PathBuf,
    /// Base URL of the node.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Ingest token (default: QUNIMBUS_INGEST_TOKEN, else DATA_DIR/credentials.toml).
    #[arg(long, env = "QUNIMBUS_INGEST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data directory holding credentials.toml.
    #[arg(long, env = "QUNIMBUS_DATA_DIR", default_value = "./qunimbus-data")]
    data_dir: PathBuf,
    /// Runs per batch request (the node's `ingest.max_batch_runs` caps it).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
}

/// Reads the whole file first, so a line that is not JSON stops the import
/// before anything is sent.
fn read_lines(file: &PathBuf) -> Result<Vec<(usize, Value)>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a JSON value", file.display(), i + 1))?;
        runs.push((i + 1, value));
    }
    Ok(runs)
}

/// Runs the import.
pub async fn run(args: ImportArgs) -> Result<()> {
    let runs = read_lines(&args.file)?;
    if runs.is_empty() {
        bail!("{} holds no runs", args.file.display());
    }
    let token = match &args.token {
        Some(t) => t.clone(),
        None => credential(&args.data_dir, "ingest_token")?,
    };
    let client = reqwest::Client::new();
    let endpoint = format!("{}/v1/telemetry/batch", args.url.trim_end_matches('/'));
    let bar = ProgressBar::new(runs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "importing [{bar:40}] {pos}/{len} runs ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    for chunk in runs.chunks(args.batch as usize) {
        let body: Vec<&Value> = chunk.iter().map(|(_, v)| v).collect();
        let (response, _) =
            crate::retry::send(|| client.post(&endpoint).bearer_auth(&token).json(&body))
                .await
                .with_context(|| format!("cannot reach {}", args.url))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bar.abandon();
            let error = &answer["error"];
            let mut message = format!(
                "the node refused the batch of lines {}-{} ({status}): {}",
                chunk[0].0,
                chunk[chunk.len() - 1].0,
                error["message"].as_str().unwrap_or("no error message")
            );
            for item in error["items"].as_array().into_iter().flatten() {
                if let Some((line, _)) = item["index"].as_u64().and_then(|i| chunk.get(i as usize))
                {
                    message.push_str(&format!(
                        "\n  line {line}: {} ({})",
                        item["message"].as_str().unwrap_or(""),
                        item["field"].as_str().unwrap_or("")
                    ));
                }
            }
            bail!("{message}\n{accepted} runs accepted and {duplicates} duplicates before it; batches are all-or-nothing, so fix the line and re-run (stored runs come back as duplicates)");
        }
        accepted += answer["accepted"].as_u64().unwrap_or(0);
        duplicates += answer["duplicates"].as_u64().unwrap_or(0);
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    println!(
        "imported {} runs from {}: {accepted} accepted, {duplicates} duplicates",
        runs.len(),
        args.file.display()
    );
    Ok(())
}
