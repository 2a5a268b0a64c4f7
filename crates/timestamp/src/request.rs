//! Building and parsing `TimeStampReq`s (RFC 3161 §2.4.1).

use der::{
    asn1::{Int, OctetString},
    Decode, Encode,
};
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion};

use crate::{asn1, TimestampError};

/// A built request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampRequest {
    /// The DER `TimeStampReq`, ready to POST as
    /// `application/timestamp-query`.
    pub der: Vec<u8>,
    /// The SHA-256 message imprint.
    pub digest: [u8; 32],
    /// The nonce: big-endian positive `INTEGER` content bytes exactly as
    /// encoded (16 bytes, top byte in `0x40..=0x7f`, so no sign byte).
    pub nonce: Vec<u8>,
}

/// Build a `TimeStampReq`: SHA-256 imprint of `digest` (NULL parameters, as
/// OpenSSL writes), a fresh random 126-bit nonce, `certReq = TRUE`, no
/// policy, no extensions.
pub fn build_request(digest: &[u8; 32]) -> Result<TimestampRequest, TimestampError> {
    let mut nonce = [0u8; 16];
    crate::authority::fill_random(&mut nonce)?;
    // Positive and minimal: top bit clear, second-highest set.
    nonce[0] = (nonce[0] & 0x7f) | 0x40;
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: asn1::sha256_alg_null(),
            hashed_message: OctetString::new(digest.to_vec())?,
        },
        req_policy: None,
        nonce: Some(Int::new(&nonce)?),
        cert_req: true,
        extensions: None,
    };
    Ok(TimestampRequest {
        der: req.to_der()?,
        digest: *digest,
        nonce: nonce.to_vec(),
    })
}

/// What a TSA needs from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The imprint's hash algorithm as a dotted OID
    /// (`2.16.840.1.101.3.4.2.1` for SHA-256).
    pub hash_algorithm: String,
    /// The imprint's hashed message (not length-checked here).
    pub digest: Vec<u8>,
    /// The nonce's `INTEGER` content bytes as encoded, if any.
    pub nonce: Option<Vec<u8>>,
    /// Whether the TSA must include its certificate(s) in the token.
    pub cert_req: bool,
    /// The requested policy as a dotted OID, if any.
    pub policy: Option<String>,
}

/// Decode a DER `TimeStampReq` (version 1 only).
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, TimestampError> {
    let req = decode_request(der)?;
    Ok(ParsedRequest {
        hash_algorithm: req.message_imprint.hash_algorithm.oid.to_string(),
        digest: req.message_imprint.hashed_message.as_bytes().to_vec(),
        nonce: req.nonce.as_ref().map(|n| n.as_bytes().to_vec()),
        cert_req: req.cert_req,
        policy: req.req_policy.map(|p| p.to_string()),
    })
}

pub(crate) fn decode_request(der: &[u8]) -> Result<TimeStampReq, TimestampError> {
    crate::shape::check(der).map_err(|e| TimestampError::InvalidRequest(e.to_string()))?;
    TimeStampReq::from_der(der).map_err(|e| TimestampError::InvalidRequest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse() {
        let digest = [7u8; 32];
        let a = build_request(&digest).unwrap();
        let b = build_request(&digest).unwrap();
        assert_ne!(a.nonce, b.nonce, "nonces are random");
        assert_eq!(a.nonce.len(), 16);
        let p = parse_request(&a.der).unwrap();
        assert_eq!(p.hash_algorithm, "2.16.840.1.101.3.4.2.1");
        assert_eq!(p.digest, digest);
        assert_eq!(p.nonce.as_deref(), Some(&a.nonce[..]));
        assert!(p.cert_req);
        assert_eq!(p.policy, None);
    }

    #[test]
    fn openssl_reference_request() {
        // `openssl ts -query -data abc.txt` (from the x509-tsp test vectors).
        let der = [
            0x30, 0x40, 0x02, 0x01, 0x01, 0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48,
            0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20, 0xBA, 0x78, 0x16, 0xBF,
            0x8F, 0x01, 0xCF, 0xEA, 0x41, 0x41, 0x40, 0xDE, 0x5D, 0xAE, 0x22, 0x23, 0xB0, 0x03,
            0x61, 0xA3, 0x96, 0x17, 0x7A, 0x9C, 0xB4, 0x10, 0xFF, 0x61, 0xF2, 0x00, 0x15, 0xAD,
            0x02, 0x08, 0x31, 0x4C, 0xFC, 0xE4, 0xE0, 0x65, 0x18, 0x27,
        ];
        let p = parse_request(&der).unwrap();
        assert_eq!(p.digest, asn1::sha256(b"abc"));
        assert_eq!(
            p.nonce.unwrap(),
            [0x31, 0x4C, 0xFC, 0xE4, 0xE0, 0x65, 0x18, 0x27]
        );
        assert!(!p.cert_req);
        assert!(parse_request(&der[..10]).is_err());
        assert!(parse_request(&[]).is_err());
    }
}
