//! QMP endpoints: partner administration, the feed over WebSocket and SSE,
//! acknowledgements, activation and measured status.

use crate::api::{query_params, read_text, rejected};
use crate::error::{ApiError, ErrorBody};
use crate::limits::Slot;
use crate::market_views::{
    AckResult, ConnectedPartner, FeedActive, LatencyStatus, MarketStatus, PartnerCreated,
    PartnerDisabled, PartnerList, PartnerView, TicketIssued,
};
use crate::openapi::requests::{AckRequest, PartnerRequestSchema};
use crate::openapi::responses::{
    AdminRouteErrors, BadRequest, Conflict, JsonBodyErrors, NotFound, RouteErrors, TooManyRequests,
    Unprocessable,
};
use crate::openapi::ApiRouter;
use crate::state::AppState;
use crate::tickets::{TicketRefusal, MAX_TICKETS_PER_PARTNER, TICKET_TTL};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::SinkExt;
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_market::{
    parse_client_message, throughput_status, FeedValuation, PartnerRequest, ServerMessage,
};
use qunimbus_node::market::{run_session, Outgoing, SessionKey};
use qunimbus_node::partners::Registered;
use qunimbus_node::tokens::secret_hash;
use qunimbus_storage::{PartnerRecord, StorageError};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use utoipa_axum::routes;

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Admin routes.
pub(crate) fn admin_routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_partner, list_partners))
        .routes(routes!(disable_partner))
        .routes(routes!(activate))
        .routes(routes!(deactivate))
}

/// Partner routes (authenticated with the partner's own API key) and status.
pub(crate) fn feed_routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(feed_ws))
        .routes(routes!(feed_sse))
        .routes(routes!(ack))
        .routes(routes!(ticket))
}

/// Read-only routes.
pub(crate) fn read_routes() -> ApiRouter {
    ApiRouter::new().routes(routes!(status))
}

// ---- partner administration -------------------------------------------------

/// Registers a partner; its API key is in the answer, this once.
#[utoipa::path(
    post,
    path = "/v1/partners",
    tag = "market",
    security(("admin_token" = [])),
    request_body(content = PartnerRequestSchema, description = "The partner's name and home region."),
    responses(
        (status = 201, description = "Registered.", body = PartnerCreated),
        (status = 409, response = Conflict),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn create_partner(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let text = read_text(&state, &headers, body, 64 * 1024).await?;
    let request =
        PartnerRequest::parse_json(&text, &state.node.regions).map_err(|e| rejected(&state, e))?;
    let name = request.name.clone();
    let Registered { partner, api_key } = match state.node.register_partner(request).await {
        Ok(registered) => registered,
        Err(StorageError::Conflict(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("a partner named {name:?} already exists"),
            )
            .with_field("name"))
        }
        Err(e) => return Err(e.into()),
    };
    Ok((
        StatusCode::CREATED,
        Json(PartnerCreated {
            id: partner.id,
            name: partner.name,
            region: partner.region,
            api_key,
            created_at: partner.created_at,
        }),
    )
        .into_response())
}

/// Every registered partner, with its open feed sessions.
#[utoipa::path(
    get,
    path = "/v1/partners",
    tag = "market",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The partners.", body = PartnerList),
        AdminRouteErrors,
    )
)]
pub(crate) async fn list_partners(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let connected = state.node.market.connections();
    let partners: Vec<PartnerView> = state
        .node
        .store
        .reader()
        .partners()
        .await?
        .into_iter()
        .map(|p| PartnerView {
            connections: connected.get(&p.id).copied().unwrap_or(0),
            disabled: p.disabled_at.is_some(),
            id: p.id,
            name: p.name,
            region: p.region,
            created_at: p.created_at,
            disabled_at: p.disabled_at,
        })
        .collect();
    Ok(Json(PartnerList {
        count: partners.len(),
        partners,
    })
    .into_response())
}

/// Disables a partner's key; its open sessions end.
#[utoipa::path(
    post,
    path = "/v1/partners/{id}/disable",
    tag = "market",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The partner's id (`p_…`).")),
    responses(
        (status = 200, description = "Disabled (also when it already was).", body = PartnerDisabled),
        (status = 404, response = NotFound),
        AdminRouteErrors,
    )
)]
pub(crate) async fn disable_partner(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let partner = state
        .node
        .disable_partner(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no partner {id:?}")).with_field("id"))?;
    Ok(Json(PartnerDisabled {
        id,
        name: partner.name,
        disabled: true,
    })
    .into_response())
}

async fn set_active(state: &AppState, active: bool) -> Result<Response, ApiError> {
    state.node.set_market_active(active).await?;
    Ok(Json(FeedActive { active }).into_response())
}

/// Switches publishing on (persisted).
#[utoipa::path(
    post,
    path = "/v1/market/activate",
    tag = "market",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Publishing.", body = FeedActive),
        AdminRouteErrors,
    )
)]
pub(crate) async fn activate(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    set_active(&state, true).await
}

