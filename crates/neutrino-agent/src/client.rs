//! The agent's side of the server protocol.

use futures::StreamExt;
use neutrino_api::agent::{AgentRegistration, PortStatusReport, StreamMessage, PROTOCOL_VERSION};
use neutrino_api::keystone::PasswordAuth;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http: {}", neutrino_tls::with_causes(.0))]
    /// With its causes in the message, and so not also as `source()` (once is enough).
    Http(reqwest::Error),
    #[error("server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad stream message: {0}")]
    BadMessage(String),
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> ClientError {
        ClientError::Http(e)
    }
}

/// How long a stream may stay silent (the server sends a heartbeat every 10 s).
const SILENCE: Duration = Duration::from_secs(35);

/// The agent's client of the servers. With several `server_url`s it talks to one at a time
/// and moves to the next when that one cannot be reached, answers 503, or ends its stream.
#[derive(Clone)]
pub struct ServerClient {
    servers: Arc<Servers>,
    http: reqwest::Client,
    /// With Keystone: the agent's credentials and its current token.
    keystone: Option<Arc<KeystoneToken>>,
}

fn http_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).tcp_keepalive(Duration::from_secs(15))
}

/// The agent's Keystone token: fetched when first needed, again when the server refuses it
/// and every 15 minutes (tokens live an hour by default).
pub struct KeystoneToken {
    auth: PasswordAuth,
    /// Keystone's client (its own TLS options).
    http: reqwest::Client,
    current: Mutex<Option<(String, Instant)>>,
}

const TOKEN_REFRESH: Duration = Duration::from_secs(15 * 60);

/// The servers' base URLs and the one in use.
struct Servers {
    bases: Vec<String>,
    current: AtomicUsize,
}

impl Servers {
    /// `urls`: one base URL, or several separated by commas.
    fn parse(urls: &str) -> Servers {
        let mut bases: Vec<String> =
            urls.split(',').map(|u| u.trim().trim_end_matches('/').to_string()).filter(|u| !u.is_empty()).collect();
        if bases.is_empty() {
            bases.push("http://127.0.0.1:9696".into());
        }
        Servers { bases, current: AtomicUsize::new(0) }
    }

    /// The server in use (its index, to report a failure of it) and the URL of `path` on it.
    fn url(&self, path: &str) -> (usize, String) {
        let i = self.current.load(Ordering::Relaxed) % self.bases.len();
        (i, format!("{}{path}", self.bases[i]))
    }

    /// Server `used` failed: use the next one (unless another request moved on already).
    fn failed(&self, used: usize) {
        if self.bases.len() > 1 {
            let next = (used + 1) % self.bases.len();
            if self.current.compare_exchange(used, next, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                tracing::warn!(from = %self.bases[used], to = %self.bases[next], "moving to the next server");
            }
        }
    }
}

