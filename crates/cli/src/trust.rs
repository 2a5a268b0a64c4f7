//! `qunimbus region|rollout|compliance|policy`: the Trust Kernel through a
//! running node's API, and offline policy checks.

use anyhow::{Context, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

use crate::partner::AdminTarget;

/// Region commands.
#[derive(Subcommand)]
pub enum RegionCommand {
    /// Status, trust, availability and MTBF of every region.
    #[command(after_help = "Example:\n  qunimbus region list")]
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// One region in full (JSON).
    #[command(after_help = "Example:\n  qunimbus region show eu")]
    Show {
        #[command(flatten)]
        target: AdminTarget,
        /// Region name.
        region: String,
    },
    /// Set a region's status and optionally override its trust score (an
    /// `override` block on the ledger).
    #[command(
        after_help = "Examples:\n  qunimbus region set apac --status degraded --trust 0.6 --reason \"link flapping\"\n  qunimbus region set apac --status active --clear-trust"
    )]
    Set {
        #[command(flatten)]
        target: AdminTarget,
        /// Region name.
        region: String,
        /// active, degraded, down or draining.
        #[arg(long)]
        status: String,
        /// Trust override (clamped to 0-1); needs --reason.
        #[arg(long, conflicts_with = "clear_trust")]
        trust: Option<f64>,
        /// Remove the trust override (the computed score applies again).
        #[arg(long)]
        clear_trust: bool,
        /// Why (required with --trust).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Record a failure or recovery (a `health` block), now or back-dated.
    #[command(
        after_help = "Example:\n  qunimbus region event eu --kind failure --at 2026-11-21T08:00:00Z"
    )]
    Event {
        #[command(flatten)]
        target: AdminTarget,
        /// Region name.
        region: String,
        /// failure or recovery.
        #[arg(long)]
        kind: String,
        /// When it happened (RFC 3339; default now; never in the future).
        #[arg(long)]
        at: Option<String>,
    },
}

/// Rollout commands.
#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Start a staged rollout (canary 5 % → 25 % → 60 % → 100 %).
    #[command(after_help = "Example:\n  qunimbus rollout start --version 1.4.0 --canary americas")]
    Start {
        #[command(flatten)]
        target: AdminTarget,
        /// Version being rolled out.
        #[arg(long)]
        version: String,
        /// Canary region (default: the first phase's).
        #[arg(long)]
        canary: Option<String>,
    },
    /// Every rollout, newest first.
    #[command(after_help = "Example:\n  qunimbus rollout list")]
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// One rollout with its gates and history (JSON).
    #[command(after_help = "Example:\n  qunimbus rollout show ro-20261121T101500000000Z")]
    Show {
        #[command(flatten)]
        target: AdminTarget,
        /// Rollout id.
        id: String,
    },
    /// Advance, pause, resume or roll back a rollout by hand.
    #[command(
        after_help = "Examples:\n  qunimbus rollout act ro-20261121T101500000000Z pause --reason \"investigating EU latency\"\n  qunimbus rollout act ro-20261121T101500000000Z rollback"
    )]
    Act {
        #[command(flatten)]
        target: AdminTarget,
        /// Rollout id.
        id: String,
        /// advance, pause, resume or rollback.
        command: String,
        /// Why (recorded on the ledger).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Policy commands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a Cedar policy file offline, as the node would load it.
    #[command(after_help = "Example:\n  qunimbus policy check ./qunimbus-data/policy.cedar")]
    Check {
        /// The policy file.
        file: PathBuf,
        /// Configured regions (default: the six of SPEC §6).
        #[arg(long, value_delimiter = ',')]
        regions: Vec<String>,
    },
    /// Ask a running node to reload its policy file now.
    #[command(after_help = "Example:\n  qunimbus policy reload")]
    Reload {
        #[command(flatten)]
        target: AdminTarget,
    },
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn hours(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |h| format!("{h:.2} h"))
}

/// Runs a region command.
pub async fn region(command: RegionCommand) -> Result<()> {
    match command {
        RegionCommand::List { target } => {
            let list = target.call(Method::GET, "/v1/regions", None).await?;
            println!(
                "{:<10} {:<9} {:>6} {:<9} {:>8} {:>8} {:>12}",
                "region", "status", "trust", "source", "avail", "failures", "MTBF"
            );
            for r in list["regions"].as_array().into_iter().flatten() {
                let mtbf = if r["mtbf_hours"].is_null() {
                    format!("≥ {}", hours(&r["mtbf_at_least_hours"]))
                } else {
                    hours(&r["mtbf_hours"])
                };
                println!(
                    "{:<10} {:<9} {:>6.3} {:<9} {:>8.4} {:>8} {:>12}",
                    r["name"].as_str().unwrap_or(""),
                    r["status"].as_str().unwrap_or(""),
                    r["trust_score"].as_f64().unwrap_or(f64::NAN),
                    r["trust_source"].as_str().unwrap_or(""),
                    r["availability"].as_f64().unwrap_or(f64::NAN),
                    r["failures"],
                    mtbf
                );
            }
            let mesh = target.call(Method::GET, "/v1/mesh", None).await?;
            println!(
                "mesh: {}/{} active, average trust {:.3}, MTBF {} (target {} h: {})",
                mesh["active_regions"],
                mesh["total_regions"],
                mesh["average_trust"].as_f64().unwrap_or(f64::NAN),
                if mesh["mtbf_hours"].is_null() {
                    format!("≥ {} (no failures)", hours(&mesh["mtbf_at_least_hours"]))
                } else {
                    hours(&mesh["mtbf_hours"])
                },
                mesh["mtbf_target_hours"],
                match mesh["mtbf_compliant"].as_bool() {
                    Some(true) => "met",
                    Some(false) => "NOT met",
                    None => "not yet known",
                }
            );
        }
        RegionCommand::Show { target, region } => {
            print_json(
                &target
                    .call(Method::GET, &format!("/v1/regions/{region}"), None)
                    .await?,
            );
        }
        RegionCommand::Set {
            target,
            region,
            status,
            trust,
            clear_trust,
            reason,
        } => {
            let mut body = json!({ "status": status });
            if let Some(t) = trust {
                body["trust_score"] = json!(t);
            } else if clear_trust {
                body["trust_score"] = Value::Null;
            }
            if let Some(r) = reason {
                body["reason"] = json!(r);
            }
            let answer = target
                .call(Method::PUT, &format!("/v1/regions/{region}"), Some(body))
                .await?;
            println!(
                "{} is {} with trust {} ({}); recorded in block {}",
                answer["region"]["name"],
                answer["region"]["status"],
                answer["region"]["trust_score"],
                answer["region"]["trust_source"],
                answer["block_index"]
            );
        }
        RegionCommand::Event {
            target,
            region,
            kind,
            at,
        } => {
            let mut body = json!({ "kind": kind });
            if let Some(at) = at {
                body["at"] = json!(at);
            }
            let answer = target
                .call(
                    Method::POST,
                    &format!("/v1/regions/{region}/events"),
                    Some(body),
                )
                .await?;
            println!(
                "{} recorded in block {}; {} now {} with MTBF {}",
                answer["event"]["kind"],
                answer["block_index"],
                answer["region"]["name"],
                answer["region"]["status"],
                hours(&answer["region"]["mtbf_hours"])
            );
        }
    }
    Ok(())
}

