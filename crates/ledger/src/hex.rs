//! Lowercase hexadecimal helpers for hashes.

use crate::error::LedgerError;
use crate::merkle::Hash;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Encodes bytes as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `hex(SHA-256(bytes))`: how files and policies are named by digest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    encode(&crate::merkle::sha256(bytes))
}

/// Decodes hex (either case) into bytes.
pub fn decode(text: &str) -> Result<Vec<u8>, LedgerError> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(LedgerError::InvalidHex(format!(
            "odd length {}",
            bytes.len()
        )));
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Ok((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

/// Decodes exactly 64 hex digits into a 32-byte hash.
pub fn decode_hash(text: &str) -> Result<Hash, LedgerError> {
    let bytes = decode(text)?;
    bytes.try_into().map_err(|v: Vec<u8>| {
        LedgerError::InvalidHex(format!("expected 32 bytes, got {}", v.len()))
    })
}

/// True if `text` is exactly 64 lowercase hex digits (the form of block hashes).
pub fn is_lower_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn nibble(c: u8) -> Result<u8, LedgerError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(LedgerError::InvalidHex(format!(
            "invalid character {:?}",
            char::from(c)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let data = [0u8, 1, 0x7f, 0x80, 0xab, 0xff];
        assert_eq!(encode(&data), "00017f80abff");
        assert_eq!(decode("00017F80ABff").unwrap(), data);
        assert!(decode("0").is_err());
        assert!(decode("0g").is_err());
        assert!(decode_hash("00").is_err());
        assert!(is_lower_hash(&"a".repeat(64)));
        assert!(!is_lower_hash(&"A".repeat(64)));
        assert!(!is_lower_hash(&"a".repeat(63)));
    }
}
