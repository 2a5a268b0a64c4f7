//! Verifying time-stamp responses and tokens (RFC 3161 §2.4.2, RFC 5652
//! §5.4–5.6, RFC 5035 / RFC 2634 ESS, RFC 5280 path basics).

use cms::{
    cert::CertificateChoices,
    content_info::ContentInfo,
    signed_data::{SignedData, SignerIdentifier, SignerInfo},
};
use const_oid::ObjectIdentifier;
use der::{
    asn1::{OctetString, SetOfVec},
    Any, Decode, Encode, Tag, Tagged,
};
use p256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
use spki::AlgorithmIdentifierOwned;
use x509_cert::{
    attr::Attribute,
    ext::pkix::{
        name::GeneralName, AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
        KeyUsages, SubjectKeyIdentifier,
    },
    ext::Extension,
    Certificate,
};

use crate::{
    asn1::{self, HashAlg, PreciseTime, TstInfo},
    TimestampError, VerifyError,
};

/// Longest certificate path (signer included) that is searched.
const MAX_CHAIN_DEPTH: usize = 8;

/// Trusted roots for verification, plus optional untrusted intermediate
/// certificates used only for path building (for tokens that do not embed
/// their chain).
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    roots: Vec<Certificate>,
    intermediates: Vec<Certificate>,
}

impl TrustAnchors {
    /// One or more `CERTIFICATE` PEM blocks (text around them is ignored);
    /// at least one is required. Each becomes a trust anchor: its own
    /// signature is not checked, its validity is (at `genTime`). Only
    /// anchors with P-256 keys can verify anything.
    pub fn from_pem(pem: &str) -> Result<Self, TimestampError> {
        let roots = crate::pem::certificates(pem)?;
        if roots.is_empty() {
            return Err(TimestampError::InvalidCertificate(
                "no CERTIFICATE PEM block found".into(),
            ));
        }
        Ok(TrustAnchors {
            roots,
            intermediates: Vec::new(),
        })
    }

    /// Add untrusted certificates (PEM) that may complete a path from a
    /// signer certificate to a root — like `openssl ts -verify -untrusted`.
    /// They are never trusted by themselves. Returns how many were added.
    pub fn add_untrusted_pem(&mut self, pem: &str) -> Result<usize, TimestampError> {
        let certs = crate::pem::certificates(pem)?;
        let n = certs.len();
        self.intermediates.extend(certs);
        Ok(n)
    }

