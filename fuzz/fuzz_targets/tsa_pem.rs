//! PEM certificate files (`tsa.roots_file` for an external TSA, the
//! operator's `tsa.chain_file` and `tsa.key_file`): `TrustAnchors::from_pem`,
//! `TrustAnchors::add_untrusted_pem` and `Authority::from_pem`.
//!
//! Checks: loaders return errors, never panic; a loaded trust store has at
//! least one and at most as many certificates as the text has BEGIN lines,
//! and the untrusted loader counts the same certificates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_timestamp::{Authority, TrustAnchors};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let begins = text.matches("-----BEGIN CERTIFICATE-----").count();
    if let Ok(mut anchors) = TrustAnchors::from_pem(text) {
        assert!(!anchors.is_empty());
        assert!(anchors.len() <= begins);
        assert_eq!(anchors.add_untrusted_pem(text), Ok(anchors.len()));
    }
    let _ = Authority::from_pem(text, text);
});