impl KeystoneToken {
    async fn get(&self) -> Result<String, ClientError> {
        let http = &self.http;
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
    /// `server_urls`: `[agent] server_url`, one base URL or several separated by commas.
    pub fn new(server_urls: &str) -> ServerClient {
        let http = http_builder().build().unwrap_or_default();
        ServerClient { servers: Arc::new(Servers::parse(server_urls)), http, keystone: None }
    }

    /// Speak TLS to `https://` servers as `tls` says (`[agent] ssl_*`).
    pub fn with_tls(mut self, tls: &neutrino_tls::ClientTls) -> Result<ServerClient, neutrino_tls::TlsError> {
        self.http = tls
            .apply(http_builder())?
            .build()
            .map_err(|e| neutrino_tls::TlsError::Config(format!("TLS client: {e}")))?;
        Ok(self)
    }

    /// Authenticate to the server with Keystone tokens obtained with `auth` (Keystone's HTTPS
    /// checked as `tls` says).
    pub fn with_keystone(
        mut self,
        auth: PasswordAuth,
        tls: &neutrino_tls::ClientTls,
    ) -> Result<ServerClient, neutrino_tls::TlsError> {
        let http = tls.client(Some(Duration::from_secs(10)))?;
        self.keystone = Some(Arc::new(KeystoneToken { auth, http, current: Mutex::new(None) }));
        Ok(self)
    }

    /// Add the token, when there is Keystone, to a request.
    async fn authed(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, ClientError> {
        match &self.keystone {
            Some(k) => Ok(req.header("X-Auth-Token", k.get().await?)),
            None => Ok(req),
        }
    }

    /// Send to server `used`; a 401 makes the next request fetch a new token, and a server that
    /// cannot be reached or answers 503 makes the next request go to the next server.
    async fn send(&self, used: usize, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = match self.authed(req).await?.send().await {
            Ok(resp) => resp,
            Err(e) => {
                self.servers.failed(used);
                return Err(e.into());
            }
        };
        match resp.status().as_u16() {
            401 => {
                if let Some(k) = &self.keystone {
                    k.forget().await;
                }
            }
            503 => self.servers.failed(used),
            _ => {}
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
        let (used, url) = self.servers.url(&format!("/v2.0/neutrino/agents?starting={starting}"));
        self.send(used, self.http.post(url).json(reg).timeout(Duration::from_secs(10))).await.map(|_| ())
    }

    /// This host's own address for a router's SNAT (distributed SNAT): the IPv4 address of the
    /// port the server keeps for it, made on first use.
    pub async fn host_snat_address(&self, host: &str, router_id: &str) -> Result<Option<String>, ClientError> {
        let (used, url) = self.servers.url(&format!("/v2.0/neutrino/hosts/{host}/routers/{router_id}/snat_port"));
        let resp = self.send(used, self.http.put(url).timeout(Duration::from_secs(10))).await?;
        let body: serde_json::Value = resp.json().await?;
        let ips = body["port"]["fixed_ips"].as_array().cloned().unwrap_or_default();
        Ok(ips
            .iter()
            .filter_map(|f| f["ip_address"].as_str())
            .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
            .map(str::to_string))
    }

    pub async fn report(&self, report: &PortStatusReport) -> Result<(), ClientError> {
        let (used, url) = self.servers.url("/v2.0/neutrino/ports/status");
        self.send(used, self.http.put(url).json(report).timeout(Duration::from_secs(10))).await.map(|_| ())
    }

    /// Follow the host's stream, sending each message to `out`, until the connection ends (and
    /// then the next connection goes to the next server, when there are several).
    /// `since`: the revision of the last message applied (the server then sends what changed
    /// after it, or a snapshot). A silent connection (no heartbeat for 35 s) is treated as dead.
    pub async fn follow(
        &self,
        host: &str,
        since: Option<u64>,
        out: &mpsc::Sender<StreamMessage>,
    ) -> Result<(), ClientError> {
        let mut path = format!("/v2.0/neutrino/hosts/{host}/stream?protocol={PROTOCOL_VERSION}");
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
        }
        let (used, url) = self.servers.url(&path);
        let followed = self.follow_on(used, url, out).await;
        self.servers.failed(used);
        followed
    }

    async fn follow_on(&self, used: usize, url: String, out: &mpsc::Sender<StreamMessage>) -> Result<(), ClientError> {
        // A server that never answers (a resume it cannot serve) counts as a dead one too.
        let resp = match tokio::time::timeout(SILENCE, self.send(used, self.http.get(url))).await {
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

#[cfg(test)]
mod tests {
    use super::Servers;

    #[test]
    fn several_servers_are_used_in_turn_as_they_fail() {
        let s = Servers::parse(" http://a:9696/ ,http://b:9696,,");
        assert_eq!(s.bases, ["http://a:9696", "http://b:9696"]);
        assert_eq!(s.url("/x"), (0, "http://a:9696/x".to_string()));
        s.failed(0);
        assert_eq!(s.url("/x").0, 1);
        // A failure reported late, of a server already left, moves nothing.
        s.failed(0);
        assert_eq!(s.url("/x").0, 1);
        s.failed(1);
        assert_eq!(s.url("/x").0, 0);
        assert_eq!(Servers::parse("").bases, ["http://127.0.0.1:9696"]);
        let one = Servers::parse("http://a:9696");
        one.failed(0);
        assert_eq!(one.url("/x").0, 0);
    }
}
