//! Scale-out through a real NATS JetStream server: a partner connected to
//! node B receives the runs accepted on node A, in order, in A's seq space,
//! and B's own runs in B's; messages not signed by a peer key of their origin
//! are dropped and counted; the NATS connection authenticates. Needs NATS at
//! NATS_TEST_URL (default nats://127.0.0.1:4222) and, for the authentication
//! test, the `nats-server` binary (NATS_SERVER_BIN, default
//! /usr/sbin/nats-server); fails when either is missing.

mod support;

use futures_util::{SinkExt, StreamExt};
use qunimbus_ledger::checkpoint::NoteSigner;
use qunimbus_node::config::{Config, NatsAuth};
use qunimbus_node::relay::{sign_message, KEY_ID_HEADER};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::{varied_run, Backend, TestNode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const REASONS: [&str; 5] = [
    "unsigned",
    "unknown_key",
    "bad_signature",
    "origin_mismatch",
    "malformed",
];

fn nats_url() -> String {
    std::env::var("NATS_TEST_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn require_nats() {
    let url = nats_url();
    let addr = url.trim_start_matches("nats://");
    std::net::TcpStream::connect(addr).unwrap_or_else(|e| {
        panic!("NATS at {url} (NATS_TEST_URL) is required for this test and is not reachable: {e}")
    });
}

/// A stream and subject prefix of this test run only.
struct Feed {
    unique: String,
}

impl Feed {
    fn new() -> Self {
        Self {
            unique: format!("T{}_{}", std::process::id(), rand_suffix()),
        }
    }

    fn stream(&self) -> String {
        format!("QUNIMBUS_TEST_{}", self.unique)
    }

    fn prefix(&self) -> String {
        format!("qunimbus_test.{}", self.unique)
    }

    /// Points a node at `url` with this feed and the given peer keys.
    fn configure(&self, c: &mut Config, url: &str, peer_keys: &[String]) {
        c.nats_url = Some(url.to_string());
        c.nats.stream = self.stream();
        c.nats.subject_prefix = self.prefix();
        c.nats.peer_keys = peer_keys.to_vec();
    }

    async fn delete(&self, url: &str, auth: Option<(&str, &str)>) {
        let mut options = async_nats::ConnectOptions::new();
        if let Some((user, pass)) = auth {
            options = options.user_and_password(user.into(), pass.into());
        }
        let client = options.connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.delete_stream(self.stream()).await.unwrap();
    }
}

/// The node's ledger public key, as `GET /v1/ledger/public-key` serves it.
async fn public_key(node: &TestNode) -> String {
    let (status, text) = node.get_text("/v1/ledger/public-key").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text.trim().to_string()
}

async fn origin(node: &TestNode) -> String {
    node.get_ok("/v1/ledger").await["origin"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Registers a partner in the Americas on `node` and opens its WebSocket feed.
async fn partner(node: &TestNode, name: &str) -> Socket {
    partner_in(node, name, "Americas", "").await
}

/// Registers a partner at home in `region` and opens its feed with `query`.
async fn partner_in(node: &TestNode, name: &str, region: &str, query: &str) -> Socket {
    let (status, partner) = node
        .post(
            "/v1/partners",
            Some(node.admin_token()),
            &format!(r#"{{"name":"{name}","region":"{region}"}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{partner}");
    let key = partner["api_key"].as_str().unwrap();
    let mut request = node
        .url(&format!("/v1/market/feed{query}"))
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Waits until `/metrics` of `node` contains `needle`.
async fn wait_for_metric(node: &TestNode, needle: &str) {
    let started = Instant::now();
    loop {
        let metrics = node.get_text("/metrics").await.1;
        if metrics.contains(needle) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no `{needle}` within 20 s: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The value of the sample `name` (with labels) in `/metrics`.
async fn metric(node: &TestNode, name: &str) -> Option<f64> {
    let metrics = node.get_text("/metrics").await.1;
    metrics.lines().find_map(|line| {
        let (sample, value) = line.rsplit_once(' ')?;
        (sample == name).then(|| value.parse().unwrap())
    })
}

async fn rejected(node: &TestNode) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for reason in REASONS {
        let name = format!("qunimbus_relay_rejected_total{{reason=\"{reason}\"}}");
        let value = metric(node, &name)
            .await
            .unwrap_or_else(|| panic!("{name} is not exposed"));
        out.push((reason.to_string(), value));
    }
    out
}

/// The next valuation on the feed (acked), or `None` after `wait`.
async fn next_valuation(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let text = match tokio::time::timeout(left, socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("feed closed: {other:?}"),
        };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] != "valuation" {
            continue;
        }
        let seq = message["seq"].as_u64().unwrap();
        socket
            .send(Message::Text(
                format!(r#"{{"type":"ack","seq":{seq}}}"#).into(),
            ))
            .await
            .unwrap();
        return Some(message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_on_node_b_receives_node_a_runs_in_order() {
    require_nats();
    let feed = Feed::new();
    let url = nats_url();
    let a = TestNode::start_with(Backend::Sqlite, |c| feed.configure(c, &url, &[])).await;
    let key_a = public_key(&a).await;
    let b = TestNode::start_with(Backend::Sqlite, |c| {
        feed.configure(c, &url, std::slice::from_ref(&key_a))
    })
    .await;
    let origin_a = origin(&a).await;
    let origin_b = origin(&b).await;
    assert_ne!(origin_a, origin_b, "each node has its own log");
    assert!(key_a.starts_with(&format!("{origin_a}+")), "{key_a}");

    let mut socket = partner(&b, "partner_b").await;
    // B's relay consumer delivers what is published after it attaches.
    wait_for_metric(&b, "qunimbus_feed_relay_connected 1").await;
    for i in 0..20 {
        let (status, body) = a.ingest(&varied_run(&format!("a-{i}"), i)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for i in 0..5 {
        let (status, body) = b.ingest(&varied_run(&format!("b-{i}"), i)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let mut from_a = Vec::new();
    let mut from_b = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while from_a.len() < 20 || from_b.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(message) = next_valuation(&mut socket, left).await else {
            panic!("got {} runs of A and {} of B", from_a.len(), from_b.len());
        };
        let seq = message["seq"].as_u64().unwrap();
        let run_id = message["run_id"].as_str().unwrap().to_string();
        if message["origin"] == origin_a.as_str() {
            from_a.push((seq, run_id));
        } else {
            assert_eq!(message["origin"], origin_b.as_str(), "{message}");
            from_b.push((seq, run_id));
        }
    }
    let expected_a: Vec<(u64, String)> =
        (0..20).map(|i| (i as u64 + 1, format!("a-{i}"))).collect();
    assert_eq!(
        from_a, expected_a,
        "A's runs arrive at B in order, in A's seq space, once"
    );
    let expected_b: Vec<(u64, String)> = (0..5).map(|i| (i as u64 + 1, format!("b-{i}"))).collect();
    assert_eq!(from_b, expected_b);

    let metrics = a.get_text("/metrics").await.1;
    assert!(
        metrics.contains("qunimbus_feed_published_nats_total 20"),
        "{metrics}"
    );
    let metrics = b.get_text("/metrics").await.1;
    assert!(
        metrics.contains("qunimbus_feed_relayed_nats_total 20"),
        "{metrics}"
    );
    // A's signed messages verified; B's own were skipped, not counted.
    for (reason, count) in rejected(&b).await {
        assert_eq!(count, 0.0, "B rejected {count} messages as {reason}");
    }
    // EPH: each node's own figure is `scope="node"`; B's cluster figure is
    // the sum over both origins. A has no peer key for B, so A's cluster
    // figure is its own.
    let eph = |node: &'static str| format!("qunimbus_eph_throughput{{{node}}}");
    let local_a = metric(&a, &eph("scope=\"node\"")).await.unwrap();
    let local_b = metric(&b, &eph("scope=\"node\"")).await.unwrap();
    let global_b = metric(&b, &eph("region=\"global\"")).await.unwrap();
    assert!(local_a > local_b && local_b > 0.0, "{local_a} {local_b}");
    assert!(
        (global_b - (local_a + local_b)).abs() <= 1e-9 * global_b,
        "B's global {global_b} is not A's {local_a} + B's {local_b}"
    );
    assert_eq!(metric(&a, &eph("region=\"global\"")).await, Some(local_a));

    drop(socket);
    a.stop().await;
    b.stop().await;
    feed.delete(&url, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_forged_messages_are_not_relayed_and_are_counted() {
    require_nats();
    let feed = Feed::new();
    let url = nats_url();
    // C is a third node B knows (the test holds its key); D a key B does not.
    let c = NoteSigner::new("qunimbus-test/c", rand::random()).unwrap();
    let a = TestNode::start_with(Backend::Sqlite, |cfg| feed.configure(cfg, &url, &[])).await;
    let origin_a = origin(&a).await;
    let d = NoteSigner::new(&origin_a, rand::random()).unwrap();
    let peers = [public_key(&a).await, c.verifier().to_vkey()];
    let b = TestNode::start_with(Backend::Sqlite, |cfg| feed.configure(cfg, &url, &peers)).await;

    let client = async_nats::connect(&url).await.unwrap();
    let mut tap = client
        .subscribe(format!("{}.>", feed.prefix()))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let js = async_nats::jetstream::new(client.clone());

    let mut socket = partner(&b, "partner_b").await;
    wait_for_metric(&b, "qunimbus_feed_relay_connected 1").await;
    a.ingest_new(&varied_run("a-0", 0)).await;
    let first = next_valuation(&mut socket, Duration::from_secs(20))
        .await
        .expect("A's first run reaches B's partner");
    assert_eq!(
        (first["origin"].as_str(), first["seq"].as_u64()),
        (Some(origin_a.as_str()), Some(1))
    );

    // A's message as it is on the wire: the payload and A's signature.
    let genuine = tokio::time::timeout(Duration::from_secs(20), tap.next())
        .await
        .expect("A's message on the tap")
        .unwrap();
    let headers = genuine.headers.clone().expect("A signs its messages");
    assert!(headers.get("Qunimbus-Signature").is_some());
    assert!(headers.get(KEY_ID_HEADER).is_some());
    let template: Value = serde_json::from_slice(&genuine.payload).unwrap();
    assert_eq!(template["origin"], origin_a.as_str());
    let forge = |origin: &str, seq: u64| -> Vec<u8> {
        let mut v = template.clone();
        v["origin"] = origin.into();
        v["seq"] = seq.into();
        v["phi_qevf"] = 999_999.0.into();
        v.to_string().into_bytes()
    };
    let subject = genuine.subject.to_string();
    let publish = |payload: Vec<u8>, headers: Option<async_nats::HeaderMap>| {
        let (js, subject) = (js.clone(), subject.clone());
        async move {
            let ack = match headers {
                Some(h) => js.publish_with_headers(subject, h, payload.into()).await,
                None => js.publish(subject, payload.into()).await,
            };
            ack.unwrap().await.unwrap();
        }
    };
    // Unsigned.
    publish(forge(&origin_a, 10_001), None).await;
    // Signed with a different key that claims A's name.
    let body = forge(&origin_a, 10_002);
    publish(body.clone(), Some(sign_message(&d, &body).unwrap())).await;
    // A's own key ID and signature over other bytes (tampered payload;
    // without A's Nats-Msg-Id, which JetStream would drop as a duplicate).
    let mut stolen = async_nats::HeaderMap::new();
    for name in ["Qunimbus-Signature", KEY_ID_HEADER] {
        stolen.insert(name, headers.get(name).unwrap().as_str());
    }
    publish(forge(&origin_a, 10_003), Some(stolen)).await;
    // A valid signature by peer C, but the payload claims to be A's.
    let body = forge(&origin_a, 10_004);
    publish(body.clone(), Some(sign_message(&c, &body).unwrap())).await;
    // Signed by C, not a feed message.
    let body = b"{\"type\":\"valuation\",\"origin\":".to_vec();
    publish(body.clone(), Some(sign_message(&c, &body).unwrap())).await;
    // C's own valuation, properly signed: relayed.
    let body = forge(c.name(), 1);
    publish(body.clone(), Some(sign_message(&c, &body).unwrap())).await;
    // And A's next genuine run, after all of them in the stream.
    a.ingest_new(&varied_run("a-1", 1)).await;

    let mut got = Vec::new();
    while got.len() < 2 {
        let Some(v) = next_valuation(&mut socket, Duration::from_secs(20)).await else {
            panic!("B's partner got only {got:?}");
        };
        got.push((
            v["origin"].as_str().unwrap().to_string(),
            v["seq"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        got,
        vec![(c.name().to_string(), 1), (origin_a.clone(), 2)],
        "only C's signed valuation and A's next run are relayed"
    );
    // Nothing else is on its way.
    if let Some(extra) = next_valuation(&mut socket, Duration::from_millis(500)).await {
        panic!("a forged message reached the partner: {extra}");
    }
    let counts = rejected(&b).await;
    let expected: Vec<(String, f64)> = REASONS.iter().map(|r| (r.to_string(), 1.0)).collect();
    assert_eq!(counts, expected);
    assert_eq!(
        metric(&b, "qunimbus_feed_relayed_nats_total").await,
        Some(3.0)
    );
    // The publisher is not affected.
    assert_eq!(
        metric(&a, "qunimbus_feed_published_nats_total").await,
        Some(2.0)
    );

    drop(socket);
    a.stop().await;
    b.stop().await;
    feed.delete(&url, None).await;
}

/// A `nats-server` child of this test with JetStream, on a free port,
/// killed on drop.
struct AuthServer {
    child: std::process::Child,
    url: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl AuthServer {
    /// Starts `nats-server` with `args` (and `-c server.conf` holding
    /// `config` when given); `scheme` is `nats` or `tls`.
    fn start(args: &[&str], config: Option<&str>, scheme: &str) -> Self {
        let bin =
            std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(&bin);
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("js"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(config) = config {
            let file = dir.path().join("server.conf");
            std::fs::write(&file, config).unwrap();
            command.arg("-c").arg(file);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "{bin} (NATS_SERVER_BIN) is required for this test and could not be started: {e}"
            )
        });
        let server = Self {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server {args:?} did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a node on `server` with `auth` (and `adjust`), and checks whether
/// its relay attaches within a few seconds.
async fn relay_attaches(
    server: &AuthServer,
    auth: NatsAuth,
    adjust: impl FnOnce(&mut Config),
) -> bool {
    let feed = Feed::new();
    let node = TestNode::start_with(Backend::Sqlite, |c| {
        feed.configure(c, &server.url, &[]);
        c.nats.auth = auth;
        adjust(c);
    })
    .await;
    let started = Instant::now();
    let mut attached = false;
    while !attached && started.elapsed() < Duration::from_secs(3) {
        attached = metric(&node, "qunimbus_feed_relay_connected").await == Some(1.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.stop().await;
    attached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_connection_authenticates_and_wrong_credentials_only_disconnect_the_relay() {
    let server = AuthServer::start(
        &["--user", "qunimbus", "--pass", "correct-horse"],
        None,
        "nats",
    );
    let feed = Feed::new();
    let credentials = |password: &str| NatsAuth {
        user: Some("qunimbus".into()),
        password: Some(password.into()),
        ..NatsAuth::default()
    };
    let good = credentials("correct-horse");
    let a = TestNode::start_with(Backend::Sqlite, |c| {
        feed.configure(c, &server.url, &[]);
        c.nats.auth = good.clone();
    })
    .await;
    let key_a = public_key(&a).await;
    let b = TestNode::start_with(Backend::Sqlite, |c| {
        feed.configure(c, &server.url, std::slice::from_ref(&key_a));
        c.nats.auth = good.clone();
    })
    .await;
    // Starts all the same, and serves ingest; only the relay is down.
    let wrong = TestNode::start_with(Backend::Sqlite, |c| {
        feed.configure(c, &server.url, std::slice::from_ref(&key_a));
        c.nats.auth = credentials("wrong-horse");
    })
    .await;
    wrong.ingest_new(&varied_run("w-0", 0)).await;

    let mut socket = partner(&b, "partner_b").await;
    wait_for_metric(&b, "qunimbus_feed_relay_connected 1").await;
    a.ingest_new(&varied_run("a-0", 0)).await;
    let v = next_valuation(&mut socket, Duration::from_secs(20))
        .await
        .expect("A's run reaches B's partner through the authenticated server");
    assert_eq!(v["origin"], origin(&a).await.as_str());
    assert_eq!(v["run_id"], "a-0");

    // The node with the wrong password never attaches, for several seconds
    // of retries.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            metric(&wrong, "qunimbus_feed_relay_connected").await,
            Some(0.0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric(&wrong, "qunimbus_feed_published_nats_total").await,
        Some(0.0)
    );
    let (status, _) = wrong.get_text("/healthz").await;
    assert_eq!(status, StatusCode::OK);

    drop(socket);
    a.stop().await;
    b.stop().await;
    wrong.stop().await;
    feed.delete(&server.url, Some(("qunimbus", "correct-horse")))
        .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_nkey_authentication() {
    let server = AuthServer::start(&["--auth", "s3cret-token-1"], None, "nats");
    let token = |t: &str| NatsAuth {
        token: Some(t.into()),
        ..NatsAuth::default()
    };
    assert!(relay_attaches(&server, token("s3cret-token-1"), |_| {}).await);
    assert!(!relay_attaches(&server, token("not-the-token"), |_| {}).await);
    assert!(!relay_attaches(&server, NatsAuth::default(), |_| {}).await);
    drop(server);

    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let config = format!(
        "authorization {{\n  users = [ {{ nkey: \"{}\" }} ]\n}}\n",
        user.public_key()
    );
    let server = AuthServer::start(&[], Some(&config), "nats");
    let nkey = |k: &nkeys::KeyPair| NatsAuth {
        nkey_seed: Some(k.seed().unwrap()),
        ..NatsAuth::default()
    };
    assert!(relay_attaches(&server, nkey(&user), |_| {}).await);
    assert!(!relay_attaches(&server, nkey(&stranger), |_| {}).await);
}

/// Writes a CA (`{name}-ca.pem`) with `openssl` into `dir`, and on the first
/// call a server certificate for 127.0.0.1 (`server.pem`, `server.key`) and
/// a client certificate (`client.pem`, `client.key`) signed by it; returns
/// the CA certificate's path.
fn make_certificates(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    // Each command is one line of words (no word has a space).
    let run = |line: &str| {
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = std::process::Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("the openssl command is required for the TLS test");
        assert!(
            out.status.success(),
            "openssl {line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = |file: &str| {
        run(&format!(
            "ecparam -name prime256v1 -genkey -noout -out {file}"
        ))
    };
    key(&format!("{name}-ca.key"));
    run(&format!(
        "req -x509 -new -key {name}-ca.key -sha256 -days 2 -subj /CN={name}-test-CA \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
         -out {name}-ca.pem"
    ));
    if !dir.join("server.pem").exists() {
        for (leaf, subject, extensions) in [
            (
                "server",
                "127.0.0.1",
                "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
            ),
            ("client", "qunimbus-node", "extendedKeyUsage=clientAuth\n"),
        ] {
            key(&format!("{leaf}.key"));
            run(&format!(
                "req -new -key {leaf}.key -subj /CN={subject} -out {leaf}.csr"
            ));
            std::fs::write(
                dir.join(format!("{leaf}.ext")),
                format!(
                    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{extensions}"
                ),
            )
            .unwrap();
            run(&format!(
                "x509 -req -in {leaf}.csr -CA {name}-ca.pem -CAkey {name}-ca.key -CAcreateserial \
                 -days 2 -sha256 -extfile {leaf}.ext -out {leaf}.pem"
            ));
        }
    }
    dir.join(format!("{name}-ca.pem"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_urls_connect_with_the_configured_ca_and_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let ca = make_certificates(certs.path(), "good");
    let other_ca = make_certificates(certs.path(), "other");
    let (cert, key) = (
        certs.path().join("server.pem"),
        certs.path().join("server.key"),
    );
    let server = AuthServer::start(
        &[
            "--tls",
            "--tlscert",
            cert.to_str().unwrap(),
            "--tlskey",
            key.to_str().unwrap(),
        ],
        None,
        "tls",
    );
    let with_ca = |ca: std::path::PathBuf| move |c: &mut Config| c.nats.tls_ca_file = Some(ca);
    assert!(relay_attaches(&server, NatsAuth::default(), with_ca(ca.clone())).await);
    // A server certificate from another CA is refused.
    assert!(!relay_attaches(&server, NatsAuth::default(), with_ca(other_ca)).await);
    // A nats:// URL to a server that requires TLS is upgraded all the same.
    let plain = format!("nats://127.0.0.1:{}", server.port);
    assert!(
        relay_attaches(&server, NatsAuth::default(), |c| {
            c.nats_url = Some(plain);
            c.nats.tls_ca_file = Some(ca.clone());
        })
        .await
    );
    drop(server);

    // Mutual TLS: the server verifies client certificates against the CA.
    let server = AuthServer::start(
        &[
            "--tlsverify",
            "--tlscert",
            cert.to_str().unwrap(),
            "--tlskey",
            key.to_str().unwrap(),
            "--tlscacert",
            ca.to_str().unwrap(),
        ],
        None,
        "tls",
    );
    assert!(!relay_attaches(&server, NatsAuth::default(), with_ca(ca.clone())).await);
    let client = |c: &mut Config| {
        c.nats.tls_ca_file = Some(ca.clone());
        c.nats.tls_cert_file = Some(certs.path().join("client.pem"));
        c.nats.tls_key_file = Some(certs.path().join("client.key"));
    };
    assert!(relay_attaches(&server, NatsAuth::default(), client).await);
    drop(server);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000
}

/// The next message of any type, or `None` after `wait`.
async fn next_message(socket: &mut Socket, wait: Duration) -> Option<Value> {
    match tokio::time::timeout(wait, socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => Some(serde_json::from_str(&text).unwrap()),
        Ok(other) => panic!("unexpected frame: {other:?}"),
        Err(_) => None,
    }
}

/// Personal-class runs cross NATS by reference only (in JetStream too), and
/// a deactivated feed lets nothing out: no NATS publishing, no snapshot, no
/// replay, until it is activated again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_stops_every_outlet_and_personal_ids_never_cross() {
    require_nats();
    let feed = Feed::new();
    let url = nats_url();
    let a = TestNode::start_with(Backend::Sqlite, |c| feed.configure(c, &url, &[])).await;
    let key_a = public_key(&a).await;
    let b = TestNode::start_with(Backend::Sqlite, |c| {
        feed.configure(c, &url, std::slice::from_ref(&key_a))
    })
    .await;
    wait_for_metric(&b, "qunimbus_feed_relay_connected 1").await;
    let mut on_b = partner_in(&b, "deact_b", "EU", "").await;

    let personal = a
        .ingest_new(&serde_json::json!({
            "run_id": "patient-0077", "region": "EU", "data_class": "personal",
            "eta_ent": 0.97, "coherence_variance": 0.015, "runtime_hours": 10, "eph_delivered": 100
        }))
        .await;
    let relayed = next_valuation(&mut on_b, Duration::from_secs(20))
        .await
        .expect("the personal run reached B's partner");
    assert!(relayed.get("run_id").is_none(), "{relayed}");
    assert_eq!(relayed["run_ref"], personal["run_ref"]);
    let client = async_nats::connect(&url).await.unwrap();
    let stream = async_nats::jetstream::new(client)
        .get_stream(feed.stream())
        .await
        .unwrap();
    let stored = stream.get_raw_message(1).await.unwrap();
    let payload = String::from_utf8_lossy(&stored.payload);
    assert!(
        payload.contains(personal["run_ref"].as_str().unwrap()),
        "{payload}"
    );
    assert!(
        !payload.contains("patient-0077"),
        "JetStream holds the id: {payload}"
    );

    let (status, _) = a
        .post("/v1/market/deactivate", Some(a.admin_token()), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let quiet = a.ingest_new(&varied_run("quiet-1", 1)).await;
    assert_eq!(
        next_valuation(&mut on_b, Duration::from_secs(2)).await,
        None,
        "published to NATS while deactivated"
    );
    let mut on_a = partner_in(&a, "deact_a", "EU", "?from_seq=1").await;
    let snapshot = next_message(&mut on_a, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["active"], false);
    assert_eq!(snapshot["latest"], serde_json::json!([]), "{snapshot}");
    assert_eq!(
        next_message(&mut on_a, Duration::from_secs(1)).await,
        None,
        "replayed while deactivated"
    );

    let (status, _) = a
        .post("/v1/market/activate", Some(a.admin_token()), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let resumed = next_valuation(&mut on_b, Duration::from_secs(20))
        .await
        .expect("publishing resumed");
    assert_eq!(resumed["run_id"], quiet["run_id"]);
    // A's partner gets what it asked for once the feed is on again.
    a.ingest_new(&varied_run("after-1", 2)).await;
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let v = next_valuation(&mut on_a, Duration::from_secs(10))
            .await
            .expect("replay after activation");
        seqs.push(v["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [1, 2, 3]);
    a.stop().await;
    b.stop().await;
    feed.delete(&url, None).await;
}
