//! Signed checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note`
//! envelopes, signed with Ed25519.
//!
//! A checkpoint body is three lines — origin, decimal tree size, base64 root
//! hash — each ending in `\n`. A signed note is the body, a blank line, and
//! one or more signature lines `— <key name> <base64(key ID ‖ signature)>`.
//! The key ID is the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public
//! key), 0x01 being the Ed25519 signature type. Keys are written in the
//! Go `golang.org/x/mod/sumdb/note` text forms (vkey / skey).
//!
//! The same key can also make *detached* signatures over arbitrary bytes
//! ([`NoteSigner::sign_bytes`], [`NoteVerifier::verify_bytes`]), e.g. for
//! messages between nodes. Those sign `context ‖ 0x00 ‖ message`: the NUL
//! byte can never occur in a note body, so a detached signature is never a
//! valid signed-note (checkpoint) signature and vice versa, whatever the
//! bytes, and the context label keeps different uses apart.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::error::LedgerError;
use crate::hex;
use crate::merkle::{sha256, Hash};

/// Signature type byte of Ed25519 in signed notes.
pub const ED25519_KEY_TYPE: u8 = 0x01;

/// Most signature lines a note may carry (as in Go's `note` package).
pub const MAX_NOTE_SIGNATURES: usize = 100;

const EM_DASH_PREFIX: &str = "\u{2014} ";

/// Most bytes a detached-signature context label may have.
pub const MAX_CONTEXT_LEN: usize = 64;

/// The bytes a detached signature covers: `context ‖ 0x00 ‖ message`.
/// The context must be 1–[`MAX_CONTEXT_LEN`] printable ASCII characters
/// (so it holds no NUL and the split is unambiguous).
fn detached_message(context: &str, message: &[u8]) -> Result<Vec<u8>, LedgerError> {
    if context.is_empty()
        || context.len() > MAX_CONTEXT_LEN
        || !context.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(LedgerError::InvalidContext(format!(
            "context {context:?} must be 1-{MAX_CONTEXT_LEN} printable ASCII characters"
        )));
    }
    let mut data = Vec::with_capacity(context.len() + 1 + message.len());
    data.extend_from_slice(context.as_bytes());
    data.push(0);
    data.extend_from_slice(message);
    Ok(data)
}

/// A transparency-log checkpoint: the log's origin, a tree size and the
/// RFC 6962 root of that tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (unique name of the log).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash of the first `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint body: `"{origin}\n{size}\n{base64(root)}\n"`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a checkpoint body strictly: exactly three newline-terminated
    /// lines, a non-empty origin, a canonical decimal size and a canonical
    /// standard-base64 32-byte root. Extension lines are rejected.
    pub fn parse_body(text: &str) -> Result<Self, LedgerError> {
        let bad = |msg: &str| LedgerError::InvalidCheckpoint(msg.to_string());
        let inner = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("body must end with a newline"))?;
        let lines: Vec<&str> = inner.split('\n').collect();
        let [origin, size, root] = lines.as_slice() else {
            return Err(bad(
                "body must have exactly three lines (origin, size, root hash)",
            ));
        };
        if origin.is_empty() {
            return Err(bad("origin line is empty"));
        }
        if origin.chars().any(char::is_control) {
            return Err(bad("origin line contains a control character"));
        }
        let size = parse_canonical_decimal(size)
            .ok_or_else(|| bad("tree size must be a decimal integer without leading zeros"))?;
        let root_bytes = STANDARD
            .decode(root)
            .map_err(|_| bad("root hash is not valid base64"))?;
        let root_hash: Hash = root_bytes
            .try_into()
            .map_err(|_| bad("root hash must be 32 bytes"))?;
        if STANDARD.encode(root_hash) != *root {
            return Err(bad("root hash is not canonical base64"));
        }
        Ok(Checkpoint {
            origin: (*origin).to_string(),
            size,
            root: root_hash,
        })
    }
}

/// Parses a non-empty ASCII decimal without sign or leading zeros.
pub(crate) fn parse_canonical_decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// The signed text of a note: everything up to its last blank line, with the
/// final `"\n"` of the last body line (what signatures and RFC 3161 imprints
/// cover). `None` when the note has no blank line.
pub fn note_body(note: &str) -> Option<&str> {
    note.rfind("\n\n").map(|split| &note[..=split])
}

/// Signed-note key ID: the first 4 bytes of
/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut data = Vec::with_capacity(name.len() + 2 + 32);
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(ED25519_KEY_TYPE);
    data.extend_from_slice(public_key);
    let digest = sha256(&data);
    [digest[0], digest[1], digest[2], digest[3]]
}

fn check_name(name: &str) -> Result<(), LedgerError> {
    if name.is_empty() {
        return Err(LedgerError::InvalidKey("key name is empty".into()));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(LedgerError::InvalidKey(format!(
            "key name {name:?} contains whitespace"
        )));
    }
    if name.contains('+') {
        return Err(LedgerError::InvalidKey(format!(
            "key name {name:?} contains '+'"
        )));
    }
    Ok(())
}

