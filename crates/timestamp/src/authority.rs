//! The built-in time-stamping authority: key and certificate generation,
//! loading operator material, and answering `TimeStampReq`s.

use std::{fmt, time::Duration};

use cms::{
    cert::{CertificateChoices, IssuerAndSerialNumber},
    content_info::{CmsVersion, ContentInfo},
    signed_data::{
        CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo,
        SignerInfos,
    },
};
use const_oid::ObjectIdentifier;
use der::{
    asn1::{AnyRef, GeneralizedTime, Int, OctetString, SetOfVec, UtcTime},
    referenced::OwnedToRef,
    Any, Decode, Encode, Tag,
};
use p256::{
    ecdsa::{
        signature::{Keypair, Signer},
        DerSignature, Signature, SigningKey, VerifyingKey,
    },
    pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding},
};
use spki::{DynSignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::{
    attr::{Attribute, AttributeTypeAndValue},
    builder::{Builder, CertificateBuilder, Profile},
    ext::pkix::{
        name::GeneralName, AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
        KeyUsages, SubjectKeyIdentifier,
    },
    name::{Name, RdnSequence, RelativeDistinguishedName},
    serial_number::SerialNumber,
    time::{Time, Validity},
    Certificate,
};
use x509_tsp::{Accuracy, MessageImprint, TspVersion};

use crate::{
    asn1::{self, HashAlg, PreciseTime, TstInfo},
    failure_info, request, TimestampError,
};

/// The built-in TSA's default policy OID: arc 32473 is the IANA enterprise
/// number RFC 5612 reserves for documentation and examples; `.3161.1` is this
/// crate's choice below it. Operators with their own enterprise number should
/// configure their own with [`Authority::with_policy`].
pub const DEFAULT_POLICY_OID: &str = "1.3.6.1.4.1.32473.3161.1";
const DEFAULT_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap(DEFAULT_POLICY_OID);

/// Fill `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), TimestampError> {
    use rand::TryRngCore as _;
    rand::rngs::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| TimestampError::Random(e.to_string()))
}

/// A fresh P-256 key from 32 OS-random bytes (retrying on the negligible
/// chance they are not a valid scalar).
fn random_signing_key() -> Result<SigningKey, TimestampError> {
    for _ in 0..16 {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        let key = SigningKey::from_slice(&bytes);
        bytes.fill(0);
        if let Ok(key) = key {
            return Ok(key);
        }
    }
    Err(TimestampError::Random(
        "could not derive a valid P-256 scalar".into(),
    ))
}

/// A random positive 128-bit certificate serial number.
fn random_serial() -> Result<SerialNumber, TimestampError> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::new(&bytes)?)
}

/// Signs certificates for `x509-cert`'s builder: ECDSA P-256 with SHA-256,
/// DER signature, `ecdsa-with-SHA256` without parameters (RFC 5758 §3.2).
struct CertSigner<'a>(&'a SigningKey);

impl Keypair for CertSigner<'_> {
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        *self.0.verifying_key()
    }
}

impl DynSignatureAlgorithmIdentifier for CertSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<spki::AlgorithmIdentifierOwned> {
        Ok(asn1::alg(asn1::ECDSA_WITH_SHA_256))
    }
}

impl Signer<DerSignature> for CertSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<DerSignature, p256::ecdsa::Error> {
        let sig: Signature = self.0.try_sign(msg)?;
        Ok(sig.to_der())
    }
}

fn build_err(e: x509_cert::builder::Error) -> TimestampError {
    TimestampError::Encoding(format!("certificate builder: {e}"))
}

/// `CN=<cn>` as a distinguished name (UTF8String value).
fn cn_name(cn: &str) -> Result<Name, TimestampError> {
    let chars = cn.chars().count();
    if chars == 0 || chars > 64 {
        return Err(TimestampError::InvalidName(format!(
            "common name must have 1 to 64 characters, got {chars}"
        )));
    }
    let value = Any::encode_from(&der::asn1::Utf8StringRef::new(cn)?)?;
    let atv = AttributeTypeAndValue {
        oid: const_oid::db::rfc4519::COMMON_NAME,
        value,
    };
    let rdn = RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?);
    Ok(RdnSequence(vec![rdn]))
}