/// Switches publishing off (persisted).
#[utoipa::path(
    post,
    path = "/v1/market/deactivate",
    tag = "market",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Not publishing.", body = FeedActive),
        AdminRouteErrors,
    )
)]
pub(crate) async fn deactivate(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    set_active(&state, false).await
}

// ---- status ----------------------------------------------------------------------

/// What was measured: partners connected, latency against its target,
/// EPH throughput over the sliding window against its target.
#[utoipa::path(
    get,
    path = "/v1/market/status",
    tag = "market",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The measured status.", body = MarketStatus),
        RouteErrors,
    )
)]
pub(crate) async fn status(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let hub = &state.node.market;
    let report = hub.latency();
    let (eph_per_hour, measured) = hub.eph_per_hour();
    let connections = hub.connections();
    let names: HashMap<String, String> = state
        .node
        .store
        .reader()
        .partners()
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let connected: Vec<ConnectedPartner> = connections
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(id, n)| ConnectedPartner {
            id,
            name: names.get(id).map(String::as_str),
            connections: *n,
        })
        .collect();
    Ok(Json(MarketStatus {
        origin: &hub.origin,
        active: hub.is_active(),
        partners_connected: connected.len(),
        connected,
        latency: LatencyStatus::of(report, &hub.targets),
        latency_window_seconds: hub.latency_window().as_secs_f64(),
        eph_throughput_per_hour: throughput_status(eph_per_hour, measured, &hub.targets),
        cluster_eph_throughput_per_hour: hub.cluster_eph_per_hour(),
        throughput_window_seconds: hub.window().as_secs_f64(),
        targets: &hub.targets,
    })
    .into_response())
}

// ---- partner authentication and the feed --------------------------------------------

/// The partner presenting `Authorization: Bearer <api key>`, or a feed
/// ticket in `?ticket=` (single use; see [`crate::tickets`]): 401 when
/// unknown, 403 when disabled. A key is never accepted in the URL. With the
/// partner: when its key stops working (a previous key in its grace period).
async fn authenticate_partner(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(PartnerRecord, SessionKey), ApiError> {
    let unauthorized = |message: &str| {
        state.node.metrics.reject("unauthorized");
        ApiError::unauthorized(message)
    };
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let found = match (key, params.get("ticket")) {
        (Some(key), _) => state.node.partner_by_key(key).await?.map(|p| {
            let session = SessionKey {
                hash: Some(secret_hash(key)),
                expires_at_us: p.key_expires_at_us,
            };
            (p.partner, session)
        }),
        (None, Some(ticket)) => {
            let Some(id) = state.tickets.redeem(ticket, std::time::Instant::now()) else {
                return Err(unauthorized("the feed ticket is unknown, used or expired"));
            };
            state
                .node
                .store
                .reader()
                .partner(&id)
                .await?
                .map(|p| (p, SessionKey::default()))
        }
        (None, None) => {
            return Err(unauthorized(
                "a partner API key is required (Authorization: Bearer <key>), or a ticket from POST /v1/market/ticket",
            ))
        }
    };
    let (partner, key) = found.ok_or_else(|| unauthorized("the partner API key is not valid"))?;
    if partner.disabled_at.is_some() {
        state.node.metrics.reject("forbidden");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "partner_disabled",
            format!("partner {} is disabled", partner.name),
        ));
    }
    Ok((partner, key))
}

/// `POST /v1/market/ticket` (partner key): a single-use ticket for opening
/// the feed where no header can be sent (a browser's `EventSource`).
#[utoipa::path(
    post,
    path = "/v1/market/ticket",
    tag = "market",
    security(("partner_key" = [])),
    responses(
        (status = 201, description = "A ticket, valid once.", body = TicketIssued),
        (status = 403, description = "The partner is disabled (`partner_disabled`).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        RouteErrors,
    )
)]
pub(crate) async fn ticket(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (partner, _) = authenticate_partner(&state, &headers, &HashMap::new()).await?;
    let ticket = state
        .tickets
        .issue(&partner.id, std::time::Instant::now())
        .map_err(|refusal| {
            state.node.metrics.reject("too_many_tickets");
            let message = match refusal {
                TicketRefusal::PartnerFull => format!(
                    "partner {} already holds {MAX_TICKETS_PER_PARTNER} unused tickets",
                    partner.name
                ),
                TicketRefusal::NodeFull => "the node holds too many unused tickets".into(),
            };
            ApiError::too_many("too_many_tickets", message, TICKET_TTL.as_secs() as u32)
        })?;
    Ok((
        StatusCode::CREATED,
        Json(TicketIssued {
            ticket,
            expires_in_seconds: TICKET_TTL.as_secs(),
        }),
    )
        .into_response())
}

