//! The node's A2A skills: what each is, which scope it needs, and how it
//! runs. A message names its skill in a data part
//! `{"skill": "…", "params": {…}}`; each skill's answer is the same JSON
//! as the HTTP route it mirrors.

use crate::error::ApiError;
use crate::state::AppState;
use a2a::{Message, PartContent};
use qunimbus_node::agent::Command;
use qunimbus_node::tokens::Scopes;
use serde_json::{json, Map, Value};

/// A skill of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skill {
    /// Price a run without storing it.
    Quote,
    /// The ledger's size, root and newest checkpoint.
    LedgerStatus,
    /// A block's inclusion proof.
    LedgerProve,
    /// The trading agent's state.
    AgentStatus,
    /// A backtest on the seeded synthetic market (long-running).
    AgentBacktest,
    /// Pause the agent's new entries.
    AgentPause,
    /// Resume them.
    AgentResume,
}

/// Every skill, in the card's order.
pub const ALL: [Skill; 7] = [
    Skill::Quote,
    Skill::LedgerStatus,
    Skill::LedgerProve,
    Skill::AgentStatus,
    Skill::AgentBacktest,
    Skill::AgentPause,
    Skill::AgentResume,
];

/// How a skill's work ended, short of a result.
#[derive(Debug)]
pub enum Refusal {
    /// The message cannot be run (unknown skill, bad parameters, scope):
    /// `TASK_STATE_REJECTED`, nothing changed.
    Rejected(String),
    /// It ran and failed: `TASK_STATE_FAILED`.
    Failed(String),
}

impl Refusal {
    fn of_api(e: ApiError) -> Self {
        let text = match &e.field {
            Some(field) => format!("{} (field {field}): {}", e.code, e.message),
            None => format!("{}: {}", e.code, e.message),
        };
        if e.status.is_client_error() {
            Self::Rejected(text)
        } else {
            Self::Failed(text)
        }
    }
}

impl Skill {
    /// The skill's id.
    pub fn id(self) -> &'static str {
        match self {
            Self::Quote => "valuation.quote",
            Self::LedgerStatus => "ledger.status",
            Self::LedgerProve => "ledger.prove",
            Self::AgentStatus => "agent.status",
            Self::AgentBacktest => "agent.backtest",
            Self::AgentPause => "agent.pause",
            Self::AgentResume => "agent.resume",
        }
    }

    /// The scope a caller needs.
    pub fn scope(self) -> Scopes {
        match self {
            Self::Quote | Self::LedgerStatus | Self::LedgerProve | Self::AgentStatus => {
                Scopes::READ
            }
            Self::AgentBacktest => Scopes::AGENT,
            Self::AgentPause | Self::AgentResume => Scopes::ADMIN,
        }
    }

    /// Whether it is offered on this node (the agent's skills, the backtest
    /// included, only when the agent runs).
    pub fn available(self, state: &AppState) -> bool {
        match self {
            Self::AgentStatus | Self::AgentBacktest | Self::AgentPause | Self::AgentResume => {
                state.node.agent.is_some()
            }
            Self::Quote | Self::LedgerStatus | Self::LedgerProve => true,
        }
    }

    /// Its entry on the agent card.
    pub fn card_entry(self) -> Value {
        let (name, description, tags, example) = match self {
            Self::Quote => (
                "Valuation quote",
                "Prices a run (SPEC §3) without storing it: the answer of POST /v1/valuation/quote.",
                vec!["valuation", "pricing"],
                json!({"region": "Americas", "eta_ent": 0.97, "coherence_variance": 0.015, "runtime_hours": 100, "eph_delivered": 1000}),
            ),
            Self::LedgerStatus => (
                "Ledger status",
                "The ledger's length, root, newest signed checkpoint and public key: the answer of GET /v1/ledger.",
                vec!["ledger", "audit"],
                json!({}),
            ),
            Self::LedgerProve => (
                "Ledger inclusion proof",
                "An RFC 6962 inclusion proof of a block in a tree the node signed (default: the newest checkpoint), verifiable by the caller: the answer of GET /v1/ledger/proof/inclusion.",
                vec!["ledger", "proof", "audit"],
                json!({"index": 1}),
            ),
            Self::AgentStatus => (
                "Trading agent status",
                "The QBTC agent's mode, trading state, emergency and confidence levels, equity and drawdown: the answer of GET /v1/agent.",
                vec!["trading", "agent"],
                json!({}),
            ),
            Self::AgentBacktest => (
                "Backtest",
                "A backtest on the seeded synthetic market (symbols, bars, seed, strategy, cash), Kelly-sized through the risk desk; long-running with progress, cancellable; the report as the artifact.",
                vec!["trading", "backtest"],
                json!({"symbols": ["BTCUSDT"], "bars": 5000, "seed": 7, "strategy": {"name": "sma_cross", "params": {"fast": 10, "slow": 30}}}),
            ),
            Self::AgentPause => (
                "Pause the trading agent",
                "Stops new entries (exits continue), recorded on the ledger with the reason (admin scope).",
                vec!["trading", "agent", "operator"],
                json!({"reason": "scheduled maintenance"}),
            ),
            Self::AgentResume => (
                "Resume the trading agent",
                "Resumes new entries, recorded on the ledger with the reason (admin scope).",
                vec!["trading", "agent", "operator"],
                json!({"reason": "maintenance over"}),
            ),
        };
        let example = json!({"skill": self.id(), "params": example}).to_string();
        json!({
            "id": self.id(),
            "name": name,
            "description": description,
            "tags": tags,
            "examples": [example],
            "inputModes": ["application/json"],
            "outputModes": ["application/json"],
        })
    }

    fn parse(id: &str) -> Option<Self> {
        ALL.into_iter().find(|s| s.id() == id)
    }
}