fn unix_secs(t: i64, what: &str) -> Result<u64, TimestampError> {
    u64::try_from(t).map_err(|_| TimestampError::InvalidTime(format!("{what} is before 1970")))
}

/// Freshly generated root CA + TSA certificate (ECDSA P-256).
#[derive(Clone)]
pub struct GeneratedAuthority {
    /// The root CA certificate (PEM) — the trust anchor to publish.
    pub root_cert_pem: String,
    /// The TSA's private key, PKCS#8 PEM (`PRIVATE KEY`). Secret.
    pub tsa_key_pem: String,
    /// The TSA certificate then the root certificate (PEM).
    pub chain_pem: String,
}

impl fmt::Debug for GeneratedAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedAuthority")
            .field("root_cert_pem", &self.root_cert_pem)
            .field("tsa_key_pem", &"<redacted>")
            .field("chain_pem", &self.chain_pem)
            .finish()
    }
}

/// Generate a root CA (`CN=root_name`: basicConstraints CA:TRUE critical,
/// keyUsage keyCertSign+cRLSign critical, SKI) and a TSA certificate
/// (`CN=tsa_name`, issued by the root: basicConstraints CA:FALSE critical,
/// keyUsage digitalSignature critical, extendedKeyUsage timeStamping
/// critical, SKI, AKI), each with a fresh P-256 key and a random 128-bit
/// serial, both valid from `not_before_unix` for `days` days.
pub fn generate_authority(
    root_name: &str,
    tsa_name: &str,
    not_before_unix: i64,
    days: u32,
) -> Result<GeneratedAuthority, TimestampError> {
    let not_before = unix_secs(not_before_unix, "not_before")?;
    if days == 0 {
        return Err(TimestampError::InvalidTime(
            "validity must be at least one day".into(),
        ));
    }
    let not_after = not_before
        .checked_add(u64::from(days) * 86_400)
        .ok_or_else(|| TimestampError::InvalidTime("validity overflows".into()))?;
    let time = |secs: u64| -> Result<Time, TimestampError> {
        GeneralizedTime::from_unix_duration(Duration::from_secs(secs))
            .map(Time::GeneralTime)
            .map_err(|e| TimestampError::InvalidTime(e.to_string()))
    };
    let validity = Validity {
        not_before: time(not_before)?,
        not_after: time(not_after)?,
    };
    let root_dn = cn_name(root_name)?;
    let tsa_dn = cn_name(tsa_name)?;
    let root_key = random_signing_key()?;
    let tsa_key = random_signing_key()?;
    let spki_err = |e: spki::Error| TimestampError::InvalidKey(e.to_string());
    let root_signer = CertSigner(&root_key);
    let root_spki =
        SubjectPublicKeyInfoOwned::from_key(*root_key.verifying_key()).map_err(spki_err)?;
    let tsa_spki =
        SubjectPublicKeyInfoOwned::from_key(*tsa_key.verifying_key()).map_err(spki_err)?;

    let root = CertificateBuilder::new(
        Profile::Root,
        random_serial()?,
        validity,
        root_dn.clone(),
        root_spki.clone(),
        &root_signer,
    )
    .map_err(build_err)?
    .build::<DerSignature>()
    .map_err(build_err)?;

    let mut tsa = CertificateBuilder::new(
        Profile::Manual {
            issuer: Some(root_dn),
        },
        random_serial()?,
        validity,
        tsa_dn,
        tsa_spki.clone(),
        &root_signer,
    )
    .map_err(build_err)?;
    tsa.add_extension(&BasicConstraints {
        ca: false,
        path_len_constraint: None,
    })
    .map_err(build_err)?;
    tsa.add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))
        .map_err(build_err)?;
    tsa.add_extension(&ExtendedKeyUsage(vec![asn1::ID_KP_TIME_STAMPING]))
        .map_err(build_err)?;
    tsa.add_extension(
        &SubjectKeyIdentifier::try_from(tsa_spki.owned_to_ref())
            .map_err(|e| TimestampError::InvalidKey(e.to_string()))?,
    )
    .map_err(build_err)?;
    tsa.add_extension(
        &AuthorityKeyIdentifier::try_from(root_spki.owned_to_ref())
            .map_err(|e| TimestampError::InvalidKey(e.to_string()))?,
    )
    .map_err(build_err)?;
    let tsa = tsa.build::<DerSignature>().map_err(build_err)?;

    let root_cert_pem = crate::pem::certificate_pem(&root)?;
    let tsa_cert_pem = crate::pem::certificate_pem(&tsa)?;
    let tsa_key_pem = tsa_key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| TimestampError::InvalidKey(e.to_string()))?
        .to_string();
    Ok(GeneratedAuthority {
        chain_pem: format!("{tsa_cert_pem}{root_cert_pem}"),
        root_cert_pem,
        tsa_key_pem,
    })
}

