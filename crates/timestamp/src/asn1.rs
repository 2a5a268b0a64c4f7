//! ASN.1 types this crate declares itself (with `der`'s derive macros) and
//! the object identifiers it uses.
//!
//! Why not the published types: `x509_tsp::TstInfo` uses `der`'s
//! `GeneralizedTime`, which rejects fractional seconds (RFC 3161 §2.4.2
//! allows them and TSAs send them); `x509_tsp::TimeStampResp` embeds
//! `cmpv2` 0.2's `PkiStatusInfo`, whose `PKIFailureInfo` flag set declares
//! bit *masks* where bit *positions* are meant (so `badAlg` is the empty set
//! and every other bit is shifted). The ESS attributes (RFC 2634 / RFC 5035)
//! are not in any of the crates.

use std::time::Duration;

use const_oid::ObjectIdentifier;
use der::{
    asn1::{AnyRef, BitString, Int, OctetString},
    referenced::OwnedToRef,
    Any, DateTime, DecodeValue, EncodeValue, FixedTag, Header, Length, Reader, Sequence, Tag,
    Tagged, Writer,
};
use sha2::Digest as _;
use spki::AlgorithmIdentifierOwned;
use x509_cert::{
    ext::{pkix::name::GeneralName, Extensions},
    serial_number::SerialNumber,
};
use x509_tsp::{Accuracy, MessageImprint, TspVersion};

/// `id-ct-TSTInfo` (RFC 3161 §2.4.2).
pub(crate) const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
pub(crate) use const_oid::db::rfc5280::ID_KP_TIME_STAMPING;
pub(crate) use const_oid::db::rfc5911::{
    ID_AA_SIGNING_CERTIFICATE, ID_AA_SIGNING_CERTIFICATE_V_2, ID_CONTENT_TYPE, ID_MESSAGE_DIGEST,
    ID_SIGNED_DATA, ID_SIGNING_TIME,
};
pub(crate) use const_oid::db::rfc5912::ID_CE_AUTHORITY_KEY_IDENTIFIER;
pub(crate) use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512, ID_CE_BASIC_CONSTRAINTS,
    ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE, ID_CE_SUBJECT_KEY_IDENTIFIER, ID_EC_PUBLIC_KEY, ID_SHA_1,
    ID_SHA_256, ID_SHA_384, ID_SHA_512, SECP_256_R_1,
};

/// A hash algorithm this crate can compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// The algorithm named by `oid`, if supported (SHA-1 only when
    /// `allow_sha1`).
    pub(crate) fn from_oid(oid: &ObjectIdentifier, allow_sha1: bool) -> Option<Self> {
        match *oid {
            ID_SHA_256 => Some(HashAlg::Sha256),
            ID_SHA_384 => Some(HashAlg::Sha384),
            ID_SHA_512 => Some(HashAlg::Sha512),
            ID_SHA_1 if allow_sha1 => Some(HashAlg::Sha1),
            _ => None,
        }
    }

    /// The algorithm of an `AlgorithmIdentifier` whose parameters are absent
    /// or NULL (RFC 5754 §2).
    pub(crate) fn from_alg_id(alg: &AlgorithmIdentifierOwned, allow_sha1: bool) -> Option<Self> {
        match &alg.parameters {
            Some(p) if p.tag() != Tag::Null || !p.value().is_empty() => None,
            _ => Self::from_oid(&alg.oid, allow_sha1),
        }
    }

    pub(crate) fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => {
                use sha1::Digest as _;
                sha1::Sha1::digest(data).to_vec()
            }
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// `AlgorithmIdentifier` for SHA-256 with NULL parameters (as OpenSSL writes
/// in message imprints; both forms are accepted everywhere).
pub(crate) fn sha256_alg_null() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA_256,
        parameters: Some(Any::null()),
    }
}

/// `AlgorithmIdentifier` without parameters.
pub(crate) fn alg(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    }
}

/// The bytes of an `INTEGER` without the sign-extension byte DER adds to
/// positive values whose top bit is set (so `00 80` and `80` compare equal
/// as magnitudes).
pub(crate) fn int_magnitude(bytes: &[u8]) -> &[u8] {
    let mut b = bytes;
    while b.len() > 1 && b[0] == 0 {
        b = &b[1..];
    }
    b
}

/// A positive `INTEGER` from an unsigned big-endian magnitude.
pub(crate) fn positive_int(magnitude: &[u8]) -> der::Result<Int> {
    Ok(Int::from(der::asn1::Uint::new(magnitude)?))
}

/// `GeneralizedTime` with optional fractional seconds
/// (`YYYYMMDDHHMMSS[.f…]Z`), as used for `TSTInfo.genTime`.
///
/// Encoding follows DER (X.690 §11.7): UTC `Z`, no trailing zeros in the
/// fraction, no fraction at all when it is zero. Decoding accepts up to nine
/// fractional digits (more are truncated) and rejects local times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PreciseTime {
    /// Seconds since the Unix epoch.
    pub(crate) secs: u64,
    /// Nanoseconds within the second.
    pub(crate) nanos: u32,
}

