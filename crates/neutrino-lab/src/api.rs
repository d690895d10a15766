//! A small Neutron API client for tests, the demo and benchmarks.

use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("request task failed: {0}")]
    Runtime(String),
    #[error("{status}: {body}")]
    Status { status: u16, body: Value },
    #[error("TLS: {0}")]
    Tls(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    /// Where requests run: a runtime inside the lab's namespace, or the caller's.
    runtime: Option<tokio::runtime::Handle>,
    /// Sent with every request (`X-Auth-Token`, or noauth's `X-Project-Id` and `X-Roles`).
    headers: Vec<(String, String)>,
}

impl ApiClient {
    pub fn new(base: &str) -> ApiClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        ApiClient { base: base.trim_end_matches('/').to_string(), http, runtime: None, headers: Vec::new() }
    }

    /// The same client, speaking TLS as `tls` says for `https://` (the CA it trusts, the
    /// certificate it presents).
    pub fn with_tls(mut self, tls: &neutrino_tls::ClientTls) -> Result<ApiClient, ApiError> {
        let builder = reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(64);
        self.http = tls
            .apply(builder)
            .map_err(|e| ApiError::Tls(e.to_string()))?
            .build()
            .map_err(|e| ApiError::Tls(e.to_string()))?;
        Ok(self)
    }

    /// A client whose connections are made by `runtime` (e.g. one inside a namespace).
    pub fn with_runtime(base: &str, runtime: tokio::runtime::Handle) -> ApiClient {
        ApiClient { runtime: Some(runtime), ..ApiClient::new(base) }
    }

    /// The same client, sending `name: value` with every request.
    pub fn with_header(&self, name: &str, value: &str) -> ApiClient {
        let mut c = self.clone();
        c.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        c.headers.push((name.to_string(), value.to_string()));
        c
    }

    /// The same client acting with a Keystone token.
    pub fn with_token(&self, token: &str) -> ApiClient {
        self.with_header("X-Auth-Token", token)
    }

    /// The same client acting (noauth) in `project` with `roles` (comma separated).
    pub fn acting_as(&self, project: &str, roles: &str) -> ApiClient {
        self.with_header("X-Project-Id", project).with_header("X-Roles", roles)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Send a request (on the namespaced runtime when there is one): status and raw body.
    async fn exchange(&self, mut req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), ApiError> {
        for (name, value) in &self.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let exchange = async move {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            Ok::<_, reqwest::Error>((status, resp.bytes().await?.to_vec()))
        };
        Ok(match &self.runtime {
            Some(rt) => rt.spawn(exchange).await.map_err(|e| ApiError::Runtime(e.to_string()))??,
            None => exchange.await?,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ApiError> {
        let (status, bytes) = self.exchange(req).await?;
        let body: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status >= 400 {
            return Err(ApiError::Status { status, body });
        }
        Ok(body)
    }

    /// GET returning the raw body (status checked), for timing without client-side parsing.
    pub async fn get_raw(&self, path: &str) -> Result<Vec<u8>, ApiError> {
        let (status, bytes) = self.exchange(self.http.get(format!("{}{path}", self.base))).await?;
        if status >= 400 {
            return Err(ApiError::Status { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) });
        }
        Ok(bytes)
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ApiError> {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    pub async fn create_network(&self, name: &str) -> Result<Value, ApiError> {
        Ok(self.post("/v2.0/networks", json!({"network": {"name": name}})).await?["network"].take())
    }

    /// A provider network (admin only in Neutron): `provider:network_type` on
    /// `provider:physical_network`, with `provider:segmentation_id` for VLAN.
    pub async fn create_provider_network(
        &self,
        name: &str,
        network_type: &str,
        physical_network: &str,
        segmentation_id: Option<u32>,
    ) -> Result<Value, ApiError> {
        let mut network = json!({"name": name, "provider:network_type": network_type,
                                 "provider:physical_network": physical_network});
        if let Some(id) = segmentation_id {
            network["provider:segmentation_id"] = json!(id);
        }
        Ok(self.post("/v2.0/networks", json!({"network": network})).await?["network"].take())
    }

    pub async fn create_subnet(&self, network_id: &str, cidr: &str) -> Result<Value, ApiError> {
        let body = json!({"subnet": {"network_id": network_id, "ip_version": 4, "cidr": cidr}});
        Ok(self.post("/v2.0/subnets", body).await?["subnet"].take())
    }

    /// A port bound to `host` (as Nova does before plugging the VIF).
    pub async fn create_port(&self, network_id: &str, name: &str, host: &str) -> Result<Value, ApiError> {
        let body = json!({"port": {"network_id": network_id, "name": name, "binding:host_id": host,
                                    "device_owner": "compute:nova", "device_id": name}});
        Ok(self.post("/v2.0/ports", body).await?["port"].take())
    }

    pub async fn port(&self, id: &str) -> Result<Value, ApiError> {
        Ok(self.get(&format!("/v2.0/ports/{id}")).await?["port"].take())
    }

    /// Wait until the port reports `status`, up to `timeout`.
    pub async fn wait_port_status(&self, id: &str, status: &str, timeout: Duration) -> Result<bool, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.port(id).await?["status"] == status {
                return Ok(true);
            }
            if tokio::time::Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
