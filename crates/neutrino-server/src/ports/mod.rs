//! `/v2.0/ports`

mod addresses;
mod options;

use addresses::assign_fixed_ips;
use options::{apply_address_pairs, apply_dhcp_options, apply_security_groups, dns_name_of};

use crate::create::create_all;
use crate::error::{HttpError, HttpResult};
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_query, project_of, Attrs};
use crate::response::{many, many_raw, no_content, one, PageInfo};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_api::resources::Port;
use neutrino_api::ApiError;
use neutrino_domain::binding::{bind_port, AgentView, BindingOutcome, BindingRequest, SegmentView, VIF_TYPE_UNBOUND};
use neutrino_domain::mac::{normalize_mac, random_port_mac};
use neutrino_domain::resources;
use neutrino_domain::subnet::is_auto_address;
use neutrino_store::{self as store, Tx};
use serde_json::{json, Map, Value};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/ports", collection("port", list, create))
        .route("/v2.0/ports/{id}", get(show).put(update).delete(delete))
}

const VNIC_TYPES: &[&str] = &["normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder"];

/// Attributes Neutrino accepts only with their default value for now.
fn refuse_unsupported(attrs: &Attrs) -> Result<(), ApiError> {
    attrs.only_defaults(&[("qos_policy_id", json!(null))])
}

fn requested_fixed_ips(attrs: &Attrs) -> Result<Option<Vec<Map<String, Value>>>, ApiError> {
    attrs.object_list("fixed_ips", &["subnet_id", "ip_address"])
}

fn requested_mac(attrs: &Attrs) -> Result<Option<String>, ApiError> {
    match attrs.string("mac_address", 32)? {
        None => Ok(None),
        Some(m) => normalize_mac(&m)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_attribute("mac_address", format!("'{m}' is not a valid MAC address"))),
    }
}

fn vnic_type(attrs: &Attrs) -> Result<Option<String>, ApiError> {
    match attrs.string("binding:vnic_type", 64)? {
        Some(v) if !VNIC_TYPES.contains(&v.as_str()) => {
            Err(ApiError::invalid_attribute("binding:vnic_type", format!("'{v}' is not in {VNIC_TYPES:?}")))
        }
        other => Ok(other),
    }
}

fn mac_in_use(network_id: &str, mac: &str) -> HttpError {
    HttpError(ApiError::conflict(
        "MacAddressInUse",
        format!("Unable to complete operation for network {network_id}. The mac address {mac} is in use."),
    ))
}

async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> HttpResult<Response> {
    create_all(&app, &headers, &body, &resources::PORT, create_one).await
}

