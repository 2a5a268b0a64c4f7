//! Every credential rotates without downtime (SPEC §12): the new secret
//! works at once, the old one through its grace period and not after it,
//! across a restart too; client tokens hold only their scopes; a partner's
//! connection made with its old key stays up until the grace ends; each
//! change is a `config` block that names the credential, never a secret.

#[macro_use]
mod support;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use support::{Backend, TestNode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn as_token(
    t: &TestNode,
    method: Method,
    path: &str,
    token: &str,
    body: &str,
) -> (StatusCode, Value) {
    t.send(method, path, Some(token), body).await
}

async fn status_with(t: &TestNode, token: &str) -> StatusCode {
    as_token(t, Method::GET, "/v1/credentials", token, "")
        .await
        .0
}

/// Sleeps until just past an RFC 3339 time.
async fn sleep_past(at: &Value) {
    let until = chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap();
    let left = until
        .signed_duration_since(chrono::Utc::now())
        .num_milliseconds()
        .max(0);
    tokio::time::sleep(Duration::from_millis(left as u64 + 150)).await;
}

/// The block a change names, with no secret in it.
async fn recorded(t: &TestNode, issued: &Value, secrets: &[&str]) -> Value {
    let index = issued["block_index"].as_u64().unwrap();
    let block = t.get_ok(&format!("/v1/ledger/blocks/{index}")).await;
    assert_eq!(block["kind"], json!("config"), "{block}");
    let text = block.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "a secret on the ledger: {block}");
    }
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_ingest_and_client_tokens_rotate_with_a_grace_period_across_a_restart_sqlite() {
    rotations_across_a_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_ingest_and_client_tokens_rotate_with_a_grace_period_across_a_restart_postgres() {
    rotations_across_a_restart(Backend::Postgres).await;
}

async fn rotations_across_a_restart(backend: Backend) {
    let mut t = TestNode::start(backend).await;
    let old_admin = t.admin_token().to_string();
    let old_ingest = t.ingest_token().to_string();

    // The admin token, with two seconds of grace.
    let body = r#"{"credential":"admin","grace_secs":2,"reason":"quarterly rotation"}"#;
    let (status, issued) =
        as_token(&t, Method::POST, "/v1/credentials/rotate", &old_admin, body).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let new_admin = issued["secret"].as_str().unwrap().to_string();
    assert_ne!(new_admin, old_admin);
    assert_eq!(
        status_with(&t, &old_admin).await,
        StatusCode::OK,
        "the old token works in its grace"
    );
    assert_eq!(status_with(&t, &new_admin).await, StatusCode::OK);
    let block = recorded(&t, &issued, &[&old_admin, &new_admin]).await;
    let p = &block["payload"];
    assert_eq!(p["change"], json!("credential rotated"));
    assert_eq!(p["credential"], json!("admin"));
    assert_eq!(p["by"], json!("admin"));
    assert_eq!(p["reason"], json!("quarterly rotation"));
    assert_eq!(p["previous_valid_until"], issued["previous_valid_until"]);
    // The local CLI's file follows the rotation.
    let file = std::fs::read_to_string(t.data_dir().join("credentials.toml")).unwrap();
    assert!(file.contains(&new_admin) && !file.contains(&old_admin));
    sleep_past(&issued["previous_valid_until"]).await;
    assert_eq!(
        status_with(&t, &old_admin).await,
        StatusCode::UNAUTHORIZED,
        "the grace has ended"
    );
    assert_eq!(status_with(&t, &new_admin).await, StatusCode::OK);

    // The ingest token, at once (no grace).
    let body = r#"{"credential":"ingest","grace_secs":0,"reason":"leaked in a log"}"#;
    let (status, ingest) =
        as_token(&t, Method::POST, "/v1/credentials/rotate", &new_admin, body).await;
    assert_eq!(status, StatusCode::OK, "{ingest}");
    let new_ingest = ingest["secret"].as_str().unwrap().to_string();
    let run = support::varied_run("rot-1", 1).to_string();
    let (status, _) = as_token(&t, Method::POST, "/v1/telemetry", &old_ingest, &run).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, e) = as_token(&t, Method::POST, "/v1/telemetry", &new_ingest, &run).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");

    // A client token holds its scopes only.
    let body = r#"{"name":"pricing-bot","scopes":["read"],"reason":"the pricing agent"}"#;
    let (status, client) = as_token(
        &t,
        Method::POST,
        "/v1/credentials/clients",
        &new_admin,
        body,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    assert_eq!(client["credential"], json!("client:pricing-bot"));
    assert_eq!(client["scopes"], json!(["read"]));
    let bot = client["secret"].as_str().unwrap().to_string();
    recorded(&t, &client, &[&bot]).await;
    let (status, _) = as_token(
        &t,
        Method::POST,
        "/v1/telemetry",
        &bot,
        &support::varied_run("rot-2", 2).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "read scope cannot ingest");
    assert_eq!(
        status_with(&t, &bot).await,
        StatusCode::FORBIDDEN,
        "read scope is no admin"
    );
    let (status, _) = as_token(&t, Method::GET, "/v1/valuations", &bot, "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = as_token(
        &t,
        Method::POST,
        "/v1/credentials/clients",
        &new_admin,
        body,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");

    // Bad requests change nothing and name the field.
    for (body, status, field) in [
        (
            r#"{"credential":"client:nobody","reason":"x"}"#,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            r#"{"credential":"admin","grace_secs":99999999,"reason":"x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("grace_secs"),
        ),
        (
            r#"{"credential":"admin","grace_secs":-1,"reason":"x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("grace_secs"),
        ),
        (
            r#"{"credential":"admin"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reason"),
        ),
        (
            r#"{"credential":"admin","reason":"x","extra":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("extra"),
        ),
    ] {
        let (got, e) = as_token(&t, Method::POST, "/v1/credentials/rotate", &new_admin, body).await;
        assert_eq!(got, status, "{body}: {e}");
        if let Some(field) = field {
            assert_eq!(e["error"]["field"], json!(field), "{body}: {e}");
        }
    }
    assert_eq!(
        status_with(&t, &new_admin).await,
        StatusCode::OK,
        "still the admin token"
    );

    // After a restart: the retired tokens stay retired, the new ones work.
    t.restart().await;
    assert_eq!(status_with(&t, &old_admin).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&t, &new_admin).await, StatusCode::OK);
    let (status, _) = as_token(
        &t,
        Method::POST,
        "/v1/telemetry",
        &old_ingest,
        &support::varied_run("rot-3", 3).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = as_token(&t, Method::GET, "/v1/valuations", &bot, "").await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = as_token(&t, Method::GET, "/v1/credentials", &new_admin, "").await;
    let text = list.to_string();
    for secret in [&old_admin, &new_admin, &new_ingest, &bot] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the list: {list}"
        );
    }
    let listed: Vec<&str> = list["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["credential"].as_str().unwrap())
        .collect();
    for credential in ["admin", "ingest", "client:pricing-bot"] {
        assert!(listed.contains(&credential), "{list}");
    }
    t.stop().await;
}

async fn connect(
    t: &TestNode,
    key: &str,
) -> Result<
    impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>,
    String,
> {
    let url = t.url("/v1/market/feed").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(e) => Err(e.to_string()),
    }
}

