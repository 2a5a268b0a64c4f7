//! The built-in web dashboard (SPEC §6, §7): a page a person opens at `GET /`
//! to watch the node live, and the throttled stream that feeds its phi chart.
//!
//! The page, its script and style sheet are compiled into the binary from
//! `crates/http/assets/` and served with a strict Content-Security-Policy
//! (no inline script or style, nothing from another origin), so it works
//! offline and behind any proxy. Everything it draws comes from the node's
//! own read endpoints; there is no build step and no framework.
//!
//! `GET /v1/dashboard/stream` is a server-sent-events stream made for
//! browsers, not partners: it subscribes to the market hub's live
//! valuations, keeps only non-personal fields (region, `phi_qevf`,
//! `eph_price`, `accepted_at`, `block_index`, feed `seq`; never `run_id`,
//! never the run's inputs) and is throttled on the server: per region at
//! most one point per [`THROTTLE`], carrying the latest value of that
//! interval and how many runs it stands for. It ends when the node stops.

use crate::error::ApiError;
use crate::limits::{ClientIp, Slot};
use crate::openapi::responses::{RouteErrors, TooManyRequests};
use crate::openapi::ApiRouter;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_market::FeedValuation;
use qunimbus_node::market::{feed_valuation, Live, MarketHub};
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::{Interval, MissedTickBehavior};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, Paths};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, ResponseBuilder, Type};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// Per region, the stream sends at most one point per this interval.
pub const THROTTLE: Duration = Duration::from_millis(250);

/// How long the page's trend window is (the stream tells the page).
const WINDOW: Duration = Duration::from_secs(300);

/// How often an idle stream sends a keep-alive comment.
/// Most stored runs read to backfill the trend when a stream opens.
const BACKFILL_RUNS: u32 = 4000;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a browser waits before reconnecting after the stream ended.
const RETRY: Duration = Duration::from_secs(3);

/// `Content-Security-Policy` of every dashboard response: only this origin,
/// no inline script or style, no plugins, not framable.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The embedded assets: path, content type, body.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../assets/index.html"),
    ),
    (
        "/dashboard/dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard.js"),
    ),
    (
        "/dashboard/agent.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/agent.js"),
    ),
    (
        "/dashboard/charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/charts.js"),
    ),
    (
        "/dashboard/dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/dashboard.css"),
    ),
    (
        "/dashboard/favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

/// The dashboard's routes: read routes (`auth.protect_reads` applies).
pub(crate) fn routes() -> ApiRouter {
    let mut router = ApiRouter::new().routes(routes!(stream));
    for &(path, content_type, body) in ASSETS {
        let handler = get(move || async move { asset(content_type, body) });
        router = router.routes((Vec::new(), asset_path(path, content_type), handler));
    }
    router
}

/// The OpenAPI operations of the embedded assets (they have no handler
/// function to annotate; [`routes`] registers each with its operation).
pub(crate) fn asset_paths() -> Paths {
    let mut paths = Paths::new();
    for &(path, content_type, _) in ASSETS {
        paths.paths.extend(asset_path(path, content_type).paths);
    }
    paths
}

/// The operation of one embedded asset: `GET path`, 200 with its content
/// type (a read route: 401 when `auth.protect_reads` is set).
fn asset_path(path: &str, content_type: &str) -> Paths {
    let schema = ObjectBuilder::new().schema_type(Type::String).build();
    let ok = ResponseBuilder::new()
        .description("The embedded asset (served with a strict Content-Security-Policy).")
        .content(
            content_type,
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build();
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let name = path.trim_start_matches('/');
    let operation = OperationBuilder::new()
        .tag("dashboard")
        .summary(Some(if path == "/" {
            "The dashboard page".to_string()
        } else {
            format!("Dashboard asset {name}")
        }))
        .operation_id(Some(if path == "/" {
            "dashboard_page".to_string()
        } else {
            format!("dashboard_asset_{}", name.replace(['/', '.'], "_"))
        }))
        .security(utoipa::openapi::security::SecurityRequirement::default())
        .security(utoipa::openapi::security::SecurityRequirement::new(
            "admin_token",
            Vec::<String>::new(),
        ))
        .security(utoipa::openapi::security::SecurityRequirement::new(
            "ingest_token",
            Vec::<String>::new(),
        ))
        .response("200", ok)
        .response(
            "401",
            error("No valid bearer token while `auth.protect_reads` is set (`unauthorized`)."),
        )
        .response(
            "503",
            error("The node cannot serve the request now (`overloaded`, `request_timeout`)."),
        )
        .build();
    let mut paths = Paths::new();
    paths.add_path_operation(path, vec![HttpMethod::Get], operation);
    paths
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            // The assets change only with the binary: revalidate each load.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        body,
    )
        .into_response()
}

// ---- the stream -------------------------------------------------------------------

/// One point of the phi trend: only non-personal fields of a valuation.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct TrendPoint {
    /// The run's region.
    pub region: String,
    /// The latest `phi_qevf` (USD) of the region in this interval.
    pub phi_qevf: f64,
    /// Its EPH price (USD per EPH).
    pub eph_price: f64,
    /// When the node accepted that run (RFC 3339, µs).
    pub accepted_at: String,
    /// Its ledger block.
    pub block_index: u64,
    /// Its feed seq.
    pub seq: u64,
    /// Runs of this region folded into this point (1 or more).
    pub runs: u64,
}

