//! The agent's side of the server protocol.

use futures::StreamExt;
use neutrino_api::agent::{AgentRegistration, PortStatusReport, StreamMessage};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad stream message: {0}")]
    BadMessage(String),
}

#[derive(Clone)]
pub struct ServerClient {
    base: String,
    http: reqwest::Client,
}

impl ServerClient {
    pub fn new(server_url: &str) -> ServerClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_keepalive(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        ServerClient { base: server_url.trim_end_matches('/').to_string(), http }
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
        let resp = self.http.post(url).json(reg).timeout(Duration::from_secs(10)).send().await?;
        Self::check(resp).await.map(|_| ())
    }

    pub async fn report(&self, report: &PortStatusReport) -> Result<(), ClientError> {
        let url = format!("{}/v2.0/neutrino/ports/status", self.base);
        let resp = self.http.put(url).json(report).timeout(Duration::from_secs(10)).send().await?;
        Self::check(resp).await.map(|_| ())
    }

    /// Follow the host's stream, sending each message to `out`, until the connection ends.
    /// A silent connection (no heartbeat for 35 s) is treated as dead.
    pub async fn follow(&self, host: &str, out: &mpsc::Sender<StreamMessage>) -> Result<(), ClientError> {
        let url = format!("{}/v2.0/neutrino/hosts/{host}/stream", self.base);
        let resp = Self::check(self.http.get(url).send().await?).await?;
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(Duration::from_secs(35), body.next()).await {
                Err(_) => return Err(ClientError::BadMessage("stream went silent".into())),
                Ok(None) => return Ok(()),
                Ok(Some(chunk)) => chunk?,
            };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let msg: StreamMessage = serde_json::from_slice(&line[..line.len() - 1])
                    .map_err(|e| ClientError::BadMessage(e.to_string()))?;
                if out.send(msg).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
