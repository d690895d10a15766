//! Port options: allowed address pairs, extra DHCP options, DNS name, security groups.

use crate::error::{HttpError, HttpResult};
use crate::request::Attrs;
use crate::App;
use neutrino_api::resources::Port;
use neutrino_api::ApiError;
use neutrino_domain::port_options::{merge_dhcp_options, validate_address_pairs, DhcpOption, DhcpOptionRequest};
use neutrino_store::{self as store, Tx};
use serde_json::{json, Value};

use super::addresses::field;

/// Set the port's allowed address pairs from the request (`None`: keep them, re-checked
/// against the port's MAC and port security).
pub(super) fn apply_address_pairs(attrs: &Attrs, port: &mut Port) -> HttpResult<()> {
    let requested: Vec<(Option<String>, Option<String>)> = match attrs.raw("allowed_address_pairs") {
        None => port
            .allowed_address_pairs
            .iter()
            .map(|p| (p["ip_address"].as_str().map(String::from), p["mac_address"].as_str().map(String::from)))
            .collect(),
        Some(Value::Null) => Vec::new(),
        Some(_) => attrs
            .object_list("allowed_address_pairs", &["ip_address", "mac_address"])?
            .unwrap_or_default()
            .iter()
            .map(|p| (field(p, "ip_address").map(String::from), field(p, "mac_address").map(String::from)))
            .collect(),
    };
    let pairs = validate_address_pairs(&requested, &port.mac_address, port.port_security_enabled)?;
    port.allowed_address_pairs =
        pairs.into_iter().map(|p| json!({"ip_address": p.ip_address, "mac_address": p.mac_address})).collect();
    Ok(())
}

/// Merge the requested extra DHCP options into the port's.
pub(super) fn apply_dhcp_options(attrs: &Attrs, port: &mut Port) -> HttpResult<()> {
    let Some(Value::Array(items)) = attrs.raw("extra_dhcp_opts") else {
        if matches!(attrs.raw("extra_dhcp_opts"), Some(v) if !v.is_null()) {
            return Err(ApiError::invalid_attribute("extra_dhcp_opts", "must be a list").into());
        }
        return Ok(());
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut requested = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(m) = item else {
            return Err(ApiError::invalid_attribute("extra_dhcp_opts", format!("'{item}' is not a dictionary")).into());
        };
        if let Some(bad) = m.keys().find(|k| !["opt_name", "opt_value", "ip_version"].contains(&k.as_str())) {
            return Err(
                ApiError::invalid_attribute("extra_dhcp_opts", format!("Unexpected keys supplied: {bad}")).into()
            );
        }
        requested.push(DhcpOptionRequest {
            opt_name: m.get("opt_name").and_then(text),
            opt_value: m.get("opt_value").and_then(text),
            ip_version: m.get("ip_version").and_then(text).and_then(|v| v.parse().ok()),
        });
    }
    let current: Vec<DhcpOption> = port
        .extra_dhcp_opts
        .iter()
        .filter_map(|o| {
            Some(DhcpOption {
                opt_name: o["opt_name"].as_str()?.to_string(),
                opt_value: o["opt_value"].as_str()?.to_string(),
                ip_version: o["ip_version"].as_u64()? as u8,
            })
        })
        .collect();
    port.extra_dhcp_opts = merge_dhcp_options(&current, &requested)?
        .into_iter()
        .map(|o| json!({"opt_name": o.opt_name, "opt_value": o.opt_value, "ip_version": o.ip_version}))
        .collect();
    Ok(())
}

/// `dns_name`: with DNS integration, validated; without it, only the empty default.
pub(super) fn dns_name_of(app: &App, attrs: &Attrs) -> Result<Option<String>, ApiError> {
    let Some(name) = attrs.string("dns_name", 255)? else { return Ok(None) };
    let Some(domain) = &app.config.dns_domain else {
        attrs.only_defaults(&[("dns_name", json!(""))])?;
        return Ok(None);
    };
    neutrino_domain::dns::validate_dns_name(&name, domain).map(Some).map_err(|e| HttpError::from(e).0)
}

/// Bind the port to `groups`, with Neutron's rule that groups need port security.
pub(super) async fn apply_security_groups(
    tx: &mut Tx,
    port: &mut Port,
    mut groups: Vec<String>,
    creating: bool,
) -> HttpResult<()> {
    let mut seen = std::collections::BTreeSet::new();
    let duplicates: Vec<&String> = groups.iter().filter(|g| !seen.insert(g.as_str())).collect();
    if !duplicates.is_empty() {
        let list = duplicates.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ");
        return Err(HttpError(ApiError::invalid_attribute(
            "security_groups",
            format!("Duplicate items in the list: '{list}'"),
        )));
    }
    groups.sort();
    if !port.port_security_enabled && !groups.is_empty() {
        return Err(if creating {
            HttpError(ApiError::bad_request_kind(
                "PortSecurityAndIPRequiredForSecurityGroups",
                "Port security must be enabled and port must have an IP address in order to use security groups.",
            ))
        } else {
            HttpError(ApiError::conflict(
                "PortSecurityPortHasSecurityGroup",
                "Port has security group associated. Cannot disable port security or ip address until security group is removed",
            ))
        });
    }
    store::set_port_groups(tx, &port.id, &groups, crate::auth::current().is_admin).await?;
    port.security_groups = groups;
    Ok(())
}