impl TrendPoint {
    fn of(v: &FeedValuation) -> Self {
        Self {
            region: v.region.clone(),
            phi_qevf: v.phi_qevf,
            eph_price: v.eph_price,
            accepted_at: v.accepted_at.clone(),
            block_index: v.block_index,
            seq: v.seq,
            runs: 1,
        }
    }
}

/// The trend's recent past from the database: the newest
/// [`BACKFILL_RUNS`] runs inside [`WINDOW`], folded to at most one point per
/// region per second (the second's newest run), in seq order.
async fn backfill(state: &AppState, origin: &str) -> Result<Vec<TrendPoint>, ApiError> {
    let reader = state.node.store.reader();
    let newest = reader.max_feed_seq().await?;
    if newest == 0 {
        return Ok(Vec::new());
    }
    let from = newest.saturating_sub(u64::from(BACKFILL_RUNS) - 1).max(1);
    let cutoff = now_micros() - chrono::Duration::seconds(WINDOW.as_secs() as i64);
    let mut buckets: BTreeMap<(String, i64), TrendPoint> = BTreeMap::new();
    for record in reader.runs_from_feed_seq(from, BACKFILL_RUNS).await? {
        if record.accepted_at < cutoff {
            continue;
        }
        let Some(v) = feed_valuation(origin, &record) else {
            continue;
        };
        let key = (v.region.clone(), record.accepted_at.timestamp());
        let mut point = TrendPoint::of(&v);
        if let Some(earlier) = buckets.get(&key) {
            point.runs += earlier.runs;
        }
        buckets.insert(key, point);
    }
    let mut points: Vec<TrendPoint> = buckets.into_values().collect();
    points.sort_by_key(|p| p.seq);
    Ok(points)
}

/// Folds live valuations into at most one pending point per region.
#[derive(Debug, Default)]
pub struct Throttle {
    pending: BTreeMap<String, TrendPoint>,
}

impl Throttle {
    /// Keeps `v` as its region's latest value (a newer seq wins) and counts it.
    pub fn offer(&mut self, v: &FeedValuation) {
        match self.pending.get_mut(&v.region) {
            Some(point) => {
                let runs = point.runs + 1;
                if v.seq >= point.seq {
                    *point = TrendPoint::of(v);
                }
                point.runs = runs;
            }
            None => {
                self.pending.insert(v.region.clone(), TrendPoint::of(v));
            }
        }
    }

