//! A simulated host: it follows `GET /v2.0/neutrino/hosts/{host}/stream` over real HTTP as an
//! agent does (snapshot, per-revision updates, resume with `since`), without a kernel. Tests
//! use it to check what each host is told; the fan-out benchmark runs a thousand of them.

use futures::StreamExt;
use neutrino_api::agent::{HostState, StreamMessage, PROTOCOL_VERSION};
use std::pin::Pin;
use std::time::{Duration, Instant};

type Bytes = Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad stream line: {0}")]
    BadLine(String),
}

/// One open stream.
pub struct HostStream {
    body: Bytes,
    buf: Vec<u8>,
    /// Bytes received so far.
    pub bytes: u64,
}

impl HostStream {
    /// Open `host`'s stream on the server at `base`, resuming after `since` if given.
    pub async fn open(
        http: &reqwest::Client,
        base: &str,
        host: &str,
        since: Option<u64>,
    ) -> Result<HostStream, StreamError> {
        let mut url =
            format!("{}/v2.0/neutrino/hosts/{host}/stream?protocol={PROTOCOL_VERSION}", base.trim_end_matches('/'));
        if let Some(since) = since {
            url.push_str(&format!("&since={since}"));
        }
        let resp = http.get(url).send().await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            return Err(StreamError::Status { status, body: resp.text().await.unwrap_or_default() });
        }
        Ok(HostStream { body: Box::pin(resp.bytes_stream()), buf: Vec::new(), bytes: 0 })
    }

    /// The next message, or `None` when the stream ended or nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<StreamMessage>, StreamError> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return serde_json::from_slice(&line[..line.len() - 1])
                    .map(Some)
                    .map_err(|e| StreamError::BadLine(format!("{e}: {}", String::from_utf8_lossy(&line))));
            }
            match tokio::time::timeout(wait, self.body.next()).await {
                Err(_) | Ok(None) => return Ok(None),
                Ok(Some(chunk)) => {
                    let chunk = chunk?;
                    self.bytes += chunk.len() as u64;
                    self.buf.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// What a host knows: the revision it is at and its view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostView {
    pub revision: Option<u64>,
    pub state: HostState,
}

impl HostView {
    /// Apply a message as an agent does. Returns whether the view changed; an update before
    /// any snapshot, or one for a revision already applied, is an error (a test wants to know).
    pub fn apply(&mut self, message: &StreamMessage) -> Result<bool, String> {
        match message {
            StreamMessage::Snapshot { revision, state, .. } => {
                self.revision = Some(*revision);
                self.state = state.clone();
                Ok(true)
            }
            StreamMessage::Update { revision, delta } => match self.revision {
                None => Err(format!("update {revision} before a snapshot")),
                Some(at) if *revision <= at => Err(format!("update {revision} again (the view is at {at})")),
                Some(_) => {
                    self.revision = Some(*revision);
                    self.state.apply(delta.clone());
                    Ok(true)
                }
            },
            StreamMessage::Heartbeat { revision } => {
                if let Some(at) = self.revision {
                    if *revision < at {
                        return Err(format!("heartbeat {revision} behind the view ({at})"));
                    }
                    self.revision = Some(*revision);
                }
                Ok(false)
            }
        }
    }
}

/// A message and when it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub message: StreamMessage,
}
