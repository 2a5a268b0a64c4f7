//! Interoperability with the `openssl` command line tool (`openssl ts`).
//!
//! Every key and certificate is generated at test time in a temporary
//! directory. These tests require `openssl` on the PATH and fail (loudly)
//! without it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use qunimbus_timestamp::{
    build_request, generate_authority, parse_request, token_from_response, verify_response,
    verify_token, Authority, TrustAnchors, VerifyError, DEFAULT_POLICY_OID,
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Run `openssl <args>` in `dir`. Panics (with instructions) when the
/// `openssl` binary is missing.
fn openssl(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("these tests need the `openssl` command on PATH (OpenSSL 1.1+/3.x): {e}")
        });
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Like [`openssl`] but the command must succeed.
fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let r = openssl(dir, args);
    assert!(
        r.ok,
        "openssl {} failed:\n{}\n{}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    r.stdout
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_micros() -> i64 {
    now() * 1_000_000 + 250_500
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn write(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, data).unwrap();
    p
}

/// `openssl ts -verify` printed "Verification: OK".
fn openssl_verifies(dir: &Path, args: &[&str]) -> bool {
    let mut full = vec!["ts", "-verify"];
    full.extend_from_slice(args);
    let r = openssl(dir, &full);
    let ok = r.stdout.contains("Verification: OK");
    assert_eq!(
        ok, r.ok,
        "exit status and output disagree: {}{}",
        r.stdout, r.stderr
    );
    ok
}

/// A built-in authority valid from yesterday for 30 days, written to `dir`
/// as root.pem and chain.pem.
fn builtin(dir: &Path) -> (Authority, TrustAnchors) {
    let g = generate_authority(
        "QuNimbus Test Root",
        "QuNimbus Test TSA",
        now() - 86_400,
        30,
    )
    .unwrap();
    write(dir, "root.pem", &g.root_cert_pem);
    write(dir, "chain.pem", &g.chain_pem);
    write(dir, "tsa.key", &g.tsa_key_pem);
    let a = Authority::from_pem(&g.tsa_key_pem, &g.chain_pem).unwrap();
    (a, TrustAnchors::from_pem(&g.root_cert_pem).unwrap())
}

const EXT_CNF: &str = r#"
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ v3_ca_nokeyid ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = none
[ v3_tsa ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_tsa_noncritical_eku ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_tsa_no_eku ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_tsa_nokeyid ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = none
authorityKeyIdentifier = none
"#;

/// An openssl-made PKI in a temporary directory.
struct OpensslPki {
    dir: TempDir,
}

impl OpensslPki {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "ext.cnf", EXT_CNF);
        let pki = OpensslPki { dir };
        pki.ca("ca", "Test CA", "v3_ca", 30);
        pki
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn key(&self, name: &str) {
        openssl_ok(
            self.path(),
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &format!("{name}.key"),
            ],
        );
    }

    /// A self-signed CA `<name>.crt` / `<name>.key`.
    fn ca(&self, name: &str, cn: &str, ext: &str, days: u32) {
        self.key(name);
        openssl_ok(
            self.path(),
            &[
                "req",
                "-x509",
                "-new",
                "-sha256",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                &days.to_string(),
                "-config",
                "ext.cnf",
                "-extensions",
                ext,
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }

    /// A certificate `<name>.crt` (`CN=Test TSA`) for key `<key>.key`,
    /// issued by `<ca>`.
    fn issue(&self, name: &str, key: &str, ca: &str, ext: &str, serial: u32, days: u32) {
        openssl_ok(
            self.path(),
            &[
                "req",
                "-new",
                "-key",
                &format!("{key}.key"),
                "-subj",
                "/CN=Test TSA",
                "-config",
                "ext.cnf",
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl_ok(
            self.path(),
            &[
                "x509",
                "-req",
                "-sha256",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &serial.to_string(),
                "-days",
                &days.to_string(),
                "-extfile",
                "ext.cnf",
                "-extensions",
                ext,
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path().join(name)).unwrap()
    }

    fn anchors(&self, ca: &str) -> TrustAnchors {
        TrustAnchors::from_pem(&self.read(&format!("{ca}.crt"))).unwrap()
    }

    /// Our `Authority` over an openssl-made key and certificate.
    fn authority(&self, key: &str, cert: &str, ca: &str) -> Authority {
        let chain = format!(
            "{}{}",
            self.read(&format!("{cert}.crt")),
            self.read(&format!("{ca}.crt"))
        );
        Authority::from_pem(&self.read(&format!("{key}.key")), &chain).unwrap()
    }

    /// A `ts` configuration section for `openssl ts -reply`.
    fn ts_config(&self, name: &str, ess_alg: &str) -> String {
        let dir = self.path().display();
        let cfg = format!(
            r#"
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500, microsecs:100
clock_precision_digits = 3
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess_alg}
"#
        );
        write(self.path(), "tsaserial", "01\n");
        write(self.path(), name, cfg);
        name.to_string()
    }
}

// ---------------------------------------------------------------------------
// 1. our TSA, openssl verifies
// ---------------------------------------------------------------------------

#[test]
fn builtin_tsa_response_verifies_with_openssl_and_us() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let (tsa, anchors) = builtin(dir);
    let data = b"checkpoint body\n";
    write(dir, "data.txt", data);
    openssl_ok(
        dir,
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "req.tsq",
        ],
    );
    let req = fs::read(dir.join("req.tsq")).unwrap();
    let resp = tsa.respond(&req, now_micros(), 0x1234_5678_9abc);
    write(dir, "resp.tsr", &resp);

    assert!(openssl_verifies(
        dir,
        &[
            "-in",
            "resp.tsr",
            "-queryfile",
            "req.tsq",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem"
        ]
    ));
    // The certificate is embedded (certReq): the root alone suffices.
    assert!(openssl_verifies(
        dir,
        &["-in", "resp.tsr", "-data", "data.txt", "-CAfile", "root.pem"]
    ));
    let text = openssl_ok(dir, &["ts", "-reply", "-in", "resp.tsr", "-text"]);
    assert!(text.contains("Status: Granted."), "{text}");
    assert!(text.contains(DEFAULT_POLICY_OID), "{text}");
    assert!(text.contains("Serial number: 0x123456789ABC"), "{text}");
    assert!(text.contains(".2505Z") || text.contains(".2505 "), "{text}");

    let parsed = parse_request(&req).unwrap();
    let v = verify_response(&resp, &sha256(data), parsed.nonce.as_deref(), &anchors).unwrap();
    assert_eq!(v.digest, sha256(data));
    assert_eq!(v.nonce, parsed.nonce);
    assert_eq!(v.serial_hex, "123456789abc");
    assert_eq!(v.gen_time_nanos, 250_500_000);
    assert_eq!(v.tsa_subject, "CN=QuNimbus Test TSA");
    assert_eq!(v.policy, tsa.policy());

    // A stored token (issue) verifies with `openssl ts -verify -token_in`.
    let token = tsa
        .issue(&sha256(data), None, now_micros(), 7, true)
        .unwrap();
    write(dir, "token.tst", &token);
    assert!(openssl_verifies(
        dir,
        &[
            "-token_in",
            "-in",
            "token.tst",
            "-data",
            "data.txt",
            "-CAfile",
            "root.pem"
        ]
    ));
    assert!(verify_token(&token, &sha256(data), None, &anchors).is_ok());
}

// ---------------------------------------------------------------------------
// 2. openssl's TSA, we verify
// ---------------------------------------------------------------------------

#[test]
fn openssl_tsa_response_and_token_verify_with_us() {
    let pki = OpensslPki::new();
    let dir = pki.path();
    pki.key("tsa");
    pki.issue("tsa", "tsa", "ca", "v3_tsa", 2, 30);
    let anchors = pki.anchors("ca");
    let digest = sha256(b"ledger checkpoint");

    for ess in ["sha256", "sha1"] {
        let cfg = pki.ts_config(&format!("ts-{ess}.cnf"), ess);
        let req = build_request(&digest).unwrap();
        write(dir, "req.der", &req.der);
        let reply = |extra: &[&str], out: &str| {
            let mut args = vec![
                "ts",
                "-reply",
                "-config",
                &cfg,
                "-queryfile",
                "req.der",
                "-inkey",
                "tsa.key",
                "-signer",
                "tsa.crt",
                "-chain",
                "ca.crt",
                "-out",
                out,
            ];
            args.extend_from_slice(extra);
            openssl_ok(dir, &args);
            fs::read(dir.join(out)).unwrap()
        };
        let resp = reply(&[], "resp.tsr");
        let v = verify_response(&resp, &digest, Some(&req.nonce), &anchors)
            .unwrap_or_else(|e| panic!("ESS {ess}: {e}"));
        assert_eq!(v.nonce.as_deref(), Some(&req.nonce[..]));
        assert_eq!(v.digest, digest);
        assert_eq!(v.policy, "1.2.3.4.1");
        assert_eq!(v.tsa_subject, "CN=Test TSA");
        assert!((v.gen_time_unix - now()).abs() < 120);

        // ess_cert_id_alg selects the attribute: sha1 -> signingCertificate
        // (…9.16.2.12), otherwise signingCertificateV2 (…9.16.2.47).
        let ess_oid_prefix = [
            0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x02,
        ];
        let at = position(&resp, &ess_oid_prefix) + ess_oid_prefix.len();
        assert_eq!(resp[at], if ess == "sha1" { 12 } else { 47 }, "ESS {ess}");

        let token = reply(&["-token_out"], "token.der");
        let v = verify_token(&token, &digest, Some(&req.nonce), &anchors).unwrap();
        assert_eq!(v.nonce.as_deref(), Some(&req.nonce[..]));
        // token_from_response returns the embedded token byte for byte.
        let inner = token_from_response(&resp).unwrap();
        assert!(verify_token(&inner, &digest, None, &anchors).is_ok());
    }
}

// ---------------------------------------------------------------------------
// 3. one byte changed
// ---------------------------------------------------------------------------

fn position(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn one_changed_byte_is_rejected_by_us_and_openssl() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let (tsa, anchors) = builtin(dir);
    let data = b"the signed checkpoint text\n";
    write(dir, "data.txt", data);
    write(dir, "other.txt", b"the signed checkpoint texT\n");
    openssl_ok(
        dir,
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "req.tsq",
        ],
    );
    let req = fs::read(dir.join("req.tsq")).unwrap();
    let nonce = parse_request(&req).unwrap().nonce.unwrap();
    let t = now() * 1_000_000 + 654_321;
    let resp = tsa.respond(&req, t, 99);
    write(dir, "resp.tsr", &resp);
    let base = ["-CAfile", "root.pem", "-untrusted", "chain.pem"];
    let openssl_accepts = |file: &str, what: &[&str]| {
        let mut args = vec!["-in", file];
        args.extend_from_slice(what);
        args.extend_from_slice(&base);
        openssl_verifies(dir, &args)
    };
    assert!(openssl_accepts("resp.tsr", &["-data", "data.txt"]));

    // (a) the data: one byte differs, so the digest differs.
    assert!(!openssl_accepts("resp.tsr", &["-data", "other.txt"]));
    assert_eq!(
        verify_response(
            &resp,
            &sha256(b"the signed checkpoint texT\n"),
            None,
            &anchors
        ),
        Err(VerifyError::ImprintMismatch)
    );

    // (b) the token: a digit of genTime inside the signed TSTInfo.
    let gen_time = {
        let secs = std::time::Duration::from_secs((t / 1_000_000) as u64);
        let dt = der_time(secs);
        format!("{dt}.654321Z")
    };
    let at = position(&resp, gen_time.as_bytes()) + 13; // last digit of seconds
    let mut tampered = resp.clone();
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    write(dir, "tst.tsr", &tampered);
    assert!(!openssl_accepts("tst.tsr", &["-data", "data.txt"]));
    assert_eq!(
        verify_response(&tampered, &sha256(data), Some(&nonce), &anchors),
        Err(VerifyError::MessageDigestMismatch)
    );

    // (b') the token: the last byte of the ECDSA signature.
    let mut tampered = resp.clone();
    *tampered.last_mut().unwrap() ^= 0x01;
    write(dir, "sig.tsr", &tampered);
    assert!(!openssl_accepts("sig.tsr", &["-data", "data.txt"]));
    assert_eq!(
        verify_response(&tampered, &sha256(data), Some(&nonce), &anchors),
        Err(VerifyError::BadSignature)
    );

    // (b'') a byte of the imprint inside TSTInfo.
    let at = position(&resp, &sha256(data));
    let mut tampered = resp.clone();
    tampered[at] ^= 0x80;
    write(dir, "imprint.tsr", &tampered);
    assert!(!openssl_accepts("imprint.tsr", &["-data", "data.txt"]));
    assert_eq!(
        verify_response(&tampered, &sha256(data), Some(&nonce), &anchors),
        Err(VerifyError::ImprintMismatch)
    );

    // (c) the nonce: we expect a different one; openssl is given a
    // different request for the same data.
    let mut other_nonce = nonce.clone();
    *other_nonce.last_mut().unwrap() ^= 0x01;
    assert_eq!(
        verify_response(&resp, &sha256(data), Some(&other_nonce), &anchors),
        Err(VerifyError::NonceMismatch)
    );
    openssl_ok(
        dir,
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "req2.tsq",
        ],
    );
    assert!(!openssl_accepts("resp.tsr", &["-queryfile", "req2.tsq"]));
    assert!(openssl_accepts("resp.tsr", &["-queryfile", "req.tsq"]));

    // A request without a nonce gives a token without one.
    openssl_ok(
        dir,
        &[
            "ts",
            "-query",
            "-data",
            "data.txt",
            "-sha256",
            "-no_nonce",
            "-cert",
            "-out",
            "req3.tsq",
        ],
    );
    let resp3 = tsa.respond(&fs::read(dir.join("req3.tsq")).unwrap(), t, 100);
    assert_eq!(
        verify_response(&resp3, &sha256(data), Some(&nonce), &anchors),
        Err(VerifyError::NonceMissing)
    );
    assert!(verify_response(&resp3, &sha256(data), None, &anchors).is_ok());
}