    /// The pending points, one per region, leaving none pending.
    pub fn take(&mut self) -> Vec<TrendPoint> {
        std::mem::take(&mut self.pending).into_values().collect()
    }

    /// Whether no point is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The state of one dashboard stream between events.
struct Feed {
    hub: Arc<MarketHub>,
    live: broadcast::Receiver<Arc<Live>>,
    stop: watch::Receiver<bool>,
    tick: Interval,
    throttle: Throttle,
    active: bool,
    first: Option<Event>,
    _slot: Slot<IpAddr>,
}

impl Feed {
    /// The next event, or `None` when the node stops.
    async fn next(&mut self) -> Option<Event> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            tokio::select! {
                biased;
                _ = self.stop.wait_for(|stop| *stop) => return None,
                item = self.live.recv() => match item {
                    // Only this node's own valuations: relayed ones carry
                    // another node's clock and seq space.
                    Ok(live) if live.valuation.origin == self.hub.origin => {
                        self.throttle.offer(&live.valuation);
                    }
                    Ok(_) => {}
                    // Behind: the points skipped are older than the ones to
                    // come, and only the latest per interval is shown anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.tick.tick() => {
                    let active = self.hub.is_active();
                    if active != self.active {
                        self.active = active;
                        return Some(json_event("status", &StatusEvent {
                            server_time: rfc3339_micros(now_micros()),
                            market_active: active,
                        }));
                    }
                    if !self.throttle.is_empty() {
                        return Some(points_event(self.throttle.take()));
                    }
                }
            }
        }
    }
}

fn json_event(name: &str, value: &impl Serialize) -> Event {
    let data = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    Event::default().event(name).data(data)
}

fn points_event(points: Vec<TrendPoint>) -> Event {
    json_event(
        "points",
        &PointsEvent {
            server_time: rfc3339_micros(now_micros()),
            points,
        },
    )
}

/// The `hello` event that opens a dashboard stream.
#[derive(Serialize, ToSchema)]
pub(crate) struct HelloEvent<'a> {
    /// This node's origin.
    origin: &'a str,
    /// When it was sent (RFC 3339 UTC, µs).
    server_time: String,
    /// Whether the market feed publishes.
    market_active: bool,
    /// The configured regions.
    regions: &'a [String],
    /// Per region, at most one point per this many ms.
    throttle_ms: u64,
    /// The trend window the page shows, seconds.
    window_seconds: u64,
    /// The newest stored point per region.
    latest: Vec<TrendPoint>,
    /// The recent past of the trend (at most one point per region per second).
    recent: Vec<TrendPoint>,
}

/// A `points` event: the latest point per region of one throttle interval.
#[derive(Serialize, ToSchema)]
pub(crate) struct PointsEvent {
    /// When it was sent.
    server_time: String,
    /// One point per region that had runs.
    points: Vec<TrendPoint>,
}

/// A `status` event: the feed was switched on or off.
#[derive(Serialize, ToSchema)]
pub(crate) struct StatusEvent {
    /// When it was sent.
    server_time: String,
    /// Whether the market feed publishes now.
    market_active: bool,
}