/// A request the TSA will not honour: the `PKIFailureInfo` bit and a text.
struct Rejection {
    bit: u8,
    text: String,
}

impl Rejection {
    fn new(bit: u8, text: impl Into<String>) -> Self {
        Rejection {
            bit,
            text: text.into(),
        }
    }
}

/// A TSA that signs tokens: an ECDSA P-256 key, its certificate and the
/// chain up to the root.
#[derive(Clone)]
pub struct Authority {
    key: SigningKey,
    chain: Vec<Certificate>,
    chain_pem: Vec<String>,
    policy: ObjectIdentifier,
    accuracy: Option<Accuracy>,
    include_tsa_name: bool,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subjects: Vec<String> = self
            .chain
            .iter()
            .map(|c| c.tbs_certificate.subject.to_string())
            .collect();
        f.debug_struct("Authority")
            .field("chain", &subjects)
            .field("policy", &self.policy.to_string())
            .finish_non_exhaustive()
    }
}

fn load_signing_key(key_pem: &str) -> Result<SigningKey, TimestampError> {
    let invalid = TimestampError::InvalidKey;
    if let Some(block) = crate::pem::blocks(key_pem, "PRIVATE KEY")
        .map_err(invalid)?
        .first()
    {
        let der = crate::pem::decode_block(block, "PRIVATE KEY").map_err(invalid)?;
        return SigningKey::from_pkcs8_der(&der)
            .map_err(|e| invalid(format!("not a PKCS#8 ECDSA P-256 key: {e}")));
    }
    if let Some(block) = crate::pem::blocks(key_pem, "EC PRIVATE KEY")
        .map_err(invalid)?
        .first()
    {
        let der = crate::pem::decode_block(block, "EC PRIVATE KEY").map_err(invalid)?;
        return p256::SecretKey::from_sec1_der(&der)
            .map(SigningKey::from)
            .map_err(|e| invalid(format!("not a SEC1 P-256 key: {e}")));
    }
    Err(invalid(
        "no unencrypted PRIVATE KEY (PKCS#8) or EC PRIVATE KEY PEM block found".into(),
    ))
}

