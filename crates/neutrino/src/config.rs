//! Configuration from Neutron-style INI files (`--config-file`, repeatable; later files win).

use ini::Ini;
use neutrino_agent::AgentConfig;
use neutrino_api::keystone::PasswordAuth;
use neutrino_domain::quotas::{QuotaDefaults, QuotaResource};
use neutrino_domain::segments::{
    parse_tunnel_ranges, parse_vlan_ranges, parse_vni_ranges, TypeDriverConfig, MAX_GRE_ID,
};
use neutrino_server::auth::{AuthStrategy, KeystoneConfig};
use neutrino_server::ServerConfig;
use neutrino_tls::{ClientTls, ServerTls};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Options Neutrino reads, by section. Anything else is logged once as ignored.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "DEFAULT",
        &[
            "bind_host",
            "bind_port",
            "host",
            "state_path",
            "agent_down_time",
            "max_l3_agents_per_router",
            "agent_mode",
            "global_physnet_mtu",
            "debug",
            "auth_strategy",
            "use_json",
            "core_plugin",
            "dns_domain",
            "dhcp_lease_duration",
            "nova_metadata_host",
            "nova_metadata_port",
            "nova_metadata_protocol",
            "metadata_proxy_shared_secret",
            "dnsmasq_dns_servers",
            "min_rtr_adv_interval",
            "max_rtr_adv_interval",
            "graceful_shutdown_timeout",
            "use_ssl",
            "auth_ca_cert",
            "nova_client_cert",
            "nova_client_priv_key",
            "nova_metadata_insecure",
        ],
    ),
    ("ssl", &["cert_file", "key_file", "ca_file"]),
    ("database", &["connection", "max_pool_size"]),
    ("oslo_middleware", &["max_request_body_size", "enable_proxy_headers_parsing"]),
    (
        "keystone_authtoken",
        &[
            "www_authenticate_uri",
            "auth_uri",
            "auth_url",
            "auth_type",
            "username",
            "password",
            "project_name",
            "user_domain_name",
            "project_domain_name",
            "token_cache_time",
            "neutrino_token_cache_size",
            "cafile",
            "certfile",
            "keyfile",
            "insecure",
        ],
    ),
    ("oslo_policy", &["policy_file", "enforce_new_defaults", "enforce_scope"]),
    (
        "ml2",
        &[
            "type_drivers",
            "tenant_network_types",
            "mechanism_drivers",
            "extension_drivers",
            "path_mtu",
            "physical_network_mtus",
            "overlay_ip_version",
        ],
    ),
    ("ml2_type_vxlan", &["vni_ranges"]),
    ("ml2_type_geneve", &["vni_ranges", "max_header_size"]),
    ("ml2_type_gre", &["tunnel_id_ranges"]),
    ("ml2_type_vlan", &["network_vlan_ranges"]),
    ("ml2_type_flat", &["flat_networks"]),
    (
        "agent",
        &[
            "server_url",
            "report_interval",
            "resync_interval",
            "availability_zone",
            "metrics_listen",
            "namespace_prefix",
            "distributed_snat",
            "agent_mode",
            "gateway_probe_interval_ms",
            "gateway_probe_misses",
            "enable_dhcp",
            "enable_metadata_proxy",
            "ssl_ca_file",
            "ssl_cert_file",
            "ssl_key_file",
        ],
    ),
    ("neutrino", &["change_log_keep_revisions"]),
    ("AGENT", &["availability_zone"]),
    ("vxlan", &["local_ip", "enable_vxlan", "l2_population", "arp_responder"]),
    ("linux_bridge", &["physical_interface_mappings"]),
    ("securitygroup", &["firewall_driver", "enable_security_group"]),
    ("quotas", QUOTA_OPTIONS),
    ("QUOTAS", QUOTA_OPTIONS),
];

/// `[quotas]` (oslo.config also reads it as `[QUOTAS]`): one default per counted resource, and
/// `default_quota` for resources without their own option.
const QUOTA_OPTIONS: &[&str] = &[
    "default_quota",
    "quota_network",
    "quota_subnet",
    "quota_port",
    "quota_subnetpool",
    "quota_security_group",
    "quota_security_group_rule",
    "quota_rbac_policy",
];

/// All options of all files, merged.
#[derive(Debug, Default, Clone)]
pub struct Options {
    values: BTreeMap<(String, String), String>,
}

impl Options {
    pub fn load(files: &[PathBuf]) -> Result<Options, String> {
        let mut o = Options::default();
        for f in files {
            let ini = Ini::load_from_file(f).map_err(|e| format!("{}: {e}", f.display()))?;
            for (section, props) in ini.iter() {
                let section = section.unwrap_or("DEFAULT");
                for (k, v) in props.iter() {
                    o.values.insert((section.to_string(), k.to_string()), v.trim().to_string());
                }
            }
        }
        Ok(o)
    }