    /// Number of trust anchors (roots).
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether there are no trust anchors (never true for a value made by
    /// [`TrustAnchors::from_pem`]).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

/// A verified token's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `genTime`, whole seconds since the Unix epoch.
    pub gen_time_unix: i64,
    /// `genTime`, nanoseconds within the second (fractional seconds as the
    /// TSA gave them; 0 if none).
    pub gen_time_nanos: u32,
    /// `genTime` as RFC 3339 UTC with microseconds
    /// (`2024-05-01T12:00:00.250000Z`).
    pub gen_time_rfc3339: String,
    /// The token's serial number, lower-case hex of the `INTEGER` magnitude.
    pub serial_hex: String,
    /// The TSA policy, dotted OID.
    pub policy: String,
    /// The signer certificate's subject, RFC 4514.
    pub tsa_subject: String,
    /// The SHA-256 message imprint (equal to the expected digest).
    pub digest: [u8; 32],
    /// The token's nonce (`INTEGER` content bytes as encoded), if any.
    pub nonce: Option<Vec<u8>>,
}

fn malformed(what: &'static str) -> impl Fn(der::Error) -> VerifyError {
    move |e| VerifyError::Malformed(format!("{what}: {e}"))
}

/// The token inside a granted response (status granted (0) or
/// grantedWithMods (1)), byte for byte; otherwise [`VerifyError::NotGranted`]
/// or [`VerifyError::NoToken`].
pub fn token_from_response(response_der: &[u8]) -> Result<Vec<u8>, VerifyError> {
    crate::shape::check(response_der)
        .map_err(|e| VerifyError::Malformed(format!("TimeStampResp: {e}")))?;
    let resp = asn1::TimeStampResp::from_der(response_der).map_err(malformed("TimeStampResp"))?;
    match resp.status.status {
        0 | 1 => {}
        status => {
            let text = resp
                .status
                .status_string
                .filter(|t| !t.is_empty())
                .map(|t| t.join("; "));
            return Err(VerifyError::NotGranted { status, text });
        }
    }
    let token = resp.time_stamp_token.ok_or(VerifyError::NoToken)?;
    token.to_der().map_err(malformed("timeStampToken"))
}

/// Verify a full DER `TimeStampResp` for `digest` (and `nonce` when `Some`):
/// [`token_from_response`] then [`verify_token`].
pub fn verify_response(
    response_der: &[u8],
    digest: &[u8; 32],
    nonce: Option<&[u8]>,
    anchors: &TrustAnchors,
) -> Result<VerifiedToken, VerifyError> {
    let token = token_from_response(response_der)?;
    verify_token(&token, digest, nonce, anchors)
}

/// Verify a bare token (the `TimeStampToken` `ContentInfo` DER, as stored or
/// as `openssl ts -reply -token_out` writes it).
///
/// Checks, in order, each with its own error: `SignedData` structure;
/// `eContentType` is `id-ct-TSTInfo`; imprint algorithm SHA-256 and imprint
/// equal to `digest`; nonce (when expected; compared as integers); exactly
/// one `SignerInfo` with signed attributes; `contentType` attribute;
/// `messageDigest` attribute equal to the digest of the `TSTInfo`; the signer
/// certificate (from the token, the anchors' untrusted certificates or the
/// anchors); the ECDSA signature over the DER (SET OF) encoding of the signed
/// attributes; ESS `signingCertificateV2` (SHA-256 by default) or
/// `signingCertificate` (SHA-1) identifying the signer certificate; the
/// signer's EKU extension present, critical and exactly `id-kp-timeStamping`;
/// `genTime` inside the signer's validity; a chain to a trust anchor in
/// which every certificate's signature verifies under its issuer's key,
/// names chain, issuers are CAs, and every certificate is valid at
/// `genTime`.
pub fn verify_token(
    token_der: &[u8],
    digest: &[u8; 32],
    nonce: Option<&[u8]>,
    anchors: &TrustAnchors,
) -> Result<VerifiedToken, VerifyError> {
    // --- CMS structure ---------------------------------------------------
    crate::shape::check(token_der).map_err(|e| VerifyError::Malformed(format!("token: {e}")))?;
    let ci = ContentInfo::from_der(token_der).map_err(malformed("ContentInfo"))?;
    if ci.content_type != asn1::ID_SIGNED_DATA {
        return Err(VerifyError::NotSignedData);
    }
    let sd_der = ci.content.to_der().map_err(malformed("SignedData"))?;
    let sd = SignedData::from_der(&sd_der).map_err(malformed("SignedData"))?;
    if sd.encap_content_info.econtent_type != asn1::ID_CT_TST_INFO {
        return Err(VerifyError::WrongContentType);
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or(VerifyError::WrongContentType)?;
    if econtent.tag() != Tag::OctetString {
        return Err(VerifyError::Malformed(
            "eContent is not an OCTET STRING".into(),
        ));
    }
    let tst_der = econtent.value();
    let tst = TstInfo::from_der(tst_der).map_err(malformed("TSTInfo"))?;

    // --- imprint and nonce ---------------------------------------------
    let imprint_alg = &tst.message_imprint.hash_algorithm;
    if HashAlg::from_alg_id(imprint_alg, false) != Some(HashAlg::Sha256) {
        return Err(VerifyError::UnsupportedHashAlgorithm(
            imprint_alg.oid.to_string(),
        ));
    }
    if tst.message_imprint.hashed_message.as_bytes() != digest.as_slice() {
        return Err(VerifyError::ImprintMismatch);
    }
    if let Some(expected) = nonce {
        let got = tst.nonce.as_ref().ok_or(VerifyError::NonceMissing)?;
        if asn1::int_magnitude(got.as_bytes()) != asn1::int_magnitude(expected) {
            return Err(VerifyError::NonceMismatch);
        }
    }

    // --- signer info and signed attributes -------------------------------
    let signer_infos: &SetOfVec<SignerInfo> = &sd.signer_infos.0;
    let si = match signer_infos.as_slice() {
        [one] => one,
        other => {
            return Err(VerifyError::Malformed(format!(
                "expected exactly one SignerInfo, found {}",
                other.len()
            )))
        }
    };
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or(VerifyError::MissingSignedAttributes)?;
    if attrs.is_empty() {
        return Err(VerifyError::MissingSignedAttributes);
    }
    let content_type = single_attr(attrs.as_slice(), asn1::ID_CONTENT_TYPE)?
        .ok_or(VerifyError::ContentTypeAttributeMissing)?;
    let ct: ObjectIdentifier = content_type
        .decode_as()
        .map_err(|_| VerifyError::WrongContentTypeAttribute)?;
    if ct != asn1::ID_CT_TST_INFO {
        return Err(VerifyError::WrongContentTypeAttribute);
    }
    let digest_alg = HashAlg::from_alg_id(&si.digest_alg, false)
        .ok_or_else(|| VerifyError::UnsupportedHashAlgorithm(si.digest_alg.oid.to_string()))?;
    let md_attr = single_attr(attrs.as_slice(), asn1::ID_MESSAGE_DIGEST)?
        .ok_or(VerifyError::MessageDigestAttributeMissing)?;
    let md: OctetString = md_attr
        .decode_as()
        .map_err(malformed("messageDigest attribute"))?;
    if md.as_bytes() != digest_alg.digest(tst_der).as_slice() {
        return Err(VerifyError::MessageDigestMismatch);
    }

    // --- signer certificate and signature --------------------------------
    let token_certs: Vec<&Certificate> = sd
        .certificates
        .as_ref()
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(cert) => Some(cert),
                    CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let signer = token_certs
        .iter()
        .copied()
        .chain(anchors.intermediates.iter())
        .chain(anchors.roots.iter())
        .find(|c| matches_sid(c, &si.sid))
        .ok_or(VerifyError::SignerCertificateNotFound)?;
    let signer_key = asn1::p256_key(&signer.tbs_certificate.subject_public_key_info)
        .map_err(VerifyError::UnsupportedSignatureAlgorithm)?;
    let signed_attrs_der = attrs.to_der().map_err(malformed("signed attributes"))?;
    verify_signature(
        &signer_key,
        &si.signature_algorithm,
        Some(digest_alg),
        &signed_attrs_der,
        si.signature.as_bytes(),
    )
    .map_err(|e| match e {
        SigError::Unsupported(a) => VerifyError::UnsupportedSignatureAlgorithm(a),
        SigError::Invalid => VerifyError::BadSignature,
    })?;

    // --- ESS signing certificate -----------------------------------------
    check_signing_certificate(attrs.as_slice(), signer)?;

    // --- signer EKU and validity -----------------------------------------
    check_timestamping_eku(signer)?;
    let gen_time = tst.gen_time;
    if !valid_at(signer, gen_time) {
        return Err(VerifyError::GenTimeOutsideValidity);
    }

    // --- chain to a trust anchor -----------------------------------------
    let pool: Vec<&Certificate> = token_certs
        .iter()
        .copied()
        .chain(anchors.intermediates.iter())
        .collect();
    verify_chain(signer, &pool, &anchors.roots, gen_time)?;

    let gen_time_unix = i64::try_from(gen_time.secs)
        .map_err(|_| VerifyError::Malformed("genTime out of range".into()))?;
    Ok(VerifiedToken {
        gen_time_unix,
        gen_time_nanos: gen_time.nanos,
        gen_time_rfc3339: gen_time.rfc3339_micros(),
        serial_hex: hex(asn1::int_magnitude(tst.serial_number.as_bytes())),
        policy: tst.policy.to_string(),
        tsa_subject: signer.tbs_certificate.subject.to_string(),
        digest: *digest,
        nonce: tst.nonce.as_ref().map(|n| n.as_bytes().to_vec()),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The single value of the attribute `oid`, `None` when absent; an attribute
/// present twice or with other than one value is malformed (RFC 5652 §11).
fn single_attr(attrs: &[Attribute], oid: ObjectIdentifier) -> Result<Option<&Any>, VerifyError> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let Some(attr) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(VerifyError::Malformed(format!(
            "signed attribute {oid} appears more than once"
        )));
    }
    match attr.values.as_slice() {
        [v] => Ok(Some(v)),
        _ => Err(VerifyError::Malformed(format!(
            "signed attribute {oid} must have exactly one value"
        ))),
    }
}

fn extensions(cert: &Certificate) -> &[Extension] {
    cert.tbs_certificate.extensions.as_deref().unwrap_or(&[])
}

/// The single extension `oid` of `cert`; a duplicate is malformed
/// (RFC 5280 §4.2).
fn extension(cert: &Certificate, oid: ObjectIdentifier) -> Result<Option<&Extension>, VerifyError> {
    let mut found = extensions(cert).iter().filter(|e| e.extn_id == oid);
    let first = found.next();
    if found.next().is_some() {
        return Err(VerifyError::Malformed(format!(
            "certificate {} has extension {oid} twice",
            cert.tbs_certificate.subject
        )));
    }
    Ok(first)
}

fn subject_key_id(cert: &Certificate) -> Option<Vec<u8>> {
    let ext = extension(cert, asn1::ID_CE_SUBJECT_KEY_IDENTIFIER).ok()??;
    let ski = SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes()).ok()?;
    Some(ski.0.as_bytes().to_vec())
}

fn authority_key_id(cert: &Certificate) -> Option<Vec<u8>> {
    let ext = extension(cert, asn1::ID_CE_AUTHORITY_KEY_IDENTIFIER).ok()??;
    let aki = AuthorityKeyIdentifier::from_der(ext.extn_value.as_bytes()).ok()?;
    aki.key_identifier.map(|k| k.as_bytes().to_vec())
}

fn matches_sid(cert: &Certificate, sid: &SignerIdentifier) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            cert.tbs_certificate.issuer == isn.issuer
                && cert.tbs_certificate.serial_number == isn.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            subject_key_id(cert).as_deref() == Some(ski.0.as_bytes())
        }
    }
}

