use crate::agents::hub::{Hub, HubConfig};
use crate::auth::{AuthStrategy, KeystoneValidator};
use crate::metrics::Metrics;
use crate::ml2::Ml2;
use neutrino_domain::policy::Rules;
use neutrino_domain::quotas::QuotaDefaults;
use neutrino_domain::segments::TypeDriverConfig;
use neutrino_store::Store;
use std::sync::Arc;

/// Server options, named after Neutron's where the meaning is the same.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `[DEFAULT] bind_host`
    pub bind_host: String,
    /// `[DEFAULT] bind_port`
    pub bind_port: u16,
    /// `[database] connection`
    pub connection: String,
    /// `[ml2]` and `[ml2_type_*]`
    pub type_drivers: TypeDriverConfig,
    /// `[ml2] mechanism_drivers`
    pub mechanism_drivers: Vec<String>,
    /// `[DEFAULT] agent_down_time` in seconds.
    pub agent_down_time: u64,
    /// The project noauth requests act in when the body names none.
    pub noauth_project: String,
    /// `[DEFAULT] dns_domain` when DNS integration is on (`[ml2] extension_drivers = dns`).
    pub dns_domain: Option<String>,
    /// `[DEFAULT] auth_strategy` (and `[keystone_authtoken]`).
    pub auth: AuthStrategy,
    /// `[oslo_policy] policy_file`: rules overriding Neutron's defaults.
    pub policy_file: Option<std::path::PathBuf>,
    /// `[quotas]`: the limits of projects without overrides.
    pub quotas: QuotaDefaults,
    /// `[neutrino] change_log_keep_revisions`: how many revisions of the change log are kept
    /// whole (agents that reconnect within them resume instead of taking a snapshot).
    pub change_log_keep_revisions: u64,
    /// `[DEFAULT] max_l3_agents_per_router`: how many gateway hosts (`dvr_snat`) serve one
    /// router's centralized SNAT (the first alive is active, the others stand by).
    pub max_l3_agents_per_router: usize,
    /// `[oslo_middleware] max_request_body_size`: larger API bodies get a 413.
    pub max_request_body_size: usize,
    /// `[DEFAULT] graceful_shutdown_timeout` (oslo.service): how long a stopping server lets
    /// requests in flight finish.
    pub graceful_shutdown_timeout: std::time::Duration,
    /// `[ssl] cert_file`, `key_file`, `ca_file`: the API served over TLS (and client
    /// certificates required with `ca_file`).
    pub ssl: Option<neutrino_tls::ServerTls>,
    /// `[oslo_middleware] enable_proxy_headers_parsing`: trust `X-Forwarded-Proto` from a
    /// proxy in front (Neutron's default: no).
    pub proxy_headers_parsing: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind_host: "127.0.0.1".into(),
            bind_port: 9696,
            connection: "sqlite:///neutrino.sqlite".into(),
            type_drivers: TypeDriverConfig::default(),
            mechanism_drivers: vec!["linuxbridge".into(), "l2population".into()],
            agent_down_time: 75,
            noauth_project: "fake_project_id".into(),
            dns_domain: None,
            auth: AuthStrategy::NoAuth,
            policy_file: None,
            quotas: QuotaDefaults::default(),
            change_log_keep_revisions: 50_000,
            max_l3_agents_per_router: 3,
            max_request_body_size: 114_688,
            graceful_shutdown_timeout: std::time::Duration::from_secs(60),
            ssl: None,
            proxy_headers_parsing: false,
        }
    }
}

/// Shared state of all handlers: cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub config: Arc<ServerConfig>,
    pub ml2: Arc<Ml2>,
    pub policy: Arc<Rules>,
    pub keystone: Option<Arc<KeystoneValidator>>,
    /// The fan-out hub behind the agent streams.
    pub hub: Hub,
    pub metrics: Metrics,
    /// Set when the server stops: the agent streams end, so that agents go elsewhere at once.
    pub closing: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// The shared state: loads the mechanism drivers, makes the default segment ranges those
    /// of the configuration, applies the settings the store's rendered data depends on, and
    /// starts the hub (which loads the change log). Needs a Tokio runtime.
    pub async fn new(mut store: Store, config: ServerConfig) -> Result<App, neutrino_store::StoreError> {
        let ml2 = Arc::new(Ml2::load(&config.mechanism_drivers).map_err(neutrino_store::StoreError::Config)?);
        if ml2.has_postcommit_hooks() {
            ml2.clone().follow(store.on_commit());
        }
        store.set_dns_domain(config.dns_domain.clone()).await?;
        store.set_quota_defaults(config.quotas.clone());
        let mut tx = store.begin().await?;
        neutrino_store::sync_default_ranges(&mut tx, &config.type_drivers.default_ranges()).await?;
        tx.commit().await?;
        let mut policy = Rules::neutron_defaults();
        if let Some(path) = &config.policy_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| neutrino_store::StoreError::Config(format!("policy file {}: {e}", path.display())))?;
            let n = policy
                .apply_policy_file(&text)
                .map_err(|e| neutrino_store::StoreError::Config(format!("policy file {}: {e}", path.display())))?;
            tracing::info!(rules = n, file = %path.display(), "policy rules overridden");
        }
        let keystone = match &config.auth {
            AuthStrategy::NoAuth => None,
            AuthStrategy::Keystone(k) => Some(Arc::new(KeystoneValidator::new(k.clone()))),
        };
        let metrics = Metrics::new();
        let hub_config =
            HubConfig { l2population: ml2.populates_l2(), keep_revisions: config.change_log_keep_revisions.max(1) };
        let hub = Hub::start(store.clone(), hub_config, metrics.clone()).await?;
        let closing = tokio::sync::watch::Sender::new(false);
        Ok(App { store, config: Arc::new(config), ml2, policy: Arc::new(policy), keystone, hub, metrics, closing })
    }
}
