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
        }
    }
}

/// Shared state of all handlers: cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub config: Arc<ServerConfig>,
}

impl App {
    pub fn new(store: Store, config: ServerConfig) -> App {
        App { store, config: Arc::new(config) }
    }
}
