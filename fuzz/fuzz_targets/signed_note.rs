//! C2SP checkpoints, signed notes and note keys: `Checkpoint::parse_body`,
//! `note_body`, `NoteVerifier::verify` / `verify_checkpoint` (fixed key),
//! `NoteVerifier::from_vkey` and `NoteSigner::from_skey`, all on the same
//! text (what an auditor fetches from `/v1/ledger/checkpoint`,
//! `/v1/ledger/public-key`, and the key files the CLI reads).
//!
//! Checks: a body that parses re-serializes to the same text, and signed by
//! the fixed key it verifies back to the same checkpoint; `note_body` splits
//! at the last blank line; a verified note's body is its `note_body`, carries
//! a line by the key, and its checkpoint (if any) is that body parsed; keys
//! that parse re-encode to the same text (key-ID hex case aside) and their
//! key ID matches their name and key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_fuzz::{note_signer, note_verifier, NOTE_NAME};
use qunimbus_ledger::checkpoint::note_body;
use qunimbus_ledger::{key_id, Checkpoint, NoteSigner, NoteVerifier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let signer = note_signer();
    let verifier = note_verifier();

    if let Ok(cp) = Checkpoint::parse_body(text) {
        assert_eq!(cp.body(), text, "checkpoint body does not round-trip");
        assert!(!cp.origin.is_empty());
        assert_eq!(verifier.verify_checkpoint(&signer.sign(text)), Ok(cp));
    }

    if let Some(body) = note_body(text) {
        assert!(text.starts_with(body) && body.ends_with('\n'));
        assert_eq!(text.as_bytes().get(body.len()), Some(&b'\n'));
        assert!(!text[body.len()..].contains("\n\n\n") && !text[body.len() + 1..].contains("\n\n"));
    }

    match verifier.verify(text) {
        Ok(body) => {
            assert_eq!(note_body(text), Some(body.as_str()));
            assert!(text[body.len()..].contains(&format!("\n\u{2014} {NOTE_NAME} ")));
            assert_eq!(verifier.verify(&signer.sign(&body)).as_ref(), Ok(&body));
            match verifier.verify_checkpoint(text) {
                Ok(cp) => assert_eq!(cp.body(), body),
                Err(_) => assert!(Checkpoint::parse_body(&body).is_err()),
            }
        }
        Err(_) => assert!(verifier.verify_checkpoint(text).is_err()),
    }

    if let Ok(v) = NoteVerifier::from_vkey(text) {
        assert_eq!(v.key_id(), key_id(v.name(), &v.public_key()));
        assert_same_key_text(&v.to_vkey(), text);
        assert_eq!(NoteVerifier::from_vkey(&v.to_vkey()).as_ref(), Ok(&v));
    }
    if let Ok(s) = NoteSigner::from_skey(text) {
        assert_eq!(s.key_id(), key_id(s.name(), &s.public_key()));
        assert_same_key_text(&s.to_skey(), text);
        let note = s.sign("x\n");
        assert_eq!(s.verifier().verify(&note).as_deref(), Ok("x\n"));
        assert_eq!(
            NoteSigner::from_skey(&s.to_skey()).map(|s| s.verifier()),
            Ok(s.verifier())
        );
    }
});

/// `[PRIVATE+KEY+]name+keyid+key` texts: equal except for the case of the
/// key-ID hex. (Names have no '+'; the base64 key may.)
fn assert_same_key_text(canonical: &str, text: &str) {
    let split = |t: &str| -> (String, String) {
        let (prefix, rest) = match t.strip_prefix("PRIVATE+KEY+") {
            Some(rest) => ("PRIVATE+KEY+", rest),
            None => ("", t),
        };
        let mut parts = rest.splitn(3, '+');
        let (name, id, key) = (parts.next(), parts.next(), parts.next());
        let (Some(name), Some(id), Some(key)) = (name, id, key) else {
            panic!("key text {t:?} is not name+keyid+key");
        };
        (
            format!("{prefix}{name}+{}+", id.to_ascii_lowercase()),
            key.to_string(),
        )
    };
    assert_eq!(
        split(canonical),
        split(text),
        "key text does not round-trip"
    );
}
