//! Port options: allowed address pairs, extra DHCP options, security groups.

use crate::app::OpContext;
use crate::error::{HttpError, HttpResult};
use neutrino_api::resources::Port;
use neutrino_api::ApiError;
use neutrino_domain::port_options::{merge_dhcp_options, validate_address_pairs, DhcpOption, DhcpOptionRequest};
use neutrino_store::{self as store, Tx};
use serde_json::json;

/// What a request's `allowed_address_pairs` asks for: `(ip_address, mac_address)` pairs
/// (`null` is none).
pub type AddressPairsRequest = Vec<(Option<String>, Option<String>)>;

/// Set the port's allowed address pairs (`None`: keep them, re-checked against the port's MAC
/// and port security).
pub(super) fn apply_address_pairs(requested: Option<&AddressPairsRequest>, port: &mut Port) -> HttpResult<()> {
    let requested: AddressPairsRequest = match requested {
        None => port
            .allowed_address_pairs
            .iter()
            .map(|p| (p["ip_address"].as_str().map(String::from), p["mac_address"].as_str().map(String::from)))
            .collect(),
        Some(pairs) => pairs.clone(),
    };
    let pairs = validate_address_pairs(&requested, &port.mac_address, port.port_security_enabled)?;
    port.allowed_address_pairs =
        pairs.into_iter().map(|p| json!({"ip_address": p.ip_address, "mac_address": p.mac_address})).collect();
    Ok(())
}

/// Merge the requested extra DHCP options into the port's.
pub(super) fn apply_dhcp_options(requested: Option<&[DhcpOptionRequest]>, port: &mut Port) -> HttpResult<()> {
    let Some(requested) = requested else { return Ok(()) };
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
    port.extra_dhcp_opts = merge_dhcp_options(&current, requested)?
        .into_iter()
        .map(|o| json!({"opt_name": o.opt_name, "opt_value": o.opt_value, "ip_version": o.ip_version}))
        .collect();
    Ok(())
}

/// Whether the groups a port is given were named by the request, or kept from before.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum GroupsFrom {
    Request,
    Kept,
}

/// Bind the port to `groups`, with Neutron's rule that groups need port security: groups
/// asked for without it are a 400, groups kept while it is turned off a 409.
pub(super) async fn apply_security_groups(
    ctx: &OpContext,
    tx: &mut Tx,
    port: &mut Port,
    mut groups: Vec<String>,
    from: GroupsFrom,
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
        return Err(if from == GroupsFrom::Request {
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
    store::set_port_groups(tx, &port.id, &groups, ctx.is_admin).await?;
    port.security_groups = groups;
    Ok(())
}
