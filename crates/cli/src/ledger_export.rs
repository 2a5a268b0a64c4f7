//! `qunimbus ledger verify --export FILE`: an auditor's check of what they
//! were handed, without database access — the JSON array `ledger export`
//! writes (or JSON lines, one block per line), streamed so a file larger
//! than memory works, against the signed checkpoint note given beside it.

use anyhow::{bail, Context, Result};
use qunimbus_ledger::audit::{LedgerAudit, SignedCheckpoint};
use qunimbus_ledger::block::Block;
use qunimbus_ledger::checkpoint::NoteVerifier;
use qunimbus_node::ledger::VerifyReport;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Instant;

/// Audits the blocks in `export` against the checkpoint note in
/// `checkpoint` (its signature checked with `verifier`, when given).
pub fn verify_export(
    export: &Path,
    checkpoint: Option<&Path>,
    verifier: Option<&NoteVerifier>,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport> {
    let started = Instant::now();
    let signed = checkpoint.map(read_checkpoint).transpose()?;
    let mut audit = LedgerAudit::new(signed, verifier);
    let file =
        std::fs::File::open(export).with_context(|| format!("opening {}", export.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut each = |position: u64, value: Value| -> bool {
        match Block::from_json(&value) {
            Ok(block) => {
                let going = audit.push(&block, None);
                audit.skip_nodes();
                if audit.size().is_multiple_of(10_000) {
                    progress(audit.size());
                }
                going
            }
            Err(e) => {
                audit.fail(position, format!("not a block: {e}"));
                false
            }
        }
    };
    if starts_with_array(&mut reader)? {
        let mut de = serde_json::Deserializer::from_reader(reader);
        let mut stopped = false;
        let read = de.deserialize_seq(EachElement {
            each: &mut each,
            stopped: &mut stopped,
        });
        if let Err(e) = read {
            if !stopped {
                bail!("{} is not a JSON array of blocks: {e}", export.display());
            }
        }
    } else {
        for (line, text) in (1u64..).zip(reader.lines()) {
            let text = text.with_context(|| format!("reading {}", export.display()))?;
            if text.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} line {line} is not JSON", export.display()))?;
            if !each(line - 1, value) {
                break;
            }
        }
    }
    Ok(VerifyReport::of(audit.finish(), started.elapsed()))
}

/// Whether the first non-blank byte is `[` (an array) rather than `{`.
fn starts_with_array(reader: &mut BufReader<std::fs::File>) -> Result<bool> {
    loop {
        let buffer = reader.fill_buf()?;
        let Some(position) = buffer.iter().position(|b| !b.is_ascii_whitespace()) else {
            if buffer.is_empty() {
                return Ok(false);
            }
            let n = buffer.len();
            reader.consume(n);
            continue;
        };
        return Ok(buffer[position] == b'[');
    }
}

/// The checkpoint note as `GET /v1/ledger/checkpoint` serves it.
fn read_checkpoint(path: &Path) -> Result<SignedCheckpoint> {
    let mut note = String::new();
    std::fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .read_to_string(&mut note)
        .with_context(|| format!("reading {}", path.display()))?;
    let body = qunimbus_ledger::checkpoint::note_body(&note)
        .with_context(|| format!("{} is not a signed note", path.display()))?;
    let checkpoint = qunimbus_ledger::Checkpoint::parse_body(body)
        .with_context(|| format!("{} is not a checkpoint", path.display()))?;
    Ok(SignedCheckpoint {
        size: checkpoint.size,
        root: checkpoint.root,
        note,
    })
}

/// Hands each array element to `each` (with its position) until it says stop.
struct EachElement<'a, F: FnMut(u64, Value) -> bool> {
    each: &'a mut F,
    stopped: &'a mut bool,
}

impl<'de, F: FnMut(u64, Value) -> bool> Visitor<'de> for EachElement<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of blocks")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut position = 0u64;
        while let Some(value) = seq.next_element::<Value>()? {
            if !(self.each)(position, value) {
                *self.stopped = true;
                return Err(serde::de::Error::custom("stopped at the first failure"));
            }
            position += 1;
        }
        Ok(())
    }
}
