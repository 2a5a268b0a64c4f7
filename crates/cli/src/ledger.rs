//! `qunimbus ledger`: offline verification, proofs and export, straight from
//! the database (SQLite file or PostgreSQL URL), without a running node.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use qunimbus_ledger::checkpoint::{NoteSigner, NoteVerifier};
use qunimbus_ledger::merkle;
use qunimbus_node::config::parse_database_url;
use qunimbus_node::ledger::{
    grafana_row, verify_ledger, verify_timestamps, SignatureCheck, VerifyReport, SIGNING_KEY_FILE,
};
use qunimbus_node::tsa::load_anchors;
use qunimbus_storage::Reader;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the ledger to read lives.
#[derive(Args)]
pub struct LedgerSource {
    /// Data directory of the node (uses its SQLite file and key).
    #[arg(long, env = "QUNIMBUS_DATA_DIR", default_value = "./qunimbus-data")]
    data_dir: PathBuf,
    /// Database URL (sqlite:PATH or postgres://…); default the SQLite file in the data dir.
    #[arg(long, env = "QUNIMBUS_DATABASE_URL")]
    database_url: Option<String>,
}

impl LedgerSource {
    async fn open(&self) -> Result<Reader> {
        let target = parse_database_url(self.database_url.as_deref(), &self.data_dir)?;
        Reader::open(&target, 2)
            .await
            .with_context(|| format!("opening {}", target.describe()))
    }
}

/// Ledger commands.
#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Check every block's hash and link, the genesis block, every stored
    /// Merkle node, and the Merkle root against the newest signed
    /// checkpoint; or, with --export, a file that `ledger export` wrote
    /// against a checkpoint note. Exit code 1 on failure.
    #[command(
        after_help = "Examples:\n  qunimbus ledger verify --data-dir ./qunimbus-data\n  qunimbus ledger verify --database-url postgres://postgres@127.0.0.1/test --public-key node.vkey\n  qunimbus ledger verify --export ledger.json --checkpoint note.txt --public-key node.vkey"
    )]
    Verify {
        #[command(flatten)]
        source: LedgerSource,
        /// Verify this export file (`ledger export`'s JSON array, or JSON
        /// lines) instead of a database.
        #[arg(long)]
        export: Option<PathBuf>,
        /// With --export: the signed checkpoint note (GET /v1/ledger/checkpoint)
        /// the blocks must match.
        #[arg(long, requires = "export")]
        checkpoint: Option<PathBuf>,
        /// The node's public key (note verifier key, as served at /v1/ledger/public-key).
        /// Default: derived from DATA_DIR/ledger.key when present.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// PEM roots to verify every checkpoint's RFC 3161 token against
        /// (e.g. DATA_DIR/tsa/root.pem, or GET /tsa/certs' last certificate).
        #[arg(long)]
        tsa_roots: Option<PathBuf>,
    },
    /// Print and check the inclusion proof of one block.
    #[command(after_help = "Example:\n  qunimbus ledger proof --index 42")]
    Proof {
        #[command(flatten)]
        source: LedgerSource,
        /// Block index.
        #[arg(long)]
        index: u64,
        /// Tree size (default: the newest signed checkpoint).
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// Write every block as a JSON array.
    #[command(
        after_help = "Examples:\n  qunimbus ledger export --output ledger.json\n  qunimbus ledger export --format grafana > grafana.json"
    )]
    Export {
        #[command(flatten)]
        source: LedgerSource,
        /// `blocks` (full blocks, hashable) or `grafana` (flat rows, epoch-ms time).
        #[arg(long, value_enum, default_value = "blocks")]
        format: ExportFormat,
        /// Output file (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Export formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// Full blocks.
    Blocks,
    /// Flat rows for Grafana's JSON/Infinity datasource.
    Grafana,
}

/// Runs a ledger command.
pub async fn run(command: LedgerCommand) -> Result<()> {
    match command {
        LedgerCommand::Verify {
            source,
            export,
            checkpoint,
            public_key,
            tsa_roots,
        } => match export {
            Some(export) => {
                if tsa_roots.is_some() {
                    bail!("--tsa-roots needs the database (an export carries no tokens)");
                }
                let verifier = verifier(&source, public_key.as_deref())?;
                let bar = progress_bar(0, "verifying");
                let report = crate::ledger_export::verify_export(
                    &export,
                    checkpoint.as_deref(),
                    verifier.as_ref(),
                    |n| bar.set_position(n),
                )?;
                bar.finish_and_clear();
                print_report(report)
            }
            None => verify(source, public_key, tsa_roots).await,
        },
        LedgerCommand::Proof {
            source,
            index,
            tree_size,
        } => proof(source, index, tree_size).await,
        LedgerCommand::Export {
            source,
            format,
            output,
        } => export(source, format, output).await,
    }
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} blocks ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The log's public key: `--public-key FILE`, else derived from
/// `DATA_DIR/ledger.key` when present.
fn verifier(source: &LedgerSource, public_key: Option<&Path>) -> Result<Option<NoteVerifier>> {
    Ok(match public_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                NoteVerifier::from_vkey(text.trim())
                    .with_context(|| format!("{} is not a note verifier key", path.display()))?,
            )
        }
        None => {
            let key_file = source.data_dir.join(SIGNING_KEY_FILE);
            match std::fs::read_to_string(&key_file) {
                Ok(text) => {
                    let signer = NoteSigner::from_skey(text.trim())
                        .with_context(|| format!("{} is not a signing key", key_file.display()))?;
                    eprintln!("using the public key of {}", key_file.display());
                    Some(signer.verifier())
                }
                Err(_) => None,
            }
        }
    })
}

