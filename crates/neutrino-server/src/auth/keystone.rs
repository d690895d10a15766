//! Token validation against Keystone v3, as keystonemiddleware does it: the service's own
//! token (password authentication with `[keystone_authtoken]`) asks
//! `GET /v3/auth/tokens` about the caller's token; answers are cached until the token expires
//! (at most `token_cache_time`), in a bounded cache.
//!
//! The service token is shared behind a read lock and refreshed by one request at a time only
//! when it is about to expire, so validation never serializes requests.

use neutrino_api::keystone::PasswordAuth;
use neutrino_domain::policy::Credentials;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// `[keystone_authtoken]`, with Neutron's option names.
#[derive(Debug, Clone, Default)]
pub struct KeystoneConfig {
    /// Where clients are sent for tokens (`WWW-Authenticate`).
    pub www_authenticate_uri: String,
    /// The service's own credentials (`auth_url`, `username`, `password`, `project_name`, ...).
    pub service: PasswordAuth,
    /// Seconds a validated token is trusted without asking again (`token_cache_time`, 300).
    pub token_cache_time: u64,
    /// Most tokens kept (`neutrino_token_cache_size`, 10000).
    pub token_cache_size: usize,
    /// How Keystone's HTTPS is checked (`cafile`, `certfile`, `keyfile`, `insecure`).
    pub tls: neutrino_tls::ClientTls,
}

