//! `/v2.0/ports`: requests parsed into [`CreatePort`] and [`UpdatePort`], handed to
//! [`crate::app::ports`], results rendered.

use crate::app::ports::{self as ops, AddressPairsRequest, CreatePort, FixedIpRequest, MacRequest, UpdatePort};
use crate::auth::Caller;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_create, parse_query, python_str, Attrs};
use crate::response::{self, many, many_raw, no_content, one, PageInfo};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_api::ApiError;
use neutrino_domain::mac::normalize_mac;
use neutrino_domain::port_options::DhcpOptionRequest;
use neutrino_domain::resources;
use serde_json::{json, Map, Value};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/ports", collection("port", list, create))
        .route("/v2.0/ports/{id}", get(show).put(update).delete(delete))
}

/// neutron-lib's `VNIC_TYPES`.
const VNIC_TYPES: &[&str] = &[
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "vdpa",
    "accelerator-direct",
    "accelerator-direct-physical",
    "remote-managed",
];

/// Attributes Neutrino accepts only with their default value for now.
fn refuse_unsupported(attrs: &Attrs) -> Result<(), ApiError> {
    attrs.only_defaults(&[("qos_policy_id", json!(null))])
}

fn text_of<'a>(entry: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    entry.get(key).and_then(Value::as_str)
}

/// `fixed_ips` as neutron-lib's `type:fixed_ips`: subnet ids are ids, an address is asked
/// for once.
fn requested_fixed_ips(attrs: &Attrs) -> Result<Option<Vec<FixedIpRequest>>, ApiError> {
    fixed_ips_of(attrs, "fixed_ips")
}

/// A `type:fixed_ips` attribute called `key` (also a router gateway's `external_fixed_ips`).
pub(crate) fn fixed_ips_of(attrs: &Attrs, key: &str) -> Result<Option<Vec<FixedIpRequest>>, ApiError> {
    let Some(entries) = attrs.object_list(key, &["subnet_id", "ip_address"])? else { return Ok(None) };
    let mut out: Vec<FixedIpRequest> = Vec::with_capacity(entries.len());
    for e in &entries {
        let request = FixedIpRequest {
            subnet_id: text_of(e, "subnet_id").map(String::from),
            ip_address: text_of(e, "ip_address").map(String::from),
        };
        if let Some(id) = request.subnet_id.as_deref().filter(|id| !neutrino_domain::validators::is_uuid_like(id)) {
            return Err(ApiError::invalid_attribute(key, neutrino_domain::validators::not_a_uuid(id)));
        }
        if let Some(ip) =
            request.ip_address.as_deref().filter(|ip| out.iter().any(|o| o.ip_address.as_deref() == Some(*ip)))
        {
            return Err(ApiError::invalid_attribute(key, format!("Duplicate IP address '{ip}'")));
        }
        out.push(request);
    }
    Ok(Some(out))
}

/// `mac_address`: given (normalized), or `null` for a new random one (`None` either way on a
/// create, where no MAC means a random one).
fn requested_mac(attrs: &Attrs) -> Result<Option<MacRequest>, ApiError> {
    if matches!(attrs.raw("mac_address"), Some(Value::Null)) {
        return Ok(Some(MacRequest::Regenerate));
    }
    Ok(given_mac(attrs)?.map(MacRequest::Given))
}

fn given_mac(attrs: &Attrs) -> Result<Option<String>, ApiError> {
    if matches!(attrs.raw("mac_address"), Some(Value::Null)) {
        return Ok(None);
    }
    match attrs.string("mac_address", 32)? {
        None => Ok(None),
        Some(m) => normalize_mac(&m)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_attribute("mac_address", format!("'{m}' is not a valid MAC address"))),
    }
}

fn vnic_type(attrs: &Attrs) -> Result<Option<String>, ApiError> {
    match attrs.string("binding:vnic_type", 64)? {
        // As neutron-lib's `type:values` words it.
        Some(v) if !VNIC_TYPES.contains(&v.as_str()) => {
            Err(ApiError::invalid_attribute("binding:vnic_type", format!("{v} is not in valid_values")))
        }
        other => Ok(other),
    }
}