async fn verify(
    source: LedgerSource,
    public_key: Option<PathBuf>,
    tsa_roots: Option<PathBuf>,
) -> Result<()> {
    let anchors = tsa_roots.as_deref().map(load_anchors).transpose()?;
    let verifier = verifier(&source, public_key.as_deref())?;
    let reader = source.open().await?;
    let total = reader.block_count().await?;
    let bar = progress_bar(total, "verifying");
    let mut report = verify_ledger(&reader, verifier.as_ref(), |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    if let Some(anchors) = &anchors {
        report = report.with_timestamps(verify_timestamps(&reader, anchors, false).await?);
    }
    reader.close().await;
    print_report(report)
}

/// Prints what verification found; exits 1 on a failure.
fn print_report(report: VerifyReport) -> Result<()> {
    let rate = report.blocks_checked as f64 / (report.duration_ms.max(1) as f64 / 1000.0);
    println!(
        "checked {} blocks and {} stored Merkle nodes in {} ms ({rate:.0} blocks/s)",
        report.blocks_checked, report.nodes_checked, report.duration_ms
    );
    match (report.checkpoint_size, report.signature) {
        (Some(size), Some(SignatureCheck::Verified)) => {
            println!("checkpoint: size {size}, signature verified")
        }
        (Some(size), _) => println!(
            "checkpoint: size {size}, signature NOT checked (no public key; pass --public-key)"
        ),
        (None, _) => println!("checkpoint: none signed yet; the Merkle root was not compared"),
    }
    match &report.timestamps {
        Some(t) => println!(
            "timestamps: {} tokens verified, {} checkpoints pending",
            t.verified, t.pending
        ),
        None => println!("timestamps: not checked (pass --tsa-roots with a database)"),
    }
    if let Some(f) = report.timestamps.as_ref().and_then(|t| t.failure.as_ref()) {
        println!(
            "timestamp of checkpoint {} FAILED: {}",
            f.tree_size, f.reason
        );
        std::process::exit(1);
    }
    match report.failure {
        None => {
            println!("ledger OK");
            Ok(())
        }
        Some(f) => {
            println!(
                "ledger verification FAILED at block {}: {}",
                f.index, f.reason
            );
            std::process::exit(1);
        }
    }
}

async fn proof(source: LedgerSource, index: u64, tree_size: Option<u64>) -> Result<()> {
    let reader = source.open().await?;
    let stored = reader.block_count().await?;
    let checkpoint = reader.latest_checkpoint().await?;
    let size = match (tree_size, &checkpoint) {
        (Some(n), _) => n,
        (None, Some(c)) => c.size,
        (None, None) => stored,
    };
    if index >= size {
        bail!("--index {index} is not below the tree size {size}");
    }
    let (leaf, hashes) = reader.inclusion_proof(index, size, stored).await?;
    let root = reader.root_at(size).await?;
    merkle::verify_inclusion(index, size, &leaf, &hashes, &root)
        .context("the stored proof does not verify")?;
    let signed = checkpoint
        .as_ref()
        .filter(|c| c.size == size)
        .is_some_and(|c| c.root == root);
    use base64::Engine;
    let b64 = |h: &[u8]| base64::engine::general_purpose::STANDARD.encode(h);
    let out = serde_json::json!({
        "index": index,
        "tree_size": size,
        "leaf_hash": b64(&leaf),
        "root_hash": b64(&root),
        "root_matches_signed_checkpoint": signed,
        "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    reader.close().await;
    Ok(())
}

async fn export(source: LedgerSource, format: ExportFormat, output: Option<PathBuf>) -> Result<()> {
    let reader = source.open().await?;
    let total = reader.block_count().await?;
    let mut out: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = progress_bar(total, "exporting");
    out.write_all(b"[")?;
    let mut next = 0u64;
    loop {
        let blocks = reader.blocks(next, 10_000).await?;
        if blocks.is_empty() {
            break;
        }
        for block in blocks {
            let block = block?;
            if next > 0 {
                out.write_all(b",\n")?;
            }
            let value = match format {
                ExportFormat::Blocks => block.to_json(),
                ExportFormat::Grafana => grafana_row(&block),
            };
            serde_json::to_writer(&mut out, &value)?;
            next = block.index + 1;
        }
        bar.set_position(next);
    }
    out.write_all(b"]\n")?;
    out.flush()?;
    bar.finish_and_clear();
    reader.close().await;
    if let Some(path) = output {
        eprintln!("exported {next} blocks to {}", path.display());
    }
    Ok(())
}