fn parse_key_id(text: &str) -> Result<[u8; 4], LedgerError> {
    if text.len() != 8 {
        return Err(LedgerError::InvalidKey(format!(
            "key ID {text:?} must be 8 hex digits"
        )));
    }
    let bytes = hex::decode(text)
        .map_err(|_| LedgerError::InvalidKey(format!("key ID {text:?} is not hex")))?;
    bytes
        .try_into()
        .map_err(|_| LedgerError::InvalidKey(format!("key ID {text:?} must be 4 bytes")))
}

fn parse_typed_key(text: &str) -> Result<[u8; 32], LedgerError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| LedgerError::InvalidKey("key is not valid base64".into()))?;
    match bytes.split_first() {
        Some((&ED25519_KEY_TYPE, key)) => key
            .try_into()
            .map_err(|_| LedgerError::InvalidKey("Ed25519 key must be 32 bytes".into())),
        Some((other, _)) => Err(LedgerError::InvalidKey(format!(
            "unsupported key type 0x{other:02x}"
        ))),
        None => Err(LedgerError::InvalidKey("key is empty".into())),
    }
}

fn typed_key(key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(ED25519_KEY_TYPE);
    bytes.extend_from_slice(key);
    STANDARD.encode(bytes)
}

/// An Ed25519 signed-note signer (the log's checkpoint key).
///
/// Its `Debug` output shows the name and key ID, never the seed.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: [u8; 4],
    signing: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex::encode(&self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer named `name` whose Ed25519 key is derived from the 32-byte
    /// `seed` (RFC 8032 private key). The name must be non-empty and contain
    /// no whitespace and no '+'.
    pub fn new(name: &str, seed: [u8; 32]) -> Result<Self, LedgerError> {
        check_name(name)?;
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        Ok(Self {
            name: name.to_string(),
            key_id: key_id(name, &public),
            signing,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Signs `body` and returns the full signed note:
    /// `body + "\n" + "— {name} {base64(key ID ‖ signature)}\n"`.
    ///
    /// The Ed25519 signature covers the body bytes exactly. A valid note
    /// body is non-empty, ends with `"\n"` and has no control characters
    /// other than newlines; [`Self::try_sign`] checks that, this does not.
    pub fn sign(&self, body: &str) -> String {
        let signature = self.signing.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&signature.to_bytes());
        format!(
            "{body}\n{EM_DASH_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        )
    }

    /// Like [`Self::sign`], but first checks that `body` is a valid note
    /// body (non-empty, ends with a newline, no other control characters).
    pub fn try_sign(&self, body: &str) -> Result<String, LedgerError> {
        check_body(body)?;
        Ok(self.sign(body))
    }

    /// A detached Ed25519 signature over `message` exactly as given (no
    /// re-encoding), under the domain-separation label `context`: the key
    /// signs `context ‖ 0x00 ‖ message`. Deterministic (RFC 8032). Such a
    /// signature never verifies as a signed-note signature, since a note
    /// body cannot contain a NUL byte. Fails only with
    /// [`LedgerError::InvalidContext`] for a context that is empty, longer
    /// than [`MAX_CONTEXT_LEN`] or not printable ASCII.
    pub fn sign_bytes(&self, context: &str, message: &[u8]) -> Result<[u8; 64], LedgerError> {
        let data = detached_message(context, message)?;
        Ok(self.signing.sign(&data).to_bytes())
    }

    /// The private key in Go `note` form:
    /// `PRIVATE+KEY+{name}+{key ID hex}+{base64(0x01 ‖ seed)}`. Secret.
    pub fn to_skey(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(&self.key_id),
            typed_key(&self.signing.to_bytes())
        )
    }

    /// Parses a private key written by [`Self::to_skey`] (or Go's
    /// `note.GenerateKey`), checking that the key ID matches.
    pub fn from_skey(text: &str) -> Result<Self, LedgerError> {
        let rest = text.strip_prefix("PRIVATE+KEY+").ok_or_else(|| {
            LedgerError::InvalidKey("signer key must start with PRIVATE+KEY+".into())
        })?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_text), Some(key_text)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(LedgerError::InvalidKey(
                "signer key must be PRIVATE+KEY+name+keyid+key".into(),
            ));
        };
        check_name(name)?;
        let id = parse_key_id(id_text)?;
        let seed = parse_typed_key(key_text)?;
        let signer = Self::new(name, seed)?;
        if signer.key_id != id {
            return Err(LedgerError::InvalidKey(format!(
                "key ID {id_text} does not match the key (expected {})",
                hex::encode(&signer.key_id)
            )));
        }
        Ok(signer)
    }

    /// The matching verifier (public key).
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.signing.verifying_key(),
        }
    }
}

/// An Ed25519 signed-note verifier (the log's published public key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

fn check_body(body: &str) -> Result<(), LedgerError> {
    if body.is_empty() || !body.ends_with('\n') {
        return Err(LedgerError::MalformedNote(
            "note text must be non-empty and end with a newline".into(),
        ));
    }
    if body.chars().any(|c| c.is_control() && c != '\n') {
        return Err(LedgerError::MalformedNote(
            "note text contains a control character".into(),
        ));
    }
    Ok(())
}

