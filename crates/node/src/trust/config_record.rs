//! The node's effective configuration on the ledger (ISO 27001 A.12.1.2 /
//! A.14.2.2: every configuration change is recorded). At start the node
//! flattens its effective configuration (every key with its value, defaults
//! included, secrets excluded, plus the node's version) and writes a `config`
//! block with the changed keys when it differs from the one the newest such
//! block records. The agent's hot reloads are recorded by the agent's own
//! `config` blocks.

use super::*;
use qunimbus_ledger::block::Block;

/// A configuration as recorded: dotted key → value.
pub type ConfigMap = BTreeMap<String, Value>;

/// The payload key that marks an effective-configuration block.
const DIGEST_KEY: &str = "config_sha256";

/// `value` (a serialized configuration) as dotted keys; arrays stay values.
pub fn flatten(value: &Value) -> ConfigMap {
    fn walk(prefix: &str, value: &Value, out: &mut ConfigMap) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, child, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = ConfigMap::new();
    walk("", value, &mut out);
    out
}

/// SHA-256 (hex) of the RFC 8785 form of `config`.
fn digest(config: &ConfigMap) -> Result<String, TrustError> {
    let value = Value::Object(config.clone().into_iter().collect());
    let bytes = qunimbus_ledger::jcs::canonicalize(&value)
        .map_err(|e| TrustError::Corrupt(format!("configuration: {e}")))?;
    Ok(qunimbus_ledger::hex::encode(
        &qunimbus_ledger::merkle::sha256(&bytes),
    ))
}

/// Every key whose value differs, was added or was removed.
fn changes(old: &ConfigMap, new: &ConfigMap) -> Vec<Value> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| json!({ "key": k, "old": old.get(k), "new": new.get(k) }))
        .collect()
}

impl TrustKernel {
    /// The digest of `config` (the effective configuration) and, unless
    /// the newest configuration block records it, what the start-up block
    /// adds about it: a description and the payload fields (digest,
    /// previous digest, changed keys with old and new values, the whole
    /// configuration).
    pub(super) async fn config_change(
        &self,
        config: &ConfigMap,
    ) -> Result<
        (
            String,
            Option<(&'static str, serde_json::Map<String, Value>)>,
        ),
        TrustError,
    > {
        let sha256 = digest(config)?;
        let newest = self.newest_config_block().await?;
        let payload = newest.as_ref().and_then(|b| b.payload.as_ref());
        let previous_sha = payload
            .and_then(|p| p.get(DIGEST_KEY))
            .and_then(Value::as_str)
            .map(str::to_string);
        if previous_sha.as_deref() == Some(sha256.as_str()) {
            return Ok((sha256, None));
        }
        let previous: ConfigMap = payload
            .and_then(|p| p.get("config"))
            .and_then(Value::as_object)
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default();
        let (change, changed) = match newest {
            Some(_) => (
                "effective configuration changed",
                changes(&previous, config),
            ),
            None => ("effective configuration recorded", Vec::new()),
        };
        let fields = serde_json::Map::from_iter([
            (DIGEST_KEY.to_string(), json!(sha256)),
            ("previous_sha256".into(), json!(previous_sha)),
            ("changes".into(), json!(changed)),
            ("config".into(), json!(config)),
        ]);
        Ok((sha256, Some((change, fields))))
    }

    /// The newest block that records an effective configuration.
    async fn newest_config_block(&self) -> Result<Option<Block>, TrustError> {
        Ok(
            crate::ledger::newest_block_where(&self.store, "config", |b| {
                b.payload
                    .as_ref()
                    .is_some_and(|p| p.get(DIGEST_KEY).is_some())
            })
            .await?,
        )
    }

    /// ISO 27001 evidence: the configuration this node runs with is the one
    /// the newest configuration block on the ledger records.
    pub(super) async fn config_evidence(&self) -> Result<Result<(), String>, TrustError> {
        let Some(running) = self.config_sha256.get() else {
            return Ok(Err(
                "the node's effective configuration has not been recorded on the ledger".into(),
            ));
        };
        let newest = self.newest_config_block().await?;
        let recorded = newest
            .as_ref()
            .and_then(|b| b.payload.as_ref()?.get(DIGEST_KEY)?.as_str());
        Ok(match (recorded, &newest) {
            (Some(r), _) if r == running.as_str() => Ok(()),
            (Some(r), Some(b)) => Err(format!(
                "the effective configuration (sha256 {running}) is not the one the newest configuration block records (block {}, sha256 {r})",
                b.index
            )),
            _ => Err(format!(
                "no configuration block on the ledger records the effective configuration (sha256 {running})"
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_keys_and_their_changes() {
        let old = flatten(
            &json!({"valuation": {"eta_baseline": 0.95, "base_phi_value": 1000.0}, "regions": ["EU"], "public_url": null}),
        );
        assert_eq!(
            old.keys().collect::<Vec<_>>(),
            [
                "public_url",
                "regions",
                "valuation.base_phi_value",
                "valuation.eta_baseline"
            ]
        );
        let new = flatten(
            &json!({"valuation": {"eta_baseline": 0.9, "base_phi_value": 1000.0}, "regions": ["EU"], "public_url": null, "x": 1}),
        );
        assert_eq!(
            changes(&old, &new),
            vec![
                json!({"key": "valuation.eta_baseline", "old": 0.95, "new": 0.9}),
                json!({"key": "x", "old": null, "new": 1}),
            ]
        );
        assert_ne!(digest(&old).unwrap(), digest(&new).unwrap());
        assert_eq!(digest(&old).unwrap(), digest(&old.clone()).unwrap());
    }
}