/// `YYYYMMDDHHMMSS` for a Unix time, via openssl-independent arithmetic.
fn der_time(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------
// 4. the TSA certificate's extended key usage
// ---------------------------------------------------------------------------

#[test]
fn tsa_certificate_without_critical_timestamping_eku_is_rejected() {
    let pki = OpensslPki::new();
    let dir = pki.path();
    pki.key("tsa");
    pki.issue("noncrit", "tsa", "ca", "v3_tsa_noncritical_eku", 3, 30);
    pki.issue("noeku", "tsa", "ca", "v3_tsa_no_eku", 4, 30);
    let anchors = pki.anchors("ca");
    let digest = sha256(b"eku");
    write(dir, "data.txt", b"eku");
    let digest_file = sha256(b"eku");
    assert_eq!(digest, digest_file);

    // OpenSSL 3 refuses to sign with such certificates
    // ("invalid signer certificate purpose"), so the tokens are made by our
    // Authority over the openssl-made key and certificates.
    let cfg = pki.ts_config("ts.cnf", "sha256");
    let req = build_request(&digest).unwrap();
    write(dir, "req.der", &req.der);
    let refused = openssl(
        dir,
        &[
            "ts",
            "-reply",
            "-config",
            &cfg,
            "-queryfile",
            "req.der",
            "-inkey",
            "tsa.key",
            "-signer",
            "noncrit.crt",
            "-out",
            "refused.tsr",
        ],
    );
    let refused_text = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        !refused.ok || refused_text.contains("Rejected") || refused_text.contains("purpose"),
        "openssl signed with a non-critical EKU certificate: {refused_text}"
    );

    for (cert, expected) in [
        ("noncrit", VerifyError::EkuNotCritical),
        ("noeku", VerifyError::EkuMissing),
    ] {
        let tsa = pki.authority("tsa", cert, "ca");
        let token = tsa.issue(&digest, None, now_micros(), 5, true).unwrap();
        assert_eq!(
            verify_token(&token, &digest, None, &anchors),
            Err(expected),
            "{cert}"
        );
        let file = format!("{cert}.tst");
        write(dir, &file, &token);
        assert!(
            !openssl_verifies(
                dir,
                &[
                    "-token_in",
                    "-in",
                    &file,
                    "-data",
                    "data.txt",
                    "-CAfile",
                    "ca.crt"
                ]
            ),
            "openssl accepted {cert}"
        );
    }
    // The conforming certificate with the same key works.
    pki.issue("good", "tsa", "ca", "v3_tsa", 5, 30);
    let token = pki
        .authority("tsa", "good", "ca")
        .issue(&digest, None, now_micros(), 6, true)
        .unwrap();
    assert!(verify_token(&token, &digest, None, &anchors).is_ok());
    write(dir, "good.tst", &token);
    assert!(openssl_verifies(
        dir,
        &[
            "-token_in",
            "-in",
            "good.tst",
            "-data",
            "data.txt",
            "-CAfile",
            "ca.crt"
        ]
    ));
}

