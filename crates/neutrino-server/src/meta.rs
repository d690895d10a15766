//! Version discovery, the extension list and unknown paths.

use crate::error::{HttpError, HttpResult};
use crate::App;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use neutrino_api::resources::Extension;
use neutrino_api::ApiError;
use serde_json::json;

/// Only what Neutrino implements: clients decide what to call from this list. Names,
/// descriptions and dates are Neutron's.
#[rustfmt::skip]
const EXTENSIONS: &[(&str, &str, &str, &str)] = &[
    ("address-scope", "Address scope", "Address scopes extension.", "2015-07-26T10:00:00-00:00"),
    ("agent", "agent", "The agent management extension.", "2013-02-03T10:00:00-00:00"),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs", "2013-07-23T10:00:00-00:00"),
    ("availability_zone", "Availability Zone", "The availability zone extension.", "2015-01-01T10:00:00-00:00"),
    ("network_availability_zone", "Network Availability Zone", "Availability zone support for network.", "2015-01-01T10:00:00-00:00"),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application", "2014-02-03T10:00:00-00:00"),
    ("default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the default.", "2016-02-18T18:00:00-00:00"),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource.", "2013-01-14T10:00:00-00:00"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)", "2013-03-17T12:00:00-00:00"),
    ("empty-string-filtering", "Empty String Filtering Extension", "Allow filtering by attributes with empty string value", "2018-05-01T10:00:00-00:00"),
    ("filter-validation", "Filter parameters validation", "Provides validation on filter parameters.", "2018-07-04T10:00:00-00:00"),
    ("multi-provider", "Multi Provider Network", "Expose mapping of virtual networks to multiple physical networks", "2013-06-27T10:00:00-00:00"),
    ("ip-substring-filtering", "IP address substring filtering", "Provides IP address substring filtering when listing ports", "2017-11-28T09:00:00-00:00"),
    ("l2_adjacency", "L2 Adjacency", "Display L2 Adjacency for Neutron Networks.", "2016-04-12T16:00:00-00:00"),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource.", "2015-03-25T10:00:00-00:00"),
    ("net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource.", "2017-07-12T00:00:00-00:00"),
    ("network-segment-range", "Neutron Network Segment Range", "Provides support for the network segment range management", "2018-11-29T00:00:00-00:00"),
    ("network-ip-availability", "Network IP Availability", "Provides IP availability data for each network and subnet.", "2015-09-24T00:00:00-00:00"),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled.", "2016-06-12T00:00:00-00:00"),
    ("port-mac-address-regenerate", "Neutron Port MAC address regenerate", "Network port MAC address regenerate", "2018-05-03T10:00:00-00:00"),
    ("port-security", "Port Security", "Provides port security", "2012-07-23T10:00:00-00:00"),
    ("port-security-groups-filtering", "Port filtering on security groups", "Provides security groups filtering when listing ports", "2018-01-09T09:00:00-00:00"),
    ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled.", "2016-09-09T09:09:09-09:09"),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks", "2012-09-07T10:00:00-00:00"),
    ("rbac-policies", "RBAC Policies", "Allows creation and modification of policies that control project access to resources.", "2015-06-17T12:15:12-00:00"),
    ("revision-if-match", "If-Match constraints based on revision_number", "Extension indicating that If-Match based on revision_number is supported.", "2016-12-11T00:00:00-00:00"),
    ("quota-check-limit", "Quota engine limit check", "Support for checking the resource usage before applying a new quota limit", "2021-09-08T16:00:00-00:00"),
    ("quota-check-limit-default", "Quota engine limit check by default", "By default, the Neutron quota engine checks the resource usage before applying a new quota limit", "2024-08-21T16:00:00-00:00"),
    ("quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project", "2017-02-10T10:00:00-00:00"),
    ("quotas", "Quota management support", "Expose functions for quotas management per project", "2012-07-29T10:00:00-00:00"),
    ("security-group", "security-group", "The security groups extension.", "2012-10-05T10:00:00-00:00"),
    ("segment", "Segment", "Segments extension.", "2016-02-24T17:00:00-00:00"),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled.", "2016-06-12T00:00:00-00:00"),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes", "2016-02-10T10:00:00-00:00"),
    ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources.", "2016-04-11T10:00:00-00:00"),
    ("standard-attr-segment", "Standard Attribute Segment Extension", "Add standard attributes to Segment resource", "2018-04-09T10:00:00-00:00"),
    ("standard-attr-tag", "Tag support for resources with standard attribute: port, subnet, subnetpool, network, security_group", "Enables to set tag on resources with standard attribute.", "2017-01-01T00:00:00-00:00"),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.", "2016-09-12T10:00:00-00:00"),
    ("rbac-security-groups", "Add security_group type to network RBAC", "Add security_group type to network RBAC", "2019-02-14T00:00:00-00:00"),
    ("security-groups-default-rules", "Default rules for security groups", "Configure set of security group rules used as default rules for every new security group", "2022-12-19T10:00:00-00:00"),
    ("address-group", "Address group", "Support address group", "2020-07-15T10:00:00-00:00"),
    ("security-groups-remote-address-group", "Remote address group id field for security group rules", "Add new field of remote address group id in SG rules", "2020-08-25T10:00:00-00:00"),
    ("security-groups-normalized-cidr", "Normalized CIDR field for security group rules", "Add new field with normalized remote_ip_prefix cidr in SG rule", "2020-07-28T10:00:00-00:00"),
    ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not", "2019-11-26T09:00:00-00:00"),
    ("subnet-external-network", "Subnet belongs to an external network", "Informs if the subnet belongs to an external network", "2024-02-05T18:00:00-00:00"),
    ("subnet-service-types", "Subnet service types", "Provides ability to set the subnet service_types field", "2016-03-15T18:00:00-00:00"),
    ("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool", "2015-03-30T10:00:00-00:00"),
    ("tag-creation", "Tag creation extension", "Allow to create multiple tags for a resource", "2024-23-07T10:00:00-00:00"),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.", "2012-07-20T10:00:00-00:00"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway", "2013-03-28T10:00:00-00:00"),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router", "2013-02-01T10:00:00-00:00"),
    ("extraroute-atomic", "Atomically add/remove extra routes", "Edit extra routes of a router on server side by atomically adding/removing extra routes", "2019-07-10T00:00:00+00:00"),
    ("dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers.", "2014-06-1T10:00:00-00:00"),
    ("l3-ha", "HA Router extension", "Adds HA capability to routers.", "2014-04-26T00:00:00-00:00"),
    ("router-admin-state-down-before-update", "Enforce Router's Admin State Down Before Update Extension", "Ensure that the admin state of a router is DOWN (admin_state_up=False) before updating the distributed attribute", "2019-07-02T15:56:00"),
    ("router_availability_zone", "Router Availability Zone", "Availability zone support for router.", "2015-01-01T10:00:00-00:00"),
    ("fip-port-details", "Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource", "2018-04-09T10:00:00-00:00"),
    ("floatingip-pools", "Floating IP Pools Extension", "Provides a floating IP pools API.", "2018-03-21T10:00:00-00:00"),
    ("floating-ip-port-forwarding", "Floating IP Port Forwarding", "Allow port forwarding from floating IP port to an internal port", "2018-01-19T10:00:00-00:00"),
    ("floating-ip-port-forwarding-description", "Floating IP Port Forwarding new attribute description", "Add a description field to Port Forwarding rules", "2019-11-01T10:00:00-00:00"),
    ("floating-ip-port-forwarding-detail", "Floating IP port forwarding detail", "Allow list floating ip return more port forwarding data, include'id' and 'internal_port_id'", "2022-05-06T10:00:00-00:00"),
    ("floating-ip-port-forwarding-port-ranges", "Floating IP Port Forwarding support port ranges", "Add support to port ranges", "2020-07-01T10:00:00-00:00"),
    ("expose-port-forwarding-in-fip", "Expose Floating IP port forwardings", "Expose port forwarding fields in floating IP response", "2018-06-28T16:00:00-00:00"),
];

