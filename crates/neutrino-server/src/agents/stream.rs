//! `GET /v2.0/neutrino/hosts/{host}/stream`: the host's view as newline-delimited JSON.
//!
//! Query: `since=R` (the revision of the last message the agent applied) and `protocol=N`
//! (the stream version the agent speaks, 1 when absent). The first message is a snapshot, or,
//! when this server's history reaches back to R, an update with exactly what changed after R
//! (a heartbeat when nothing did). Then one update per revision that changes the view.

use super::hub::Outgoing;
use crate::error::{HttpError, HttpResult};
use crate::App;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use neutrino_api::agent::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use neutrino_api::ApiError;
use std::sync::atomic::Ordering;

/// Messages written in one chunk at most (queued ones are batched into one write).
const BATCH: usize = 256;

pub async fn stream(State(app): State<App>, Path(host): Path<String>, RawQuery(q): RawQuery) -> HttpResult<Response> {
    let mut since = None;
    let mut protocol = 1;
    for (key, value) in form_urlencoded::parse(q.as_deref().unwrap_or_default().as_bytes()) {
        let bad = |what: &str| HttpError(ApiError::bad_request(format!("Invalid stream parameter {what}: '{value}'")));
        match key.as_ref() {
            "since" => since = Some(value.parse::<u64>().map_err(|_| bad("since"))?),
            "protocol" => protocol = value.parse::<u32>().map_err(|_| bad("protocol"))?,
            _ => {}
        }
    }
    if protocol < MIN_PROTOCOL_VERSION {
        return Err(HttpError(ApiError::bad_request(format!(
            "Stream protocol {protocol} is not served; this server speaks {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
        ))));
    }
    let subscription = app.hub.subscribe(&host, since).await.map_err(|e| {
        HttpError(ApiError::new(StatusCode::SERVICE_UNAVAILABLE.as_u16(), "ServiceUnavailable", e.to_string()))
    })?;
    tracing::debug!(%host, ?since, snapshot = subscription.snapshot, revision = subscription.first.revision, "stream opened");
    let state = Lines {
        first: Some(subscription.first),
        queue: subscription.updates,
        app: app.clone(),
        delivered: subscription.delivered,
        closing: app.closing.subscribe(),
    };
    let body = futures::stream::unfold(state, next_chunk);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

struct Lines {
    first: Option<Outgoing>,
    queue: tokio::sync::mpsc::Receiver<Outgoing>,
    app: App,
    delivered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The server is stopping: the stream ends (its agent reconnects elsewhere).
    closing: tokio::sync::watch::Receiver<bool>,
}

/// The next chunk: the first message, then every queued message (at most [`BATCH`]).
async fn next_chunk(mut s: Lines) -> Option<(Result<Bytes, std::io::Error>, Lines)> {
    let mut messages: Vec<Outgoing> = Vec::new();
    if *s.closing.borrow() {
        return None;
    }
    if let Some(first) = s.first.take() {
        messages.push(first);
    } else {
        let next = tokio::select! {
            m = s.queue.recv() => m,
            _ = s.closing.wait_for(|c| *c) => None,
        };
        messages.push(next?);
        while messages.len() < BATCH {
            match s.queue.try_recv() {
                Ok(m) => messages.push(m),
                Err(_) => break,
            }
        }
    }
    let revision = messages.iter().map(|m| m.revision).max().unwrap_or(0);
    let chunk: Bytes = if messages.len() == 1 {
        messages.pop().map(|m| m.line).unwrap_or_default()
    } else {
        let mut buf = Vec::with_capacity(messages.iter().map(|m| m.line.len()).sum());
        for m in &messages {
            buf.extend_from_slice(&m.line);
        }
        Bytes::from(buf)
    };
    s.delivered.fetch_max(revision, Ordering::Relaxed);
    s.app.metrics.stream_updates.inc_by(messages.len().max(1) as u64);
    s.app.metrics.stream_bytes.inc_by(chunk.len() as u64);
    Some((Ok(chunk), s))
}