// ---------------------------------------------------------------------------
// 5. trust, validity, ESS
// ---------------------------------------------------------------------------

#[test]
fn untrusted_root_is_rejected() {
    let tmp = TempDir::new().unwrap();
    let (tsa, anchors) = builtin(tmp.path());
    let digest = sha256(b"trust");
    let token = tsa.issue(&digest, None, now_micros(), 1, true).unwrap();
    assert!(verify_token(&token, &digest, None, &anchors).is_ok());

    // Same names, different keys (key identifiers differ).
    let twin = generate_authority(
        "QuNimbus Test Root",
        "QuNimbus Test TSA",
        now() - 86_400,
        30,
    )
    .unwrap();
    let twin_anchors = TrustAnchors::from_pem(&twin.root_cert_pem).unwrap();
    assert!(matches!(
        verify_token(&token, &digest, None, &twin_anchors),
        Err(VerifyError::UntrustedChain(_))
    ));
    // A differently named CA.
    let other = generate_authority("Other Root", "Other TSA", now() - 86_400, 30).unwrap();
    let other_anchors = TrustAnchors::from_pem(&other.root_cert_pem).unwrap();
    assert!(matches!(
        verify_token(&token, &digest, None, &other_anchors),
        Err(VerifyError::UntrustedChain(_))
    ));
    // Both roots configured: the right one is found.
    let both =
        TrustAnchors::from_pem(&format!("{}{}", other.root_cert_pem, tsa.root_pem())).unwrap();
    assert_eq!(both.len(), 2);
    assert!(verify_token(&token, &digest, None, &both).is_ok());
}