enum SigError {
    Unsupported(String),
    Invalid,
}

/// Verify an ECDSA (P-256 key) signature over `message`. The hash comes from
/// `ecdsa-with-SHA256/384/512`, or — for the bare `id-ecPublicKey` some CMS
/// producers write — from `digest_alg`.
fn verify_signature(
    key: &VerifyingKey,
    sig_alg: &AlgorithmIdentifierOwned,
    digest_alg: Option<HashAlg>,
    message: &[u8],
    signature_der: &[u8],
) -> Result<(), SigError> {
    let hash = match sig_alg.oid {
        asn1::ECDSA_WITH_SHA_256 => HashAlg::Sha256,
        asn1::ECDSA_WITH_SHA_384 => HashAlg::Sha384,
        asn1::ECDSA_WITH_SHA_512 => HashAlg::Sha512,
        asn1::ID_EC_PUBLIC_KEY => match digest_alg {
            Some(h) if h != HashAlg::Sha1 => h,
            _ => return Err(SigError::Unsupported(sig_alg.oid.to_string())),
        },
        other => return Err(SigError::Unsupported(other.to_string())),
    };
    let sig = Signature::from_der(signature_der).map_err(|_| SigError::Invalid)?;
    key.verify_prehash(&hash.digest(message), &sig)
        .map_err(|_| SigError::Invalid)
}