fn print_rollout(r: &Value) {
    println!(
        "{}  version {}  {} at phase {} ({} %), deployed: {}{}",
        r["id"].as_str().unwrap_or(""),
        r["version"].as_str().unwrap_or(""),
        r["state"].as_str().unwrap_or(""),
        r["phase"],
        r["phases"][r["phase"].as_u64().unwrap_or(0) as usize]["percent"],
        r["deployed_regions"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        r["reason"]
            .as_str()
            .map(|s| format!("\n    reason: {s}"))
            .unwrap_or_default()
    );
}

/// Runs a rollout command.
pub async fn rollout(command: RolloutCommand) -> Result<()> {
    match command {
        RolloutCommand::Start {
            target,
            version,
            canary,
        } => {
            let mut body = json!({ "version": version });
            if let Some(c) = canary {
                body["canary_region"] = json!(c);
            }
            print_rollout(
                &target
                    .call(Method::POST, "/v1/rollouts", Some(body))
                    .await?,
            );
        }
        RolloutCommand::List { target } => {
            let list = target.call(Method::GET, "/v1/rollouts", None).await?;
            for r in list["rollouts"].as_array().into_iter().flatten() {
                print_rollout(r);
            }
        }
        RolloutCommand::Show { target, id } => {
            print_json(
                &target
                    .call(Method::GET, &format!("/v1/rollouts/{id}"), None)
                    .await?,
            );
        }
        RolloutCommand::Act {
            target,
            id,
            command,
            reason,
        } => {
            let body = reason.map(|r| json!({ "reason": r }));
            print_rollout(
                &target
                    .call(Method::POST, &format!("/v1/rollouts/{id}/{command}"), body)
                    .await?,
            );
        }
    }
    Ok(())
}

/// `qunimbus compliance`: the node's evaluation, or a fresh attestation.
pub async fn compliance(target: AdminTarget, attest: bool) -> Result<()> {
    let answer = if attest {
        target
            .call(Method::POST, "/v1/compliance/attest", None)
            .await?
    } else {
        target.call(Method::GET, "/v1/compliance", None).await?
    };
    let report = &answer["compliance"];
    for (framework, verdict) in report["frameworks"].as_object().into_iter().flatten() {
        let word = match verdict["compliant"].as_bool() {
            Some(true) => "compliant",
            Some(false) => "NON-COMPLIANT",
            None => "not evaluated",
        };
        println!("{framework:<12} {word}");
        for reason in verdict["reasons"].as_array().into_iter().flatten() {
            println!("    {}", reason.as_str().unwrap_or(""));
        }
    }
    if let Some(index) = answer["block_index"].as_u64() {
        println!("attestation recorded in block {index}");
    }
    Ok(())
}

/// Runs a policy command.
pub async fn policy(command: PolicyCommand) -> Result<()> {
    match command {
        PolicyCommand::Check { file, regions } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let regions: Vec<String> = if regions.is_empty() {
                qunimbus_core::DEFAULT_REGIONS
                    .iter()
                    .map(|r| r.to_string())
                    .collect()
            } else {
                regions
            };
            let engine = qunimbus_trust::policy::PolicyEngine::load(&text, &regions)
                .with_context(|| format!("{} is refused", file.display()))?;
            println!(
                "{} is valid: {} rules",
                file.display(),
                engine.rules().len()
            );
            for rule in engine.rules() {
                println!(
                    "  {:<6} {}{}",
                    rule.effect,
                    rule.id,
                    rule.framework
                        .as_deref()
                        .map(|f| format!(" ({f})"))
                        .unwrap_or_default()
                );
            }
        }
        PolicyCommand::Reload { target } => {
            let status = target.call(Method::POST, "/v1/policy/reload", None).await?;
            println!(
                "policy in force: {} (sha256 {}), recorded in block {}",
                status["path"].as_str().unwrap_or(""),
                status["sha256"].as_str().unwrap_or(""),
                status["block_index"]
            );
        }
    }
    Ok(())
}