fn from_seq(state: &AppState, params: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    params
        .get("from_seq")
        .map(|text| {
            text.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                rejected(
                    state,
                    FieldError::field(
                        "from_seq",
                        FieldErrorCode::OutOfRange,
                        format!("from_seq must be an integer >= 1, got {text:?}"),
                    ),
                )
            })
        })
        .transpose()
}

/// Messages written to a socket before one flush.
const WRITE_BATCH: usize = 64;

/// Read buffer of a partner connection. Partners only send acks of a few
/// dozen bytes; tungstenite zero-fills the free part of this buffer before
/// every read, so its 128 KiB default cost more CPU than anything else on
/// the feed path.
const PARTNER_READ_BUFFER: usize = 4096;

/// Largest message a partner may send (an ack is under 100 bytes).
const PARTNER_MAX_MESSAGE: usize = 64 * 1024;

/// How long a send to one partner may take before it is treated as stalled.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The live feed over WebSocket: a `snapshot`, the replay from `from_seq`
/// (then `replayed`), then live `valuation` (or `withheld`) messages with
/// gap-free `seq`; the partner answers `{"type":"ack","seq":N}` frames.
/// Only the HTTP part (the upgrade) is described here.
#[utoipa::path(
    get,
    path = "/v1/market/feed",
    tag = "market",
    security(("partner_key" = []), ("feed_ticket" = [])),
    params(
        ("from_seq" = Option<u64>, Query, minimum = 1, description = "Replay this node's messages from this seq."),
        ("Upgrade" = String, Header, description = "`websocket`."),
        ("Connection" = String, Header, description = "`Upgrade`."),
        ("Sec-WebSocket-Key" = String, Header, description = "RFC 6455 key."),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`."),
    ),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol; JSON text frames follow (`FeedValuation` and the other QMP messages)."),
        (status = 400, description = "Not a valid WebSocket upgrade request (`websocket_upgrade`), or a malformed query (`malformed_query`).", body = ErrorBody),
        (status = 403, description = "The partner is disabled (`partner_disabled`).", body = ErrorBody),
        (status = 422, response = Unprocessable),
        (status = 426, description = "The connection cannot be upgraded (`websocket_upgrade`).", body = ErrorBody),
        (status = 429, response = TooManyRequests),
        RouteErrors,
    )
)]
pub(crate) async fn feed_ws(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Params,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| {
        state.node.metrics.reject("websocket_upgrade");
        ApiError::new(e.status(), "websocket_upgrade", e.body_text())
    })?;
    let params = query_params(&state, query, &["from_seq", "ticket"])?;
    let (partner, key) = authenticate_partner(&state, &headers, &params).await?;
    let from = from_seq(&state, &params)?;
    let slot = feed_slot(&state, &partner)?;
    let session = SessionStart { partner, from, key };
    Ok(upgrade
        .read_buffer_size(PARTNER_READ_BUFFER)
        .max_message_size(PARTNER_MAX_MESSAGE)
        .max_frame_size(PARTNER_MAX_MESSAGE)
        .on_upgrade(move |socket| serve_ws(state, session, socket, slot)))
}

/// A place among the partner's and the node's open feed connections.
fn feed_slot(state: &AppState, partner: &PartnerRecord) -> Result<Slot<String>, ApiError> {
    state
        .limits
        .feed_connections
        .acquire(partner.id.clone())
        .map_err(|refusal| {
            state.node.metrics.reject("too_many_connections");
            refusal.into_api_error("feed connections")
        })
}

/// A queued message as a WebSocket text frame, sharing its bytes.
fn ws_text(message: &Outgoing) -> Utf8Bytes {
    Utf8Bytes::try_from(message.bytes()).unwrap_or_else(|_| Utf8Bytes::from_static(""))
}

/// Who a feed connection is for, from where, and until when its key works.
struct SessionStart {
    partner: PartnerRecord,
    from: Option<u64>,
    key: SessionKey,
}

async fn serve_ws(
    state: Arc<AppState>,
    start: SessionStart,
    mut socket: WebSocket,
    _slot: Slot<String>,
) {
    let partner = start.partner;
    let (out, mut queue) = mpsc::channel::<Outgoing>(state.node.market.queue_capacity);
    let mut session = tokio::spawn(run_session(
        state.node.clone(),
        partner.clone(),
        (start.from, start.key),
        out.clone(),
        state.node.stop.clone(),
    ));
    let mut session_ended = false;
    // One task both writes and reads the socket: splitting it into halves
    // served by two tasks delayed reads of acks by tens of milliseconds.
    loop {
        tokio::select! {
            next = queue.recv() => {
                let Some(first) = next else { break };
                // Everything already queued goes out with one flush.
                let batch = async {
                    socket.feed(Message::Text(ws_text(&first))).await?;
                    for _ in 0..WRITE_BATCH {
                        match queue.try_recv() {
                            Ok(next) => socket.feed(Message::Text(ws_text(&next))).await?,
                            Err(_) => break,
                        }
                    }
                    socket.flush().await
                };
                if !matches!(tokio::time::timeout(SEND_TIMEOUT, batch).await, Ok(Ok(()))) {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => match parse_client_message(&text) {
                    Ok(ack) => {
                        state.node.market.ack(&partner.id, &ack);
                    }
                    Err(e) => {
                        let _ = out.try_send(Outgoing::new(&ServerMessage::client_error(&e)));
                    }
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            // The session ended (disconnect sent, partner disabled, node
            // stopping): send what it queued, then close without waiting for
            // the client.
            _ = &mut session, if !session_ended => {
                session_ended = true;
                queue.close();
            }
        }
    }
    session.abort();
    // A partner that stopped reading cannot hold the connection open.
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.close()).await;
}

/// The live feed over server-sent events: the same messages as the
/// WebSocket feed, each an event named by its type; acks go to
/// `POST /v1/market/ack`.
#[utoipa::path(
    get,
    path = "/v1/market/stream",
    tag = "market",
    security(("partner_key" = []), ("feed_ticket" = [])),
    params(("from_seq" = Option<u64>, Query, minimum = 1, description = "Replay this node's messages from this seq.")),
    responses(
        (status = 200, description = "An endless `text/event-stream`: events `snapshot`, `replayed`, `valuation`, `withheld`, `disconnect`, …, each `data` one JSON message (a `valuation` event's data is a `FeedValuation`).", content(
            (FeedValuation = "text/event-stream"),
        )),
        (status = 400, response = BadRequest),
        (status = 403, description = "The partner is disabled (`partner_disabled`).", body = ErrorBody),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        RouteErrors,
    )
)]
pub(crate) async fn feed_sse(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Params,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["from_seq", "ticket"])?;
    let (partner, key) = authenticate_partner(&state, &headers, &params).await?;
    let from = from_seq(&state, &params)?;
    let slot = feed_slot(&state, &partner)?;
    let (out, queue) = mpsc::channel::<Outgoing>(state.node.market.queue_capacity);
    tokio::spawn(run_session(
        state.node.clone(),
        partner,
        (from, key),
        out,
        state.node.stop.clone(),
    ));
    let events = futures_util::stream::unfold((queue, slot), |(mut queue, slot)| async move {
        let message = queue.recv().await?;
        let event = Event::default().event(message.kind).data(message.as_str());
        Some((Ok::<Event, Infallible>(event), (queue, slot)))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `POST /v1/market/ack {"seq": N}` for SSE partners (WebSocket partners ack in-band).
#[utoipa::path(
    post,
    path = "/v1/market/ack",
    tag = "market",
    security(("partner_key" = [])),
    request_body(content = AckRequest, description = "The ack."),
    responses(
        (status = 200, description = "Recorded; `acked` says how many live messages it took.", body = AckResult),
        (status = 403, description = "The partner is disabled (`partner_disabled`).", body = ErrorBody),
        JsonBodyErrors,
        RouteErrors,
    )
)]
pub(crate) async fn ack(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Params,
    body: Body,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &[])?;
    let (partner, _) = authenticate_partner(&state, &headers, &params).await?;
    let text = read_text(&state, &headers, body, 4096).await?;
    let message = parse_client_message(&text).map_err(|e| {
        state.node.metrics.reject(e.code());
        // Not JSON / not an object is a malformed document (400, SPEC §9);
        // a bad field is an invalid value (422).
        let status = match e.field() {
            None => StatusCode::BAD_REQUEST,
            Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let mut error = ApiError::new(status, e.code(), e.to_string());
        error.field = e.field().map(str::to_string);
        error
    })?;
    let acked = state.node.market.ack(&partner.id, &message);
    Ok(Json(AckResult {
        seq: message.seq,
        acked: acked.messages,
        latency_ms: acked.newest.map(|d| d.as_secs_f64() * 1000.0),
    })
    .into_response())
}