#[test]
fn certificate_signed_by_a_same_named_impostor_ca() {
    // The impostor CA has the trusted CA's name; no key identifiers let the
    // path builder tell them apart, so the signature check must.
    let pki = OpensslPki::new();
    pki.ca("fake", "Test CA", "v3_ca_nokeyid", 30);
    pki.key("tsa");
    pki.issue("tsa", "tsa", "fake", "v3_tsa_nokeyid", 9, 30);
    let tsa = pki.authority("tsa", "tsa", "fake");
    let digest = sha256(b"impostor");
    let token = tsa.issue(&digest, None, now_micros(), 1, true).unwrap();
    assert!(verify_token(&token, &digest, None, &pki.anchors("fake")).is_ok());
    assert!(matches!(
        verify_token(&token, &digest, None, &pki.anchors("ca")),
        Err(VerifyError::CertificateSignatureInvalid(_))
    ));
}

#[test]
fn gen_time_outside_validity_is_rejected() {
    let tmp = TempDir::new().unwrap();
    let (tsa, anchors) = builtin(tmp.path()); // valid from yesterday for 30 days
    let digest = sha256(b"time");
    for t in [now() - 2 * 86_400, now() + 40 * 86_400] {
        let token = tsa.issue(&digest, None, t * 1_000_000, 1, true).unwrap();
        assert_eq!(
            verify_token(&token, &digest, None, &anchors),
            Err(VerifyError::GenTimeOutsideValidity)
        );
    }
}