    /// Log, once, each option Neutrino does not use (after logging is set up).
    pub fn log_ignored(&self) {
        for (section, key) in self.values.keys() {
            let known = KNOWN.iter().any(|(s, keys)| s == section && keys.contains(&key.as_str()));
            if !known {
                tracing::info!("ignoring option [{section}] {key}: not used by Neutrino");
            }
        }
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.values.get(&(section.to_string(), key.to_string())).map(String::as_str)
    }

    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        self.values.insert((section.to_string(), key.to_string()), value.to_string());
    }

    fn list(&self, section: &str, key: &str) -> Option<Vec<String>> {
        self.get(section, key)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
    }

    /// `physnet1:eth1, physnet2:eth2` as a map; a malformed or repeated entry is an error.
    fn mappings(&self, section: &str, key: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for entry in self.list(section, key).unwrap_or_default() {
            let (physnet, device) = entry
                .split_once(':')
                .map(|(a, b)| (a.trim(), b.trim()))
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| format!("[{section}] {key}: '{entry}' is not of the form <physical_network>:<name>"))?;
            if out.insert(physnet.to_string(), device.to_string()).is_some() {
                return Err(format!("[{section}] {key}: physical network '{physnet}' is mapped twice"));
            }
        }
        Ok(out)
    }

    fn number<T: std::str::FromStr>(&self, section: &str, key: &str) -> Result<Option<T>, String> {
        self.get(section, key)
            .map(|v| v.parse().map_err(|_| format!("[{section}] {key}: '{v}' is not a valid number")))
            .transpose()
    }

    /// `[DEFAULT] use_json` (oslo.log): logs as JSON lines.
    pub fn use_json(&self) -> bool {
        // Logging is set up before anything can be reported: a bad value is plain text here,
        // and stops the process once read again by `server()` or `agent()`.
        self.flag("DEFAULT", "use_json").unwrap_or(false)
    }

    pub fn state_path(&self) -> PathBuf {
        match self.get("DEFAULT", "state_path") {
            Some(p) => PathBuf::from(p),
            None => default_state_path(),
        }
    }

    pub fn server(&self) -> Result<ServerConfig, String> {
        let mut c = ServerConfig::default();
        if let Some(v) = self.get("DEFAULT", "bind_host") {
            c.bind_host = v.to_string();
        }
        if let Some(v) = self.number("DEFAULT", "bind_port")? {
            c.bind_port = v;
        }
        if let Some(v) = self.number::<usize>("DEFAULT", "max_l3_agents_per_router")? {
            c.max_l3_agents_per_router = v.max(1);
        }
        if let Some(v) = self.number("DEFAULT", "agent_down_time")? {
            c.agent_down_time = v;
        }
        if let Some(v) = self.number::<usize>("oslo_middleware", "max_request_body_size")? {
            c.max_request_body_size = v;
        }
        if let Some(v) = self.number::<u64>("DEFAULT", "graceful_shutdown_timeout")? {
            c.graceful_shutdown_timeout = std::time::Duration::from_secs(v);
        }
        self.flag("DEFAULT", "use_json")?;
        c.ssl = self.ssl()?;
        c.proxy_headers_parsing = self.flag("oslo_middleware", "enable_proxy_headers_parsing")?;
        if let Some(v) = self.number::<u64>("neutrino", "change_log_keep_revisions")? {
            if v == 0 {
                return Err("[neutrino] change_log_keep_revisions: must be at least 1".into());
            }
            c.change_log_keep_revisions = v;
        }
        c.connection = match self.get("database", "connection") {
            Some(v) => v.to_string(),
            None => format!("sqlite:///{}", self.state_path().join("neutrino.sqlite").display()),
        };
        let mut t = TypeDriverConfig::default();
        if let Some(v) = self.list("ml2", "type_drivers") {
            t.type_drivers = v;
        }
        if let Some(v) = self.list("ml2", "tenant_network_types") {
            t.tenant_network_types = v;
        }
        if let Some(v) = self.get("ml2_type_vxlan", "vni_ranges") {
            t.vni_ranges = parse_vni_ranges(v).map_err(|e| format!("[ml2_type_vxlan] vni_ranges: {e}"))?;
        }
        if let Some(v) = self.get("ml2_type_geneve", "vni_ranges") {
            t.geneve_vni_ranges = parse_vni_ranges(v).map_err(|e| format!("[ml2_type_geneve] vni_ranges: {e}"))?;
        }
        if let Some(v) = self.number("ml2_type_geneve", "max_header_size")? {
            t.geneve_max_header_size = v;
        }
        if let Some(v) = self.get("ml2_type_gre", "tunnel_id_ranges") {
            t.tunnel_id_ranges =
                parse_tunnel_ranges(v, MAX_GRE_ID).map_err(|e| format!("[ml2_type_gre] tunnel_id_ranges: {e}"))?;
        }
        if let Some(v) = self.get("ml2_type_vlan", "network_vlan_ranges") {
            t.network_vlan_ranges =
                parse_vlan_ranges(v).map_err(|e| format!("[ml2_type_vlan] network_vlan_ranges: {e}"))?;
        }
        if let Some(v) = self.list("ml2_type_flat", "flat_networks") {
            t.flat_networks = v;
        }
        if let Some(v) = self.number("DEFAULT", "global_physnet_mtu")? {
            t.global_physnet_mtu = v;
        }
        if let Some(v) = self.number("ml2", "path_mtu")? {
            t.path_mtu = v;
        }
        if let Some(v) = self.number("ml2", "overlay_ip_version")? {
            t.overlay_ip_version = v;
        }
        for (physnet, mtu) in self.mappings("ml2", "physical_network_mtus")? {
            let mtu = mtu.parse().map_err(|_| format!("[ml2] physical_network_mtus: '{mtu}' is not a valid MTU"))?;
            t.physical_network_mtus.insert(physnet, mtu);
        }
        t.validate()?;
        if let Some(v) = self.list("ml2", "mechanism_drivers") {
            neutrino_domain::binding::load_drivers(&v)?;
            c.mechanism_drivers = v;
        }
        c.type_drivers = t;
        let extension_drivers = self.list("ml2", "extension_drivers").unwrap_or_default();
        for d in &extension_drivers {
            if !["dns", "dns_domain_ports", "port_security"].contains(&d.as_str()) {
                return Err(format!("[ml2] extension_drivers: unknown or unsupported extension driver '{d}'"));
            }
        }
        c.auth = self.auth_strategy()?;
        c.policy_file = self.get("oslo_policy", "policy_file").map(|p| self.resolve(p));
        if extension_drivers.iter().any(|d| d == "dns" || d == "dns_domain_ports") {
            let domain = self.get("DEFAULT", "dns_domain").unwrap_or(neutrino_domain::dns::DEFAULT_DNS_DOMAIN);
            let domain =
                neutrino_domain::dns::validate_dns_domain(domain).map_err(|e| format!("[DEFAULT] dns_domain: {e}"))?;
            c.dns_domain = Some(domain);
        }
        c.quotas = self.quotas()?;
        Ok(c)
    }

    /// A relative path is relative to the state directory (Neutron's config directory
    /// convention does not apply: Neutrino has one).
    fn resolve(&self, path: &str) -> PathBuf {
        let p = PathBuf::from(path);
        if p.is_absolute() {
            p
        } else {
            self.state_path().join(p)
        }
    }

    /// `[DEFAULT] auth_strategy` and, for `keystone`, `[keystone_authtoken]`.
    pub fn auth_strategy(&self) -> Result<AuthStrategy, String> {
        // Neutron's default is keystone; without a `[keystone_authtoken]` to use, Neutrino
        // starts in noauth (and says so), so that a bare all-in-one runs.
        let default = if self.get("keystone_authtoken", "auth_url").is_some() { "keystone" } else { "noauth" };
        let strategy = self.get("DEFAULT", "auth_strategy").unwrap_or(default);
        if strategy == "noauth" {
            tracing::warn!("auth_strategy = noauth: every caller is an admin (X-Project-Id and X-Roles are trusted)");
        }
        match strategy {
            "noauth" => Ok(AuthStrategy::NoAuth),
            "keystone" => Ok(AuthStrategy::Keystone(self.keystone()?)),
            other => Err(format!("[DEFAULT] auth_strategy: '{other}' is not keystone or noauth")),
        }
    }

    /// `[keystone_authtoken]` (the service's credentials and where Keystone is).
    pub fn keystone(&self) -> Result<KeystoneConfig, String> {
        let s = "keystone_authtoken";
        let need = |key: &str| {
            self.get(s, key)
                .map(String::from)
                .ok_or_else(|| format!("[{s}] {key} is required with auth_strategy = keystone"))
        };
        let auth_url = need("auth_url")?;
        if !auth_url.starts_with("http://") && !auth_url.starts_with("https://") {
            return Err(format!("[{s}] auth_url: '{auth_url}' is not an http:// or https:// URL"));
        }
        let tls = self.client_tls(s, ["cafile", "certfile", "keyfile"], Some("insecure"))?;
        Options::warn_unused_tls(s, &tls, auth_url.starts_with("https://"));
        Ok(KeystoneConfig {
            tls,
            www_authenticate_uri: self
                .get(s, "www_authenticate_uri")
                .or_else(|| self.get(s, "auth_uri"))
                .unwrap_or(&auth_url)
                .to_string(),
            service: PasswordAuth {
                auth_url: auth_url.clone(),
                username: need("username")?,
                password: need("password")?,
                project_name: need("project_name")?,
                user_domain_name: self.get(s, "user_domain_name").unwrap_or("Default").to_string(),
                project_domain_name: self.get(s, "project_domain_name").unwrap_or("Default").to_string(),
            },
            token_cache_time: self.number(s, "token_cache_time")?.unwrap_or(300),
            token_cache_size: self.number(s, "neutrino_token_cache_size")?.unwrap_or(10_000),
        })
    }

    /// TLS client options of one link: the CA file, certificate and key options (by name, in
    /// `section`), and the option that turns verification off, if the link has one. The files
    /// are read now, so that a bad one stops the process at start.
    fn client_tls(&self, section: &str, files: [&str; 3], insecure: Option<&str>) -> Result<ClientTls, String> {
        let path = |key: &str| self.get(section, key).filter(|v| !v.is_empty()).map(|v| self.resolve(v));
        let insecure_key = insecure;
        let insecure = match insecure {
            Some(key) => self.flag(section, key)?,
            None => false,
        };
        let tls = ClientTls { ca_file: path(files[0]), cert_file: path(files[1]), key_file: path(files[2]), insecure };
        if let (true, Some(key)) = (tls.ca_file.is_some(), insecure_key.filter(|_| tls.insecure)) {
            tracing::warn!("[{section}] {key} = true: the certificate is not verified, {} is not used", files[0]);
        }
        tls.client(None).map_err(|e| format!("[{section}] TLS options: {e}"))?;
        Ok(tls)
    }

    /// TLS files given for a link that is not `https://` are not used: say so.
    fn warn_unused_tls(section: &str, tls: &ClientTls, https: bool) {
        if !https && (tls.ca_file.is_some() || tls.cert_file.is_some() || tls.key_file.is_some()) {
            tracing::warn!("[{section}]: TLS files are set but the URL is not https://; they are not used");
        }
    }

    /// A boolean option, false when unset, read as oslo.config reads one: `true`, `1`, `on`,
    /// `yes` or `false`, `0`, `off`, `no`, in any case; anything else is an error (so that
    /// `use_ssl = y` does not quietly mean plain HTTP).
    fn flag(&self, section: &str, key: &str) -> Result<bool, String> {
        self.flag_or(section, key, false)
    }

    /// Like [`Options::flag`], `default` when unset.
    fn flag_or(&self, section: &str, key: &str, default: bool) -> Result<bool, String> {
        let Some(value) = self.get(section, key) else { return Ok(default) };
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(format!("[{section}] {key}: '{value}' is not a boolean (true/false, yes/no, on/off, 1/0)")),
        }
    }

    /// `[ssl]`: the API over TLS. `cert_file` and `key_file` go together; `ca_file` makes
    /// client certificates required.
    ///
    /// `[DEFAULT] use_ssl` (Neutron's switch): `True` without the files stops the server;
    /// `False` serves plain HTTP even with them (and says so); unset, the files decide.
    pub fn ssl(&self) -> Result<Option<ServerTls>, String> {
        let path = |key: &str| self.get("ssl", key).filter(|v| !v.is_empty()).map(|v| self.resolve(v));
        let use_ssl = match self.get("DEFAULT", "use_ssl") {
            Some(_) => Some(self.flag("DEFAULT", "use_ssl")?),
            None => None,
        };
        let tls = match (path("cert_file"), path("key_file"), path("ca_file")) {
            (None, None, None) if use_ssl == Some(true) => {
                return Err("[DEFAULT] use_ssl = True needs [ssl] cert_file and key_file".into())
            }
            (None, None, None) => return Ok(None),
            _ if use_ssl == Some(false) => {
                tracing::warn!("[DEFAULT] use_ssl = False: the [ssl] files are not used; serving plain HTTP");
                return Ok(None);
            }
            (Some(cert_file), Some(key_file), ca_file) => ServerTls { cert_file, key_file, ca_file },
            _ => return Err("[ssl] cert_file and key_file are both needed to serve TLS".into()),
        };
        tls.acceptor().map_err(|e| format!("[ssl] {e}"))?;
        Ok(Some(tls))
    }

    /// `[quotas]`: Neutron's defaults for what is not set; every value an integer >= -1.
    fn quotas(&self) -> Result<QuotaDefaults, String> {
        let section = if self.values.keys().any(|(s, _)| s == "QUOTAS") { "QUOTAS" } else { "quotas" };
        let value = |option: &str| -> Result<Option<i64>, String> {
            self.get(section, option)
                .map(|v| v.parse().map_err(|_| format!("[quotas] {option}: '{v}' is not an integer")))
                .transpose()
        };
        let mut q = QuotaDefaults::default();
        if let Some(v) = value("default_quota")? {
            q.default_quota = v;
        }
        for resource in QuotaResource::ALL {
            if let Some(v) = value(&resource.option_name())? {
                q.own.insert(resource, v);
            }
        }
        q.validate()?;
        Ok(q)
    }

    pub fn agent(&self) -> Result<AgentConfig, String> {
        let host = match self.get("DEFAULT", "host") {
            Some(h) => h.to_string(),
            None => hostname(),
        };
        let server_url =
            self.get("agent", "server_url").map(String::from).unwrap_or_else(|| "http://127.0.0.1:9696".into());
        let local_ip: Ipv4Addr = self
            .get("vxlan", "local_ip")
            .ok_or("[vxlan] local_ip is required")?
            .parse()
            .map_err(|_| "[vxlan] local_ip must be an IPv4 address".to_string())?;
        self.flag("DEFAULT", "use_json")?;
        let distributed_snat = self.flag("agent", "distributed_snat")?;
        let server_tls = self.client_tls("agent", ["ssl_ca_file", "ssl_cert_file", "ssl_key_file"], None)?;
        // Read once: reading reports (its TLS warnings, say).
        let keystone = match self.get("keystone_authtoken", "auth_url") {
            None => None,
            Some(_) => Some(self.keystone()?),
        };
        let https = server_url.split(',').any(|u| u.trim().starts_with("https://"));
        Options::warn_unused_tls("agent", &server_tls, https);
        Ok(AgentConfig {
            host,
            server_url,
            server_tls,
            local_ip,
            report_interval: self.number("agent", "report_interval")?.unwrap_or(30),
            resync_interval: self.number("agent", "resync_interval")?.unwrap_or(30),
            availability_zone: self
                .get("AGENT", "availability_zone")
                .or_else(|| self.get("agent", "availability_zone"))
                .unwrap_or("nova")
                .to_string(),
            physical_interface_mappings: self.mappings("linux_bridge", "physical_interface_mappings")?,
            keystone: keystone.as_ref().map(|k| k.service.clone()),
            keystone_tls: keystone.map(|k| k.tls).unwrap_or_default(),
            metrics_listen: match self.get("agent", "metrics_listen").filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => {
                    Some(v.parse().map_err(|_| format!("[agent] metrics_listen: '{v}' is not an address:port"))?)
                }
            },
            namespace_prefix: self.get("agent", "namespace_prefix").unwrap_or_default().to_string(),
            distributed_snat,
            // l3_agent.ini's `[DEFAULT] agent_mode` (or `[agent]`): `dvr_snat` makes a gateway host.
            gateway_host: match self.get("agent", "agent_mode").or_else(|| self.get("DEFAULT", "agent_mode")) {
                None | Some("dvr") | Some("dvr_no_external") => false,
                Some("dvr_snat") if distributed_snat => {
                    return Err("agent_mode dvr_snat (a gateway host) and distributed_snat exclude each other".into())
                }
                Some("dvr_snat") => true,
                Some(other) => return Err(format!("agent_mode '{other}' is not one of dvr, dvr_snat")),
            },
            gateway_probe_interval: std::time::Duration::from_millis(
                self.number("agent", "gateway_probe_interval_ms")?.unwrap_or(300u64).max(10),
            ),
            gateway_probe_misses: self.number("agent", "gateway_probe_misses")?.unwrap_or(3),
            dhcp: match self.flag_or("agent", "enable_dhcp", true)? {
                false => None,
                true => Some(neutrino_domain::dhcp::DhcpSettings {
                    lease_seconds: match self.number::<i64>("DEFAULT", "dhcp_lease_duration")?.unwrap_or(86400) {
                        -1 => None,
                        s if (1..=u32::MAX as i64).contains(&s) => Some(s as u32),
                        s => return Err(format!("[DEFAULT] dhcp_lease_duration {s}: seconds, or -1 (infinite)")),
                    },
                    domain: self
                        .get("DEFAULT", "dns_domain")
                        .unwrap_or(neutrino_domain::dns::DEFAULT_DNS_DOMAIN)
                        .trim_end_matches('.')
                        .to_string(),
                }),
            },
            metadata: match self.flag_or("agent", "enable_metadata_proxy", true)? {
                false => None,
                true => {
                    let protocol = self.get("DEFAULT", "nova_metadata_protocol").unwrap_or("http");
                    if protocol != "http" && protocol != "https" {
                        return Err(format!("[DEFAULT] nova_metadata_protocol '{protocol}': http or https"));
                    }
                    let files = ["auth_ca_cert", "nova_client_cert", "nova_client_priv_key"];
                    let tls = self.client_tls("DEFAULT", files, Some("nova_metadata_insecure"))?;
                    Options::warn_unused_tls("DEFAULT", &tls, protocol == "https");
                    let host = self.get("DEFAULT", "nova_metadata_host").unwrap_or("127.0.0.1");
                    let port: u16 = self.number("DEFAULT", "nova_metadata_port")?.unwrap_or(8775);
                    let host = if host.contains(':') && !host.starts_with('[') {
                        format!("[{host}]")
                    } else {
                        host.to_string()
                    };
                    Some(neutrino_agent::services::metadata::MetadataSettings {
                        nova_url: format!("{protocol}://{host}:{port}"),
                        shared_secret: self
                            .get("DEFAULT", "metadata_proxy_shared_secret")
                            .unwrap_or_default()
                            .to_string(),
                        tls,
                    })
                }
            },
            router_adverts: {
                let min = self.number::<u32>("DEFAULT", "min_rtr_adv_interval")?.unwrap_or(30);
                let max = self.number::<u32>("DEFAULT", "max_rtr_adv_interval")?.unwrap_or(100);
                // radvd's (RFC 4861's) bounds: 4 ≤ max ≤ 1800, 3 ≤ min ≤ 0.75 × max.
                if min < 3 || !(4..=1800).contains(&max) || u64::from(min) * 4 > u64::from(max) * 3 {
                    return Err(format!(
                        "[DEFAULT] min_rtr_adv_interval {min} and max_rtr_adv_interval {max}: the maximum from 4 to 1800 seconds, the minimum from 3 to three quarters of it"
                    ));
                }
                neutrino_domain::router_advert::RaSettings { min_interval: min, max_interval: max }
            },
            dns_servers: match self.get("DEFAULT", "dnsmasq_dns_servers") {
                None => Vec::new(),
                Some(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<std::net::SocketAddr>()
                            .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, 53)))
                            .map_err(|_| format!("[DEFAULT] dnsmasq_dns_servers: '{s}' is not an address"))
                    })
                    .collect::<Result<_, _>>()?,
            },
            firewall: match self.get("securitygroup", "firewall_driver").unwrap_or("nftables") {
                "nftables" | "iptables" | "iptables_hybrid" | "openvswitch" => {
                    self.flag_or("securitygroup", "enable_security_group", true)?
                }
                "noop" => false,
                other => return Err(format!("[securitygroup] firewall_driver '{other}' is not one of nftables, noop")),
            },
        })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// `/var/lib/neutrino` for root, `~/.local/state/neutrino` otherwise.
