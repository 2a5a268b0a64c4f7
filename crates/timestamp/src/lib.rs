//! RFC 3161 trusted time-stamping for QuNimbus (SPEC §4, "Timestamps").
//!
//! Three parts, all pure (no network, no files, no clock — callers pass
//! every time; randomness only where keys, serial numbers and nonces are
//! generated):
//!
//! * **Client** — [`build_request`] makes a DER `TimeStampReq` (SHA-256
//!   imprint, fresh random nonce, `certReq = TRUE`); the caller sends it to a
//!   TSA over HTTP; [`verify_response`] / [`verify_token`] verify the answer
//!   fully (status, CMS structure, imprint, nonce, `messageDigest`, the
//!   ECDSA signature over the re-encoded signed attributes, the ESS
//!   signing-certificate (v1 or v2), the signer's critical `timeStamping`-only
//!   EKU, `genTime` inside the signer's validity, and the chain up to the
//!   configured [`TrustAnchors`]). Every failed check has its own
//!   [`VerifyError`] variant.
//! * **Built-in TSA** — [`generate_authority`] creates a root CA and a TSA
//!   certificate; [`Authority`] (from generated or operator-supplied PEM)
//!   answers `TimeStampReq`s with `TimeStampResp`s that `openssl ts -verify`
//!   accepts, or with a rejection carrying the matching `PKIFailureInfo` bit.
//! * **Helpers** — [`parse_request`], [`token_from_response`].
//!
//! # Algorithms
//!
//! Signatures: ECDSA over P-256 with SHA-256 (also SHA-384/512 digests over a
//! P-256 key) for both the token and the certificate chain. Any other key type
//! or signature algorithm (RSA, Ed25519, P-384 keys, …) is reported as
//! [`VerifyError::UnsupportedSignatureAlgorithm`]. Message imprints: SHA-256
//! on the client side ([`build_request`], [`verify_response`]); the TSA
//! accepts SHA-256, SHA-384 and SHA-512 imprints. `SignerInfo` digest
//! algorithms: SHA-256, SHA-384, SHA-512. ESS certificate hashes: SHA-1
//! (`signingCertificate`) and SHA-256/384/512 (`signingCertificateV2`).
//!
//! # ASN.1
//!
//! All encoding and decoding goes through the RustCrypto `der` family
//! (`der` 0.7, `spki` 0.7, `x509-cert` 0.2, `cms` 0.2, `x509-tsp` 0.1). Where
//! the published `x509-tsp` 0.1 / `cmpv2` 0.2 types are unusable, this crate
//! declares its own types with `der`'s derive macros (see the `asn1` module):
//! `TSTInfo` (x509-tsp's `GeneralizedTime` cannot carry fractional seconds,
//! which real TSAs and this TSA emit), `TimeStampResp` / `PKIStatusInfo`
//! (cmpv2 0.2's `PKIFailureInfo` flag values are bit masks off by one
//! position, e.g. `badAlg` is the empty set), and the ESS
//! `SigningCertificate` / `SigningCertificateV2` attributes (not provided by
//! any of the crates).
//!
//! # Policy
//!
//! The built-in TSA's default policy is [`DEFAULT_POLICY_OID`]
//! (`1.3.6.1.4.1.32473.3161.1`), an OID under the IANA enterprise number
//! 32473 that RFC 5612 reserves for documentation and examples — QuNimbus has
//! no private enterprise number of its own. Operators with their own arc set
//! it with [`Authority::with_policy`].

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod asn1;
mod authority;
mod error;
mod pem;
mod request;
mod shape;
mod verify;

pub use authority::{generate_authority, Authority, GeneratedAuthority, DEFAULT_POLICY_OID};
pub use error::{TimestampError, VerifyError};
pub use request::{build_request, parse_request, ParsedRequest, TimestampRequest};
pub use verify::{token_from_response, verify_response, verify_token, TrustAnchors, VerifiedToken};

/// Length in bytes of a SHA-256 digest (the message imprint this crate's
/// client side uses).
pub const SHA256_LEN: usize = 32;

/// `PKIFailureInfo` bit numbers (RFC 3161 §2.4.2) used in rejection
/// responses; exposed so callers can interpret [`Authority::respond`] output.
pub mod failure_info {
    /// Unrecognized or unsupported algorithm identifier.
    pub const BAD_ALG: u8 = 0;
    /// Transaction not permitted or supported (also: undecodable request).
    pub const BAD_REQUEST: u8 = 2;
    /// The data submitted has the wrong format (e.g. digest length).
    pub const BAD_DATA_FORMAT: u8 = 5;
    /// The TSA's time source is not available.
    pub const TIME_NOT_AVAILABLE: u8 = 14;
    /// The requested TSA policy is not supported by the TSA.
    pub const UNACCEPTED_POLICY: u8 = 15;
    /// The requested extension is not supported by the TSA.
    pub const UNACCEPTED_EXTENSION: u8 = 16;
    /// The request cannot be handled due to system failure.
    pub const SYSTEM_FAILURE: u8 = 25;
}
