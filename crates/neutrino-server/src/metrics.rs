//! `GET /metrics`: the server's figures in the Prometheus text format.
//!
//! - API requests by route template, method and status, and their latency;
//! - the agent streams: how many are connected and for how many hosts, the updates and bytes
//!   sent, and how far each stream is behind the change log;
//! - the change log: the head revision and the revision this server's views are at.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    pub host: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// Every figure the server exports. Cheap to clone (all handles are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub streams: Gauge,
    pub stream_hosts: Gauge,
    pub stream_updates: Counter,
    pub stream_bytes: Counter,
    pub stream_lag: Family<HostLabels, Gauge>,
    pub log_head: Gauge,
    pub log_applied: Gauge,
    pub fanout_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("neutrino");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let streams = Gauge::default();
        let stream_hosts = Gauge::default();
        let stream_updates = Counter::default();
        let stream_bytes = Counter::default();
        let stream_lag = Family::<HostLabels, Gauge>::default();
        let log_head = Gauge::default();
        let log_applied = Gauge::default();
        let fanout_seconds = latency_histogram();
        registry.register("api_requests", "API requests by route template, method and status", requests.clone());
        registry.register("api_request_duration_seconds", "API request latency", request_seconds.clone());
        registry.register("streams_connected", "Agent streams connected to this server", streams.clone());
        registry.register("stream_hosts", "Hosts with at least one stream on this server", stream_hosts.clone());
        registry.register(
            "stream_updates",
            "Stream messages sent (snapshots, updates, heartbeats)",
            stream_updates.clone(),
        );
        registry.register("stream_bytes", "Bytes sent on agent streams", stream_bytes.clone());
        registry.register(
            "stream_lag_revisions",
            "Change-log revisions a stream has not been sent yet (the log head minus what it was sent)",
            stream_lag.clone(),
        );
        registry.register(
            "change_log_head_revision",
            "The highest revision of the change log known here",
            log_head.clone(),
        );
        registry.register(
            "change_log_applied_revision",
            "The revision this server's host views are at",
            log_applied.clone(),
        );
        registry.register(
            "fanout_duration_seconds",
            "Time to turn one batch of change-log revisions into host updates",
            fanout_seconds.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            requests,
            request_seconds,
            streams,
            stream_hosts,
            stream_updates,
            stream_bytes,
            stream_lag,
            log_head,
            log_applied,
            fanout_seconds,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Count and time every request, by the route template it matched (`/v2.0/ports/{id}`), so
/// ids do not make a series each.
pub async fn track(State(app): State<crate::App>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    let m = &app.metrics;
    m.requests.get_or_create(&RequestLabels { route: route.clone(), method: method.clone(), status }).inc();
    m.request_seconds.get_or_create(&RouteLabels { route, method }).observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn serve(State(app): State<crate::App>) -> Response {
    app.hub.refresh_metrics();
    let body = app.metrics.render();
    (StatusCode::OK, [(header::CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], body)
        .into_response()
}
