//! Tests of loading and validating the configuration.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn defaults_are_valid() {
    let c = Config::load(None, vec![], toml::Table::new()).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.valuation, ValuationParams::default());
    assert_eq!(c.region_set().unwrap().names().len(), 6);
}

#[test]
fn flags_beat_environment_beat_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\ndata_dir = \"/from/file\"\n[valuation]\neta_baseline = 0.9\nprice_sensitivity = 5\n").unwrap();
    let mut flags = toml::Table::new();
    flags.insert("listen".into(), toml::Value::String("127.0.0.1:3".into()));
    let c = Config::load(
        Some(&file),
        env(&[
            ("QUNIMBUS_LISTEN", "127.0.0.1:2"),
            ("QUNIMBUS_DATA_DIR", "/from/env"),
            ("QUNIMBUS_VALUATION__ETA_BASELINE", "0.8"),
            ("QUNIMBUS_ADMIN_TOKEN", "0123456789abcdef0"),
            ("HOME", "/root"),
        ]),
        flags,
    )
    .unwrap();
    assert_eq!(c.listen, "127.0.0.1:3");
    assert_eq!(c.data_dir, PathBuf::from("/from/env"));
    assert_eq!(c.valuation.eta_baseline, 0.8);
    assert_eq!(c.valuation.price_sensitivity, 5.0);
    assert_eq!(c.auth.admin_token.as_deref(), Some("0123456789abcdef0"));
}

