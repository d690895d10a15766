//! The agents API (`/v2.0/agents`, `/v2.0/availability_zones`) and the agents' own calls:
//! registration/heartbeat and port status reports.

use crate::app::agents::{self as ops, UpdateAgent};
use crate::auth::Caller;
use crate::error::HttpResult;
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use neutrino_api::agent::{AgentRegistration, PortStatusReport};
use neutrino_api::ApiError;
use neutrino_store::AgentRecord;
use serde_json::json;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/agents", get(list_agents))
        .route("/v2.0/agents/{id}", get(show_agent).put(update_agent).delete(delete_agent))
        .route("/v2.0/availability_zones", get(list_zones))
        .route("/v2.0/neutrino/agents", post(register))
        .route("/v2.0/neutrino/hosts/{host}/stream", get(super::stream::stream))
        .route("/v2.0/neutrino/ports/status", put(port_status))
        .route("/v2.0/neutrino/hosts/{host}/routers/{router}/snat_port", put(host_gateway_port))
}

fn agent_json(a: &AgentRecord, down_time: u64) -> serde_json::Value {
    let neutron_time = |t: &str| t.trim_end_matches('Z').replace('T', " ");
    json!({
        "id": a.id,
        "agent_type": a.agent_type,
        "binary": "neutrino-agent",
        "topic": "N/A",
        "host": a.host,
        "admin_state_up": a.admin_state_up,
        "alive": crate::ports_alive(&a.heartbeat_at, down_time),
        "created_at": neutron_time(&a.created_at),
        "started_at": neutron_time(&a.started_at),
        "heartbeat_timestamp": neutron_time(&a.heartbeat_at),
        "description": a.description,
        "availability_zone": a.availability_zone,
        "resources_synced": null,
        "configurations": configurations_json(a),
    })
}

/// What the agent reported, plus its VTEP, with Neutron's key names.
fn configurations_json(a: &AgentRecord) -> serde_json::Value {
    let mut c = serde_json::to_value(&a.configurations).unwrap_or_else(|_| json!({}));
    if let Some(m) = c.as_object_mut() {
        m.insert("tunneling_ip".into(), json!(a.tunnel_ip));
    }
    c
}

/// `GET /v2.0/agents`, with Neutron's filters on the agent's attributes and `fields`.
async fn list_agents(State(app): State<App>, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = crate::request::parse_query(raw.as_deref())?;
    let filters: Vec<&neutrino_store::Filter> = q.filters.iter().collect();
    let def = &neutrino_domain::resources::AGENT;
    if let Some(f) = filters.iter().find(|f| !def.knows(&f.attribute) && f.attribute != "description") {
        return Err(ApiError::bad_request(format!("['{}'] is invalid attribute for filtering", f.attribute)).into());
    }
    let agents = ops::list(&app).await?;
    let list: Vec<serde_json::Value> = agents
        .iter()
        .map(|a| agent_json(a, app.config.agent_down_time))
        .filter(|a| filters.iter().all(|f| f.values.iter().any(|v| matches_filter(a.get(&f.attribute), v))))
        .collect();
    Ok(crate::response::many("agents", &list, &q.fields, Vec::new()))
}

/// Whether a shown value equals a filter's text (booleans as Neutron converts them).
fn matches_filter(value: Option<&serde_json::Value>, filter: &str) -> bool {
    match value {
        Some(serde_json::Value::String(s)) => s == filter,
        // oslo's bool_from_string, as Neutron converts boolean filters.
        Some(serde_json::Value::Bool(b)) => {
            matches!(filter.to_ascii_lowercase().as_str(), "true" | "1" | "t" | "yes" | "y" | "on") == *b
        }
        Some(serde_json::Value::Number(n)) => n.to_string() == filter,
        _ => false,
    }
}

async fn show_agent(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    let a = ops::show(&app, &ctx, &id).await?;
    Ok(axum::Json(json!({ "agent": agent_json(&a, app.config.agent_down_time) })).into_response())
}

/// `PUT /v2.0/agents/{id}`: `admin_state_up` and `description`.
async fn update_agent(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = crate::request::parse_body(&body, &neutrino_domain::resources::AGENT)?;
    let request = UpdateAgent {
        given: attrs.given().clone(),
        admin_state_up: attrs.boolean("admin_state_up")?,
        description: attrs.nullable_string("description")?,
    };
    let a = ops::update(&app, &ctx, &id, request).await?;
    Ok(axum::Json(json!({ "agent": agent_json(&a, app.config.agent_down_time) })).into_response())
}

async fn delete_agent(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete(&app, &ctx, &id).await?;
    Ok(crate::response::no_content())
}

/// `GET /v2.0/availability_zones`: the zones of the registered agents, `available` while an
/// agent in the zone is alive.
async fn list_zones(State(app): State<App>, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = crate::request::parse_query(raw.as_deref())?;
    let zones = ops::zones(&app).await?;
    let list: Vec<serde_json::Value> = zones
        .into_iter()
        .map(|(name, alive)| json!({"name": name, "resource": "network", "state": if alive { "available" } else { "unavailable" }}))
        .filter(|z| {
            q.filters.iter().all(|f| {
                f.values.iter().any(|v| z.get(&f.attribute).and_then(|x| x.as_str()) == Some(v.as_str()))
            })
        })
        .collect();
    Ok(crate::response::many("availability_zones", &list, &q.fields, Vec::new()))
}

async fn register(State(app): State<App>, RawQuery(q): RawQuery, body: Bytes) -> HttpResult<Response> {
    let reg: AgentRegistration = serde_json::from_slice(&body).map_err(|_| ApiError::malformed_body())?;
    if reg.host.is_empty() || reg.tunnel_ip.parse::<std::net::IpAddr>().is_err() {
        return Err(ApiError::bad_request("host and a valid tunnel_ip are required").into());
    }
    let starting = q.as_deref().is_some_and(|q| q.contains("starting=true"));
    let record = ops::register(&app, &reg, starting).await?;
    Ok(axum::Json(json!({ "agent": agent_json(&record, app.config.agent_down_time) })).into_response())
}

/// `PUT /v2.0/neutrino/hosts/{host}/routers/{router}/snat_port`: the host's own address for a
/// router's SNAT on its external network (distributed SNAT), made on first use.
async fn host_gateway_port(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path((host, router)): Path<(String, String)>,
) -> HttpResult<Response> {
    let port = crate::app::routers::host_gateway_port(&app, &ctx, &host, &router).await?;
    Ok(axum::Json(json!({ "port": port })).into_response())
}

async fn port_status(State(app): State<App>, body: Bytes) -> HttpResult<Response> {
    let report: PortStatusReport = serde_json::from_slice(&body).map_err(|_| ApiError::malformed_body())?;
    if report.ports.values().any(|s| s != "ACTIVE" && s != "DOWN") {
        return Err(ApiError::bad_request("port status must be ACTIVE or DOWN").into());
    }
    let changed = ops::port_status(&app, &report).await?;
    Ok(axum::Json(json!({ "changed": changed })).into_response())
}