impl PreciseTime {
    /// From microseconds since the epoch (must be non-negative and before
    /// year 10000).
    pub(crate) fn from_unix_micros(micros: i64) -> Option<Self> {
        let micros = u64::try_from(micros).ok()?;
        let t = PreciseTime {
            secs: micros / 1_000_000,
            nanos: u32::try_from(micros % 1_000_000).ok()? * 1000,
        };
        t.date_time().map(|_| t)
    }

    pub(crate) fn date_time(&self) -> Option<DateTime> {
        DateTime::from_unix_duration(Duration::from_secs(self.secs)).ok()
    }

    fn fraction_digits(&self) -> String {
        if self.nanos == 0 {
            return String::new();
        }
        let digits = format!("{:09}", self.nanos);
        format!(".{}", digits.trim_end_matches('0'))
    }

    fn to_ascii(self) -> der::Result<String> {
        let dt = self
            .date_time()
            .ok_or_else(|| Tag::GeneralizedTime.value_error())?;
        Ok(format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}{}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minutes(),
            dt.seconds(),
            self.fraction_digits()
        ))
    }

    /// RFC 3339 with microseconds, e.g. `2024-05-01T12:00:00.250000Z`.
    pub(crate) fn rfc3339_micros(&self) -> String {
        match self.date_time() {
            Some(dt) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minutes(),
                dt.seconds(),
                self.nanos / 1000
            ),
            None => String::new(),
        }
    }

    fn parse(s: &[u8]) -> Option<Self> {
        // YYYYMMDDHHMMSS, then optional fraction, then Z.
        if s.len() < 15 || !s[..14].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> u16 {
            s[r].iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'))
        };
        let year = num(0..4);
        let month = u8::try_from(num(4..6)).ok()?;
        let day = u8::try_from(num(6..8)).ok()?;
        let hour = u8::try_from(num(8..10)).ok()?;
        let minute = u8::try_from(num(10..12)).ok()?;
        let second = u8::try_from(num(12..14)).ok()?;
        let (last, body) = s[14..].split_last()?;
        if *last != b'Z' {
            return None;
        }
        let mut nanos = 0u32;
        if let Some((sep, frac)) = body.split_first() {
            if *sep != b'.' || frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let mut scale = 100_000_000u32;
            for d in frac.iter().take(9) {
                nanos += u32::from(d - b'0') * scale;
                scale /= 10;
            }
        }
        let dt = DateTime::new(year, month, day, hour, minute, second).ok()?;
        Some(PreciseTime {
            secs: dt.unix_duration().as_secs(),
            nanos,
        })
    }
}

impl FixedTag for PreciseTime {
    const TAG: Tag = Tag::GeneralizedTime;
}

impl<'a> DecodeValue<'a> for PreciseTime {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let bytes = reader.read_vec(header.length)?;
        PreciseTime::parse(&bytes).ok_or_else(|| Tag::GeneralizedTime.value_error())
    }
}

impl EncodeValue for PreciseTime {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.to_ascii()?.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(self.to_ascii()?.as_bytes())
    }
}

/// ```text
/// TSTInfo ::= SEQUENCE  {
///     version                      INTEGER  { v1(1) },
///     policy                       TSAPolicyId,
///     messageImprint               MessageImprint,
///     serialNumber                 INTEGER,
///     genTime                      GeneralizedTime,
///     accuracy                     Accuracy                 OPTIONAL,
///     ordering                     BOOLEAN             DEFAULT FALSE,
///     nonce                        INTEGER                  OPTIONAL,
///     tsa                          [0] GeneralName          OPTIONAL,
///     extensions                   [1] IMPLICIT Extensions   OPTIONAL  }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct TstInfo {
    pub(crate) version: TspVersion,
    pub(crate) policy: ObjectIdentifier,
    pub(crate) message_imprint: MessageImprint,
    pub(crate) serial_number: Int,
    pub(crate) gen_time: PreciseTime,
    #[asn1(optional = "true")]
    pub(crate) accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    pub(crate) ordering: bool,
    #[asn1(optional = "true")]
    pub(crate) nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub(crate) tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) extensions: Option<Extensions>,
}

/// ```text
/// PKIStatusInfo ::= SEQUENCE {
///     status        PKIStatus,
///     statusString  PKIFreeText     OPTIONAL,
///     failInfo      PKIFailureInfo  OPTIONAL  }
/// PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct StatusInfo {
    pub(crate) status: i64,
    #[asn1(optional = "true")]
    pub(crate) status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    pub(crate) fail_info: Option<BitString>,
}

/// ```text
/// TimeStampResp ::= SEQUENCE  {
///     status                  PKIStatusInfo,
///     timeStampToken          TimeStampToken     OPTIONAL  }
/// ```
/// The token is kept as raw (borrowed) DER so it can be returned byte for
/// byte.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct TimeStampResp<'a> {
    pub(crate) status: StatusInfo,
    #[asn1(optional = "true")]
    pub(crate) time_stamp_token: Option<AnyRef<'a>>,
}

