//! Scopes and the book of issued tokens (SPEC §12): every token the node
//! issued or retired, by the SHA-256 of its secret, held in memory for the
//! per-request check and stored in the database (the secret never is).

use qunimbus_storage::TokenRecord;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::RwLock;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Quotes, reads of the ledger and of the agent.
    pub const READ: Self = Self(1);
    /// Telemetry ingest.
    pub const INGEST: Self = Self(2);
    /// Work on the agent's behalf (backtests).
    pub const AGENT: Self = Self(4);
    /// Operator changes.
    pub const ADMIN: Self = Self(8);
    /// Every scope (the admin token's).
    pub const ALL: Self = Self(15);
    /// The ingest token's.
    pub const INGEST_TOKEN: Self = Self(3);

    const NAMES: [(&'static str, Self); 4] = [
        ("read", Self::READ),
        ("ingest", Self::INGEST),
        ("agent", Self::AGENT),
        ("admin", Self::ADMIN),
    ];

    /// Whether every scope of `other` is held.
    pub fn has(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parses scope names (`read`, `ingest`, `agent`, `admin`); at least one.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut scopes = Self(0);
        for name in names {
            let (_, scope) = Self::NAMES
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| {
                    format!(
                        "unknown scope {:?}; the scopes are read, ingest, agent, admin",
                        name.chars().take(20).collect::<String>()
                    )
                })?;
            scopes.0 |= scope.0;
        }
        if scopes.0 == 0 {
            return Err("at least one scope is required".into());
        }
        Ok(scopes)
    }

    /// The scopes' names, in the canonical order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(_, s)| self.has(*s))
            .map(|(n, _)| *n)
            .collect()
    }

    /// Comma-separated names (as stored).
    pub fn text(self) -> String {
        self.names().join(",")
    }
}

/// Who a request's token belongs to and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credential: `admin`, `ingest` or `client:NAME`.
    pub credential: String,
    /// Its scopes.
    pub scopes: Scopes,
}

impl Principal {
    /// Whether it holds `scope`.
    pub fn may(&self, scope: Scopes) -> bool {
        self.scopes.has(scope)
    }

    /// Whether it holds the admin scope (it sees every caller's A2A tasks).
    pub fn is_admin(&self) -> bool {
        self.may(Scopes::ADMIN)
    }
}

/// SHA-256 of a secret, hex: what is stored instead of it.
pub fn secret_hash(secret: &str) -> String {
    qunimbus_ledger::hex::encode(&Sha256::digest(secret.as_bytes()))
}

#[derive(Debug, Clone)]
struct Entry {
    credential: String,
    scopes: Scopes,
    expires_at_us: Option<i64>,
}

/// The issued and retired tokens, by hash.
#[derive(Debug, Default)]
pub struct TokenBook {
    entries: RwLock<HashMap<String, Entry>>,
}

impl TokenBook {
    /// The book of `records` (as stored).
    pub fn of(records: &[TokenRecord]) -> Self {
        let book = Self::default();
        book.add(records);
        book
    }

    /// Adds or replaces `records`.
    pub fn add(&self, records: &[TokenRecord]) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in records {
            let names = r.scopes.split(',').filter(|s| !s.is_empty());
            entries.insert(
                r.token_hash.clone(),
                Entry {
                    credential: r.credential.clone(),
                    scopes: Scopes::parse(names).unwrap_or(Scopes(0)),
                    expires_at_us: r.expires_at_us,
                },
            );
        }
    }

    /// Shortens the grace of `credential`'s tokens other than `keep` to
    /// `expires_at_us` (as the rotation stored it).
    pub fn expire(&self, credential: &str, keep_hash: &str, expires_at_us: i64) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (hash, e) in entries.iter_mut() {
            if e.credential == credential && hash != keep_hash {
                e.expires_at_us = Some(
                    e.expires_at_us
                        .map_or(expires_at_us, |t| t.min(expires_at_us)),
                );
            }
        }
    }

    /// What the token hashing to `hash` is at `now_us`: `Some(None)` when the
    /// book knows it and it has expired, `None` when the book does not know it.
    pub fn lookup(&self, hash: &str, now_us: i64) -> Option<Option<Principal>> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = entries.get(hash)?;
        let live = e.expires_at_us.is_none_or(|t| now_us < t) && e.scopes.0 != 0;
        Some(live.then(|| Principal {
            credential: e.credential.clone(),
            scopes: e.scopes,
        }))
    }

    /// The scopes of `credential`'s current token, if it has one.
    pub fn scopes_of(&self, credential: &str) -> Option<Scopes> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .find(|e| e.credential == credential && e.expires_at_us.is_none())
            .map(|e| e.scopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(credential: &str, secret: &str, expires: Option<i64>) -> TokenRecord {
        TokenRecord {
            id: format!("tok-{secret}"),
            credential: credential.into(),
            scopes: "read,agent".into(),
            token_hash: secret_hash(secret),
            created_at: "2026-12-03T00:00:00Z".into(),
            expires_at_us: expires,
        }
    }

    #[test]
    fn scopes_parse_and_name_themselves() {
        let s = Scopes::parse(["agent", "read"]).unwrap();
        assert_eq!(s.names(), ["read", "agent"]);
        assert!(s.has(Scopes::READ) && !s.has(Scopes::ADMIN));
        assert!(Scopes::ALL.has(s));
        assert!(Scopes::parse(["root"])
            .unwrap_err()
            .contains("unknown scope \"root\""));
        assert!(Scopes::parse([]).is_err());
    }

    #[test]
    fn an_expired_token_is_known_and_refused_and_an_unknown_one_is_not_known() {
        let book = TokenBook::of(&[
            record("client:a", "old", None),
            record("client:a", "new", None),
        ]);
        book.expire("client:a", &secret_hash("new"), 100);
        let old = book.lookup(&secret_hash("old"), 99).unwrap().unwrap();
        assert_eq!(old.credential, "client:a");
        assert_eq!(book.lookup(&secret_hash("old"), 100), Some(None));
        assert!(book.lookup(&secret_hash("new"), 1_000).unwrap().is_some());
        assert_eq!(book.lookup(&secret_hash("other"), 0), None);
        book.expire("client:a", &secret_hash("new"), 500);
        assert_eq!(
            book.lookup(&secret_hash("old"), 200),
            Some(None),
            "a grace is never extended"
        );
    }
}
