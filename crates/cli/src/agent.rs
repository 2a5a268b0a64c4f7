//! `qunimbus agent …`: the trading agent of a running node — its state,
//! positions, orders and fills, the exchange adapter, and the operator's
//! commands and reloads (each with a reason, recorded on the ledger).

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::partner::AdminTarget;

/// Agent commands.
#[derive(Subcommand)]
pub enum AgentCommand {
    /// Mode, trading state, emergency and confidence levels, equity, drawdown.
    #[command(after_help = "Example:\n  qunimbus agent status")]
    Status {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Open positions.
    #[command(after_help = "Example:\n  qunimbus agent positions")]
    Positions {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Working orders.
    #[command(after_help = "Example:\n  qunimbus agent orders")]
    Orders {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// The newest fills, each with its ledger block.
    #[command(after_help = "Example:\n  qunimbus agent trades --limit 20")]
    Trades {
        #[command(flatten)]
        target: AdminTarget,
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Stop new entries (exits continue).
    #[command(after_help = "Example:\n  qunimbus agent pause --reason \"news at 14:00\"")]
    Pause(Reasoned),
    /// Resume new entries.
    #[command(after_help = "Example:\n  qunimbus agent resume --reason \"news passed\"")]
    Resume(Reasoned),
    /// Cancel every order and sell every position at the next open.
    #[command(after_help = "Example:\n  qunimbus agent flatten --reason \"end of session\"")]
    Flatten(Reasoned),
    /// The kill switch: flatten, BLACK, HALTED until a reset.
    #[command(after_help = "Example:\n  qunimbus agent kill --reason \"exchange incident\"")]
    Kill(Reasoned),
    /// Change reloadable settings (sizing, gate limits, ladder thresholds)
    /// while the agent trades; recorded on the ledger.
    #[command(
        after_help = "Example:\n  qunimbus agent reload --set daily_loss_limit=0.02 --set orders_per_second=2 --reason \"news at 14:00\""
    )]
    Reload {
        #[command(flatten)]
        target: AdminTarget,
        /// A setting, `key=value` (repeatable; the value is a number).
        #[arg(long = "set", required = true)]
        settings: Vec<String>,
        /// Why (required; recorded on the ledger).
        #[arg(long)]
        reason: String,
    },
    /// The exchange adapter: circuit breaker, keys loaded, account balances.
    #[command(after_help = "Example:\n  qunimbus agent exchange")]
    Exchange {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Leave BLACK after a kill or a 20 % drawdown.
    #[command(
        after_help = "Example:\n  qunimbus agent reset --reason \"incident closed, limits reviewed\""
    )]
    Reset(Reasoned),
}

/// A command's target and the operator's reason.
#[derive(clap::Args)]
pub struct Reasoned {
    #[command(flatten)]
    target: AdminTarget,
    /// Why (required; recorded on the ledger).
    #[arg(long)]
    reason: String,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_status(s: &Value) {
    let confidence: Vec<String> = s["confidence"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {}", text(&c["strategy"]), text(&c["level"])))
        .collect();
    println!(
        "mode {}  state {}  level {}  paused {}",
        text(&s["mode"]),
        text(&s["trading_state"]),
        text(&s["emergency_level"]),
        text(&s["paused"])
    );
    println!(
        "equity {}  cash {}  drawdown {:.2}%  daily P&L {}  exposure {}",
        text(&s["equity"]),
        text(&s["cash"]),
        s["drawdown"].as_f64().unwrap_or(0.0) * 100.0,
        text(&s["daily_pnl"]),
        text(&s["gross_exposure"])
    );
    println!(
        "market {} at {}  bars {}  fills {}  trades closed {}  positions {}",
        text(&s["market"]),
        text(&s["market_time"]),
        text(&s["bars"]),
        text(&s["fills"]),
        text(&s["trades_closed"]),
        text(&s["open_positions"])
    );
    println!("confidence: {}", confidence.join(", "));
}

async fn act(name: &str, args: Reasoned) -> Result<()> {
    let outcome = args
        .target
        .call(
            Method::POST,
            &format!("/v1/agent/{name}"),
            Some(json!({ "reason": args.reason })),
        )
        .await?;
    match (outcome["changed"].as_bool(), &outcome["block_index"]) {
        (Some(true), Value::Number(n)) => println!("{name}: done, risk block {n}"),
        (Some(true), _) => println!("{name}: done, its block is waiting to be written"),
        _ => println!("{name}: nothing to change"),
    }
    print_status(&outcome["status"]);
    Ok(())
}

/// Runs an agent command.
pub async fn run(command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Status { target } => {
            print_status(&target.call(Method::GET, "/v1/agent", None).await?);
        }
        AgentCommand::Positions { target } => {
            let list = target
                .call(Method::GET, "/v1/agent/positions", None)
                .await?;
            println!(
                "{:<14} {:>18} {:>16} {:>14} {:>14}",
                "symbol", "quantity", "entry", "last", "unrealised"
            );
            for p in list.as_array().into_iter().flatten() {
                println!(
                    "{:<14} {:>18} {:>16} {:>14} {:>14.2}",
                    text(&p["symbol"]),
                    text(&p["quantity"]),
                    text(&p["entry_price"]),
                    text(&p["last_price"]),
                    p["unrealised_pnl"].as_f64().unwrap_or(0.0)
                );
            }
        }
        AgentCommand::Trades { target, limit } => {
            let path = format!("/v1/agent/trades?limit={limit}");
            let list = target.call(Method::GET, &path, None).await?;
            println!("{} fills in all; newest first:", text(&list["total"]));
            for f in list["fills"].as_array().into_iter().flatten() {
                println!(
                    "block {:>8}  {}  {:<4} {} {} @ {} fee {}  {}",
                    text(&f["block_index"]),
                    text(&f["market_time"]),
                    text(&f["side"]),
                    text(&f["quantity"]),
                    text(&f["symbol"]),
                    text(&f["price"]),
                    text(&f["fee"]),
                    text(&f["strategy"])
                );
            }
        }
        AgentCommand::Orders { target } => {
            let list = target.call(Method::GET, "/v1/agent/orders", None).await?;
            for o in list.as_array().into_iter().flatten() {
                println!(
                    "{:<18} {:<14} {:<4} {:<10} {}",
                    text(&o["order_id"]),
                    text(&o["symbol"]),
                    text(&o["side"]),
                    text(&o["kind"]),
                    text(&o["size"])
                );
            }
        }
        AgentCommand::Reload {
            target,
            settings,
            reason,
        } => {
            let mut changes = serde_json::Map::new();
            for pair in &settings {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--set {pair:?}: expected key=value"))?;
                let value: Value = serde_json::from_str(value.trim())
                    .map_err(|_| anyhow::anyhow!("--set {pair:?}: the value must be a number"))?;
                changes.insert(key.trim().to_string(), value);
            }
            let body = json!({ "reason": reason, "settings": changes });
            let outcome = target
                .call(Method::PUT, "/v1/agent/config", Some(body))
                .await?;
            match (outcome["changed"].as_bool(), &outcome["block_index"]) {
                (Some(true), Value::Number(n)) => println!("reload: done, config block {n}"),
                _ => println!("reload: nothing to change"),
            }
        }
        AgentCommand::Exchange { target } => {
            let s = target.call(Method::GET, "/v1/agent/exchange", None).await?;
            println!(
                "{}  breaker {}  keys {}",
                text(&s["url"]),
                text(&s["breaker"]),
                if s["keys_loaded"] == Value::Bool(true) {
                    "loaded"
                } else {
                    "missing"
                }
            );
            if !s["error"].is_null() {
                println!("account: {}", text(&s["error"]));
            }
            for b in s["balances"].as_array().into_iter().flatten() {
                println!(
                    "{:<8} free {:<20} locked {}",
                    text(&b["asset"]),
                    text(&b["free"]),
                    text(&b["locked"])
                );
            }
        }
        AgentCommand::Pause(args) => act("pause", args).await?,
        AgentCommand::Resume(args) => act("resume", args).await?,
        AgentCommand::Flatten(args) => act("flatten", args).await?,
        AgentCommand::Kill(args) => act("kill", args).await?,
        AgentCommand::Reset(args) => act("reset", args).await?,
    }
    Ok(())
}