fn key_of(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn errors_name_the_key() {
    let cases: [(&str, &str); 16] = [
        ("[backup]\nkeep = 0", "backup.keep"),
        ("[backup]\ndir = \"\"", "backup.dir"),
        ("[backup]\ninterval_secs = -5", "backup.interval_secs"),
        (
            "database_url = \"postgres://db/q\"\n[backup]\ninterval_secs = 60",
            "backup.interval_secs",
        ),
        ("[trust]\nrollback_trust = 1.5", "trust.rollback_trust"),
        ("[trust]\nsoak_secs = 0", "trust.soak_secs"),
        ("[trust]\nwindow_hours = \"long\"", "trust.window_hours"),
        (
            "[[trust.phases]]\npercent = 100\nregions = [\"Atlantis\"]",
            "trust.phases",
        ),
        (
            "[[trust.phases]]\npercent = 50\nregions = [\"EU\"]",
            "trust.phases",
        ),
        ("[valuation]\neta_baseline = 0.0", "valuation.eta_baseline"),
        (
            "[valuation]\ncoherence_variance_threshold = -1",
            "valuation.coherence_variance_threshold",
        ),
        ("[valuation]\nbogus = 1", "valuation"),
        ("listen = \"nope\"", "listen"),
        ("regions = []", "regions"),
        ("[history]\ncapacity = 0", "history.capacity"),
        (
            "[ingest]\nmax_batch_runs = \"many\"",
            "ingest.max_batch_runs",
        ),
    ];
    for (text, key) in cases {
        let table: toml::Table = text.parse().unwrap();
        let err = Config::from_table(table).unwrap_err();
        let msg = err.to_string();
        assert!(key_of(err).starts_with(key), "{text}: {msg}");
    }
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let err = Config::load(None, env(&[("QUNIMBUS_LISTN", "x")]), toml::Table::new()).unwrap_err();
    assert!(err.to_string().contains("listn"), "{err}");
}

#[test]
fn database_urls() {
    let c = Config::load(
        None,
        env(&[("QUNIMBUS_DATABASE_URL", "postgres://u@h/db")]),
        toml::Table::new(),
    )
    .unwrap();
    assert_eq!(
        c.database().unwrap(),
        DbTarget::Postgres("postgres://u@h/db".into())
    );
    let c = Config::load(
        None,
        env(&[("QUNIMBUS_DATABASE_URL", "sqlite:/x/y.db")]),
        toml::Table::new(),
    )
    .unwrap();
    assert_eq!(c.database().unwrap(), DbTarget::Sqlite("/x/y.db".into()));
    let err = Config::load(
        None,
        env(&[("QUNIMBUS_DATABASE_URL", "mysql://x")]),
        toml::Table::new(),
    )
    .unwrap_err();
    assert_eq!(key_of(err), "database_url");
}

const PEER_A: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PEER_B: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";

#[test]
fn peer_keys_from_file_and_environment() {
    let table: toml::Table = format!("[nats]\npeer_keys = [\"{PEER_A}\"]")
        .parse()
        .unwrap();
    let c = Config::from_table(table).unwrap();
    assert_eq!(c.nats.peer_verifiers().unwrap()[0].name(), "PeterNeumann");
    for value in [
        format!("{PEER_A},{PEER_B}"),
        format!(" {PEER_A} \n{PEER_B} "),
        format!("{PEER_A}, {PEER_B},"),
        format!("[\"{PEER_A}\", \"{PEER_B}\"]"),
    ] {
        let c = Config::load(
            None,
            env(&[("QUNIMBUS_NATS__PEER_KEYS", &value)]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(c.nats.peer_keys, vec![PEER_A, PEER_B], "{value:?}");
    }
    let c = Config::load(
        None,
        env(&[("QUNIMBUS_NATS__PEER_KEYS", "")]),
        toml::Table::new(),
    )
    .unwrap();
    assert!(c.nats.peer_keys.is_empty());
}

#[test]
fn bad_peer_keys_are_named() {
    let tampered = PEER_A.replace("c74f20a3", "c74f20a4");
    for (value, needle) in [
        ("nonsense".to_string(), "entry 0"),
        (format!("{PEER_B},{tampered}"), "entry 1"),
        (format!("{PEER_A},{PEER_A}"), "listed twice"),
        (PEER_A.replace("+ARpc", "+AXpc"), "entry 0"),
    ] {
        let err = Config::load(
            None,
            env(&[("QUNIMBUS_NATS__PEER_KEYS", &value)]),
            toml::Table::new(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle), "{value}: {msg}");
        assert_eq!(key_of(err), "nats.peer_keys", "{value}");
    }
}

#[test]
fn nats_credentials_come_from_the_environment_only() {
    let seed = format!("SU{}", "A".repeat(56));
    let c = Config::load(
        None,
        env(&[
            ("QUNIMBUS_NATS_URL", "tls://nats.example:4222"),
            ("QUNIMBUS_NATS_USER", "node1"),
            ("QUNIMBUS_NATS_PASSWORD", "s3cret-pass"),
        ]),
        toml::Table::new(),
    )
    .unwrap();
    assert_eq!(c.nats.auth.user.as_deref(), Some("node1"));
    assert_eq!(c.nats.auth.password.as_deref(), Some("s3cret-pass"));
    let shown = format!("{c:?}");
    assert!(
        shown.contains("node1") && !shown.contains("s3cret-pass"),
        "{shown}"
    );
    for (name, value) in [
        ("QUNIMBUS_NATS_TOKEN", "tok-en"),
        ("QUNIMBUS_NATS_NKEY_SEED", seed.as_str()),
        ("QUNIMBUS_NATS_CREDS_FILE", "/run/secrets/nats.creds"),
    ] {
        let c = Config::load(None, env(&[(name, value)]), toml::Table::new()).unwrap();
        assert!(c.nats.auth.is_set(), "{name}");
        assert!(!format!("{c:?}").contains("tok-en"));
        assert!(!format!("{c:?}").contains(&seed));
    }
    // Errors name the variable, never the value.
    for (vars, named) in [
        (
            vec![("QUNIMBUS_NATS_USER", "node1")],
            "QUNIMBUS_NATS_PASSWORD",
        ),
        (
            vec![("QUNIMBUS_NATS_PASSWORD", "pw-1")],
            "QUNIMBUS_NATS_USER",
        ),
        (
            vec![
                ("QUNIMBUS_NATS_TOKEN", "tok-1"),
                ("QUNIMBUS_NATS_NKEY_SEED", &seed),
            ],
            "QUNIMBUS_NATS_NKEY_SEED",
        ),
        (
            vec![("QUNIMBUS_NATS_NKEY_SEED", "SUshort")],
            "QUNIMBUS_NATS_NKEY_SEED",
        ),
    ] {
        let err = Config::load(None, env(&vars), toml::Table::new()).unwrap_err();
        assert!(!err.to_string().contains("pw-1") && !err.to_string().contains("tok-1"));
        assert_eq!(key_of(err), named, "{vars:?}");
    }
    // The file cannot hold them.
    let table: toml::Table = "[nats]\nauth = { token = \"x\" }".parse().unwrap();
    assert!(Config::from_table(table).is_err());
    let table: toml::Table = "[nats]\ntoken = \"x\"".parse().unwrap();
    assert_eq!(key_of(Config::from_table(table).unwrap_err()), "nats.token");
    let err = Config::load(
        None,
        env(&[("QUNIMBUS_NATS__PASSWORD", "pw-2")]),
        toml::Table::new(),
    )
    .unwrap_err();
    assert_eq!(key_of(err), "nats.password");
    // TLS files are paths (strings) from the environment; cert and key pair.
    let c = Config::load(
        None,
        env(&[
            ("QUNIMBUS_NATS__TLS_CA_FILE", "1234"),
            ("QUNIMBUS_NATS__TLS_CERT_FILE", "/etc/q/client.pem"),
            ("QUNIMBUS_NATS__TLS_KEY_FILE", "/etc/q/client.key"),
        ]),
        toml::Table::new(),
    )
    .unwrap();
    assert_eq!(c.nats.tls_ca_file, Some(PathBuf::from("1234")));
    let err = Config::load(
        None,
        env(&[("QUNIMBUS_NATS__TLS_KEY_FILE", "/etc/q/client.key")]),
        toml::Table::new(),
    )
    .unwrap_err();
    assert_eq!(key_of(err), "nats.tls_cert_file");
    // A URL that is neither nats:// nor tls://.
    let err = Config::load(
        None,
        env(&[("QUNIMBUS_NATS_URL", "http://x:4222")]),
        toml::Table::new(),
    )
    .unwrap_err();
    assert_eq!(key_of(err), "nats_url");
}

#[test]
fn example_config_in_repo_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../qunimbus.example.toml");
    Config::check_file(&path).unwrap();
}

#[test]
fn agent_section_builds_its_plan_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        r#"
[agent]
cash = 25000
fee = "0.00075"
symbols = ["BTCUSDT", "ETHUSDT", "DOGEUSDT"]
[agent.strategy]
name = "sma_cross"
params = { fast = 5, slow = 20 }
[agent.tier_strategies.1]
name = "donchian_breakout"
[agent.symbol_strategies.DOGEUSDT]
name = "rsi_reversion"
"#,
    )
    .unwrap();
    let mut flags = toml::Table::new();
    flags.insert("agent.enabled".into(), true.into());
    let c = Config::load(Some(&file), vec![], flags).unwrap();
    assert!(c.agent.enabled, "a dotted flag sets one key of a section");
    assert_eq!(c.agent.symbols.len(), 3, "and leaves the file's other keys");
    let plan = c.agent.plan().unwrap();
    assert_eq!(plan.cash, rust_decimal::Decimal::from(25_000));
    assert_eq!(plan.costs.taker_fee, rust_decimal::Decimal::new(75, 5));
    let lanes: Vec<(&str, &str)> = plan
        .lanes
        .iter()
        .map(|l| (l.instrument.symbol.as_str(), l.strategy_name.as_str()))
        .collect();
    assert_eq!(
        lanes,
        [
            ("BTCUSDT", "donchian_breakout"),
            ("ETHUSDT", "donchian_breakout"),
            ("DOGEUSDT", "rsi_reversion"),
        ]
    );
    let all = Config::load(
        None,
        env(&[("QUNIMBUS_AGENT__ENABLED", "true")]),
        toml::Table::new(),
    )
    .unwrap();
    assert!(all.agent.enabled);
    let plan = all.agent.plan().unwrap();
    assert_eq!(plan.lanes.len(), 77);
    assert_eq!(plan.lanes[0].strategy_name, "sma_cross");

    for (var, value, key) in [
        ("QUNIMBUS_AGENT__STRATEGY__NAME", "moon", "agent.strategy"),
        ("QUNIMBUS_AGENT__CASH", "-5", "agent.cash"),
        ("QUNIMBUS_AGENT__CASH", "lots", "agent.cash"),
        ("QUNIMBUS_AGENT__FEE", "0.5", "agent.fee"),
        ("QUNIMBUS_AGENT__RED_DRAWDOWN", "0.08", "agent.red_drawdown"),
        (
            "QUNIMBUS_AGENT__KELLY_FRACTION",
            "1.5",
            "agent.kelly_fraction",
        ),
        (
            "QUNIMBUS_AGENT__BAR_INTERVAL_MS",
            "0",
            "agent.bar_interval_ms",
        ),
        (
            "QUNIMBUS_AGENT__ORDERS_PER_SECOND",
            "0",
            "agent.orders_per_second",
        ),
        (
            "QUNIMBUS_AGENT__UNIVERSE_FILE",
            "/no/such/universe.toml",
            "agent.universe_file",
        ),
        ("QUNIMBUS_AGENT__SEED", "-1", "agent.seed"),
    ] {
        let err = Config::load(None, env(&[(var, value)]), toml::Table::new()).unwrap_err();
        assert_eq!(key_of(err), key, "{var}={value}");
    }
    let err = Config::load(
        None,
        env(&[("QUNIMBUS_AGENT__BOGUS", "1")]),
        toml::Table::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
    for (text, key) in [
        ("[agent]\nsymbols = [\"NOPEUSDT\"]", "agent.symbols"),
        (
            "[agent.tier_strategies.9]\nname = \"sma_cross\"",
            "agent.tier_strategies.9",
        ),
        (
            "[agent.strategy]\nname = \"sma_cross\"\nparams = { fast = 30, slow = 10 }",
            "agent.strategy",
        ),
        (
            "[agent.symbol_strategies.BTCUSDT]\nname = \"sma_cross\"\nparams = { speed = 1 }",
            "agent.symbol_strategies.BTCUSDT",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let err = Config::load(Some(&file), vec![], toml::Table::new()).unwrap_err();
        assert_eq!(key_of(err), key, "{text}");
    }
}

#[test]
fn a_candle_replay_dir_gives_the_lanes_and_bad_dirs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let kline = "1704067200000,42000.00,42010.00,41990.00,42005.00,1.0,1704067259999,42000,10,0.5,21000,0\n";
    std::fs::write(dir.path().join("ETHUSDT-1m.csv"), kline).unwrap();
    std::fs::write(dir.path().join("BTCUSDT-1m.csv"), kline).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not candles").unwrap();
    let load = |vars: &[(&str, &str)]| Config::load(None, env(vars), toml::Table::new());
    let path = dir.path().display().to_string();
    let c = load(&[("QUNIMBUS_AGENT__MARKET_REPLAY_DIR", &path)]).unwrap();
    let plan = c.agent.plan().unwrap();
    let symbols: Vec<&str> = plan
        .lanes
        .iter()
        .map(|l| l.instrument.symbol.as_str())
        .collect();
    assert_eq!(
        symbols,
        ["BTCUSDT", "ETHUSDT"],
        "universe order, files only"
    );
    let files = plan.replay_files.unwrap();
    assert!(files[0].ends_with("BTCUSDT-1m.csv") && files[1].ends_with("ETHUSDT-1m.csv"));

    let err = load(&[
        ("QUNIMBUS_AGENT__MARKET_REPLAY_DIR", &path),
        ("QUNIMBUS_AGENT__SYMBOLS", "[\"SOLUSDT\"]"),
    ])
    .unwrap_err();
    assert_eq!(key_of(err), "agent.symbols");
    let err = load(&[("QUNIMBUS_AGENT__MARKET_REPLAY_DIR", "/no/such/dir")]).unwrap_err();
    assert_eq!(key_of(err), "agent.market_replay_dir");
    std::fs::write(dir.path().join("NOPEUSDT-1m.csv"), kline).unwrap();
    let err = load(&[("QUNIMBUS_AGENT__MARKET_REPLAY_DIR", &path)]).unwrap_err();
    assert!(err.to_string().contains("NOPEUSDT-1m.csv"), "{err}");
    assert_eq!(key_of(err), "agent.market_replay_dir");
}

#[test]
fn a_public_url_must_be_a_plain_http_url() {
    for (url, ok) in [
        ("https://node.example", true),
        ("http://10.0.0.5:8080/", true),
        ("ftp://node.example", false),
        ("https://node.example/a2a", false),
        ("node.example", false),
    ] {
        let c = Config {
            public_url: Some(url.into()),
            ..Config::default()
        };
        match c.validate() {
            Ok(()) => assert!(ok, "{url} accepted"),
            Err(e) => {
                assert!(!ok, "{url}: {e}");
                assert!(e.to_string().contains("public_url"), "{e}");
            }
        }
    }
}

#[test]
fn the_recorded_configuration_holds_no_secret() {
    let mut config = Config {
        database_url: Some(
            "postgres://qunimbus:s3cret@db:5432/q?sslmode=require&password=p2".into(),
        ),
        nats_url: Some("nats://relay:t0ken@nats:4222".into()),
        ..Config::default()
    };
    config.auth.admin_token = Some("admin-secret-token".into());
    let recorded = config.recorded().unwrap();
    let text = serde_json::to_string(&recorded).unwrap();
    for secret in ["s3cret", "p2", "t0ken", "admin-secret-token"] {
        assert!(!text.contains(secret), "{secret} recorded: {text}");
    }
    assert_eq!(
        recorded["database_url"],
        "postgres://qunimbus:redacted@db:5432/q?sslmode=require&password=redacted"
    );
    assert_eq!(recorded["nats_url"], "nats://relay:redacted@nats:4222");
    assert_eq!(recorded["valuation.eta_baseline"], 0.95);
    assert!(!recorded.contains_key("auth.admin_token"));
    // NATS's token form: the whole user info is the secret.
    config.nats_url = Some("nats://s3cr3tT0k3n@nats:4222".into());
    let recorded = config.recorded().unwrap();
    assert_eq!(recorded["nats_url"], "nats://redacted@nats:4222");
}