/// ESS: `signingCertificateV2` (preferred) and/or `signingCertificate` must
/// be present and their first `ESSCertID` must identify `signer`.
fn check_signing_certificate(attrs: &[Attribute], signer: &Certificate) -> Result<(), VerifyError> {
    let v2 = single_attr(attrs, asn1::ID_AA_SIGNING_CERTIFICATE_V_2)?;
    let v1 = single_attr(attrs, asn1::ID_AA_SIGNING_CERTIFICATE)?;
    if v1.is_none() && v2.is_none() {
        return Err(VerifyError::SigningCertificateMissing);
    }
    let signer_der = signer.to_der().map_err(malformed("signer certificate"))?;
    if let Some(v2) = v2 {
        let sc: asn1::SigningCertificateV2 = v2
            .decode_as()
            .map_err(malformed("signingCertificateV2 attribute"))?;
        let first = sc
            .certs
            .first()
            .ok_or(VerifyError::SigningCertificateMismatch)?;
        let hash = match &first.hash_algorithm {
            None => HashAlg::Sha256,
            Some(a) => HashAlg::from_alg_id(a, false)
                .ok_or_else(|| VerifyError::UnsupportedHashAlgorithm(a.oid.to_string()))?,
        };
        if first.cert_hash.as_bytes() != hash.digest(&signer_der).as_slice()
            || !issuer_serial_matches(first.issuer_serial.as_ref(), signer)
        {
            return Err(VerifyError::SigningCertificateMismatch);
        }
    }
    if let Some(v1) = v1 {
        let sc: asn1::SigningCertificate = v1
            .decode_as()
            .map_err(malformed("signingCertificate attribute"))?;
        let first = sc
            .certs
            .first()
            .ok_or(VerifyError::SigningCertificateMismatch)?;
        if first.cert_hash.as_bytes() != HashAlg::Sha1.digest(&signer_der).as_slice()
            || !issuer_serial_matches(first.issuer_serial.as_ref(), signer)
        {
            return Err(VerifyError::SigningCertificateMismatch);
        }
    }
    Ok(())
}