impl Authority {
    /// Load an operator-supplied TSA.
    ///
    /// `key_pem`: PKCS#8 PEM (`PRIVATE KEY`) ECDSA P-256 key (a SEC1
    /// `EC PRIVATE KEY` block is accepted too; encrypted keys are not).
    /// `chain_pem`: PEM certificates, the TSA certificate first (its public
    /// key must match the key), then its issuers up to and including the
    /// root; each must name and (for P-256 issuers) sign the one before it.
    /// The TSA certificate's extensions are not checked here, so a
    /// non-conforming certificate (e.g. no critical timeStamping EKU) yields
    /// tokens that verifiers reject.
    pub fn from_pem(key_pem: &str, chain_pem: &str) -> Result<Self, TimestampError> {
        let key = load_signing_key(key_pem)?;
        let chain = crate::pem::certificates(chain_pem)?;
        let tsa_cert = chain
            .first()
            .ok_or_else(|| TimestampError::InvalidChain("no CERTIFICATE PEM block found".into()))?;
        let cert_key =
            crate::verify::certificate_key(tsa_cert).map_err(TimestampError::InvalidCertificate)?;
        if cert_key != *key.verifying_key() {
            return Err(TimestampError::KeyMismatch);
        }
        crate::verify::check_chain_links(&chain).map_err(TimestampError::InvalidChain)?;
        let chain_pem = chain
            .iter()
            .map(crate::pem::certificate_pem)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Authority {
            key,
            chain,
            chain_pem,
            policy: DEFAULT_POLICY,
            accuracy: None,
            include_tsa_name: true,
        })
    }

    /// Use `policy` (dotted OID) as the TSA policy instead of
    /// [`DEFAULT_POLICY_OID`].
    pub fn with_policy(mut self, policy: &str) -> Result<Self, TimestampError> {
        self.policy = ObjectIdentifier::new(policy)
            .map_err(|e| TimestampError::InvalidPolicy(format!("{policy}: {e}")))?;
        Ok(self)
    }

    /// State an accuracy in every token (`None` components are omitted;
    /// `millis` and `micros` must be 1..=999 when given). By default tokens
    /// carry no accuracy.
    pub fn with_accuracy(
        mut self,
        seconds: Option<u64>,
        millis: Option<u16>,
        micros: Option<u16>,
    ) -> Result<Self, TimestampError> {
        let part = |v: Option<u16>, what: &str| -> Result<Option<i16>, TimestampError> {
            match v {
                None => Ok(None),
                Some(x @ 1..=999) => Ok(i16::try_from(x).ok()),
                Some(x) => Err(TimestampError::InvalidTime(format!(
                    "accuracy {what} must be 1..=999, got {x}"
                ))),
            }
        };
        self.accuracy = Some(Accuracy {
            seconds,
            millis: part(millis, "millis")?,
            micros: part(micros, "micros")?,
        });
        Ok(self)
    }

    /// Whether tokens name the TSA (`tsa` field: the TSA certificate's
    /// subject as a directoryName). On by default.
    pub fn with_tsa_name(mut self, include: bool) -> Self {
        self.include_tsa_name = include;
        self
    }

    /// The TSA policy, dotted OID.
    pub fn policy(&self) -> String {
        self.policy.to_string()
    }

    /// All chain certificates as PEM, TSA certificate first.
    pub fn chain_pem(&self) -> String {
        self.chain_pem.concat()
    }

    /// The last certificate of the chain (the root) as PEM.
    pub fn root_pem(&self) -> String {
        self.chain_pem.last().cloned().unwrap_or_default()
    }

    /// The TSA (signer) certificate as PEM.
    pub fn tsa_certificate_pem(&self) -> String {
        self.chain_pem.first().cloned().unwrap_or_default()
    }

    /// The certificates embedded in tokens: the chain without a final
    /// self-issued root (verifiers must hold the root as a trust anchor).
    fn token_certificates(&self) -> &[Certificate] {
        match self.chain.split_last() {
            Some((last, rest))
                if !rest.is_empty()
                    && last.tbs_certificate.subject == last.tbs_certificate.issuer =>
            {
                rest
            }
            _ => &self.chain,
        }
    }

    /// Answer a DER `TimeStampReq` with a DER `TimeStampResp`.
    ///
    /// Granted (status 0): a token signed with ECDSA-with-SHA256 whose signed
    /// attributes are contentType, signingTime, messageDigest and
    /// signingCertificateV2; the TSA certificate (and intermediates) embedded
    /// when `certReq` is true; `TSTInfo` version 1, [`Authority::policy`],
    /// the request's imprint, `serial`, `genTime` from
    /// `gen_time_unix_micros` with microsecond precision, the configured
    /// accuracy, the request's nonce, the TSA name.
    ///
    /// Rejection (status 2) with one `PKIFailureInfo` bit (see
    /// [`crate::failure_info`]): `badRequest` for undecodable DER or a
    /// version other than 1; `badAlg` for an imprint algorithm other than
    /// SHA-256/384/512; `badDataFormat` for a digest of the wrong length;
    /// `unacceptedPolicy` for a requested policy other than ours;
    /// `unacceptedExtension` for any request extension; `timeNotAvailable`
    /// for a `gen_time_unix_micros` before 1970 or after 9999;
    /// `systemFailure` if signing fails. Never panics.
    pub fn respond(&self, request_der: &[u8], gen_time_unix_micros: i64, serial: u128) -> Vec<u8> {
        let result = self
            .try_respond(request_der, gen_time_unix_micros, serial)
            .and_then(|token| {
                encode_granted(&token)
                    .map_err(|e| Rejection::new(failure_info::SYSTEM_FAILURE, e.to_string()))
            });
        match result {
            Ok(resp) => resp,
            // Encoding a status-only response cannot fail in practice; an
            // empty body (which every client treats as malformed) is the
            // last resort rather than a panic.
            Err(rejection) => encode_rejection(rejection).unwrap_or_default(),
        }
    }

    fn try_respond(
        &self,
        request_der: &[u8],
        gen_time_unix_micros: i64,
        serial: u128,
    ) -> Result<Vec<u8>, Rejection> {
        let req = request::decode_request(request_der)
            .map_err(|e| Rejection::new(failure_info::BAD_REQUEST, e.to_string()))?;
        let alg = &req.message_imprint.hash_algorithm;
        let hash = HashAlg::from_alg_id(alg, false).ok_or_else(|| {
            Rejection::new(
                failure_info::BAD_ALG,
                format!("unsupported message imprint algorithm {}", alg.oid),
            )
        })?;
        let len = req.message_imprint.hashed_message.as_bytes().len();
        if len != hash.output_len() {
            return Err(Rejection::new(
                failure_info::BAD_DATA_FORMAT,
                format!(
                    "message imprint has {len} bytes, {} expected",
                    hash.output_len()
                ),
            ));
        }
        if let Some(p) = req.req_policy {
            if p != self.policy {
                return Err(Rejection::new(
                    failure_info::UNACCEPTED_POLICY,
                    format!("policy {p} is not supported (only {})", self.policy),
                ));
            }
        }
        if req.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err(Rejection::new(
                failure_info::UNACCEPTED_EXTENSION,
                "request extensions are not supported",
            ));
        }
        let token = self
            .sign_token(
                req.message_imprint,
                req.nonce,
                gen_time_unix_micros,
                serial,
                req.cert_req,
            )
            .map_err(|e| match e {
                TimestampError::InvalidTime(t) => {
                    Rejection::new(failure_info::TIME_NOT_AVAILABLE, t)
                }
                other => Rejection::new(failure_info::SYSTEM_FAILURE, other.to_string()),
            })?;
        Ok(token)
    }

    /// Issue a token (the `TimeStampToken` `ContentInfo` DER) directly for a
    /// SHA-256 `digest`. `nonce` is a big-endian positive integer (leading
    /// zero bytes are ignored). The certificates are embedded when
    /// `include_certs`.
    pub fn issue(
        &self,
        digest: &[u8; 32],
        nonce: Option<&[u8]>,
        gen_time_unix_micros: i64,
        serial: u128,
        include_certs: bool,
    ) -> Result<Vec<u8>, TimestampError> {
        let imprint = MessageImprint {
            hash_algorithm: asn1::sha256_alg_null(),
            hashed_message: OctetString::new(digest.to_vec())?,
        };
        let nonce = match nonce {
            None => None,
            Some([]) => return Err(TimestampError::InvalidRequest("empty nonce".into())),
            Some(n) => Some(asn1::positive_int(asn1::int_magnitude(n))?),
        };
        self.sign_token(imprint, nonce, gen_time_unix_micros, serial, include_certs)
    }

    fn sign_token(
        &self,
        message_imprint: MessageImprint,
        nonce: Option<Int>,
        gen_time_unix_micros: i64,
        serial: u128,
        include_certs: bool,
    ) -> Result<Vec<u8>, TimestampError> {
        let gen_time = PreciseTime::from_unix_micros(gen_time_unix_micros).ok_or_else(|| {
            TimestampError::InvalidTime(format!(
                "genTime {gen_time_unix_micros} µs is outside 1970..=9999"
            ))
        })?;
        let tsa_cert = self
            .chain
            .first()
            .ok_or_else(|| TimestampError::InvalidChain("empty chain".into()))?;
        let tbs = &tsa_cert.tbs_certificate;

        let tst = TstInfo {
            version: TspVersion::V1,
            policy: self.policy,
            message_imprint,
            serial_number: asn1::positive_int(&serial.to_be_bytes())?,
            gen_time,
            accuracy: self.accuracy.clone(),
            ordering: false,
            nonce,
            tsa: self
                .include_tsa_name
                .then(|| GeneralName::DirectoryName(tbs.subject.clone())),
            extensions: None,
        };
        let tst_der = tst.to_der()?;

        // Signed attributes (sorted as a DER SET OF by `insert`).
        let ess = asn1::SigningCertificateV2 {
            certs: vec![asn1::EssCertIdV2 {
                hash_algorithm: None, // DEFAULT id-sha256
                cert_hash: OctetString::new(asn1::sha256(&tsa_cert.to_der()?).to_vec())?,
                issuer_serial: Some(asn1::IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(tbs.issuer.clone())],
                    serial_number: tbs.serial_number.clone(),
                }),
            }],
            policies: None,
        };
        let signing_time = {
            let d = Duration::from_secs(gen_time.secs);
            // RFC 5652 §11.3: UTCTime for 1950..2049, GeneralizedTime after.
            match UtcTime::from_unix_duration(d) {
                Ok(t) => Time::UtcTime(t),
                Err(_) => Time::GeneralTime(GeneralizedTime::from_unix_duration(d)?),
            }
        };
        let mut attrs: SetOfVec<Attribute> = SetOfVec::new();
        for (oid, value) in [
            (
                asn1::ID_CONTENT_TYPE,
                Any::encode_from(&asn1::ID_CT_TST_INFO)?,
            ),
            (asn1::ID_SIGNING_TIME, Any::encode_from(&signing_time)?),
            (
                asn1::ID_MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(asn1::sha256(&tst_der).to_vec())?)?,
            ),
            (asn1::ID_AA_SIGNING_CERTIFICATE_V_2, Any::encode_from(&ess)?),
        ] {
            attrs.insert(Attribute {
                oid,
                values: SetOfVec::try_from(vec![value])?,
            })?;
        }
        let signature: Signature = self
            .key
            .try_sign(&attrs.to_der()?)
            .map_err(|e| TimestampError::Signing(e.to_string()))?;

        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer.clone(),
                serial_number: tbs.serial_number.clone(),
            }),
            digest_alg: asn1::alg(asn1::ID_SHA_256),
            signed_attrs: Some(attrs),
            signature_algorithm: asn1::alg(asn1::ECDSA_WITH_SHA_256),
            signature: OctetString::new(signature.to_der().as_bytes().to_vec())?,
            unsigned_attrs: None,
        };
        let certificates = if include_certs {
            let mut set = SetOfVec::new();
            for cert in self.token_certificates() {
                set.insert(CertificateChoices::Certificate(cert.clone()))?;
            }
            Some(CertificateSet(set))
        } else {
            None
        };
        let signed_data = SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![asn1::alg(asn1::ID_SHA_256)])?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: asn1::ID_CT_TST_INFO,
                econtent: Some(Any::new(Tag::OctetString, tst_der)?),
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
        };
        let content_info = ContentInfo {
            content_type: asn1::ID_SIGNED_DATA,
            content: Any::encode_from(&signed_data)?,
        };
        Ok(content_info.to_der()?)
    }
}

fn encode_granted(token_der: &[u8]) -> der::Result<Vec<u8>> {
    asn1::TimeStampResp {
        status: asn1::StatusInfo {
            status: 0,
            status_string: None,
            fail_info: None,
        },
        time_stamp_token: Some(AnyRef::from_der(token_der)?),
    }
    .to_der()
}

fn encode_rejection(r: Rejection) -> der::Result<Vec<u8>> {
    asn1::TimeStampResp {
        status: asn1::StatusInfo {
            status: 2,
            status_string: Some(vec![r.text]),
            fail_info: Some(asn1::single_bit(r.bit)?),
        },
        time_stamp_token: None,
    }
    .to_der()
}

#[cfg(test)]
mod tests;