#[test]
fn expired_issuer_is_rejected() {
    // Root valid for 1 day, TSA certificate for 30: a genTime in 10 days is
    // inside the TSA certificate's validity but not the root's.
    let pki = OpensslPki::new();
    pki.ca("shortca", "Short CA", "v3_ca", 1);
    pki.key("tsa");
    pki.issue("tsa", "tsa", "shortca", "v3_tsa", 2, 30);
    let tsa = pki.authority("tsa", "tsa", "shortca");
    let digest = sha256(b"expired");
    let token = tsa
        .issue(&digest, None, (now() + 10 * 86_400) * 1_000_000, 1, true)
        .unwrap();
    assert!(matches!(
        verify_token(&token, &digest, None, &pki.anchors("shortca")),
        Err(VerifyError::CertificateExpired(s)) if s.contains("Short CA")
    ));
}

#[test]
fn ess_signing_certificate_must_identify_the_signer() {
    // Two certificates for the same key with the same issuer and serial
    // number but different contents: a token made under the first, checked
    // against the second, has a valid signature but the wrong ESS hash.
    let pki = OpensslPki::new();
    pki.key("tsa");
    pki.issue("first", "tsa", "ca", "v3_tsa", 77, 30);
    pki.issue("second", "tsa", "ca", "v3_tsa", 77, 31);
    let digest = sha256(b"ess");
    let token = pki
        .authority("tsa", "first", "ca")
        .issue(&digest, None, now_micros(), 1, false)
        .unwrap();
    let mut right = pki.anchors("ca");
    right.add_untrusted_pem(&pki.read("first.crt")).unwrap();
    assert!(verify_token(&token, &digest, None, &right).is_ok());
    let mut wrong = pki.anchors("ca");
    wrong.add_untrusted_pem(&pki.read("second.crt")).unwrap();
    assert_eq!(
        verify_token(&token, &digest, None, &wrong),
        Err(VerifyError::SigningCertificateMismatch)
    );
}