/// ML2's limit on a port's `binding:profile`, as stored JSON.
const BINDING_PROFILE_LEN: usize = 4095;

/// `binding:profile`: an object (`null` is `{}`), at most [`BINDING_PROFILE_LEN`] as JSON.
fn profile(attrs: &Attrs) -> Result<Option<Map<String, Value>>, ApiError> {
    let profile = attrs.object("binding:profile")?;
    if profile.as_ref().is_some_and(|p| serde_json::to_string(p).map_or(0, |t| t.len()) > BINDING_PROFILE_LEN) {
        return Err(ApiError::invalid_input("binding:profile value too large"));
    }
    Ok(profile)
}

/// `binding:host_id`: no validator in neutron-lib; `null` (Nova unbinding a port) is no host.
fn host_id(attrs: &Attrs) -> Result<Option<String>, ApiError> {
    match attrs.raw("binding:host_id") {
        Some(Value::Null) => Ok(Some(String::new())),
        _ => attrs.string("binding:host_id", 255),
    }
}

/// `security_groups`: `null` is none (`convert_none_to_empty_list`).
fn security_groups(attrs: &Attrs) -> Result<Option<Vec<String>>, ApiError> {
    match attrs.raw("security_groups") {
        Some(Value::Null) => Ok(Some(Vec::new())),
        _ => attrs.uuid_list("security_groups"),
    }
}

/// `allowed_address_pairs` as neutron-lib's `validate_allowed_address_pairs`, in its order
/// and words: `None` when not given, no pairs for `null`.
fn address_pairs(attrs: &Attrs) -> Result<Option<AddressPairsRequest>, ApiError> {
    use neutrino_domain::port_options::MAX_ALLOWED_ADDRESS_PAIRS;
    let items = match attrs.raw("allowed_address_pairs") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::bad_request("Allowed address pairs must be a list.")),
    };
    if items.len() > MAX_ALLOWED_ADDRESS_PAIRS {
        return Err(ApiError::bad_request_kind(
            "AllowedAddressPairExhausted",
            format!("The number of allowed address pair exceeds the maximum {MAX_ALLOWED_ADDRESS_PAIRS}."),
        ));
    }
    let mut pairs: AddressPairsRequest = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(pair) = item else {
            let reason = format!("'{}' is not a dictionary", python_str(item));
            return Err(ApiError::invalid_attribute("allowed_address_pairs", reason));
        };
        let text = |key: &str| pair.get(key).map(python_str);
        let mac = text("mac_address");
        let mac_bytes = match &mac {
            None => None,
            Some(m) => {
                Some(any_mac(m).ok_or_else(|| ApiError::bad_request(format!("'{m}' is not a valid MAC address")))?)
            }
        };
        let Some(ip) = text("ip_address") else {
            return Err(ApiError::bad_request_kind(
                "AllowedAddressPairsMissingIP",
                "AllowedAddressPair must contain ip_address",
            ));
        };
        if pairs.iter().any(|(i, m)| i.as_deref() == Some(ip.as_str()) && *m == mac) {
            return Err(ApiError::bad_request_kind(
                "DuplicateAddressPairInRequest",
                format!(
                    "Request contains duplicate address pair: mac_address {} ip_address {ip}.",
                    mac.as_deref().unwrap_or("None")
                ),
            ));
        }
        let extra: Vec<&str> =
            pair.keys().map(String::as_str).filter(|k| !["mac_address", "ip_address"].contains(k)).collect();
        if !extra.is_empty() {
            return Err(ApiError::bad_request(format!("Unrecognized attribute(s) '{}'", extra.join(", "))));
        }
        check_pair_address(&ip)?;
        if let (Some(m), Some(bytes)) = (&mac, mac_bytes) {
            if bytes[0] & 1 == 1 {
                return Err(ApiError::bad_request(format!(
                    "MAC address {m} is a multicast address, which is not supported."
                )));
            }
        }
        pairs.push((Some(ip), mac));
    }
    Ok(Some(pairs))
}