impl NoteVerifier {
    /// Parses a verifier key `{name}+{key ID hex}+{base64(0x01 ‖ public key)}`,
    /// checking that the key ID matches the name and key.
    pub fn from_vkey(text: &str) -> Result<Self, LedgerError> {
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_text), Some(key_text)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(LedgerError::InvalidKey(
                "verifier key must be name+keyid+key".into(),
            ));
        };
        check_name(name)?;
        let id = parse_key_id(id_text)?;
        let public = parse_typed_key(key_text)?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| LedgerError::InvalidKey("not a valid Ed25519 public key".into()))?;
        let expected = key_id(name, &public);
        if expected != id {
            return Err(LedgerError::InvalidKey(format!(
                "key ID {id_text} does not match the key (expected {})",
                hex::encode(&expected)
            )));
        }
        Ok(Self {
            name: name.to_string(),
            key_id: id,
            key,
        })
    }

    /// The verifier key text: `{name}+{key ID hex}+{base64(0x01 ‖ public key)}`.
    pub fn to_vkey(&self) -> String {
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(&self.key_id),
            typed_key(&self.key.to_bytes())
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Verifies a signed note and returns its body (the signed text,
    /// ending in `"\n"`, without the blank line and signature lines).
    ///
    /// The note is split at its last `"\n\n"`; every signature line must be
    /// well formed (`— name base64`), at least one must be by this key (same
    /// name and key ID), and every line by this key must verify. Errors:
    /// [`LedgerError::MalformedNote`], [`LedgerError::NoSignature`] (no line
    /// by this key) and
    /// [`LedgerError::BadSignature`] (a line by this key does not verify).
    pub fn verify(&self, note: &str) -> Result<String, LedgerError> {
        let malformed = |msg: &str| LedgerError::MalformedNote(msg.to_string());
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(malformed("note contains a control character"));
        }
        let body =
            note_body(note).ok_or_else(|| malformed("no blank line before the signatures"))?;
        let signatures = &note[body.len() + 1..];
        let signatures = signatures
            .strip_suffix('\n')
            .ok_or_else(|| malformed("signature block must end with a newline"))?;
        if signatures.is_empty() {
            return Err(malformed("no signature lines"));
        }
        let bad_signature = || LedgerError::BadSignature {
            name: self.name.clone(),
            key_id: hex::encode(&self.key_id),
        };
        let mut verified = false;
        for (count, line) in signatures.split('\n').enumerate() {
            if count >= MAX_NOTE_SIGNATURES {
                return Err(malformed("too many signatures"));
            }
            let rest = line.strip_prefix(EM_DASH_PREFIX).ok_or_else(|| {
                malformed("signature line must start with an em dash and a space")
            })?;
            let (name, encoded) = rest
                .split_once(' ')
                .ok_or_else(|| malformed("signature line must be '— name signature'"))?;
            if check_name(name).is_err() || encoded.is_empty() {
                return Err(malformed(
                    "signature line has an invalid key name or no signature",
                ));
            }
            let blob = STANDARD
                .decode(encoded)
                .map_err(|_| malformed("signature is not valid base64"))?;
            if blob.len() < 5 {
                return Err(malformed("signature is too short"));
            }
            if name != self.name || blob[..4] != self.key_id {
                continue;
            }
            let sig_bytes: [u8; 64] = blob[4..].try_into().map_err(|_| bad_signature())?;
            let signature = Signature::from_bytes(&sig_bytes);
            self.key
                .verify(body.as_bytes(), &signature)
                .map_err(|_| bad_signature())?;
            verified = true;
        }
        if verified {
            Ok(body.to_string())
        } else {
            Err(LedgerError::NoSignature {
                name: self.name.clone(),
                key_id: hex::encode(&self.key_id),
            })
        }
    }

    /// Verifies a detached signature made by [`NoteSigner::sign_bytes`] with
    /// the same `context` over exactly these `message` bytes. Uses strict
    /// Ed25519 verification (non-canonical and small-order encodings are
    /// rejected). Errors: [`LedgerError::InvalidContext`] for an invalid
    /// context, [`LedgerError::BadSignature`] when `signature` is not 64
    /// bytes or does not verify under this key.
    pub fn verify_bytes(
        &self,
        context: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), LedgerError> {
        let data = detached_message(context, message)?;
        let bad_signature = || LedgerError::BadSignature {
            name: self.name.clone(),
            key_id: hex::encode(&self.key_id),
        };
        let bytes: [u8; 64] = signature.try_into().map_err(|_| bad_signature())?;
        self.key
            .verify_strict(&data, &Signature::from_bytes(&bytes))
            .map_err(|_| bad_signature())
    }

    /// Verifies a signed checkpoint note and parses its body.
    pub fn verify_checkpoint(&self, note: &str) -> Result<Checkpoint, LedgerError> {
        Checkpoint::parse_body(&self.verify(note)?)
    }
}

#[cfg(test)]
mod tests;