// ---------------------------------------------------------------------------
// 6. parsing openssl requests, rejections
// ---------------------------------------------------------------------------

#[test]
fn parse_request_reads_openssl_queries() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let data = b"query me";
    write(dir, "data.txt", data);
    openssl_ok(
        dir,
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "a.tsq",
        ],
    );
    let p = parse_request(&fs::read(dir.join("a.tsq")).unwrap()).unwrap();
    assert_eq!(p.hash_algorithm, "2.16.840.1.101.3.4.2.1");
    assert_eq!(p.digest, sha256(data));
    assert!(p.cert_req);
    assert_eq!(p.policy, None);
    let text = openssl_ok(dir, &["ts", "-query", "-in", "a.tsq", "-text"]);
    let nonce_hex = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Nonce: 0x"))
        .expect("openssl prints the nonce")
        .to_ascii_lowercase();
    let ours: String = p
        .nonce
        .unwrap()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        ours.trim_start_matches('0'),
        nonce_hex.trim_start_matches('0')
    );

    openssl_ok(
        dir,
        &[
            "ts",
            "-query",
            "-data",
            "data.txt",
            "-sha512",
            "-no_nonce",
            "-tspolicy",
            "1.2.3.4.5",
            "-out",
            "b.tsq",
        ],
    );
    let p = parse_request(&fs::read(dir.join("b.tsq")).unwrap()).unwrap();
    assert_eq!(p.hash_algorithm, "2.16.840.1.101.3.4.2.3");
    assert_eq!(p.digest.len(), 64);
    assert_eq!(p.nonce, None);
    assert!(!p.cert_req);
    assert_eq!(p.policy.as_deref(), Some("1.2.3.4.5"));
}