/// A named-bit `BIT STRING` with exactly bit `n` set (DER: no trailing zero
/// bits).
pub(crate) fn single_bit(n: u8) -> der::Result<BitString> {
    let len = usize::from(n / 8) + 1;
    let mut bytes = vec![0u8; len];
    bytes[len - 1] = 0x80 >> (n % 8);
    BitString::new(7 - (n % 8), bytes)
}

/// ```text
/// IssuerSerial ::= SEQUENCE {
///     issuer                   GeneralNames,
///     serialNumber             CertificateSerialNumber }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct IssuerSerial {
    pub(crate) issuer: Vec<GeneralName>,
    pub(crate) serial_number: SerialNumber,
}

/// ```text
/// ESSCertID ::= SEQUENCE {
///     certHash                 Hash,   -- SHA-1
///     issuerSerial             IssuerSerial OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct EssCertId {
    pub(crate) cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub(crate) issuer_serial: Option<IssuerSerial>,
}

/// ```text
/// SigningCertificate ::= SEQUENCE {
///     certs        SEQUENCE OF ESSCertID,
///     policies     SEQUENCE OF PolicyInformation OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SigningCertificate {
    pub(crate) certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    pub(crate) policies: Option<Vec<Any>>,
}

/// ```text
/// ESSCertIDv2 ::= SEQUENCE {
///     hashAlgorithm  AlgorithmIdentifier DEFAULT {algorithm id-sha256},
///     certHash       Hash,
///     issuerSerial   IssuerSerial OPTIONAL }
/// ```
/// `hash_algorithm` is `None` for the DEFAULT (DER omits it).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct EssCertIdV2 {
    #[asn1(optional = "true")]
    pub(crate) hash_algorithm: Option<AlgorithmIdentifierOwned>,
    pub(crate) cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub(crate) issuer_serial: Option<IssuerSerial>,
}

/// ```text
/// SigningCertificateV2 ::= SEQUENCE {
///     certs        SEQUENCE OF ESSCertIDv2,
///     policies     SEQUENCE OF PolicyInformation OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SigningCertificateV2 {
    pub(crate) certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    pub(crate) policies: Option<Vec<Any>>,
}

/// The uncompressed SEC1 point of a P-256 `SubjectPublicKeyInfo`, or a
/// description of why it is not one.
pub(crate) fn p256_key(
    spki: &spki::SubjectPublicKeyInfoOwned,
) -> Result<p256::ecdsa::VerifyingKey, String> {
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(format!("public key algorithm {}", spki.algorithm.oid));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.owned_to_ref().decode_as::<ObjectIdentifier>().ok());
    if curve != Some(SECP_256_R_1) {
        return Err(match curve {
            Some(c) => format!("elliptic curve {c}"),
            None => "elliptic curve parameters missing or not a named curve".into(),
        });
    }
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| "public key bit string has unused bits".to_string())?;
    p256::ecdsa::VerifyingKey::from_sec1_bytes(bits).map_err(|_| "invalid P-256 point".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    #[test]
    fn precise_time_round_trips_and_is_der() {
        let t = PreciseTime::from_unix_micros(1_700_000_000_250_000).unwrap();
        let der = t.to_der().unwrap();
        assert_eq!(&der[2..], b"20231114221320.25Z");
        assert_eq!(PreciseTime::from_der(&der).unwrap(), t);
        let whole = PreciseTime::from_unix_micros(1_700_000_000_000_000).unwrap();
        assert_eq!(&whole.to_der().unwrap()[2..], b"20231114221320Z");
        assert_eq!(t.rfc3339_micros(), "2023-11-14T22:13:20.250000Z");
        assert!(PreciseTime::from_unix_micros(-1).is_none());
    }

    #[test]
    fn precise_time_rejects_bad_strings() {
        for s in [
            &b"20231114221320"[..],
            b"20231114221320.Z",
            b"2023111422132Z",
            b"20231314221320Z",
            b"20231114221320.1x",
            b"",
        ] {
            assert!(PreciseTime::parse(s).is_none(), "{:?}", s);
        }
        let t = PreciseTime::parse(b"20231114221320.1234567891Z").unwrap();
        assert_eq!(t.nanos, 123_456_789);
    }

    #[test]
    fn single_bits_are_named_bit_strings() {
        assert_eq!(single_bit(0).unwrap().to_der().unwrap(), [3, 2, 7, 0x80]);
        assert_eq!(single_bit(2).unwrap().to_der().unwrap(), [3, 2, 5, 0x20]);
        assert_eq!(single_bit(5).unwrap().to_der().unwrap(), [3, 2, 2, 0x04]);
        assert_eq!(
            single_bit(15).unwrap().to_der().unwrap(),
            [3, 3, 0, 0, 0x01]
        );
        assert_eq!(
            single_bit(16).unwrap().to_der().unwrap(),
            [3, 4, 7, 0, 0, 0x80]
        );
    }

    #[test]
    fn int_magnitude_strips_sign_byte() {
        assert_eq!(int_magnitude(&[0, 0x80]), &[0x80]);
        assert_eq!(int_magnitude(&[0]), &[0]);
        assert_eq!(positive_int(&[0x80]).unwrap().as_bytes(), &[0, 0x80]);
    }
}