fn issuer_serial_matches(is: Option<&asn1::IssuerSerial>, cert: &Certificate) -> bool {
    let Some(is) = is else { return true };
    is.serial_number == cert.tbs_certificate.serial_number
        && is.issuer.iter().any(
            |gn| matches!(gn, GeneralName::DirectoryName(n) if *n == cert.tbs_certificate.issuer),
        )
}

/// RFC 3161 §2.3: the TSA certificate's extended key usage must be present,
/// critical, and contain only `id-kp-timeStamping`.
fn check_timestamping_eku(cert: &Certificate) -> Result<(), VerifyError> {
    let ext = extension(cert, asn1::ID_CE_EXT_KEY_USAGE)?.ok_or(VerifyError::EkuMissing)?;
    if !ext.critical {
        return Err(VerifyError::EkuNotCritical);
    }
    let eku = ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
        .map_err(malformed("extended key usage"))?;
    if eku.0.is_empty() || eku.0.iter().any(|p| *p != asn1::ID_KP_TIME_STAMPING) {
        return Err(VerifyError::EkuNotTimeStamping);
    }
    Ok(())
}

fn valid_at(cert: &Certificate, t: PreciseTime) -> bool {
    let v = &cert.tbs_certificate.validity;
    let not_before = v.not_before.to_unix_duration().as_secs();
    let not_after = v.not_after.to_unix_duration().as_secs();
    t.secs >= not_before && (t.secs < not_after || (t.secs == not_after && t.nanos == 0))
}

fn subject_of(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

/// Could `issuer` have issued `cert`? Names must chain; when both key
/// identifiers are present they must agree.
fn may_have_issued(issuer: &Certificate, cert: &Certificate) -> bool {
    if issuer.tbs_certificate.subject != cert.tbs_certificate.issuer {
        return false;
    }
    match (authority_key_id(cert), subject_key_id(issuer)) {
        (Some(aki), Some(ski)) => aki == ski,
        _ => true,
    }
}

/// Verify `cert`'s signature with `issuer`'s public key.
fn check_cert_signature(cert: &Certificate, issuer: &Certificate) -> Result<(), VerifyError> {
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(VerifyError::CertificateSignatureInvalid(format!(
            "{}: signatureAlgorithm differs from tbsCertificate.signature",
            subject_of(cert)
        )));
    }
    let key = asn1::p256_key(&issuer.tbs_certificate.subject_public_key_info).map_err(|e| {
        VerifyError::UnsupportedSignatureAlgorithm(format!("{} ({e})", subject_of(issuer)))
    })?;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(malformed("tbsCertificate"))?;
    let sig = cert.signature.as_bytes().ok_or_else(|| {
        VerifyError::CertificateSignatureInvalid(format!(
            "{}: signature bit string has unused bits",
            subject_of(cert)
        ))
    })?;
    verify_signature(&key, &cert.signature_algorithm, None, &tbs, sig).map_err(|e| match e {
        SigError::Unsupported(a) => {
            VerifyError::UnsupportedSignatureAlgorithm(format!("{a} on {}", subject_of(cert)))
        }
        SigError::Invalid => VerifyError::CertificateSignatureInvalid(subject_of(cert)),
    })
}