/// `GET /v1/dashboard/stream`: `hello` (origin, regions, whether the feed is
/// active, the throttle and window, and the newest stored point per region),
/// then `points` at most every [`THROTTLE`] while valuations arrive and
/// `status` when the feed is switched on or off.
/// A client may hold `limits.max_dashboard_streams_per_client` streams (429
/// past it), the node `limits.max_dashboard_streams` (503 past it).
#[utoipa::path(
    get,
    path = "/v1/dashboard/stream",
    tag = "dashboard",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "An endless `text/event-stream`: `hello` (a `HelloEvent`), then `points` (`PointsEvent`) and `status` (`StatusEvent`) events; each `data` is one JSON object.", content(
            (HelloEvent = "text/event-stream"),
        )),
        (status = 429, response = TooManyRequests),
        RouteErrors,
    )
)]
pub(crate) async fn stream(
    State(state): State<Arc<AppState>>,
    ClientIp(client): ClientIp,
) -> Result<Response, ApiError> {
    let slot = state
        .limits
        .dashboard_streams
        .acquire(client)
        .map_err(|refusal| {
            state.node.metrics.reject("too_many_connections");
            refusal.into_api_error("dashboard streams")
        })?;
    let hub = state.node.market.clone();
    // Subscribe before reading the newest stored runs, so nothing committed
    // in between is missed (a run seen twice only updates its point).
    let live = hub.subscribe();
    let mut latest = Vec::new();
    for record in state.node.store.reader().latest_run_per_region().await? {
        if let Some(v) = feed_valuation(&hub.origin, &record) {
            latest.push(TrendPoint::of(&v));
        }
    }
    let recent = backfill(&state, &hub.origin).await?;
    let active = hub.is_active();
    let regions = state.node.regions.names();
    let hello = json_event(
        "hello",
        &HelloEvent {
            origin: &hub.origin,
            server_time: rfc3339_micros(now_micros()),
            market_active: active,
            regions,
            throttle_ms: THROTTLE.as_millis() as u64,
            window_seconds: WINDOW.as_secs(),
            latest,
            recent,
        },
    )
    .retry(RETRY);
    let mut tick = tokio::time::interval(THROTTLE);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let feed = Feed {
        hub,
        live,
        stop: state.node.stop.clone(),
        tick,
        throttle: Throttle::default(),
        active,
        first: Some(hello),
        _slot: slot,
    };
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<Event, Infallible>(event), feed))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qunimbus_core::DataClass;

    fn valuation(region: &str, seq: u64, phi: f64) -> FeedValuation {
        FeedValuation {
            origin: "o".into(),
            seq,
            server_time: String::new(),
            accepted_at: format!("2026-01-01T00:00:{seq:02}.000000Z"),
            region: region.into(),
            data_class: DataClass::Public,
            run_id: Some(format!("secret-{seq}")),
            run_ref: None,
            eta_ent: 0.9,
            coherence_variance: 0.01,
            runtime_hours: 1.0,
            eph_delivered: 2.0,
            phi_qevf: phi,
            price_multiplier: 1.0,
            market_value: phi,
            eph_price: phi / 2.0,
            block_index: seq + 1,
        }
    }

    #[test]
    fn throttle_keeps_the_latest_point_per_region_and_counts_runs() {
        let mut t = Throttle::default();
        assert!(t.is_empty());
        t.offer(&valuation("EU", 1, 10.0));
        t.offer(&valuation("EU", 3, 30.0));
        // Out of order: counted, but the newer value stays.
        t.offer(&valuation("EU", 2, 20.0));
        t.offer(&valuation("APAC", 4, 40.0));
        let points = t.take();
        assert!(t.is_empty());
        assert_eq!(points.len(), 2);
        let eu = points.iter().find(|p| p.region == "EU").unwrap();
        assert_eq!((eu.seq, eu.phi_qevf, eu.runs), (3, 30.0, 3));
        assert_eq!(eu.block_index, 4);
        let apac = points.iter().find(|p| p.region == "APAC").unwrap();
        assert_eq!((apac.seq, apac.runs, apac.eph_price), (4, 1, 20.0));
    }

    #[test]
    fn points_carry_no_run_id_or_inputs() {
        let point = TrendPoint::of(&valuation("EU", 7, 1.5));
        let text = serde_json::to_string(&point).unwrap();
        for absent in ["run_id", "secret", "eta_ent", "data_class", "eph_delivered"] {
            assert!(!text.contains(absent), "{text}");
        }
    }

    #[test]
    fn every_asset_is_embedded_with_a_type() {
        for (path, content_type, body) in ASSETS {
            assert!(!body.is_empty(), "{path}");
            assert!(!content_type.is_empty(), "{path}");
        }
        let html = std::str::from_utf8(ASSETS[0].2).unwrap();
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