#[test]
fn unanswerable_requests_get_rejections_openssl_can_read() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let (tsa, _) = builtin(dir);
    write(dir, "data.txt", b"reject");
    openssl_ok(
        dir,
        &[
            "ts", "-query", "-data", "data.txt", "-sha1", "-out", "sha1.tsq",
        ],
    );
    openssl_ok(
        dir,
        &[
            "ts",
            "-query",
            "-data",
            "data.txt",
            "-tspolicy",
            "1.2.3.4.5",
            "-out",
            "policy.tsq",
        ],
    );
    openssl_ok(
        dir,
        &[
            "ts",
            "-query",
            "-data",
            "data.txt",
            "-sha512",
            "-out",
            "sha512.tsq",
        ],
    );
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "garbage",
            b"\x30\x03\x02\x01\x07 not a request".to_vec(),
            "transaction not permitted or supported",
        ),
        (
            "sha1",
            fs::read(dir.join("sha1.tsq")).unwrap(),
            "unrecognized or unsupported algorithm",
        ),
        (
            "policy",
            fs::read(dir.join("policy.tsq")).unwrap(),
            "policy",
        ),
    ];
    for (name, req, failure) in cases {
        let resp = tsa.respond(&req, now_micros(), 1);
        let file = format!("{name}.tsr");
        write(dir, &file, &resp);
        let text = openssl_ok(dir, &["ts", "-reply", "-in", &file, "-text"]);
        assert!(text.contains("Status: Rejected"), "{name}: {text}");
        assert!(text.contains(failure), "{name}: {text}");
        assert!(matches!(
            token_from_response(&resp),
            Err(VerifyError::NotGranted { status: 2, .. })
        ));
    }
    // SHA-512 imprints are accepted by the TSA (clients of this crate use
    // SHA-256; openssl verifies the SHA-512 token). That query had no -cert,
    // so the token embeds no certificate and openssl needs -untrusted.
    let resp = tsa.respond(&fs::read(dir.join("sha512.tsq")).unwrap(), now_micros(), 2);
    write(dir, "sha512.tsr", &resp);
    assert!(openssl_verifies(
        dir,
        &[
            "-in",
            "sha512.tsr",
            "-queryfile",
            "sha512.tsq",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem"
        ]
    ));
    // A wrong digest length (31 bytes for SHA-256) is badDataFormat.
    let bad_len = {
        use der::{asn1::OctetString, Encode};
        let mut req = <x509_tsp::TimeStampReq as der::Decode>::from_der(
            &build_request(&[9; 32]).unwrap().der,
        )
        .unwrap();
        req.message_imprint.hashed_message = OctetString::new(vec![9u8; 31]).unwrap();
        req.to_der().unwrap()
    };
    let resp = tsa.respond(&bad_len, now_micros(), 3);
    write(dir, "badlen.tsr", &resp);
    let text = openssl_ok(dir, &["ts", "-reply", "-in", "badlen.tsr", "-text"]);
    assert!(text.contains("Status: Rejected"), "{text}");
    assert!(
        text.contains("wrong format") || text.contains("data format"),
        "{text}"
    );
}
