//! Where configuration comes from: the TOML file and the `QUNIMBUS_*`
//! environment variables.

use super::{ConfigError, CONFIG_FILE_ENV, ENV_PREFIX};
use std::path::Path;

/// Keys whose environment values are always strings (never parsed as numbers).
const STRING_KEYS: [&str; 20] = [
    "backup.dir",
    "agent.exchange.url",
    "agent.market_replay_dir",
    "agent.universe_file",
    "agent.strategy.name",
    "nats_url",
    "nats.stream",
    "nats.subject_prefix",
    "tsa.url",
    "tsa.roots_file",
    "tsa.key_file",
    "tsa.chain_file",
    "ledger.origin",
    "ledger.signing_key_file",
    "data_dir",
    "listen",
    "database_url",
    "log_format",
    "auth.admin_token",
    "auth.ingest_token",
];

pub(super) fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Maps `QUNIMBUS_SECTION__KEY=value` to (`section.key`, typed value).
/// `QUNIMBUS_ADMIN_TOKEN` and `QUNIMBUS_INGEST_TOKEN` are aliases for the
/// `auth.` keys (SPEC §9). `QUNIMBUS_NATS__PEER_KEYS` takes a TOML array or
/// keys separated by commas or white space. Returns `None` for variables
/// that are not config (the NATS credential variables are taken out before).
pub(super) fn env_entry(name: &str, value: &str) -> Option<(String, toml::Value)> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    if name == CONFIG_FILE_ENV || rest.is_empty() {
        return None;
    }
    let key = match rest {
        "ADMIN_TOKEN" => "auth.admin_token".to_string(),
        "INGEST_TOKEN" => "auth.ingest_token".to_string(),
        _ => rest.to_ascii_lowercase().replace("__", "."),
    };
    let typed = if key == "nats.peer_keys" && !value.trim_start().starts_with('[') {
        // Also a plain list: keys separated by commas or white space (a key
        // has neither).
        toml::Value::Array(
            value
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|k| !k.is_empty())
                .map(|k| toml::Value::String(k.to_string()))
                .collect(),
        )
    } else if STRING_KEYS.contains(&key.as_str()) || key.starts_with("nats.tls_") {
        toml::Value::String(value.to_string())
    } else {
        format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()))
    };
    Some((key, typed))
}

pub(super) fn set_key(
    table: &mut toml::Table,
    dotted: &str,
    value: toml::Value,
) -> Result<(), String> {
    let mut parts = dotted.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{part}` is not a section"))?;
    }
    Ok(())
}
