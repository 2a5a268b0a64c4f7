//! `qunimbus credentials …`: a running node's tokens — list them (no
//! secrets), issue a client token with its scopes, and rotate the admin,
//! ingest or a client token, or a partner's key, with a grace period. A
//! new secret is printed once; each change is a ledger block.

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::partner::AdminTarget;

/// Credential commands.
#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// The tokens the node issued and retired (no secrets).
    #[command(after_help = "Example:\n  qunimbus credentials list")]
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Issues a client token with its own scopes (read, ingest, agent, admin).
    #[command(
        after_help = "Example:\n  qunimbus credentials create-client --name pricing-bot --scope read --scope agent --reason \"the pricing agent\""
    )]
    CreateClient {
        #[command(flatten)]
        target: AdminTarget,
        /// The client's name (the credential is client:NAME).
        #[arg(long)]
        name: String,
        /// A scope (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Why (required; recorded on the ledger).
        #[arg(long)]
        reason: String,
    },
    /// Rotates admin, ingest, client:NAME or partner:ID; the old secret
    /// keeps working for the grace period.
    #[command(
        after_help = "Example:\n  qunimbus credentials rotate admin --grace-secs 600 --reason \"quarterly rotation\"\n  qunimbus credentials rotate partner:p_0123abcd --reason \"partner asked\""
    )]
    Rotate {
        #[command(flatten)]
        target: AdminTarget,
        /// admin, ingest, client:NAME or partner:ID.
        credential: String,
        /// Seconds the old secret keeps working (0 to 2592000).
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
        /// Why (required; recorded on the ledger).
        #[arg(long)]
        reason: String,
    },
}

fn print_issued(issued: &Value) {
    println!(
        "credential: {}",
        issued["credential"].as_str().unwrap_or("-")
    );
    println!(
        "secret:     {}  (shown once; only its SHA-256 is stored)",
        issued["secret"].as_str().unwrap_or("-")
    );
    if let Some(until) = issued["previous_valid_until"].as_str() {
        println!("the previous secret works until {until}");
    }
    println!("ledger block {}", issued["block_index"]);
}

/// Runs a credentials command.
pub async fn run(command: CredentialsCommand) -> Result<()> {
    match command {
        CredentialsCommand::List { target } => {
            let list = target.call(Method::GET, "/v1/credentials", None).await?;
            println!(
                "{:<28} {:<22} {:<24} {:<28} valid until",
                "credential", "token", "scopes", "issued"
            );
            for c in list["credentials"].as_array().into_iter().flatten() {
                println!(
                    "{:<28} {:<22} {:<24} {:<28} {}",
                    c["credential"].as_str().unwrap_or("-"),
                    c["token_id"].as_str().unwrap_or("-"),
                    c["scopes"].as_str().unwrap_or("-"),
                    c["created_at"].as_str().unwrap_or("-"),
                    c["valid_until"].as_str().unwrap_or("(current)")
                );
            }
        }
        CredentialsCommand::CreateClient {
            target,
            name,
            scopes,
            reason,
        } => {
            let body = json!({"name": name, "scopes": scopes, "reason": reason});
            print_issued(
                &target
                    .call(Method::POST, "/v1/credentials/clients", Some(body))
                    .await?,
            );
        }
        CredentialsCommand::Rotate {
            target,
            credential,
            grace_secs,
            reason,
        } => {
            let body = json!({"grace_secs": grace_secs, "reason": reason});
            let issued = match credential.strip_prefix("partner:") {
                Some(id) => {
                    target
                        .call(
                            Method::POST,
                            &format!("/v1/partners/{id}/rotate-key"),
                            Some(body),
                        )
                        .await?
                }
                None => {
                    let mut body = body;
                    body["credential"] = json!(credential);
                    target
                        .call(Method::POST, "/v1/credentials/rotate", Some(body))
                        .await?
                }
            };
            print_issued(&issued);
        }
    }
    Ok(())
}