fn default_state_path() -> PathBuf {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/neutrino");
    }
    match std::env::var_os("HOME") {
        Some(h) => Path::new(&h).join(".local/state/neutrino"),
        None => PathBuf::from("neutrino-state"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn later_files_override_and_ml2_options_are_read() {
        let dir = std::env::temp_dir().join(format!("neutrino-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a =
            write(&dir, "neutron.conf", "[DEFAULT]\nbind_port = 9797\n[database]\nconnection = sqlite:////tmp/x.db\n");
        let b = write(&dir, "ml2_conf.ini", "[DEFAULT]\nbind_port = 9898\n[ml2]\ntype_drivers = vxlan,local\ntenant_network_types = vxlan\n[ml2_type_vxlan]\nvni_ranges = 100:200\n[unknown]\nx = 1\n");
        let o = Options::load(&[a, b]).unwrap();
        let s = o.server().unwrap();
        assert_eq!(s.bind_port, 9898);
        assert_eq!(s.connection, "sqlite:////tmp/x.db");
        assert_eq!(s.type_drivers.vni_ranges, vec![(100, 200)]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_ranges_and_unknown_drivers_stop_start_up() {
        let mut o = Options::default();
        o.set("ml2_type_vxlan", "vni_ranges", "20:10");
        assert!(o.server().unwrap_err().contains("vni_ranges"));
        let mut o = Options::default();
        o.set("ml2", "type_drivers", "vxlan,bogus");
        assert!(o.server().unwrap_err().contains("bogus"));
        let mut o = Options::default();
        o.set("ml2", "mechanism_drivers", "linuxbridge,ovn");
        assert!(o.server().unwrap_err().contains("'ovn'"));
        let mut o = Options::default();
        o.set("ml2_type_vlan", "network_vlan_ranges", "physnet1:100:5000");
        assert!(o.server().unwrap_err().contains("network_vlan_ranges"));
        let mut o = Options::default();
        o.set("ml2_type_gre", "tunnel_id_ranges", "5:1");
        assert!(o.server().unwrap_err().contains("tunnel_id_ranges"));
        let mut o = Options::default();
        o.set("ml2", "tenant_network_types", "vlan,vxlan");
        o.set("ml2", "type_drivers", "vxlan");
        assert!(o.server().unwrap_err().contains("tenant_network_types"));
    }

    #[test]
    fn auth_options_are_read() {
        let o = Options::default();
        assert!(matches!(o.server().unwrap().auth, AuthStrategy::NoAuth));
        let mut o = Options::default();
        o.set("DEFAULT", "auth_strategy", "keystone");
        assert!(o.server().unwrap_err().contains("[keystone_authtoken] auth_url"));
        for (k, v) in [
            ("auth_url", "http://192.0.2.5:5000"),
            ("www_authenticate_uri", "http://192.0.2.5:5000/v3"),
            ("username", "neutron"),
            ("password", "secret"),
            ("project_name", "service"),
        ] {
            o.set("keystone_authtoken", k, v);
        }
        o.set("oslo_policy", "policy_file", "/etc/neutron/policy.yaml");
        let s = o.server().unwrap();
        let AuthStrategy::Keystone(k) = &s.auth else { panic!("keystone expected") };
        assert_eq!((k.service.username.as_str(), k.service.user_domain_name.as_str()), ("neutron", "Default"));
        assert_eq!((k.token_cache_time, k.www_authenticate_uri.as_str()), (300, "http://192.0.2.5:5000/v3"));
        assert_eq!(s.policy_file.as_deref(), Some(Path::new("/etc/neutron/policy.yaml")));
        o.set("DEFAULT", "auth_strategy", "magic");
        assert!(o.server().is_err());
    }

    #[test]
    fn every_ml2_type_option_is_read() {
        let mut o = Options::default();
        o.set("ml2", "type_drivers", "local,flat,vlan,gre,vxlan,geneve");
        o.set("ml2", "tenant_network_types", "vlan,geneve,vxlan");
        o.set("ml2", "mechanism_drivers", "openvswitch,linuxbridge,l2population");
        o.set("ml2", "path_mtu", "9000");
        o.set("ml2", "physical_network_mtus", "physnet1:1400");
        o.set("ml2_type_vlan", "network_vlan_ranges", "physnet1:100:199,physnet2");
        o.set("ml2_type_gre", "tunnel_id_ranges", "1:100");
        o.set("ml2_type_geneve", "vni_ranges", "10:20");
        o.set("ml2_type_geneve", "max_header_size", "38");
        let s = o.server().unwrap();
        let t = &s.type_drivers;
        assert_eq!(t.tenant_network_types, ["vlan", "geneve", "vxlan"]);
        assert_eq!(t.network_vlan_ranges["physnet1"], vec![(100, 199)]);
        assert!(t.network_vlan_ranges["physnet2"].is_empty());
        assert_eq!(t.tunnel_id_ranges, vec![(1, 100)]);
        assert_eq!(t.geneve_vni_ranges, vec![(10, 20)]);
        assert_eq!((t.geneve_max_header_size, t.path_mtu, t.physical_network_mtus["physnet1"]), (38, 9000, 1400));
        assert_eq!(s.mechanism_drivers, ["openvswitch", "linuxbridge", "l2population"]);
    }

    #[test]
    fn tls_options_are_read_and_bad_files_stop_start_up() {
        let dir = std::env::temp_dir().join(format!("neutrino-config-tls-{}", std::process::id()));
        let ca = neutrino_lab::pki::TestCa::new(&dir, "config").unwrap();
        let server = ca.issue("server", 1).unwrap();
        let mut o = Options::default();
        o.set("ssl", "cert_file", &server.cert.to_string_lossy());
        assert!(o.server().unwrap_err().contains("[ssl] cert_file and key_file"));
        o.set("ssl", "key_file", &server.key.to_string_lossy());
        o.set("ssl", "ca_file", &ca.cert.to_string_lossy());
        let ssl = o.server().unwrap().ssl.unwrap();
        assert_eq!((ssl.key_file, ssl.ca_file), (server.key.clone(), Some(ca.cert.clone())));
        o.set("DEFAULT", "use_ssl", "False");
        assert!(o.server().unwrap().ssl.is_none(), "use_ssl = False: plain HTTP");
        o.set("DEFAULT", "use_ssl", "True");
        assert!(o.server().unwrap().ssl.is_some());
        o.set("ssl", "key_file", &ca.cert.to_string_lossy());
        assert!(o.server().unwrap_err().starts_with("[ssl] "), "a certificate is no key");
        let mut bare = Options::default();
        bare.set("DEFAULT", "use_ssl", "True");
        assert!(bare.server().unwrap_err().contains("use_ssl = True needs"));
        // Booleans as oslo.config reads them: what it does not know stops the server, rather
        // than meaning plain HTTP.
        o.set("ssl", "key_file", &server.key.to_string_lossy());
        for (value, tls) in [("on", true), ("Yes", true), ("1", true), ("OFF", false), ("no", false)] {
            o.set("DEFAULT", "use_ssl", value);
            assert_eq!(o.server().unwrap().ssl.is_some(), tls, "use_ssl = {value}");
        }
        for bad in ["y", "enabled", ""] {
            o.set("DEFAULT", "use_ssl", bad);
            assert!(o.server().unwrap_err().contains("is not a boolean"), "use_ssl = '{bad}'");
        }
        o.set("DEFAULT", "use_ssl", "true");
        o.set("DEFAULT", "use_json", "maybe");
        assert!(!o.use_json(), "logging starts as plain text");
        assert!(o.server().unwrap_err().contains("[DEFAULT] use_json: 'maybe'"), "then the server stops");
        o.set("DEFAULT", "use_json", "false");

        let mut o = Options::default();
        for (k, v) in [
            ("auth_url", "https://192.0.2.5:5000"),
            ("username", "neutron"),
            ("password", "p"),
            ("project_name", "service"),
        ] {
            o.set("keystone_authtoken", k, v);
        }
        o.set("keystone_authtoken", "cafile", &ca.cert.to_string_lossy());
        o.set("keystone_authtoken", "insecure", "True");
        let ks = o.keystone().unwrap();
        assert_eq!((ks.tls.ca_file, ks.tls.insecure), (Some(ca.cert.clone()), true));
        o.set("keystone_authtoken", "cafile", "/nonexistent/ca.pem");
        assert!(o.keystone().unwrap_err().contains("/nonexistent/ca.pem"));

        // The metadata proxy to Nova over HTTPS (metadata_agent.ini's options).
        let agent = ca.issue("metadata", 1).unwrap();
        let mut o = Options::default();
        o.set("vxlan", "local_ip", "192.0.2.11");
        o.set("DEFAULT", "nova_metadata_host", "192.0.2.1");
        o.set("DEFAULT", "nova_metadata_protocol", "https");
        o.set("DEFAULT", "auth_ca_cert", &ca.cert.to_string_lossy());
        o.set("DEFAULT", "nova_client_cert", &agent.cert.to_string_lossy());
        o.set("DEFAULT", "nova_client_priv_key", &agent.key.to_string_lossy());
        let metadata = o.agent().unwrap().metadata.unwrap();
        assert_eq!(metadata.nova_url, "https://192.0.2.1:8775");
        assert_eq!((metadata.tls.ca_file, metadata.tls.cert_file), (Some(ca.cert.clone()), Some(agent.cert.clone())));
        assert!(!metadata.tls.insecure, "verified unless nova_metadata_insecure");
        o.set("DEFAULT", "nova_metadata_insecure", "True");
        assert!(o.agent().unwrap().metadata.unwrap().tls.insecure);
        o.set("DEFAULT", "nova_metadata_insecure", "perhaps");
        assert!(o.agent().unwrap_err().contains("nova_metadata_insecure: 'perhaps' is not a boolean"));
        o.set("DEFAULT", "nova_metadata_insecure", "false");
        o.set("DEFAULT", "nova_client_priv_key", "/nonexistent/metadata.key");
        assert!(o.agent().unwrap_err().contains("/nonexistent/metadata.key"), "a bad file stops the agent");
        o.set("DEFAULT", "nova_client_priv_key", &agent.key.to_string_lossy());
        o.set("agent", "enable_metadata_proxy", "off");
        assert!(o.agent().unwrap().metadata.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn quota_defaults_are_read_and_validated() {
        let s = Options::default().server().unwrap();
        assert_eq!(s.quotas, QuotaDefaults::default());
        let mut o = Options::default();
        o.set("quotas", "quota_network", "5");
        o.set("quotas", "quota_port", "-1");
        o.set("quotas", "default_quota", "3");
        let q = o.server().unwrap().quotas;
        assert_eq!((q.limit(QuotaResource::Network), q.limit(QuotaResource::Port)), (5, -1));
        assert_eq!((q.limit(QuotaResource::Subnet), q.default_quota), (100, 3));
        let mut o = Options::default();
        o.set("QUOTAS", "quota_security_group", "2");
        assert_eq!(o.server().unwrap().quotas.limit(QuotaResource::SecurityGroup), 2);
        for bad in ["-2", "ten", "1.5"] {
            let mut o = Options::default();
            o.set("quotas", "quota_subnet", bad);
            let e = o.server().unwrap_err();
            assert!(e.contains("[quotas] quota_subnet") && e.contains(bad), "{e}");
        }
    }
}
