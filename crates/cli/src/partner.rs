//! `qunimbus partner`: register, list and disable liquidity partners through
//! a running node's admin API.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Reads `key` (`admin_token` or `ingest_token`) from `DATA_DIR/credentials.toml`.
pub(crate) fn credential(data_dir: &std::path::Path, key: &str) -> Result<String> {
    let path = data_dir.join("credentials.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no --token given and {} is not readable", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    table
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no {key}", path.display()))
}

/// How to reach the node's admin API.
#[derive(Args)]
pub struct AdminTarget {
    /// Base URL of the node.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Admin token (default: QUNIMBUS_ADMIN_TOKEN, else DATA_DIR/credentials.toml).
    #[arg(long, env = "QUNIMBUS_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data directory holding credentials.toml.
    #[arg(long, env = "QUNIMBUS_DATA_DIR", default_value = "./qunimbus-data")]
    data_dir: PathBuf,
}

impl AdminTarget {
    fn token(&self) -> Result<String> {
        match &self.token {
            Some(token) => Ok(token.clone()),
            None => credential(&self.data_dir, "admin_token"),
        }
    }

    /// Calls the node's API; reads go without a token when none is found
    /// (they are open unless `auth.protect_reads`).
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let mut request = reqwest::Client::new().request(
            method.clone(),
            format!("{}{path}", self.url.trim_end_matches('/')),
        );
        match self.token() {
            Ok(token) => request = request.bearer_auth(token),
            Err(e) if method != reqwest::Method::GET => return Err(e),
            Err(_) => {}
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = response.status();
        let value: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let message = value["error"]["message"]
                .as_str()
                .unwrap_or("no error message");
            bail!("the node answered {status}: {message}");
        }
        Ok(value)
    }
}

/// Partner commands.
#[derive(Subcommand)]
pub enum PartnerCommand {
    /// Register a partner; prints its API key once.
    #[command(after_help = "Example:\n  qunimbus partner add --name partner_eu --region EU")]
    Add {
        #[command(flatten)]
        target: AdminTarget,
        /// Unique name, 1-64 characters of [A-Za-z0-9._-].
        #[arg(long)]
        name: String,
        /// Home region (decides which data classes it may receive).
        #[arg(long)]
        region: String,
    },
    /// List partners and their live connections.
    #[command(after_help = "Example:\n  qunimbus partner list")]
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Disable a partner: its key stops working and open sessions end.
    #[command(after_help = "Example:\n  qunimbus partner disable p_0123456789abcdef")]
    Disable {
        #[command(flatten)]
        target: AdminTarget,
        /// Partner id.
        id: String,
    },
}

/// Runs a partner command.
pub async fn run(command: PartnerCommand) -> Result<()> {
    match command {
        PartnerCommand::Add {
            target,
            name,
            region,
        } => {
            let created = target
                .call(
                    reqwest::Method::POST,
                    "/v1/partners",
                    Some(serde_json::json!({ "name": name, "region": region })),
                )
                .await?;
            println!(
                "partner {} ({}) registered, home region {}",
                created["name"], created["id"], created["region"]
            );
            println!(
                "API key (shown once, store it now): {}",
                created["api_key"].as_str().unwrap_or("")
            );
        }
        PartnerCommand::List { target } => {
            let list = target
                .call(reqwest::Method::GET, "/v1/partners", None)
                .await?;
            for p in list["partners"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<24} {:<10} {:<9} {} connection(s)",
                    p["id"].as_str().unwrap_or(""),
                    p["name"].as_str().unwrap_or(""),
                    p["region"].as_str().unwrap_or(""),
                    if p["disabled"].as_bool() == Some(true) {
                        "disabled"
                    } else {
                        "active"
                    },
                    p["connections"]
                );
            }
        }
        PartnerCommand::Disable { target, id } => {
            target
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/partners/{id}/disable"),
                    None,
                )
                .await?;
            println!("partner {id} disabled");
        }
    }
    Ok(())
}