/// A MAC as neutron-lib's `validate_mac_address` takes it: not all zeros or all ones
/// (multicast is judged afterwards).
fn any_mac(text: &str) -> Option<[u8; 6]> {
    neutrino_domain::mac::parse_mac(text).filter(|b| *b != [0; 6] && *b != [0xff; 6])
}

/// A pair's address: a CIDR (with a `/`) or an address, not multicast.
fn check_pair_address(ip: &str) -> Result<(), ApiError> {
    if ip.contains('/') {
        let net = ip
            .parse::<ipnet::IpNet>()
            .map_err(|_| ApiError::bad_request(format!("'{ip}' is not a valid IP subnet")))?;
        let multicast: ipnet::IpNet =
            if net.addr().is_ipv4() { "224.0.0.0/4" } else { "ff00::/8" }.parse().unwrap_or(net);
        let any = net.prefix_len() == 0 && net.addr().is_ipv4();
        if !any && (multicast.contains(&net.addr()) || net.contains(&multicast.addr())) {
            return Err(ApiError::bad_request(format!(
                "Subnet {net} overlaps with multicast range {multicast}, which is not supported."
            )));
        }
        return Ok(());
    }
    let addr = ip
        .parse::<std::net::IpAddr>()
        .map_err(|_| ApiError::bad_request(format!("'{ip}' is not a valid IP address")))?;
    if addr.is_multicast() {
        return Err(ApiError::bad_request(format!("IP {ip} is a multicast address, which is not supported.")));
    }
    Ok(())
}

/// `extra_dhcp_opts` as neutron-lib's `type:list_of_any_key_specs_or_none`: each entry an
/// `{opt_name, opt_value[, ip_version]}` matching one of `EXTRA_DHCP_OPT_KEY_SPECS` (options
/// that may be blank, `router` and `classless-static-route`, or any one-line name with a
/// one-line value; a `null` value removes the option). `None` when not given (or `null`).
fn dhcp_options(attrs: &Attrs) -> Result<Option<Vec<DhcpOptionRequest>>, ApiError> {
    let items = match attrs.raw("extra_dhcp_opts") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(ApiError::invalid_input(format!("'{}' is not a list", python_str(other)))),
    };
    let mut requested = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            return Err(ApiError::invalid_input(format!("Duplicate items in the list: '{}'", python_str(item))));
        }
        let option = dhcp_option(item)
            .ok_or_else(|| ApiError::invalid_input(format!("No valid key specs matched for: {}", python_str(item))))?;
        requested.push(option);
    }
    Ok(Some(requested))
}

/// One entry, if it matches a key spec.
fn dhcp_option(item: &Value) -> Option<DhcpOptionRequest> {
    let Value::Object(m) = item else { return None };
    if m.keys().any(|k| !["opt_name", "opt_value", "ip_version"].contains(&k.as_str())) {
        return None;
    }
    let one_line = |s: &str| !s.contains(['\n', '\r']);
    let name = m.get("opt_name")?.as_str()?;
    let value = match m.get("opt_value")? {
        Value::Null => None,
        Value::String(v) if v.chars().count() <= 255 => Some(v.clone()),
        _ => return None,
    };
    let blank_allowed = ["router", "classless-static-route"].contains(&name);
    let name_ok = blank_allowed || (!name.trim().is_empty() && name.chars().count() <= 64 && one_line(name));
    let value_ok = value.as_deref().is_none_or(|v| blank_allowed || (!v.trim().is_empty() && one_line(v)));
    if !name_ok || !value_ok {
        return None;
    }
    let ip_version = match m.get("ip_version") {
        None | Some(Value::Null) => None,
        Some(v) => match python_str(v).trim().parse::<u8>().ok() {
            Some(n @ (4 | 6)) => Some(n),
            _ => return None,
        },
    };
    Some(DhcpOptionRequest { opt_name: Some(name.to_string()), opt_value: value, ip_version })
}

