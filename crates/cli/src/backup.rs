//! `qunimbus backup` and `qunimbus restore`: an online, verified copy of a
//! node's SQLite store, and its verified return into an empty data dir.

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use qunimbus_ledger::checkpoint::NoteVerifier;
use qunimbus_node::backup::{self, BackupOptions, BackupReport, DATABASE_FILE};
use std::path::{Path, PathBuf};

/// Options of `qunimbus backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// Data directory of the node (it may be running).
    #[arg(long, env = "QUNIMBUS_DATA_DIR", default_value = "./qunimbus-data")]
    data_dir: PathBuf,
    /// The backup file to write (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// Also carry the ledger signing key and the built-in TSA's key (kept 0600).
    #[arg(long)]
    include_keys: bool,
    /// Also carry credentials.toml (the node's tokens).
    #[arg(long)]
    include_credentials: bool,
    /// The published verifier key (a file holding what
    /// GET /v1/ledger/public-key serves); default: the data dir's signing key.
    #[arg(long, value_name = "FILE")]
    expect_key: Option<PathBuf>,
}

/// Options of `qunimbus restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
    /// The data directory to restore into: absent or empty.
    #[arg(long)]
    data_dir: PathBuf,
    /// The published verifier key the backup's checkpoint must be signed
    /// by; without it, the key the backup names is used (and said so).
    #[arg(long, value_name = "FILE")]
    expect_key: Option<PathBuf>,
}

fn read_key(path: Option<&Path>) -> Result<Option<NoteVerifier>> {
    path.map(|path| {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        NoteVerifier::from_vkey(text.trim())
            .with_context(|| format!("{} is not a note verifier key", path.display()))
    })
    .transpose()
}

fn print_checkpoint(report: &BackupReport) {
    let m = &report.manifest;
    println!("  blocks:     {}", m.blocks);
    println!("  tree size:  {} (newest signed checkpoint)", m.tree_size);
    println!("  root:       {}", m.root);
    println!("  checkpoint:");
    for line in m.checkpoint.lines() {
        println!("    {line}");
    }
    let carried: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    println!(
        "  files:      {}",
        if carried.is_empty() {
            "none".to_string()
        } else {
            carried.join(", ")
        }
    );
}

/// Runs `qunimbus backup`.
pub async fn run_backup(args: BackupArgs) -> Result<()> {
    let db = args.data_dir.join(DATABASE_FILE);
    if !db.exists() {
        bail!(
            "{} has no {DATABASE_FILE}; a PostgreSQL store is backed up with pg_dump (README, \"Backup and restore\")",
            args.data_dir.display()
        );
    }
    let expect = read_key(args.expect_key.as_deref())?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
            .context("progress bar template")?,
    );
    bar.set_message("copying");
    let shown = bar.clone();
    let options = BackupOptions {
        include_keys: args.include_keys,
        include_credentials: args.include_credentials,
    };
    let report = backup::backup(
        &args.data_dir,
        &db,
        &args.out,
        options,
        expect.as_ref(),
        move |done, of| {
            shown.set_length(of);
            shown.set_position(done);
        },
    )
    .await;
    bar.finish_and_clear();
    let report = report?;
    println!(
        "backup written: {} ({} bytes in {:.2} s), ledger verified against its signed checkpoint",
        args.out.display(),
        report.bytes,
        report.took.as_secs_f64()
    );
    print_checkpoint(&report);
    Ok(())
}

/// Runs `qunimbus restore`.
pub async fn run_restore(args: RestoreArgs) -> Result<()> {
    let expect = read_key(args.expect_key.as_deref())?;
    let report = backup::restore(&args.from, &args.data_dir, expect.as_ref()).await?;
    println!(
        "restored {} into {} in {:.2} s; the ledger verified against the checkpoint signed by {}",
        args.from.display(),
        args.data_dir.display(),
        report.took.as_secs_f64(),
        if report.key_given {
            "the expected key"
        } else {
            "the key the backup names (give --expect-key to check it against the published one)"
        }
    );
    print_checkpoint(&report);
    if let Some(index) = report.restore_block {
        println!("  restore block: {index} (names the backup's checkpoint; the next checkpoint extends it)");
    }
    Ok(())
}
