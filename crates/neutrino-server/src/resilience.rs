//! What keeps a request whole under load and faults: the body's size limit, and the one place
//! where a request that met a transient database failure is run again.
//!
//! A request is retried only when its attempt committed nothing and every transaction of it
//! was rolled back ([`neutrino_store::attempt`]): a PostgreSQL serialization failure or
//! deadlock (the known case: bulk creates in several projects at once), or a connection lost
//! before COMMIT. Nothing the attempt did is then visible, so running it again repeats
//! nothing. What still fails is a 503 with `Retry-After`.

use crate::error::HttpError;
use crate::App;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use neutrino_api::ApiError;
use neutrino_store::attempt;
use std::time::Duration;

/// Attempts at a request whose transactions keep being rolled back by the database.
const ATTEMPTS: u32 = 5;
/// No further attempt starts once a request has taken this long: an answer (a 503 with
/// `Retry-After`) to a client that is waiting matters more than one more try.
const RETRY_BUDGET: Duration = Duration::from_secs(10);

/// What a client is told to wait before sending a request the database could not take.
const RETRY_AFTER_SECONDS: &str = "1";

/// The agents' own endpoints carry whole hosts' reports: they get a larger limit.
const AGENT_BODY_LIMIT: usize = 64 << 20;

/// Read the body whole, refusing one over `[oslo_middleware] max_request_body_size` (Neutron's
/// 114,688 bytes by default) with a 413 before anything looks at it.
pub async fn limit_body(State(app): State<App>, req: Request, next: Next) -> Response {
    let limit = if req.uri().path().starts_with("/v2.0/neutrino/") {
        AGENT_BODY_LIMIT.max(app.config.max_request_body_size)
    } else {
        app.config.max_request_body_size
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let bytes = match read_limited(body, limit).await {
        Ok(b) => b,
        Err(BodyRead::TooLarge) => return too_large(),
        Err(BodyRead::Broken) => {
            return HttpError(ApiError::bad_request("The request body could not be read")).into_response()
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

enum BodyRead {
    TooLarge,
    Broken,
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, BodyRead> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyRead::Broken)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyRead::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn too_large() -> Response {
    HttpError(ApiError::new(413, "HTTPRequestEntityTooLarge", "Request is too large.")).into_response()
}

/// Run the request; while its attempt met a transient failure and may run again, run it
/// again (a few times, backing off). The body was read whole by [`limit_body`].
pub async fn retry_transient(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return HttpError(ApiError::bad_request("The request body could not be read")).into_response();
    };
    let mut attempt_no = 1;
    let started = std::time::Instant::now();
    loop {
        let req = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
        let (mut response, attempt) = attempt::run(next.clone().run(req)).await;
        let failed = response.status() == StatusCode::SERVICE_UNAVAILABLE && attempt.transient.is_some();
        if failed && attempt.may_retry() && attempt_no < ATTEMPTS && started.elapsed() < RETRY_BUDGET {
            tracing::info!(
                method = %parts.method,
                path = %parts.uri.path(),
                attempt = attempt_no,
                failure = ?attempt.transient,
                "the database rolled the request back; running it again"
            );
            tokio::time::sleep(backoff(attempt_no)).await;
            attempt_no += 1;
            continue;
        }
        if failed {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        return response;
    }
}

/// 10, 20, 40, 80 ms, each with up to as much again at random (so that two requests that
/// deadlocked each other do not meet again).
fn backoff(attempt_no: u32) -> Duration {
    let base = 10u64 << (attempt_no - 1).min(6);
    Duration::from_millis(base + rand::Rng::gen_range(&mut rand::thread_rng(), 0..=base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for n in 1..ATTEMPTS {
            let d = backoff(n).as_millis() as u64;
            let base = 10u64 << (n - 1);
            assert!((base..=2 * base).contains(&d), "attempt {n}: {d} ms");
        }
    }
}
