//! The API server: Neutron v2.0 REST and the agent-facing stream.
//!
//! Handlers stay thin: parse the request, run domain rules and store operations in one
//! transaction, and shape the response. Errors of every layer are mapped to the Neutron error
//! body in one place ([`error`]).

mod address_groups;
mod agents;
mod app;
pub mod auth;
mod default_rules;
mod error;
mod floating_ips;
mod ip_availability;
mod meta;
pub mod metrics;
mod ml2;
mod networks;
mod openapi;
mod policy;
mod ports;
mod quotas;
mod rbac;
mod request;
mod resilience;
mod response;
mod routers;
mod security_groups;
mod segments;
mod state;
mod subnet_pools;
mod subnets;
mod tags;

pub use state::{App, ServerConfig};

use std::future::IntoFuture;

pub(crate) use app::ports::heartbeat_fresh as ports_alive;

use axum::routing::get;
use axum::Router;

/// The whole HTTP surface.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(meta::versions))
        .route("/v2.0", get(meta::v2_root))
        .route("/v2.0/", get(meta::v2_root))
        .route("/v2.0/extensions", get(meta::extensions))
        .route("/v2.0/extensions/{alias}", get(meta::extension))
        .merge(networks::routes())
        .merge(subnets::routes())
        .merge(ports::routes())
        .merge(agents::routes())
        .merge(security_groups::routes())
        .merge(address_groups::routes())
        .merge(default_rules::routes())
        .merge(segments::routes())
        .merge(rbac::routes())
        .merge(subnet_pools::routes())
        .merge(tags::routes())
        .merge(ip_availability::routes())
        .merge(quotas::routes())
        .merge(routers::routes())
        .merge(floating_ips::routes())
        .fallback(meta::not_found)
        .layer(axum::middleware::from_fn(resilience::retry_transient))
        .layer(axum::middleware::from_fn(request::refuse_delete_bodies))
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth::middleware))
        .layer(axum::middleware::from_fn_with_state(app.clone(), resilience::limit_body))
        .layer(axum::middleware::from_fn_with_state(app.clone(), metrics::track))
        .layer(axum::middleware::map_request_with_state(app.clone(), response::mark_scheme))
        .layer(axum::middleware::map_response(response::neutron_error_bodies))
        .layer(axum::middleware::map_response(response::add_request_id))
        .route("/metrics", get(metrics::serve))
        .route("/openapi.json", get(openapi::serve))
        .with_state(app)
}

/// Serve until the listener fails. On PostgreSQL this also numbers the change log's new rows
/// and follows the revisions other servers number.
pub async fn serve(app: App, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_until(app, listener, std::future::pending()).await
}

/// [`serve`] until `stop` resolves (SIGTERM), then stop gracefully: accept nothing more, end
/// the agent streams (their agents reconnect to another server at once), and let requests in
/// flight finish, for at most `[DEFAULT] graceful_shutdown_timeout`.
pub async fn serve_until<L>(
    app: App,
    listener: L,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let follower = app.clone();
    let follow = tokio::spawn(async move { follower.store.follow_other_servers(&follower.config.connection).await });
    let sequencer = app.store.clone();
    let sequence = tokio::spawn(async move { sequencer.run_sequencer().await });
    // Centralized SNAT as the gateway hosts are now (a server that stopped between a gateway
    // host's change and the rescheduling after it, or a new `max_l3_agents_per_router`).
    let scheduler = app.clone();
    let schedule = tokio::spawn(async move {
        let ctx = app::snat_gateways::service_context(&scheduler);
        if let Err(e) = app::snat_gateways::schedule_all(&scheduler, &ctx).await {
            tracing::warn!(error = ?e.0, "cannot schedule centralized SNAT at start");
        }
        // DHCP ports for networks from before them.
        if let Err(e) = app::dhcp_ports::reconcile_all(&scheduler, &ctx).await {
            tracing::warn!(error = ?e.0, "cannot make the networks' DHCP ports at start");
        }
    });
    let closing = app.closing.clone();
    let grace = app.config.graceful_shutdown_timeout;
    let signal = async move {
        stop.await;
        tracing::info!(?grace, "stopping: accepting no more connections, ending agent streams");
        closing.send_replace(true);
    };
    let mut closed = app.closing.subscribe();
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(signal);
    let served = tokio::select! {
        served = server.into_future() => served,
        _ = async {
            let _ = closed.wait_for(|c| *c).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("requests still in flight after graceful_shutdown_timeout; stopping anyway");
            Ok(())
        }
    };
    follow.abort();
    sequence.abort();
    schedule.abort();
    served
}