fn to_extension(entry: &(&str, &str, &str, &str)) -> Extension {
    Extension {
        alias: entry.0.into(),
        name: entry.1.into(),
        description: entry.2.into(),
        updated: entry.3.into(),
        links: Vec::new(),
    }
}

fn base_url(headers: &HeaderMap) -> String {
    crate::response::public_base(headers)
}

pub async fn versions(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    axum::Json(json!({
        "versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/v2.0/")}]}]
    }))
    .into_response()
}

pub async fn v2_root(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let resources: Vec<_> = [("network", "networks"), ("subnet", "subnets"), ("port", "ports")]
        .iter()
        .map(|(name, collection)| {
            json!({"name": name, "collection": collection,
                   "links": [{"rel": "self", "href": format!("{base}/v2.0/{collection}")}]})
        })
        .collect();
    axum::Json(json!({ "resources": resources })).into_response()
}

/// Listed when DNS integration is on.
const DNS_INTEGRATION: (&str, &str, &str, &str) =
    ("dns-integration", "DNS Integration", "Provides integration with DNS.", "2015-08-15T18:00:00-00:00");

/// The extensions of this server (DNS integration only when it is on).
fn enabled(app: &App) -> Vec<Extension> {
    let mut list: Vec<Extension> = EXTENSIONS.iter().map(to_extension).collect();
    if app.config.dns_domain.is_some() {
        list.push(to_extension(&DNS_INTEGRATION));
    }
    list
}

pub async fn extensions(State(app): State<App>) -> Response {
    axum::Json(json!({ "extensions": enabled(&app) })).into_response()
}

pub async fn extension(State(app): State<App>, Path(alias): Path<String>) -> HttpResult<Response> {
    let found = enabled(&app).into_iter().find(|e| e.alias == alias).ok_or_else(|| {
        HttpError(ApiError::new(404, "HTTPNotFound", format!("Extension with alias {alias} does not exist")))
    })?;
    Ok(axum::Json(json!({ "extension": found })).into_response())
}

pub async fn not_found() -> HttpError {
    HttpError(ApiError::no_route())
}

/// `PUT`/`DELETE` on a collection: Neutron looks for a member with id `None`.
pub fn collection_method_error(resource: &'static str) -> HttpError {
    HttpError(ApiError::not_found(resource, "None"))
}

/// The routes of a collection path: list and create, and Neutron's 404 for `PUT`/`DELETE`.
pub fn collection<L, TL, C, TC>(resource: &'static str, list: L, create: C) -> axum::routing::MethodRouter<App>
where
    L: axum::handler::Handler<TL, App>,
    C: axum::handler::Handler<TC, App>,
    TL: 'static,
    TC: 'static,
{
    axum::routing::get(list)
        .post(create)
        .put(move || async move { collection_method_error(resource) })
        .delete(move || async move { collection_method_error(resource) })
}