/// The skill and parameters a message asks for.
pub fn requested(message: &Message) -> Result<(Skill, Map<String, Value>), String> {
    let data = message.parts.iter().find_map(|p| match &p.content {
        PartContent::Data(d) => Some(d),
        _ => None,
    });
    let Some(Value::Object(data)) = data else {
        return Err(
            "the message has no data part {\"skill\": \"…\", \"params\": {…}}; the skills are listed on the agent card"
                .into(),
        );
    };
    if let Some(key) = data
        .keys()
        .find(|k| !["skill", "params"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field {key:?} in the data part; expected skill, params"
        ));
    }
    let id = data
        .get("skill")
        .and_then(Value::as_str)
        .ok_or("the data part has no \"skill\" string")?;
    let skill = Skill::parse(id).ok_or_else(|| {
        let known: Vec<&str> = ALL.iter().map(|s| s.id()).collect();
        format!(
            "unknown skill {:?}; the skills are {}",
            id.chars().take(40).collect::<String>(),
            known.join(", ")
        )
    })?;
    let params = match data.get("params") {
        None => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err("\"params\" must be an object".into()),
    };
    Ok((skill, params))
}

fn no_params(params: &Map<String, Value>, skill: Skill) -> Result<(), Refusal> {
    match params.keys().next() {
        Some(key) => Err(Refusal::Rejected(format!(
            "{} takes no parameters; got {key:?}",
            skill.id()
        ))),
        None => Ok(()),
    }
}

/// A whole number parameter (JSON number, integral doubles included).
fn whole(params: &Map<String, Value>, field: &str) -> Result<Option<u64>, Refusal> {
    match params.get(field) {
        None => Ok(None),
        Some(v) => qunimbus_node::backtest::whole_number(v)
            .map(Some)
            .ok_or_else(|| {
                Refusal::Rejected(format!("{field} must be a whole number ≥ 0, got {v}"))
            }),
    }
}

fn to_value(v: impl serde::Serialize) -> Result<Value, Refusal> {
    serde_json::to_value(v).map_err(|e| Refusal::Failed(e.to_string()))
}

/// Runs a skill that answers at once (every one but the backtest).
pub async fn run_now(
    state: &AppState,
    skill: Skill,
    params: &Map<String, Value>,
) -> Result<Value, Refusal> {
    match skill {
        Skill::Quote => {
            let text = Value::Object(params.clone()).to_string();
            to_value(crate::api::quote_of(state, &text).map_err(Refusal::of_api)?)
        }
        Skill::LedgerStatus => {
            no_params(params, skill)?;
            let summary = crate::ledger_api::ledger_summary(state)
                .await
                .map_err(Refusal::of_api)?;
            to_value(summary)
        }
        Skill::LedgerProve => {
            if let Some(key) = params
                .keys()
                .find(|k| !["index", "tree_size"].contains(&k.as_str()))
            {
                return Err(Refusal::Rejected(format!(
                    "unknown parameter {key:?}; ledger.prove takes index, tree_size"
                )));
            }
            let index = whole(params, "index")?
                .ok_or_else(|| Refusal::Rejected("index is required".into()))?;
            let tree_size = whole(params, "tree_size")?;
            if tree_size == Some(0) {
                return Err(Refusal::Rejected("tree_size must be at least 1".into()));
            }
            let proof = crate::ledger_api::inclusion(state, index, tree_size)
                .await
                .map_err(Refusal::of_api)?;
            to_value(proof)
        }
        Skill::AgentStatus => {
            no_params(params, skill)?;
            let agent = agent(state)?;
            to_value(
                agent
                    .status()
                    .await
                    .map_err(|e| Refusal::Failed(e.to_string()))?,
            )
        }
        Skill::AgentPause | Skill::AgentResume => {
            if let Some(key) = params.keys().find(|k| k.as_str() != "reason") {
                return Err(Refusal::Rejected(format!(
                    "unknown parameter {key:?}; {} takes reason",
                    skill.id()
                )));
            }
            let reason = params
                .get("reason")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|r| !r.is_empty() && r.chars().count() <= 1000)
                .ok_or_else(|| {
                    Refusal::Rejected(
                        "reason is required (1–1000 characters): it goes on the ledger".into(),
                    )
                })?;
            let command = if skill == Skill::AgentPause {
                Command::Pause
            } else {
                Command::Resume
            };
            let outcome = agent(state)?
                .command(command, reason)
                .await
                .map_err(|e| Refusal::Rejected(e.to_string()))?;
            to_value(outcome)
        }
        Skill::AgentBacktest => Err(Refusal::Failed("agent.backtest runs as a long task".into())),
    }
}

fn agent(state: &AppState) -> Result<&std::sync::Arc<qunimbus_node::agent::Agent>, Refusal> {
    state
        .node
        .agent
        .as_ref()
        .ok_or_else(|| Refusal::Rejected("the trading agent is not enabled on this node".into()))
}