/// `dns_name`: with DNS integration, validated; without it, only the empty default.
fn dns_name_of(app: &App, attrs: &Attrs) -> Result<Option<String>, ApiError> {
    let Some(name) = attrs.string("dns_name", 255)? else { return Ok(None) };
    let Some(domain) = &app.config.dns_domain else {
        attrs.only_defaults(&[("dns_name", json!(""))])?;
        return Ok(None);
    };
    neutrino_domain::dns::validate_dns_name(&name, domain).map(Some).map_err(|e| crate::error::HttpError::from(e).0)
}

async fn create(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::PORT)?;
    let items = request.items.iter().map(|attrs| create_request(&app, attrs)).collect::<Result<_, _>>()?;
    let created = ops::create(&app, &ctx, items).await?;
    Ok(response::created("port", "ports", &created, request.bulk))
}

fn create_request(app: &App, attrs: &Attrs) -> Result<CreatePort, ApiError> {
    refuse_unsupported(attrs)?;
    attrs.required("network_id")?;
    Ok(CreatePort {
        given: attrs.given().clone(),
        project_id: attrs.named_project()?,
        network_id: attrs.uuid("network_id")?.unwrap_or_default(),
        name: attrs.name("name", 255)?.unwrap_or_default(),
        description: attrs.string("description", 255)?.unwrap_or_default(),
        admin_state_up: attrs.boolean("admin_state_up")?.unwrap_or(true),
        device_id: attrs.string("device_id", 255)?.unwrap_or_default(),
        device_owner: attrs.string("device_owner", 255)?.unwrap_or_default(),
        mac_address: given_mac(attrs)?,
        fixed_ips: requested_fixed_ips(attrs)?,
        port_security_enabled: attrs.boolean("port_security_enabled")?,
        security_groups: security_groups(attrs)?,
        vnic_type: vnic_type(attrs)?.unwrap_or_else(|| "normal".into()),
        profile: profile(attrs)?.unwrap_or_default(),
        host_id: host_id(attrs)?.unwrap_or_default(),
        allowed_address_pairs: address_pairs(attrs)?,
        extra_dhcp_opts: dhcp_options(attrs)?,
        dns_name: dns_name_of(app, attrs)?,
        tags: crate::tags::tags_on_create(attrs)?,
    })
}

async fn show(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let port = ops::show(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "port", &port, &q.fields))
}

async fn list(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let info = PageInfo { headers: &headers, collection: "ports", raw_query: raw.as_deref(), page: &q.page };
    if q.fields.is_empty() {
        let ports = ops::list_bodies(&app, &ctx, &q.filters, &q.page).await?;
        let links = info.links(ports.len(), ports.first().map(|p| p.0.as_str()), ports.last().map(|p| p.0.as_str()));
        return Ok(many_raw("ports", &ports, links));
    }
    let ports = ops::list(&app, &ctx, &q.filters, &q.page).await?;
    let links = info.links(ports.len(), ports.first().map(|p| p.id.as_str()), ports.last().map(|p| p.id.as_str()));
    Ok(many("ports", &ports, &q.fields, links))
}

async fn update(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::PORT)?;
    refuse_unsupported(&attrs)?;
    let request = UpdatePort {
        given: attrs.given().clone(),
        name: attrs.name("name", 255)?,
        description: attrs.string("description", 255)?,
        admin_state_up: attrs.boolean("admin_state_up")?,
        device_id: attrs.string("device_id", 255)?,
        device_owner: attrs.string("device_owner", 255)?,
        mac_address: requested_mac(&attrs)?,
        fixed_ips: requested_fixed_ips(&attrs)?,
        port_security_enabled: attrs.boolean("port_security_enabled")?,
        security_groups: security_groups(&attrs)?,
        vnic_type: vnic_type(&attrs)?,
        profile: profile(&attrs)?,
        host_id: host_id(&attrs)?,
        allowed_address_pairs: address_pairs(&attrs)?,
        extra_dhcp_opts: dhcp_options(&attrs)?,
        dns_name: dns_name_of(&app, &attrs)?,
        if_revision: if_match_revision(&headers)?,
    };
    let port = ops::update(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "port", &port, &[]))
}

async fn delete(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete(&app, &ctx, &id).await?;
    Ok(no_content())
}
