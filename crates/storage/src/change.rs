//! Typed state changes that commit in the same transaction as the blocks
//! recording them (the Trust Kernel's region, event, rollout and erasure
//! changes), and the node's small administrative writes. The SQL for each
//! lives here; callers name what changes, never how it is stored.

use crate::writer::{SqlValue, Statement};

/// One change of stored state.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    /// A newly configured region starts being tracked.
    TrackRegion {
        /// Canonical name.
        name: String,
        /// Initial status.
        status: String,
        /// When tracking began (Unix µs).
        tracked_since: i64,
        /// When (RFC 3339).
        at: String,
    },
    /// A region's status and trust override.
    SetRegion {
        /// Canonical name.
        name: String,
        /// New status.
        status: String,
        /// Operator's trust override, if any.
        trust_override: Option<f64>,
        /// Why the override was set.
        override_reason: Option<String>,
        /// When (RFC 3339).
        at: String,
    },
    /// A health event of a region, recorded by the job's first block, and
    /// the status it leaves the region in.
    RecordHealthEvent {
        /// Canonical name.
        region: String,
        /// `failure` or `recovery`.
        kind: String,
        /// When it happened (Unix µs).
        at_us: i64,
        /// `operator` or `detected`.
        source: String,
        /// The region's status afterwards.
        status: String,
        /// When it was recorded (Unix µs; also the region's `updated_at`).
        recorded_at_us: i64,
    },
    /// A compliance policy put in force (kept once per digest).
    RecordPolicy {
        /// SHA-256 of its text (hex).
        sha256: String,
        /// The policy text.
        text: String,
        /// When it was first recorded (RFC 3339).
        recorded_at: String,
    },
    /// A new rollout and its state (JSON).
    InsertRollout {
        /// Rollout id.
        id: String,
        /// When it began (RFC 3339).
        created_at: String,
        /// Its state as JSON.
        state: String,
    },
    /// A rollout's new state (JSON) and whether it is still active.
    UpdateRollout {
        /// Rollout id.
        id: String,
        /// Its state as JSON.
        state: String,
        /// Whether it is running or paused.
        active: bool,
    },
    /// A token issued (or a configured one recorded, with its expiry, as
    /// it is retired).
    IssueToken(crate::TokenRecord),
    /// The current tokens of `credential` other than `keep` stop working
    /// at `expires_at_us` (a rotation's grace period).
    ExpireTokens {
        /// `admin`, `ingest` or `client:NAME`.
        credential: String,
        /// The new token's id.
        keep: String,
        /// End of the grace period (Unix µs).
        expires_at_us: i64,
    },
    /// A partner's key replaced; the old one works until `previous_expires_at_us`.
    RotatePartnerKey {
        /// Partner id.
        id: String,
        /// SHA-256 of the new key, hex.
        key_hash: String,
        /// End of the old key's grace period (Unix µs).
        previous_expires_at_us: i64,
    },
    /// A personal-class run erased: its id replaced by `tombstone`, its salt
    /// dropped.
    EraseRun {
        /// The run's id.
        run_id: String,
        /// What replaces it.
        tombstone: String,
    },
}

