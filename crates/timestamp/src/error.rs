//! Error types.

/// Problems building or parsing requests, loading keys and certificates, and
/// issuing tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// The private key could not be read, or is not an ECDSA P-256 key.
    #[error("invalid private key: {0}")]
    InvalidKey(String),
    /// A certificate could not be read.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// The certificate chain is empty, mis-ordered or does not link up.
    #[error("invalid certificate chain: {0}")]
    InvalidChain(String),
    /// The TSA certificate's public key does not belong to the private key.
    #[error("the TSA certificate's public key does not match the private key")]
    KeyMismatch,
    /// A subject name (CN) is empty or too long.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// A time is out of the supported range (before 1970, or after 9999).
    #[error("invalid time: {0}")]
    InvalidTime(String),
    /// A `TimeStampReq` could not be decoded.
    #[error("invalid time-stamp request: {0}")]
    InvalidRequest(String),
    /// A policy OID is not a valid dotted object identifier.
    #[error("invalid policy OID: {0}")]
    InvalidPolicy(String),
    /// ASN.1 encoding failed.
    #[error("ASN.1 encoding failed: {0}")]
    Encoding(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

impl From<der::Error> for TimestampError {
    fn from(e: der::Error) -> Self {
        TimestampError::Encoding(e.to_string())
    }
}

/// Verification failures, one variant per check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The DER could not be decoded (response, token, `SignedData`,
    /// `TSTInfo`, an attribute or a certificate), or a structural rule was
    /// broken (e.g. not exactly one `SignerInfo`).
    #[error("malformed time-stamp data: {0}")]
    Malformed(String),
    /// The response's status is neither granted (0) nor grantedWithMods (1).
    #[error("time-stamp not granted (status {status}{})", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    NotGranted {
        /// The `PKIStatus` value.
        status: i64,
        /// The `statusString` texts joined with "; ", if any.
        text: Option<String>,
    },
    /// A granted response carries no `timeStampToken`.
    #[error("granted response carries no time-stamp token")]
    NoToken,
    /// The token's `ContentInfo` is not `id-signedData`.
    #[error("token is not CMS SignedData")]
    NotSignedData,
    /// The encapsulated content type is not `id-ct-TSTInfo` (or the content is
    /// absent).
    #[error("encapsulated content is not id-ct-TSTInfo")]
    WrongContentType,
    /// A hash algorithm (message imprint, `SignerInfo` digest or ESS
    /// certificate hash) is not supported; carries the dotted OID.
    #[error("unsupported hash algorithm {0}")]
    UnsupportedHashAlgorithm(String),
    /// The token's message imprint differs from the expected digest.
    #[error("message imprint does not match the expected digest")]
    ImprintMismatch,
    /// A nonce was expected but the token carries none.
    #[error("token carries no nonce")]
    NonceMissing,
    /// The token's nonce differs from the request's.
    #[error("token nonce does not match the request nonce")]
    NonceMismatch,
    /// The `SignerInfo` has no signed attributes.
    #[error("SignerInfo has no signed attributes")]
    MissingSignedAttributes,
    /// The signed attributes carry no `contentType` attribute.
    #[error("signed attributes carry no contentType attribute")]
    ContentTypeAttributeMissing,
    /// The `contentType` signed attribute is not `id-ct-TSTInfo`.
    #[error("contentType attribute is not id-ct-TSTInfo")]
    WrongContentTypeAttribute,
    /// The signed attributes carry no `messageDigest` attribute.
    #[error("signed attributes carry no messageDigest attribute")]
    MessageDigestAttributeMissing,
    /// The `messageDigest` attribute differs from the digest of the
    /// encapsulated `TSTInfo`.
    #[error("messageDigest attribute does not match the TSTInfo digest")]
    MessageDigestMismatch,
    /// The signature algorithm or the signer's key type is not supported
    /// (only ECDSA over P-256 is); carries the OID or a description.
    #[error("unsupported signature algorithm or key: {0}")]
    UnsupportedSignatureAlgorithm(String),
    /// The ECDSA signature over the signed attributes does not verify.
    #[error("signature over the signed attributes is invalid")]
    BadSignature,
    /// No certificate (in the token or the trust store) matches the
    /// `SignerInfo`'s signer identifier.
    #[error("signer certificate not found")]
    SignerCertificateNotFound,
    /// Neither `signingCertificate` nor `signingCertificateV2` is present.
    #[error("ESS signing-certificate attribute missing")]
    SigningCertificateMissing,
    /// The ESS signing-certificate attribute does not identify the signer
    /// certificate (hash or issuer/serial differ).
    #[error("ESS signing-certificate attribute does not match the signer certificate")]
    SigningCertificateMismatch,
    /// The signer certificate has no extended-key-usage extension.
    #[error("signer certificate has no extended key usage extension")]
    EkuMissing,
    /// The signer certificate's extended-key-usage extension is not critical.
    #[error("signer certificate's extended key usage extension is not critical")]
    EkuNotCritical,
    /// The signer certificate's extended key usage is not exactly
    /// `id-kp-timeStamping`.
    #[error("signer certificate's extended key usage is not exactly id-kp-timeStamping")]
    EkuNotTimeStamping,
    /// `genTime` lies outside the signer certificate's validity period.
    #[error("genTime lies outside the signer certificate's validity")]
    GenTimeOutsideValidity,
    /// No chain from the signer certificate to a trust anchor could be built.
    #[error("certificate chain not trusted: {0}")]
    UntrustedChain(String),
    /// A certificate's signature does not verify with its issuer's key;
    /// carries the certificate's subject.
    #[error("certificate signature invalid: {0}")]
    CertificateSignatureInvalid(String),
    /// A certificate of the chain is not valid at `genTime`; carries the
    /// certificate's subject.
    #[error("certificate not valid at genTime: {0}")]
    CertificateExpired(String),
}
