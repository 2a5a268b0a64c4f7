//! Locating PEM blocks in text that may also hold other material (comments,
//! `openssl x509 -text` output, other labels). Decoding of each block is left
//! to `der`'s RFC 7468 decoder.

use der::{Decode, Encode};
use x509_cert::Certificate;

use crate::TimestampError;

/// The complete `-----BEGIN <label>----- … -----END <label>-----` blocks of
/// `text`, in order. A BEGIN line without its END is an error.
pub(crate) fn blocks<'a>(text: &'a str, label: &str) -> Result<Vec<&'a str>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start..];
        let Some(stop) = after.find(&end) else {
            return Err(format!("unterminated {label} PEM block"));
        };
        let block_len = stop + end.len();
        out.push(&after[..block_len]);
        rest = &after[block_len..];
    }
    Ok(out)
}

/// Decode one PEM block of the given label into DER.
pub(crate) fn decode_block(block: &str, label: &str) -> Result<Vec<u8>, String> {
    // Normalise line endings and trailing blanks, which RFC 7468's strict
    // decoder would otherwise refuse.
    let normalised: String = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let (found, der) = der::pem::decode_vec(normalised.as_bytes()).map_err(|e| e.to_string())?;
    if found != label {
        return Err(format!("expected PEM label {label}, found {found}"));
    }
    Ok(der)
}

/// All `CERTIFICATE` blocks of `text`, decoded.
pub(crate) fn certificates(text: &str) -> Result<Vec<Certificate>, TimestampError> {
    let mut certs = Vec::new();
    for block in blocks(text, "CERTIFICATE").map_err(TimestampError::InvalidCertificate)? {
        let der = decode_block(block, "CERTIFICATE").map_err(TimestampError::InvalidCertificate)?;
        crate::shape::check(&der).map_err(|e| TimestampError::InvalidCertificate(e.to_string()))?;
        let cert = Certificate::from_der(&der)
            .map_err(|e| TimestampError::InvalidCertificate(e.to_string()))?;
        certs.push(cert);
    }
    Ok(certs)
}

/// A certificate as PEM (LF line endings, trailing newline).
pub(crate) fn certificate_pem(cert: &Certificate) -> Result<String, TimestampError> {
    let der = cert.to_der()?;
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der)
        .map_err(|e| TimestampError::Encoding(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_between_other_text() {
        let text = "junk\n-----BEGIN X-----\nAA==\n-----END X-----\nmore\n-----BEGIN Y-----\n\
                    -----END Y-----\n-----BEGIN X-----\nAQ==\n-----END X-----";
        let b = blocks(text, "X").unwrap();
        assert_eq!(b.len(), 2);
        assert!(blocks("-----BEGIN X-----\nAA==\n", "X").is_err());
        assert!(blocks("", "X").unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(
            certificates("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----").is_err()
        );
        assert!(certificates("").unwrap().is_empty());
    }
}