/// The next text message as JSON (skipping pings), within 10 s.
async fn next_json(
    ws: &mut (impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
              + Unpin),
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the connection is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_key_rotates_and_its_open_connection_lasts_until_the_grace_ends() {
    let t = TestNode::start(Backend::Sqlite).await;
    let admin = t.admin_token().to_string();
    let (status, partner) = t
        .post(
            "/v1/partners",
            Some(&admin),
            r#"{"name":"p-rot","region":"EU"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{partner}");
    let id = partner["id"].as_str().unwrap().to_string();
    let old_key = partner["api_key"].as_str().unwrap().to_string();
    let mut old_session = connect(&t, &old_key).await.unwrap();
    assert_eq!(next_json(&mut old_session).await["type"], json!("snapshot"));

    let path = format!("/v1/partners/{id}/rotate-key");
    let (status, issued) = t
        .post(
            &path,
            Some(&admin),
            r#"{"grace_secs":2,"reason":"partner asked"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let new_key = issued["secret"].as_str().unwrap().to_string();
    let block = recorded(&t, &issued, &[&old_key, &new_key]).await;
    assert_eq!(
        block["payload"]["credential"],
        json!(format!("partner:{id}"))
    );
    assert_eq!(block["payload"]["partner"], json!("p-rot"));

    // Inside the grace: the old connection still gets the feed, both keys connect.
    t.ingest_new(&support::varied_run("feed-rot-1", 1)).await;
    assert_eq!(
        next_json(&mut old_session).await["type"],
        json!("valuation")
    );
    let mut new_session = connect(&t, &new_key).await.unwrap();
    assert_eq!(next_json(&mut new_session).await["type"], json!("snapshot"));
    let again = connect(&t, &old_key)
        .await
        .expect("the old key works in its grace");
    drop(again);

    // At its end: the old connection is told why and closed; the old key is refused.
    let bye = loop {
        let m = next_json(&mut old_session).await;
        if m["type"] == json!("disconnect") {
            break m;
        }
    };
    assert!(bye["reason"].as_str().unwrap().contains("rotated"), "{bye}");
    let refused = connect(&t, &old_key)
        .await
        .err()
        .expect("the old key is refused");
    assert!(refused.contains("401"), "{refused}");
    t.ingest_new(&support::varied_run("feed-rot-2", 2)).await;
    assert_eq!(
        next_json(&mut new_session).await["type"],
        json!("valuation")
    );
    t.stop().await;
}