/// Whether an untrusted certificate may act as an issuer: basicConstraints
/// cA = TRUE, and keyCertSign if keyUsage is present.
fn is_ca(cert: &Certificate) -> Result<bool, VerifyError> {
    let Some(bc) = extension(cert, asn1::ID_CE_BASIC_CONSTRAINTS)? else {
        return Ok(false);
    };
    let bc = BasicConstraints::from_der(bc.extn_value.as_bytes())
        .map_err(malformed("basic constraints"))?;
    if !bc.ca {
        return Ok(false);
    }
    if let Some(ku) = extension(cert, asn1::ID_CE_KEY_USAGE)? {
        let ku = KeyUsage::from_der(ku.extn_value.as_bytes()).map_err(malformed("key usage"))?;
        return Ok(ku.0.contains(KeyUsages::KeyCertSign));
    }
    Ok(true)
}

/// Build and check the path from `signer` (already checked for validity) to
/// one of `roots`, through certificates of `pool`.
fn verify_chain(
    signer: &Certificate,
    pool: &[&Certificate],
    roots: &[Certificate],
    at: PreciseTime,
) -> Result<(), VerifyError> {
    let mut current = signer;
    for _ in 0..MAX_CHAIN_DEPTH {
        // The certificate itself is a configured anchor.
        if roots.iter().any(|r| r == current) {
            return Ok(());
        }
        // Issued by an anchor?
        let mut first_err: Option<VerifyError> = None;
        for root in roots.iter().filter(|r| may_have_issued(r, current)) {
            match check_cert_signature(current, root) {
                Ok(()) if valid_at(root, at) => return Ok(()),
                Ok(()) => return Err(VerifyError::CertificateExpired(subject_of(root))),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // Issued by an untrusted intermediate?
        let mut next = None;
        for cand in pool
            .iter()
            .copied()
            .filter(|c| *c != current && may_have_issued(c, current))
        {
            if !is_ca(cand)? {
                first_err.get_or_insert(VerifyError::UntrustedChain(format!(
                    "issuer {} is not a CA",
                    subject_of(cand)
                )));
                continue;
            }
            match check_cert_signature(current, cand) {
                Ok(()) => {
                    next = Some(cand);
                    break;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let Some(issuer) = next else {
            return Err(first_err.unwrap_or_else(|| {
                VerifyError::UntrustedChain(format!(
                    "no trusted issuer found for {} (issuer {})",
                    subject_of(current),
                    current.tbs_certificate.issuer
                ))
            }));
        };
        if !valid_at(issuer, at) {
            return Err(VerifyError::CertificateExpired(subject_of(issuer)));
        }
        current = issuer;
    }
    Err(VerifyError::UntrustedChain(format!(
        "no path to a trust anchor within {MAX_CHAIN_DEPTH} certificates"
    )))
}

/// Check that `certs[i]` is issued by `certs[i + 1]` (names and signature),
/// for loading an operator-supplied chain.
pub(crate) fn check_chain_links(certs: &[Certificate]) -> Result<(), String> {
    for pair in certs.windows(2) {
        let (cert, issuer) = (&pair[0], &pair[1]);
        if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
            return Err(format!(
                "{} is not issued by the next certificate ({})",
                subject_of(cert),
                subject_of(issuer)
            ));
        }
        match check_cert_signature(cert, issuer) {
            // Issuers with keys this crate cannot verify (RSA, P-384, …) are
            // accepted here; only the TSA's own key must be P-256.
            Ok(()) | Err(VerifyError::UnsupportedSignatureAlgorithm(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Re-export for the authority: a certificate's P-256 key.
pub(crate) fn certificate_key(cert: &Certificate) -> Result<VerifyingKey, String> {
    asn1::p256_key(&cert.tbs_certificate.subject_public_key_info)
}