impl StateChange {
    /// The statements that make the change.
    pub(crate) fn statements(&self) -> Vec<Statement> {
        let text = |s: &str| SqlValue::Text(Some(s.to_string()));
        match self {
            Self::TrackRegion {
                name,
                status,
                tracked_since,
                at,
            } => vec![Statement {
                sql: "INSERT INTO regions (name, status, tracked_since, trust_override, override_reason, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                binds: vec![
                    text(name),
                    text(status),
                    SqlValue::Int(Some(*tracked_since)),
                    SqlValue::Real(None),
                    SqlValue::Text(None),
                    text(at),
                ],
            }],
            Self::SetRegion {
                name,
                status,
                trust_override,
                override_reason,
                at,
            } => vec![Statement {
                sql: "UPDATE regions SET status = $1, trust_override = $2, override_reason = $3, updated_at = $4 WHERE name = $5",
                binds: vec![
                    text(status),
                    SqlValue::Real(*trust_override),
                    SqlValue::Text(override_reason.clone()),
                    text(at),
                    text(name),
                ],
            }],
            Self::RecordHealthEvent {
                region,
                kind,
                at_us,
                source,
                status,
                recorded_at_us,
            } => vec![
                Statement {
                    sql: "INSERT INTO region_events (region, kind, at_us, block_index, source, recorded_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
                    binds: vec![
                        text(region),
                        text(kind),
                        SqlValue::Int(Some(*at_us)),
                        SqlValue::BlockIndex(0),
                        text(source),
                        SqlValue::Int(Some(*recorded_at_us)),
                    ],
                },
                Statement {
                    sql: "UPDATE regions SET status = $1, updated_at = $2 WHERE name = $3",
                    binds: vec![
                        text(status),
                        text(&qunimbus_core::time::rfc3339_micros(
                            chrono::DateTime::from_timestamp_micros(*recorded_at_us)
                                .unwrap_or_default(),
                        )),
                        text(region),
                    ],
                },
            ],
            Self::RecordPolicy {
                sha256,
                text: policy,
                recorded_at,
            } => vec![Statement {
                sql: "INSERT INTO policies (sha256, text, recorded_at) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
                binds: vec![text(sha256), text(policy), text(recorded_at)],
            }],
            Self::InsertRollout {
                id,
                created_at,
                state,
            } => vec![Statement {
                sql: "INSERT INTO rollouts (id, created_at, active, state) VALUES ($1, $2, $3, $4)",
                binds: vec![text(id), text(created_at), SqlValue::Int(Some(1)), text(state)],
            }],
            Self::UpdateRollout { id, state, active } => vec![Statement {
                sql: "UPDATE rollouts SET state = $1, active = $2 WHERE id = $3",
                binds: vec![text(state), SqlValue::Int(Some(i64::from(*active))), text(id)],
            }],
            Self::IssueToken(t) => vec![Statement {
                sql: "INSERT INTO api_tokens (id, credential, scopes, token_hash, created_at, expires_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
                binds: vec![
                    text(&t.id),
                    text(&t.credential),
                    text(&t.scopes),
                    text(&t.token_hash),
                    text(&t.created_at),
                    SqlValue::Int(t.expires_at_us),
                ],
            }],
            Self::ExpireTokens {
                credential,
                keep,
                expires_at_us,
            } => vec![Statement {
                sql: "UPDATE api_tokens SET expires_at_us = $1 WHERE credential = $2 AND id <> $3 AND (expires_at_us IS NULL OR expires_at_us > $1)",
                binds: vec![SqlValue::Int(Some(*expires_at_us)), text(credential), text(keep)],
            }],
            Self::RotatePartnerKey {
                id,
                key_hash,
                previous_expires_at_us,
            } => vec![Statement {
                sql: "UPDATE partners SET previous_key_hash = key_hash, previous_key_expires_at_us = $1, key_hash = $2 WHERE id = $3 AND disabled_at IS NULL",
                binds: vec![SqlValue::Int(Some(*previous_expires_at_us)), text(key_hash), text(id)],
            }],
            Self::EraseRun { run_id, tombstone } => vec![Statement {
                sql: "UPDATE runs SET run_id = $1, erasure_salt = NULL WHERE run_id = $2 AND data_class = 'personal'",
                binds: vec![text(tombstone), text(run_id)],
            }],
        }
    }
}

/// The small administrative writes that record no block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AdminWrite {
    /// A new partner (a taken name is `Conflict`).
    AddPartner {
        id: String,
        name: String,
        region: String,
        key_hash: String,
        created_at: String,
    },
    /// A partner's key stops working.
    DisablePartner { id: String, at: String },
    /// An enabled partner's key (and home region) is replaced.
    SetPartnerKey {
        id: String,
        key_hash: String,
        region: String,
    },
    /// An A2A task, inserted or updated.
    PutTask(crate::a2a::TaskRecord),
    /// A `node_state` value.
    SetState {
        key: String,
        value: String,
        at: String,
    },
}

impl AdminWrite {
    pub(crate) fn statement(&self) -> (&'static str, Vec<Option<String>>) {
        match self {
            Self::AddPartner {
                id,
                name,
                region,
                key_hash,
                created_at,
            } => (
                "INSERT INTO partners (id, name, region, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                vec![
                    Some(id.clone()),
                    Some(name.clone()),
                    Some(region.clone()),
                    Some(key_hash.clone()),
                    Some(created_at.clone()),
                ],
            ),
            Self::DisablePartner { id, at } => (
                "UPDATE partners SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL",
                vec![Some(at.clone()), Some(id.clone())],
            ),
            Self::SetPartnerKey {
                id,
                key_hash,
                region,
            } => (
                "UPDATE partners SET key_hash = $1, region = $3 WHERE id = $2 AND disabled_at IS NULL",
                vec![Some(key_hash.clone()), Some(id.clone()), Some(region.clone())],
            ),
            Self::PutTask(t) => (
                "INSERT INTO a2a_tasks (id, context_id, owner, skill, state, task, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, task = excluded.task, \
                 updated_at = excluded.updated_at",
                vec![
                    Some(t.id.clone()),
                    Some(t.context_id.clone()),
                    Some(t.owner.clone()),
                    Some(t.skill.clone()),
                    Some(t.state.clone()),
                    Some(t.task.clone()),
                    Some(t.created_at.clone()),
                    Some(t.updated_at.clone()),
                ],
            ),
            Self::SetState { key, value, at } => (
                "INSERT INTO node_state (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                vec![Some(key.clone()), Some(value.clone()), Some(at.clone())],
            ),
        }
    }
}