async fn create_one(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<Port> {
    refuse_unsupported(attrs)?;
    attrs.required("network_id")?;
    let network_id = attrs.string("network_id", 36)?.unwrap_or_default();
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    let given_mac = requested_mac(attrs)?;
    let fixed_ips = requested_fixed_ips(attrs)?;
    let now = store::now_timestamp();
    let mut port = Port {
        id: uuid::Uuid::new_v4().to_string(),
        name: attrs.string("name", 255)?.unwrap_or_default(),
        network_id: network_id.clone(),
        tenant_id: project_id.clone(),
        project_id,
        mac_address: String::new(),
        admin_state_up: attrs.boolean("admin_state_up")?.unwrap_or(true),
        status: "DOWN".into(),
        device_id: attrs.string("device_id", 255)?.unwrap_or_default(),
        device_owner: attrs.string("device_owner", 255)?.unwrap_or_default(),
        fixed_ips: Vec::new(),
        port_security_enabled: true,
        qos_policy_id: None,
        qos_network_policy_id: None,
        security_groups: Vec::new(),
        vnic_type: vnic_type(attrs)?.unwrap_or_else(|| "normal".into()),
        profile: attrs.object("binding:profile")?.unwrap_or_default(),
        host_id: attrs.string("binding:host_id", 255)?.unwrap_or_default(),
        vif_type: String::new(),
        vif_details: Map::new(),
        allowed_address_pairs: Vec::new(),
        extra_dhcp_opts: Vec::new(),
        description: attrs.string("description", 255)?.unwrap_or_default(),
        ip_allocation: "immediate".into(),
        resource_request: None,
        dns_name: Some(dns_name_of(app, attrs)?.unwrap_or_default()),
        dns_assignment: None,
        tags: Vec::new(),
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };

    crate::app::authorize::may_use_network(
        &crate::auth::current(),
        tx,
        &network_id,
        &port.project_id,
        store::NetworkUse::Share,
    )
    .await?;
    let network = store::get_network(tx.conn(), &network_id).await?;
    port.port_security_enabled = attrs.boolean("port_security_enabled")?.unwrap_or(network.port_security_enabled);
    let segment = bind(app, tx, &mut port).await?;
    apply_dhcp_options(attrs, &mut port)?;
    insert_with_mac(tx, &mut port, given_mac).await?;
    if segment.is_some() {
        store::set_port_segment(tx, &port.id, segment.as_deref()).await?;
    }
    if attrs.has("allowed_address_pairs") {
        // Pairs without a MAC take the port's, known only now.
        apply_address_pairs(attrs, &mut port)?;
        store::update_port_row(tx, &port, port.revision_number).await?;
    }
    let groups = match attrs.string_list("security_groups")? {
        Some(given) => given,
        // Neutron gives every port its project's `default` group, except network-owned ports
        // and ports without port security.
        None if port.port_security_enabled && !port.device_owner.starts_with("network:") => {
            vec![store::ensure_default_group(tx, &port.project_id).await?]
        }
        None => Vec::new(),
    };
    apply_security_groups(tx, &mut port, groups, true).await?;
    let subnets = store::network_subnets(tx.conn(), &network_id).await?;
    port.fixed_ips = assign_fixed_ips(tx, &port, &subnets, fixed_ips).await?;
    port.tags = crate::tags::tags_on_create(attrs)?;
    store::insert_initial_tags(tx, "ports", &port.id, &port.tags).await?;
    store::store_port_body(tx, &port).await?;
    app.store.finish_port(&mut port);
    Ok(port)
}

/// Insert the port with the given MAC, or a random one (drawing again on the rare clash).
async fn insert_with_mac(tx: &mut Tx, port: &mut Port, given: Option<String>) -> HttpResult<()> {
    let attempts = if given.is_some() { 1 } else { 16 };
    for _ in 0..attempts {
        port.mac_address = given.clone().unwrap_or_else(|| random_port_mac(&mut rand::thread_rng()));
        match store::insert_port(tx, port).await {
            Ok(true) => return Ok(()),
            Ok(false) => continue,
            Err(e) if e.is_foreign_key_violation() => {
                return Err(HttpError(ApiError::not_found("network", &port.network_id)))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(mac_in_use(&port.network_id, &port.mac_address))
}

/// Bind the port on its host: walk the mechanism drivers over the network's segments and the
/// host's agents. Returns the segment bound to (recorded once the port row exists).
async fn bind(app: &App, tx: &mut Tx, port: &mut Port) -> HttpResult<Option<String>> {
    if port.host_id.is_empty() {
        port.vif_type = VIF_TYPE_UNBOUND.to_string();
        port.vif_details = Map::new();
        return Ok(None);
    }
    let segments: Vec<SegmentView> =
        store::network_segments(tx.conn(), &port.network_id).await?.into_iter().map(SegmentView::from).collect();
    let agents: Vec<AgentView> = store::agents_on_host(tx.conn(), &port.host_id)
        .await?
        .into_iter()
        .map(|a| AgentView {
            alive: heartbeat_fresh(&a.heartbeat_at, app.config.agent_down_time),
            admin_state_up: a.admin_state_up,
            agent_type: a.agent_type,
            configurations: a.configurations,
        })
        .collect();
    let request = BindingRequest {
        port_id: &port.id,
        host_id: &port.host_id,
        network_id: &port.network_id,
        vnic_type: &port.vnic_type,
        segments: &segments,
        agents: &agents,
    };
    let outcome = bind_port(app.ml2.drivers(), &request);
    port.vif_type = outcome.vif_type().to_string();
    match outcome {
        BindingOutcome::Bound(b) => {
            tracing::debug!(port = %port.id, host = %port.host_id, driver = b.driver, segment = %b.segment_id, "port bound");
            port.vif_details = b.vif_details;
            Ok(Some(b.segment_id))
        }
        BindingOutcome::Failed { reasons } => {
            tracing::warn!(port = %port.id, host = %port.host_id, reasons = %reasons.join("; "), "binding failed");
            port.vif_details = Map::new();
            Ok(None)
        }
        BindingOutcome::Unbound => {
            port.vif_details = Map::new();
            Ok(None)
        }
    }
}

/// Whether a heartbeat stamped `at` (Neutron timestamp) is younger than `down_time` seconds.
pub(crate) fn heartbeat_fresh(at: &str, down_time: u64) -> bool {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    match time::PrimitiveDateTime::parse(at, &fmt) {
        Ok(t) => {
            let age = time::OffsetDateTime::now_utc() - t.assume_utc();
            age.whole_seconds() <= down_time as i64
        }
        Err(_) => false,
    }
}

async fn show(State(app): State<App>, Path(id): Path<String>, RawQuery(q): RawQuery) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    let mut port = store::get_port(&mut c, &id).await?;
    app.store.finish_port(&mut port);
    Ok(one(StatusCode::OK, "port", &port, &q.fields))
}

async fn list(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let info = PageInfo { headers: &headers, collection: "ports", raw_query: raw.as_deref(), page: &q.page };
    let mut c = app.store.reader().await?;
    if q.fields.is_empty() {
        let ports = store::list_ports_json(&mut c, &q.filters, &q.page, &q.visibility).await?;
        let links = info.links(ports.len(), ports.first().map(|p| p.0.as_str()), ports.last().map(|p| p.0.as_str()));
        return Ok(many_raw("ports", &ports, links));
    }
    let mut ports = store::list_ports(&mut c, &q.filters, &q.page, &q.visibility).await?;
    ports.iter_mut().for_each(|p| app.store.finish_port(p));
    let links = info.links(ports.len(), ports.first().map(|p| p.id.as_str()), ports.last().map(|p| p.id.as_str()));
    Ok(many("ports", &ports, &q.fields, links))
}

async fn update(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::PORT)?;
    refuse_unsupported(&attrs)?;
    let new_mac = requested_mac(&attrs)?;
    let fixed_ips = requested_fixed_ips(&attrs)?;
    let mut tx = app.store.begin().await?;
    let mut port = store::get_port(tx.conn(), &id).await?;
    let expected = port.revision_number;
    if if_match_revision(&headers)?.is_some_and(|r| r != expected) {
        return Err(store::StoreError::RevisionMismatch.into());
    }
    // As Neutron before any port update: the project's `default` group exists again.
    store::ensure_default_group(&mut tx, &port.project_id).await?;
    if let Some(v) = attrs.string("name", 255)? {
        port.name = v;
    }
    if let Some(v) = attrs.string("description", 255)? {
        port.description = v;
    }
    if let Some(v) = attrs.boolean("admin_state_up")? {
        port.admin_state_up = v;
    }
    if let Some(v) = attrs.string("device_id", 255)? {
        port.device_id = v;
    }
    if let Some(v) = attrs.string("device_owner", 255)? {
        port.device_owner = v;
    }
    if let Some(v) = vnic_type(&attrs)? {
        port.vnic_type = v;
    }
    if let Some(v) = attrs.object("binding:profile")? {
        port.profile = v;
    }
    if let Some(v) = attrs.boolean("port_security_enabled")? {
        port.port_security_enabled = v;
    }
    if let Some(name) = dns_name_of(&app, &attrs)? {
        port.dns_name = Some(name);
    }
    let groups = attrs.string_list("security_groups")?.unwrap_or_else(|| port.security_groups.clone());
    apply_security_groups(&mut tx, &mut port, groups, false).await?;
    apply_address_pairs(&attrs, &mut port)?;
    apply_dhcp_options(&attrs, &mut port)?;
    let mac_changed = new_mac.as_ref().is_some_and(|m| *m != port.mac_address);
    if mac_changed {
        if port.vif_type != "unbound" && port.vif_type != "binding_failed" {
            return Err(HttpError(ApiError::conflict(
                "PortBound",
                format!("Unable to complete operation on port {id}, port is already bound, port type: {}, old_mac {}, new_mac {}.",
                    port.vif_type, port.mac_address, new_mac.clone().unwrap_or_default()),
            )));
        }
        port.mac_address = new_mac.unwrap_or_default();
    }
    let new_host = attrs.string("binding:host_id", 255)?;
    let rebind = new_host.is_some() || attrs.has("binding:vnic_type") || attrs.has("binding:profile");
    if let Some(host) = new_host {
        if host != port.host_id {
            port.host_id = host;
            port.status = "DOWN".into();
        }
    }
    if rebind {
        let segment = bind(&app, &mut tx, &mut port).await?;
        store::set_port_segment(&mut tx, &id, segment.as_deref()).await?;
    }
    port.updated_at = store::now_timestamp();
    port.revision_number = expected + 1;
    match store::update_port_row(&mut tx, &port, expected).await {
        Err(e) if e.is_unique_violation() => return Err(mac_in_use(&port.network_id, &port.mac_address)),
        other => other?,
    }
    if fixed_ips.is_some() || mac_changed {
        let subnets = store::network_subnets(tx.conn(), &port.network_id).await?;
        // A new MAC moves EUI-64 addresses; every other address is kept as it is.
        let requested = fixed_ips.unwrap_or_else(|| {
            port.fixed_ips
                .iter()
                .map(|f| {
                    let auto =
                        subnets.iter().any(|s| s.id == f.subnet_id && is_auto_address(s.ipv6_address_mode.as_deref()));
                    let mut m = Map::new();
                    m.insert("subnet_id".into(), Value::String(f.subnet_id.clone()));
                    if !auto {
                        m.insert("ip_address".into(), Value::String(f.ip_address.clone()));
                    }
                    m
                })
                .collect()
        });
        store::release_port_ips(&mut tx, &id).await?;
        port.fixed_ips = assign_fixed_ips(&mut tx, &port, &subnets, Some(requested)).await?;
    }
    store::store_port_body(&mut tx, &port).await?;
    tx.commit().await?;
    app.store.finish_port(&mut port);
    Ok(one(StatusCode::OK, "port", &port, &[]))
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    store::delete_port(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(no_content())
}