impl KeystoneConfig {
    /// The service's credentials with the default cache and `www_authenticate_uri = auth_url`.
    pub fn new(service: PasswordAuth) -> KeystoneConfig {
        KeystoneConfig {
            www_authenticate_uri: service.auth_url.clone(),
            service,
            token_cache_time: 300,
            token_cache_size: 10_000,
            tls: neutrino_tls::ClientTls::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    #[error("keystone request failed: {}", neutrino_tls::with_causes(.0))]
    /// With its causes in the message, and so not also as `source()` (once is enough).
    Http(reqwest::Error),
    #[error("keystone answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("keystone answer not understood: {0}")]
    Malformed(String),
}

impl From<reqwest::Error> for KeystoneError {
    fn from(e: reqwest::Error) -> KeystoneError {
        KeystoneError::Http(e)
    }
}

struct ServiceToken {
    token: String,
    expires: Instant,
}

struct CachedToken {
    creds: Credentials,
    until: Instant,
}

/// A bounded map of validated tokens; the oldest entries go first when it is full.
struct TokenCache {
    entries: HashMap<String, CachedToken>,
    order: VecDeque<String>,
    capacity: usize,
}

impl TokenCache {
    fn get(&mut self, token: &str) -> Option<Credentials> {
        match self.entries.get(token) {
            Some(e) if e.until > Instant::now() => Some(e.creds.clone()),
            Some(_) => {
                self.entries.remove(token);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, token: String, entry: CachedToken) {
        // Expired entries leave the map on lookup; their places in the order go here, so the
        // order never holds more than twice the capacity.
        if self.order.len() >= 2 * self.capacity.max(1) {
            let mut seen = std::collections::HashSet::new();
            let entries = &self.entries;
            self.order.retain(|t| entries.contains_key(t) && seen.insert(t.clone()));
        }
        while self.entries.len() >= self.capacity.max(1) {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        if self.entries.insert(token.clone(), entry).is_none() {
            self.order.push_back(token);
        }
    }

    #[cfg(test)]
    fn order_len(&self) -> usize {
        self.order.len()
    }
}

pub struct KeystoneValidator {
    config: KeystoneConfig,
    /// `<auth_url>` ending in `/v3`.
    identity: String,
    client: reqwest::Client,
    service: RwLock<Option<ServiceToken>>,
    refresh: tokio::sync::Mutex<()>,
    cache: Mutex<TokenCache>,
}

impl KeystoneValidator {
    pub fn new(config: KeystoneConfig) -> KeystoneValidator {
        let base = config.service.auth_url.trim_end_matches('/');
        let identity = if base.ends_with("/v3") { base.to_string() } else { format!("{base}/v3") };
        // The options were checked when the configuration was read; should a file have gone
        // since, the client trusts no CA at all (every HTTPS call fails, none is downgraded).
        let client = config.tls.client(Some(Duration::from_secs(10))).unwrap_or_else(|e| {
            tracing::error!(error = %e, "[keystone_authtoken] TLS options: Keystone over HTTPS will fail");
            neutrino_tls::trusting_nothing(Duration::from_secs(10))
        });
        let cache = TokenCache { entries: HashMap::new(), order: VecDeque::new(), capacity: config.token_cache_size };
        KeystoneValidator {
            config,
            identity,
            client,
            service: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            cache: Mutex::new(cache),
        }
    }

    pub fn www_authenticate_uri(&self) -> &str {
        if self.config.www_authenticate_uri.is_empty() {
            &self.config.service.auth_url
        } else {
            &self.config.www_authenticate_uri
        }
    }

    /// The caller's credentials, `None` for an invalid or expired token.
    pub async fn validate(&self, token: &str) -> Result<Option<Credentials>, KeystoneError> {
        if let Some(c) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(token) {
            return Ok(Some(c));
        }
        let mut refused: Option<String> = None;
        for attempt in 0..2 {
            let service = self.service_token(refused.as_deref()).await?;
            let resp = self.validation_request(&service, token).await?;
            match resp.status().as_u16() {
                200 => {
                    let body: Value = resp.json().await?;
                    let (creds, expires) = credentials_of(&body)?;
                    let ttl = Duration::from_secs(self.config.token_cache_time);
                    let until = Instant::now() + expires.min(ttl);
                    self.cache
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(token.to_string(), CachedToken { creds: creds.clone(), until });
                    return Ok(Some(creds));
                }
                404 => return Ok(None),
                // Our own token was refused: get a new one and ask again, once.
                401 | 403 if attempt == 0 => refused = Some(service),
                status => return Err(KeystoneError::Status { status, body: resp.text().await.unwrap_or_default() }),
            }
        }
        Ok(None)
    }

    /// Ask Keystone about `token`. A request that never got an answer (a kept-alive
    /// connection Keystone had just closed, a refused connection) is sent again, up to
    /// twice, as keystonemiddleware's `http_request_max_retries` does: it only reads.
    async fn validation_request(&self, service: &str, token: &str) -> Result<reqwest::Response, KeystoneError> {
        let mut tries = 0;
        loop {
            let sent = self
                .client
                .get(format!("{}/auth/tokens", self.identity))
                .header("X-Auth-Token", service)
                .header("X-Subject-Token", token)
                .send()
                .await;
            match sent {
                Err(e) if tries < 2 && (e.is_connect() || e.is_request()) => {
                    tries += 1;
                    tracing::debug!(error = %e, "Keystone did not answer; asking again");
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                other => return Ok(other?),
            }
        }
    }

    /// The service's token: the shared one while it has a minute left, else a new one (one
    /// request fetches it; the others wait for that one instead of asking Keystone too).
    /// `refused`: a token Keystone just refused, which must not be handed out again (another
    /// request may already have replaced it, and then that replacement is used).
    async fn service_token(&self, refused: Option<&str>) -> Result<String, KeystoneError> {
        let fresh = |t: &Option<ServiceToken>| {
            t.as_ref()
                .filter(|t| t.expires > Instant::now() + Duration::from_secs(60) && Some(t.token.as_str()) != refused)
                .map(|t| t.token.clone())
        };
        if let Some(t) = fresh(&*self.service.read().await) {
            return Ok(t);
        }
        let _one_at_a_time = self.refresh.lock().await;
        if let Some(t) = fresh(&*self.service.read().await) {
            return Ok(t);
        }
        let auth = &self.config.service;
        let resp = self.client.post(auth.tokens_url()).json(&auth.request_body()).send().await?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(KeystoneError::Status { status, body: resp.text().await.unwrap_or_default() });
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| KeystoneError::Malformed("no X-Subject-Token".into()))?;
        let body: Value = resp.json().await?;
        let (_, expires) = credentials_of(&body)?;
        *self.service.write().await = Some(ServiceToken { token: token.clone(), expires: Instant::now() + expires });
        tracing::info!(user = %auth.username, "obtained a service token from Keystone");
        Ok(token)
    }
}

/// Credentials and remaining lifetime of a `{"token": {...}}` body.
fn credentials_of(body: &Value) -> Result<(Credentials, Duration), KeystoneError> {
    let token = body.get("token").ok_or_else(|| KeystoneError::Malformed("no token".into()))?;
    let expires_at = token["expires_at"].as_str().ok_or_else(|| KeystoneError::Malformed("no expires_at".into()))?;
    let remaining =
        seconds_until(expires_at).ok_or_else(|| KeystoneError::Malformed(format!("expires_at {expires_at}")))?;
    let roles = token["roles"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["name"].as_str()).map(|r| r.to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let creds = Credentials {
        user_id: token["user"]["id"].as_str().map(String::from),
        project_id: token["project"]["id"].as_str().map(String::from),
        roles,
    };
    Ok((creds, remaining))
}

/// Time left until an ISO 8601 UTC instant such as `2026-11-26T16:05:28.000000Z`.
fn seconds_until(at: &str) -> Option<Duration> {
    let at = at.trim_end_matches('Z');
    let at = at.split('.').next()?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let when = time::PrimitiveDateTime::parse(at, &fmt).ok()?.assume_utc();
    let left = when - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs(left.whole_seconds().max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_bodies_give_credentials_and_lifetime() {
        let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000000Z");
        let body = json!({"token": {"expires_at": later.format(&fmt).unwrap(),
            "user": {"id": "u1"}, "project": {"id": "p1"}, "roles": [{"name": "Member"}, {"name": "reader"}]}});
        let (c, left) = credentials_of(&body).unwrap();
        assert_eq!((c.user_id.as_deref(), c.project_id.as_deref()), (Some("u1"), Some("p1")));
        assert_eq!(c.roles, ["member", "reader"]);
        assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
        assert!(credentials_of(&json!({"token": {}})).is_err());
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_expired_tokens() {
        let mut cache = TokenCache { entries: HashMap::new(), order: VecDeque::new(), capacity: 2 };
        let entry =
            |secs| CachedToken { creds: Credentials::default(), until: Instant::now() + Duration::from_secs(secs) };
        cache.insert("a".into(), entry(60));
        cache.insert("b".into(), entry(60));
        cache.insert("c".into(), entry(60));
        assert!(cache.get("a").is_none(), "the oldest went");
        assert!(cache.get("b").is_some() && cache.get("c").is_some());
        cache.insert("d".into(), entry(0));
        assert!(cache.get("d").is_none(), "expired");
        assert!(cache.entries.len() <= 2);
        for _ in 0..100 {
            cache.insert("e".into(), entry(0));
            assert!(cache.get("e").is_none());
        }
        assert!(cache.order_len() <= 4, "the order stays bounded");
    }
}
