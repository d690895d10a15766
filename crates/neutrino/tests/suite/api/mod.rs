//! The REST API on both backends: shapes, defaults, validation, errors and races, one module
//! per resource.

use crate::common::{default_config, error_of, TestServer};
use crate::on_both_backends;
use neutrino_domain::segments::TypeDriverConfig;
use neutrino_server::ServerConfig;
use serde_json::{json, Value};
use std::collections::HashSet;

mod agents;
mod collections;
mod malformed;
mod ml2;
mod networks;
mod ports;
mod quotas;
mod routers;
mod security_groups;
mod stream;
mod subnets;
mod tenancy;
mod transactions;

pub(super) async fn network_with_subnet(s: &TestServer, cidr: &str) -> (String, String) {
    let net = s.api.create_network("n").await.unwrap();
    let net_id = net["id"].as_str().unwrap().to_string();
    let subnet = s.api.create_subnet(&net_id, cidr).await.unwrap();
    (net_id, subnet["id"].as_str().unwrap().to_string())
}

pub(super) async fn post_port(s: &TestServer, body: Value) -> Result<Value, neutrino_lab::ApiError> {
    s.api.post("/v2.0/ports", json!({ "port": body })).await
}

pub(super) fn small_vni_range() -> ServerConfig {
    ServerConfig {
        type_drivers: TypeDriverConfig { vni_ranges: vec![(100, 109)], ..TypeDriverConfig::default() },
        ..default_config()
    }
}

pub(super) type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Newline-delimited JSON messages of the agent stream.
pub(super) struct Lines {
    pub(super) body: ByteStream,
    pub(super) buf: Vec<u8>,
}

impl Lines {
    pub(super) async fn next(&mut self) -> Value {
        use futures::StreamExt;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return serde_json::from_slice(&line).unwrap();
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), self.body.next())
                .await
                .expect("a stream message within 5 s")
                .unwrap()
                .unwrap();
            self.buf.extend_from_slice(&chunk);
        }
    }
}

pub(super) fn with_dns() -> ServerConfig {
    ServerConfig { dns_domain: Some("openstacklocal.".into()), ..default_config() }
}

/// A Linux bridge agent's registration: VXLAN tunnels, `physnet1` on `eth1`.
pub(super) fn lb_agent(host: &str, tunnel_ip: &str) -> Value {
    json!({"host": host, "agent_type": "Linux bridge agent", "tunnel_ip": tunnel_ip,
           "configurations": {"tunnel_types": ["vxlan"], "interface_mappings": {"physnet1": "eth1"}, "l2_population": true}})
}
