//! The agent's figures in the Prometheus text format, served on `[agent] metrics_listen`
//! when it is set: reconcile passes per feature (how many, how long, how many kernel
//! changes), the stream (connected, revision, messages, reconnects) and the ports.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassLabels {
    pub feature: String,
    /// `full` or `changes`.
    pub scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeatureLabels {
    pub feature: String,
}

fn pass_histogram() -> Histogram {
    // 0.1 ms .. ~3 s
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

#[derive(Clone)]
pub struct AgentMetrics {
    registry: Arc<Registry>,
    pub passes: Family<PassLabels, Counter>,
    pub pass_seconds: Family<FeatureLabels, Histogram, fn() -> Histogram>,
    pub changes: Family<FeatureLabels, Counter>,
    pub pass_failures: Family<FeatureLabels, Counter>,
    pub stream_connected: Gauge,
    pub stream_revision: Gauge,
    pub stream_messages: Counter,
    pub stream_reconnects: Counter,
    pub local_ports: Gauge,
    pub active_ports: Gauge,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics::new()
    }
}

impl AgentMetrics {
    pub fn new() -> AgentMetrics {
        let mut registry = Registry::with_prefix("neutrino_agent");
        let m = AgentMetrics {
            registry: Arc::new(Registry::default()),
            passes: Family::default(),
            pass_seconds: Family::new_with_constructor(pass_histogram),
            changes: Family::default(),
            pass_failures: Family::default(),
            stream_connected: Gauge::default(),
            stream_revision: Gauge::default(),
            stream_messages: Counter::default(),
            stream_reconnects: Counter::default(),
            local_ports: Gauge::default(),
            active_ports: Gauge::default(),
        };
        registry.register("reconcile_passes", "Reconcile passes by feature and scope", m.passes.clone());
        registry.register("reconcile_duration_seconds", "Reconcile pass duration by feature", m.pass_seconds.clone());
        registry.register("reconcile_changes", "Kernel changes made by reconcile passes", m.changes.clone());
        registry.register(
            "reconcile_failures",
            "Reconcile passes that failed (retried as full passes)",
            m.pass_failures.clone(),
        );
        registry.register("stream_connected", "1 while the host's stream is connected", m.stream_connected.clone());
        registry.register(
            "stream_revision",
            "The change-log revision the host's view is at",
            m.stream_revision.clone(),
        );
        registry.register("stream_messages", "Stream messages received", m.stream_messages.clone());
        registry.register("stream_reconnects", "Times the stream was opened again", m.stream_reconnects.clone());
        registry.register("local_ports", "Ports bound to this host", m.local_ports.clone());
        registry.register("active_ports", "Local ports reported ACTIVE", m.active_ports.clone());
        AgentMetrics { registry: Arc::new(registry), ..m }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Serve `GET /metrics` on `listen` until the process ends.
pub async fn serve(metrics: AgentMetrics, listen: std::net::SocketAddr) {
    use axum::http::header;
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                ([(header::CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], metrics.render())
            }
        }),
    );
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            tracing::info!(%listen, "serving agent metrics");
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "agent metrics endpoint failed");
            }
        }
        Err(e) => tracing::warn!(%listen, error = %e, "cannot serve agent metrics"),
    }
}
