//! The agent's side of the server protocol.

use futures::StreamExt;
use neutrino_api::agent::{AgentRegistration, PortStatusReport, StreamMessage, PROTOCOL_VERSION};
use neutrino_api::keystone::PasswordAuth;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad stream message: {0}")]
    BadMessage(String),
}

/// How long a stream may stay silent (the server sends a heartbeat every 10 s).
const SILENCE: Duration = Duration::from_secs(35);

#[derive(Clone)]
pub struct ServerClient {
    base: String,
    http: reqwest::Client,
    /// With Keystone: the agent's credentials and its current token.
    keystone: Option<Arc<KeystoneToken>>,
}

/// The agent's Keystone token: fetched when first needed, again when the server refuses it
/// and every 15 minutes (tokens live an hour by default).
pub struct KeystoneToken {
    auth: PasswordAuth,
    current: Mutex<Option<(String, Instant)>>,
}

const TOKEN_REFRESH: Duration = Duration::from_secs(15 * 60);

impl KeystoneToken {
    async fn get(&self, http: &reqwest::Client) -> Result<String, ClientError> {
        let mut current = self.current.lock().await;
        if let Some((token, at)) = current.as_ref() {
            if at.elapsed() < TOKEN_REFRESH {
                return Ok(token.clone());
            }
        }
        let resp = http.post(self.auth.tokens_url()).json(&self.auth.request_body()).send().await?;
        let resp = ServerClient::check(resp).await?;
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| ClientError::BadMessage("Keystone sent no X-Subject-Token".into()))?;
        *current = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    async fn forget(&self) {
        *self.current.lock().await = None;
    }
}

impl ServerClient {
    pub fn new(server_url: &str) -> ServerClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_keepalive(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        ServerClient { base: server_url.trim_end_matches('/').to_string(), http, keystone: None }
    }

    /// Authenticate to the server with Keystone tokens obtained with `auth`.
    pub fn with_keystone(mut self, auth: PasswordAuth) -> ServerClient {
        self.keystone = Some(Arc::new(KeystoneToken { auth, current: Mutex::new(None) }));
        self
    }

    /// Add the token, when there is Keystone, to a request.
    async fn authed(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, ClientError> {
        match &self.keystone {
            Some(k) => Ok(req.header("X-Auth-Token", k.get(&self.http).await?)),
            None => Ok(req),
        }
    }

    /// Send; a 401 makes the next request fetch a new token.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = self.authed(req).await?.send().await?;
        if resp.status().as_u16() == 401 {
            if let Some(k) = &self.keystone {
                k.forget().await;
            }
        }
        Self::check(resp).await
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        if resp.status().is_success() {
            Ok(resp)
        } else {
            let status = resp.status().as_u16();
            Err(ClientError::Status { status, body: resp.text().await.unwrap_or_default() })
        }
    }

    /// Register (or heartbeat). `starting` marks a fresh start of the agent.
    pub async fn register(&self, reg: &AgentRegistration, starting: bool) -> Result<(), ClientError> {
        let url = format!("{}/v2.0/neutrino/agents?starting={starting}", self.base);
        self.send(self.http.post(url).json(reg).timeout(Duration::from_secs(10))).await.map(|_| ())
    }

    /// This host's own address for a router's SNAT (distributed SNAT): the IPv4 address of the
    /// port the server keeps for it, made on first use.
    pub async fn host_snat_address(&self, host: &str, router_id: &str) -> Result<Option<String>, ClientError> {
        let url = format!("{}/v2.0/neutrino/hosts/{host}/routers/{router_id}/snat_port", self.base);
        let resp = self.send(self.http.put(url).timeout(Duration::from_secs(10))).await?;
        let body: serde_json::Value = resp.json().await?;
        let ips = body["port"]["fixed_ips"].as_array().cloned().unwrap_or_default();
        Ok(ips
            .iter()
            .filter_map(|f| f["ip_address"].as_str())
            .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
            .map(str::to_string))
    }

    pub async fn report(&self, report: &PortStatusReport) -> Result<(), ClientError> {
        let url = format!("{}/v2.0/neutrino/ports/status", self.base);
        self.send(self.http.put(url).json(report).timeout(Duration::from_secs(10))).await.map(|_| ())
    }

    /// Follow the host's stream, sending each message to `out`, until the connection ends.
    /// `since`: the revision of the last message applied (the server then sends what changed
    /// after it, or a snapshot). A silent connection (no heartbeat for 35 s) is treated as dead.
    pub async fn follow(
        &self,
        host: &str,
        since: Option<u64>,
        out: &mpsc::Sender<StreamMessage>,
    ) -> Result<(), ClientError> {
        let mut url = format!("{}/v2.0/neutrino/hosts/{host}/stream?protocol={PROTOCOL_VERSION}", self.base);
        if let Some(since) = since {
            url.push_str(&format!("&since={since}"));
        }
        // A server that never answers (a resume it cannot serve) counts as a dead one too.
        let resp = match tokio::time::timeout(SILENCE, self.send(self.http.get(url))).await {
            Err(_) => return Err(ClientError::BadMessage("no answer to the stream request".into())),
            Ok(resp) => resp?,
        };
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        // Bytes of `buf` known to hold no newline (a large snapshot arrives in many chunks).
        let mut scanned = 0;
        loop {
            let chunk = match tokio::time::timeout(SILENCE, body.next()).await {
                Err(_) => return Err(ClientError::BadMessage("stream went silent".into())),
                Ok(None) => return Ok(()),
                Ok(Some(chunk)) => chunk?,
            };
            buf.extend_from_slice(&chunk);
            let mut consumed = 0;
            while let Some(offset) = buf[scanned..].iter().position(|b| *b == b'\n') {
                let end = scanned + offset;
                let msg: StreamMessage =
                    serde_json::from_slice(&buf[consumed..end]).map_err(|e| ClientError::BadMessage(e.to_string()))?;
                consumed = end + 1;
                scanned = consumed;
                if out.send(msg).await.is_err() {
                    return Ok(());
                }
            }
            buf.drain(..consumed);
            scanned = buf.len();
        }
    }
}
