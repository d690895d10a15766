//! Neutron's policy model: named rules in oslo.policy's language, Neutron's defaults for the
//! resources Neutrino serves, overridable by a policy file.
//!
//! The language: `@` (always), `!` (never), `role:<name>`, `rule:<name>`,
//! `<credential>:<value or %(target attribute)s>` (for example `project_id:%(project_id)s`),
//! `field:<collection>:<attribute>=<value>`, combined with `not`, `and`, `or` and parentheses.

use serde_json::Value;
use std::collections::BTreeMap;

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Always,
    Never,
    Role(String),
    Rule(String),
    /// `<credential>:<target template or literal>`.
    Generic {
        credential: String,
        value: String,
    },
    /// `field:<collection>:<attribute>=<value>`.
    Field {
        attribute: String,
        value: String,
    },
    Not(Box<Check>),
    And(Vec<Check>),
    Or(Vec<Check>),
}

/// Who is asking: what Keystone (or noauth) says about the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    /// Lower-case role names, implied roles included.
    pub roles: Vec<String>,
}

impl Credentials {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}

/// Parse one rule.
pub fn parse(text: &str) -> Result<Check, String> {
    let tokens = tokenize(text);
    if tokens.is_empty() {
        return Ok(Check::Always);
    }
    let mut p = Parser { tokens: &tokens, pos: 0 };
    let check = p.or()?;
    if p.pos != tokens.len() {
        return Err(format!("unexpected '{}' in rule '{text}'", tokens[p.pos]));
    }
    Ok(check)
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        // `%(name)s` inside a check is part of it, not grouping.
        let in_template = current.rfind("%(").is_some_and(|i| !current[i..].contains(')'));
        let grouping = match ch {
            '(' => current.is_empty(),
            ')' => !in_template,
            _ => false,
        };
        match ch {
            '(' | ')' if grouping => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                out.push(ch.to_string());
            }
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

struct Parser<'a> {
    tokens: &'a [String],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn or(&mut self) -> Result<Check, String> {
        let mut parts = vec![self.and()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("or")) {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Check::Or(parts) })
    }

    fn and(&mut self) -> Result<Check, String> {
        let mut parts = vec![self.not()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("and")) {
            self.pos += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Check::And(parts) })
    }

    fn not(&mut self) -> Result<Check, String> {
        if self.peek().is_some_and(|t| t.eq_ignore_ascii_case("not")) {
            self.pos += 1;
            return Ok(Check::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Check, String> {
        let Some(token) = self.peek().map(String::from) else {
            return Err("rule ends too early".into());
        };
        self.pos += 1;
        if token == "(" {
            let inner = self.or()?;
            if self.peek() != Some(")") {
                return Err("missing ')'".into());
            }
            self.pos += 1;
            return Ok(inner);
        }
        match token.as_str() {
            "@" => return Ok(Check::Always),
            "!" => return Ok(Check::Never),
            _ => {}
        }
        let (kind, rest) = token.split_once(':').ok_or_else(|| format!("'{token}' is not a check"))?;
        Ok(match kind {
            "role" => Check::Role(rest.to_ascii_lowercase()),
            "rule" => Check::Rule(rest.to_string()),
            "field" => {
                let (path, value) = rest.split_once('=').ok_or_else(|| format!("'{token}' lacks '='"))?;
                let (_, attribute) = path.split_once(':').ok_or_else(|| format!("'{token}' lacks a collection"))?;
                Check::Field { attribute: attribute.to_string(), value: value.to_string() }
            }
            _ => Check::Generic { credential: kind.to_string(), value: rest.to_string() },
        })
    }
}

/// Named rules. Actions without a rule fall back to `default`.
#[derive(Debug, Clone)]
pub struct Rules {
    rules: BTreeMap<String, Check>,
}

/// The attributes whose `<action>:<attribute>` rules Neutron evaluates on writes: those its
/// attribute maps mark `enforce_policy` (neutron-lib). Rules named after other attributes are
/// never consulted, there as here (`create_subnet:service_types`, for one, is such a rule).
pub fn enforced_attributes(resource: &str) -> &'static [&'static str] {
    match resource {
        "network" => &[
            "shared",
            "router:external",
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
            "segments",
            "mtu",
            "port_security_enabled",
            "qos_policy_id",
            "is_default",
        ],
        "subnet" => &["shared"],
        "port" => &[
            "mac_address",
            "fixed_ips",
            "device_id",
            "device_owner",
            "allowed_address_pairs",
            "binding:vif_type",
            "binding:vif_details",
            "binding:vnic_type",
            "binding:host_id",
            "binding:profile",
            "port_security_enabled",
            "qos_policy_id",
        ],
        "subnetpool" => &["is_default", "shared"],
        "router" => &["external_gateway_info", "distributed", "ha"],
        "floatingip" => &["floating_ip_address"],
        "address_scope" | "security_group" => &["shared"],
        // Neutron's own rbac extension marks these.
        "rbac_policy" => &["object_type", "object_id", "target_tenant", "action"],
        _ => &[],
    }
}

impl Rules {
    /// Neutron's defaults (secure RBAC: admin, member and reader, project scoped).
    pub fn neutron_defaults() -> Rules {
        let mut rules = BTreeMap::new();
        for (name, text) in DEFAULT_RULES {
            rules.insert(name.to_string(), parse(text).expect("default rules parse"));
        }
        Rules { rules }
    }

    /// Replace rules with those of a policy file (Neutron's YAML format: one
    /// `"name": "rule"` per line; comments and blank lines are skipped).
    pub fn apply_policy_file(&mut self, text: &str) -> Result<usize, String> {
        let mut count = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line == "---" {
                continue;
            }
            let (name, rule) =
                split_yaml_entry(line).ok_or_else(|| format!("line {}: not a \"name\": \"rule\" entry", n + 1))?;
            let check = parse(&rule).map_err(|e| format!("line {}: {e}", n + 1))?;
            self.rules.insert(name, check);
            count += 1;
        }
        Ok(count)
    }

    pub fn has(&self, name: &str) -> bool {
        self.rules.contains_key(name)
    }

    /// The attribute rules of an action: `(attribute, rule name)` for each `<action>:<attribute>`.
    pub fn attribute_rules(&self, action: &str) -> Vec<(String, String)> {
        let prefix = format!("{action}:");
        self.rules
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| (k[prefix.len()..].to_string(), k.clone()))
            .collect()
    }

    /// Whether `action` is allowed to `creds` on `target` (the resource's attributes).
    pub fn allows(&self, action: &str, creds: &Credentials, target: &Value) -> bool {
        let check = self.rules.get(action).or_else(|| self.rules.get("default"));
        match check {
            Some(c) => self.eval(c, creds, target, 0),
            None => false,
        }
    }

    fn eval(&self, check: &Check, creds: &Credentials, target: &Value, depth: usize) -> bool {
        if depth > 32 {
            return false;
        }
        match check {
            Check::Always => true,
            Check::Never => false,
            Check::Role(r) => creds.has_role(r),
            Check::Rule(name) => self.rules.get(name).is_some_and(|c| self.eval(c, creds, target, depth + 1)),
            Check::Not(c) => !self.eval(c, creds, target, depth + 1),
            Check::And(cs) => cs.iter().all(|c| self.eval(c, creds, target, depth + 1)),
            Check::Or(cs) => cs.iter().any(|c| self.eval(c, creds, target, depth + 1)),
            Check::Field { attribute, value } => target.get(attribute).is_some_and(|v| matches_literal(v, value)),
            Check::Generic { credential, value } => {
                let expected = match value.strip_prefix("%(").and_then(|v| v.strip_suffix(")s")) {
                    Some(key) => match target.get(key) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Bool(b)) => if *b { "True" } else { "False" }.to_string(),
                        Some(Value::Number(n)) => n.to_string(),
                        _ => return false,
                    },
                    None => value.trim_matches('\'').trim_matches('"').to_string(),
                };
                let actual = match credential.as_str() {
                    "project_id" | "tenant_id" | "tenant" => creds.project_id.clone(),
                    "user_id" | "user" => creds.user_id.clone(),
                    "is_admin" => Some(if creds.has_role("admin") { "True" } else { "False" }.to_string()),
                    _ => None,
                };
                // Ids compare exactly (the database does); only `is_admin:True` is a word.
                actual.is_some_and(|a| a == expected || (credential == "is_admin" && a.eq_ignore_ascii_case(&expected)))
            }
        }
    }
}

fn matches_literal(v: &Value, literal: &str) -> bool {
    // `=~^prefix`: oslo.policy's regular-expression match, for the anchored prefixes Neutron uses.
    if let Some(prefix) = literal.strip_prefix("~^") {
        return v.as_str().is_some_and(|s| s.starts_with(prefix));
    }
    match v {
        Value::Bool(b) => literal.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::String(s) => s == literal,
        Value::Number(n) => n.to_string() == literal,
        _ => false,
    }
}

/// `"name": "rule"`, `name: rule` or `'name': 'rule'`.
fn split_yaml_entry(line: &str) -> Option<(String, String)> {
    let unquote = |s: &str| {
        let s = s.trim();
        let quoted =
            s.len() >= 2 && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')));
        if quoted {
            s[1..s.len() - 1].to_string()
        } else {
            s.to_string()
        }
    };
    let (name, rule) = if let Some(rest) = line.strip_prefix('"') {
        let end = rest.find('"')?;
        (rest[..end].to_string(), rest[end + 1..].trim_start().strip_prefix(':')?.to_string())
    } else if let Some(rest) = line.strip_prefix('\'') {
        let end = rest.find('\'')?;
        (rest[..end].to_string(), rest[end + 1..].trim_start().strip_prefix(':')?.to_string())
    } else {
        // Unquoted names contain ':' (create_network:shared), so split at ": ".
        let (n, r) = line.split_once(": ")?;
        (n.trim().to_string(), r.to_string())
    };
    let rule = rule.split(" #").next().unwrap_or_default();
    Some((name, unquote(rule)))
}

/// Neutron's default rules for what Neutrino serves, under Neutron's names.
const DEFAULT_RULES: &[(&str, &str)] = &[
    ("context_is_admin", "role:admin"),
    ("admin_only", "rule:context_is_admin"),
    ("service_api", "role:service"),
    ("default", "rule:admin_only"),
    ("project_member_api", "role:member and project_id:%(project_id)s"),
    ("project_reader_api", "role:reader and project_id:%(project_id)s"),
    ("admin_or_project_member", "rule:admin_only or rule:project_member_api"),
    ("admin_or_project_reader", "rule:admin_only or rule:project_reader_api"),
    ("network_owner_member", "role:member and project_id:%(network:project_id)s"),
    ("network_owner_reader", "role:reader and project_id:%(network:project_id)s"),
    ("admin_or_network_owner_member", "rule:admin_only or rule:network_owner_member"),
    ("shared", "field:networks:shared=True"),
    ("external", "field:networks:router:external=True"),
    ("shared_subnetpools", "field:subnetpools:shared=True"),
    ("shared_address_scopes", "field:address_scopes:shared=True"),
    ("shared_security_groups", "field:security_groups:shared=True"),
    ("network_device", "field:port:device_owner=~^network:"),
    // Networks.
    ("create_network", "rule:admin_or_project_member"),
    ("create_network:shared", "rule:admin_only"),
    ("create_network:router:external", "rule:admin_only"),
    ("create_network:is_default", "rule:admin_only"),
    ("create_network:segments", "rule:admin_only"),
    ("create_network:provider:network_type", "rule:admin_only"),
    ("create_network:provider:physical_network", "rule:admin_only"),
    ("create_network:provider:segmentation_id", "rule:admin_only"),
    ("get_network", "rule:admin_or_project_reader or rule:shared or rule:external"),
    ("get_network:segments", "rule:admin_only"),
    ("get_network:provider:network_type", "rule:admin_only"),
    ("get_network:provider:physical_network", "rule:admin_only"),
    ("get_network:provider:segmentation_id", "rule:admin_only"),
    ("update_network", "rule:admin_or_project_member"),
    ("update_network:shared", "rule:admin_only"),
    ("update_network:router:external", "rule:admin_only"),
    ("update_network:is_default", "rule:admin_only"),
    ("update_network:segments", "rule:admin_only"),
    ("update_network:provider:network_type", "rule:admin_only"),
    ("update_network:provider:physical_network", "rule:admin_only"),
    ("update_network:provider:segmentation_id", "rule:admin_only"),
    ("delete_network", "rule:admin_or_project_member"),
    // Subnets: the network's owner manages them; everyone who sees a shared network sees them.
    ("create_subnet", "rule:admin_or_network_owner_member"),
    ("external_network", "field:subnets:router:external=True"),
    ("get_subnet", "rule:admin_or_project_reader or rule:network_owner_reader or rule:shared or rule:external_network"),
    ("update_subnet", "rule:admin_or_network_owner_member"),
    ("delete_subnet", "rule:admin_or_network_owner_member"),
    // Ports.
    ("create_port", "rule:admin_or_project_member"),
    ("create_port:device_owner", "not rule:network_device or rule:admin_or_network_owner_member"),
    ("create_port:mac_address", "rule:admin_or_network_owner_member"),
    ("create_port:fixed_ips:ip_address", "rule:admin_or_network_owner_member"),
    ("create_port:fixed_ips:subnet_id", "rule:admin_or_network_owner_member or rule:shared"),
    ("create_port:port_security_enabled", "rule:admin_or_network_owner_member"),
    ("create_port:binding:host_id", "rule:admin_only"),
    ("create_port:binding:profile", "rule:admin_only"),
    ("create_port:allowed_address_pairs", "rule:admin_or_network_owner_member"),
    ("get_port", "rule:admin_or_project_reader or rule:network_owner_reader"),
    ("get_port:binding:vif_type", "rule:admin_only"),
    ("get_port:binding:vif_details", "rule:admin_only"),
    ("get_port:binding:host_id", "rule:admin_only"),
    ("get_port:binding:profile", "rule:admin_only"),
    ("update_port", "rule:admin_or_project_member or rule:network_owner_member"),
    ("update_port:device_owner", "not rule:network_device or rule:admin_or_network_owner_member"),
    ("update_port:mac_address", "rule:admin_only"),
    ("update_port:fixed_ips:ip_address", "rule:admin_or_network_owner_member"),
    ("update_port:fixed_ips:subnet_id", "rule:admin_or_network_owner_member or rule:shared"),
    ("update_port:port_security_enabled", "rule:admin_or_network_owner_member"),
    ("update_port:binding:host_id", "rule:admin_only"),
    ("update_port:binding:profile", "rule:admin_only"),
    ("update_port:allowed_address_pairs", "rule:admin_or_network_owner_member"),
    ("delete_port", "rule:admin_or_project_member or rule:network_owner_member"),
    // Security groups and rules.
    ("create_security_group", "rule:admin_or_project_member"),
    ("get_security_group", "rule:admin_or_project_reader or rule:shared_security_groups"),
    ("update_security_group", "rule:admin_or_project_member"),
    ("delete_security_group", "rule:admin_or_project_member"),
    // Rules belong to their group's owner, whoever created them (an admin, in the owner's group).
    ("sg_owner", "project_id:%(security_group:project_id)s"),
    ("create_security_group_rule", "rule:admin_or_project_member"),
    ("create_default_security_group_rule", "rule:admin_only"),
    ("get_default_security_group_rule", "@"),
    ("delete_default_security_group_rule", "rule:admin_only"),
    ("create_address_group", "rule:admin_or_project_member"),
    ("get_address_group", "rule:admin_or_project_reader"),
    ("update_address_group", "rule:admin_or_project_member"),
    ("delete_address_group", "rule:admin_or_project_member"),
    ("add_addresses", "rule:admin_or_project_member"),
    ("remove_addresses", "rule:admin_or_project_member"),
    ("get_security_group_rule", "rule:admin_only or (role:reader and rule:sg_owner)"),
    ("delete_security_group_rule", "rule:admin_only or (role:member and rule:sg_owner)"),
    // Subnet pools and address scopes.
    ("create_subnetpool", "rule:admin_or_project_member"),
    ("create_subnetpool:shared", "rule:admin_only"),
    ("create_subnetpool:is_default", "rule:admin_only"),
    ("get_subnetpool", "rule:admin_or_project_reader or rule:shared_subnetpools"),
    ("update_subnetpool", "rule:admin_or_project_member"),
    ("update_subnetpool:is_default", "rule:admin_only"),
    ("delete_subnetpool", "rule:admin_or_project_member"),
    ("create_address_scope", "rule:admin_or_project_member"),
    ("create_address_scope:shared", "rule:admin_only"),
    ("get_address_scope", "rule:admin_or_project_reader or rule:shared_address_scopes"),
    ("update_address_scope", "rule:admin_or_project_member"),
    ("update_address_scope:shared", "rule:admin_only"),
    ("delete_address_scope", "rule:admin_or_project_member"),
    // RBAC policies: owners share their objects; only admins share with everyone.
    ("create_rbac_policy", "rule:admin_or_project_member"),
    (
        "create_rbac_policy:target_tenant",
        "rule:admin_only or (not field:rbac_policy:target_tenant=* and not field:rbac_policy:target_project=*)",
    ),
    (
        "create_rbac_policy:target_project",
        "rule:admin_only or (not field:rbac_policy:target_tenant=* and not field:rbac_policy:target_project=*)",
    ),
    ("get_rbac_policy", "rule:admin_or_project_reader"),
    ("update_rbac_policy", "rule:admin_or_project_member"),
    (
        "update_rbac_policy:target_tenant",
        "rule:admin_only or (not field:rbac_policy:target_tenant=* and not field:rbac_policy:target_project=*)",
    ),
    (
        "update_rbac_policy:target_project",
        "rule:admin_only or (not field:rbac_policy:target_tenant=* and not field:rbac_policy:target_project=*)",
    ),
    ("delete_rbac_policy", "rule:admin_or_project_member"),
    // Routers: their owners manage them; only admins choose distributed or HA routers, SNAT
    // and the gateway's addresses.
    ("create_router", "rule:admin_or_project_member"),
    ("create_router:distributed", "rule:admin_only"),
    ("create_router:ha", "rule:admin_only"),
    ("create_router:external_gateway_info", "rule:admin_or_project_member"),
    ("create_router:external_gateway_info:network_id", "rule:admin_or_project_member"),
    ("create_router:external_gateway_info:enable_snat", "rule:admin_only"),
    ("create_router:external_gateway_info:external_fixed_ips", "rule:admin_only"),
    ("get_router", "rule:admin_or_project_reader"),
    ("get_router:distributed", "rule:admin_only"),
    ("get_router:ha", "rule:admin_only"),
    ("update_router", "rule:admin_or_project_member"),
    ("update_router:distributed", "rule:admin_only"),
    ("update_router:ha", "rule:admin_only"),
    ("update_router:external_gateway_info", "rule:admin_or_project_member"),
    ("update_router:external_gateway_info:network_id", "rule:admin_or_project_member"),
    ("update_router:external_gateway_info:enable_snat", "rule:admin_only"),
    ("update_router:external_gateway_info:external_fixed_ips", "rule:admin_only"),
    ("delete_router", "rule:admin_or_project_member"),
    ("add_router_interface", "rule:admin_or_project_member"),
    ("remove_router_interface", "rule:admin_or_project_member"),
    ("add_extraroutes", "rule:admin_or_project_member"),
    ("remove_extraroutes", "rule:admin_or_project_member"),
    // Floating IPs: a chosen address needs a project manager.
    ("project_manager_api", "role:manager and project_id:%(project_id)s"),
    ("create_floatingip", "rule:admin_or_project_member"),
    ("create_floatingip:floating_ip_address", "rule:admin_only or rule:project_manager_api"),
    ("get_floatingip", "rule:admin_or_project_reader"),
    ("update_floatingip", "rule:admin_or_project_member"),
    ("delete_floatingip", "rule:admin_or_project_member"),
    ("get_floatingip_pool", "rule:admin_or_project_reader"),
    // Port forwardings: as their floating IP.
    ("create_floatingip_port_forwarding", "rule:admin_or_project_member"),
    ("get_floatingip_port_forwarding", "rule:admin_or_project_reader"),
    ("update_floatingip_port_forwarding", "rule:admin_or_project_member"),
    ("delete_floatingip_port_forwarding", "rule:admin_or_project_member"),
    // Quotas: a project reads its own; admins set them.
    ("get_quota", "rule:admin_or_project_reader"),
    ("update_quota", "rule:admin_only"),
    ("delete_quota", "rule:admin_only"),
    // Admin-only resources.
    ("get_agent", "rule:admin_only"),
    ("update_agent", "rule:admin_only"),
    ("delete_agent", "rule:admin_only"),
    ("get_segment", "rule:admin_only"),
    ("create_segment", "rule:admin_only"),
    ("update_segment", "rule:admin_only"),
    ("delete_segment", "rule:admin_only"),
    ("get_network_segment_range", "rule:admin_only"),
    ("create_network_segment_range", "rule:admin_only"),
    ("update_network_segment_range", "rule:admin_only"),
    ("delete_network_segment_range", "rule:admin_only"),
    ("get_network_ip_availability", "rule:admin_only"),
    ("get_availability_zone", "@"),
    // Neutrino's agent protocol (registration, host streams, status reports).
    ("neutrino_agent", "rule:admin_only or rule:service_api"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn creds(project: &str, roles: &[&str]) -> Credentials {
        Credentials {
            user_id: Some("u".into()),
            project_id: Some(project.into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn the_language_parses_with_precedence() {
        assert_eq!(parse("@").unwrap(), Check::Always);
        assert_eq!(
            parse("role:admin or role:member and project_id:%(project_id)s").unwrap(),
            Check::Or(vec![
                Check::Role("admin".into()),
                Check::And(vec![
                    Check::Role("member".into()),
                    Check::Generic { credential: "project_id".into(), value: "%(project_id)s".into() }
                ])
            ])
        );
        assert!(matches!(parse("not (role:a or role:b)").unwrap(), Check::Not(_)));
        assert!(parse("role:a and").is_err());
        assert!(parse("(role:a").is_err());
        assert!(parse("nonsense").is_err());
    }

    #[test]
    fn members_own_their_projects_resources_and_readers_only_read() {
        let r = Rules::neutron_defaults();
        let net = json!({"project_id": "p1", "shared": false, "router:external": false});
        let alice = creds("p1", &["member", "reader"]);
        let rita = creds("p1", &["reader"]);
        let bob = creds("p2", &["member", "reader"]);
        let admin = creds("admin", &["admin", "member", "reader"]);
        assert!(r.allows("get_network", &alice, &net) && r.allows("update_network", &alice, &net));
        assert!(r.allows("get_network", &rita, &net) && !r.allows("update_network", &rita, &net));
        assert!(!r.allows("get_network", &bob, &net) && !r.allows("delete_network", &bob, &net));
        assert!(r.allows("delete_network", &admin, &net));
        let shared = json!({"project_id": "p1", "shared": true, "router:external": false});
        assert!(r.allows("get_network", &bob, &shared) && !r.allows("update_network", &bob, &shared));
        assert!(!r.allows("get_network:provider:network_type", &alice, &net));
        assert!(!r.allows("create_network:shared", &alice, &net));
        assert!(r.allows("unknown_action", &admin, &net) && !r.allows("unknown_action", &alice, &net));
    }

    #[test]
    fn network_owners_manage_subnets_and_see_ports_on_their_networks() {
        let r = Rules::neutron_defaults();
        let alice = creds("p1", &["member", "reader"]);
        let bob = creds("p2", &["member", "reader"]);
        let bobs_port_on_alices_net = json!({"project_id": "p2", "network:project_id": "p1", "shared": true});
        assert!(r.allows("get_port", &alice, &bobs_port_on_alices_net));
        assert!(r.allows("get_port", &bob, &bobs_port_on_alices_net));
        let subnet_of_shared = json!({"project_id": "p1", "network:project_id": "p1", "shared": true});
        assert!(r.allows("get_subnet", &bob, &subnet_of_shared));
        assert!(!r.allows("create_subnet", &bob, &subnet_of_shared));
        assert!(r.allows("create_port:fixed_ips:subnet_id", &bob, &subnet_of_shared));
        assert!(!r.allows("create_port:fixed_ips:ip_address", &bob, &subnet_of_shared));
    }

    #[test]
    fn only_admins_share_with_everyone() {
        let r = Rules::neutron_defaults();
        let alice = creds("p1", &["member", "reader"]);
        let everyone = json!({"project_id": "p1", "target_tenant": "*", "target_project": "*"});
        let one = json!({"project_id": "p1", "target_tenant": "p2", "target_project": "p2"});
        assert!(!r.allows("create_rbac_policy:target_tenant", &alice, &everyone));
        assert!(r.allows("create_rbac_policy:target_tenant", &alice, &one));
    }

    #[test]
    fn project_ids_compare_exactly_and_network_devices_are_for_owners() {
        let r = Rules::neutron_defaults();
        let alice = creds("p1", &["member", "reader"]);
        assert!(!r.allows("create_network", &alice, &json!({"project_id": "P1"})));
        let on_others = json!({"project_id": "p1", "network:project_id": "p2", "device_owner": "network:dhcp"});
        assert!(!r.allows("create_port:device_owner", &alice, &on_others));
        let compute = json!({"project_id": "p1", "network:project_id": "p2", "device_owner": "compute:nova"});
        assert!(r.allows("create_port:device_owner", &alice, &compute));
        let own = json!({"project_id": "p1", "network:project_id": "p1", "device_owner": "network:dhcp"});
        assert!(r.allows("create_port:device_owner", &alice, &own));
        let everyone = json!({"project_id": "p1", "target_tenant": "*", "target_project": "*"});
        assert!(!r.allows("create_rbac_policy:target_project", &alice, &everyone));
    }

    #[test]
    fn a_policy_file_overrides_rules() {
        let mut r = Rules::neutron_defaults();
        let n = r
            .apply_policy_file(
                "# readers may not see networks\n\"get_network\": \"rule:admin_only\"\ncreate_network:shared: 'role:member'\n",
            )
            .unwrap();
        assert_eq!(n, 2);
        let rita = creds("p1", &["reader"]);
        assert!(!r.allows("get_network", &rita, &json!({"project_id": "p1"})));
        assert!(r.allows("create_network:shared", &creds("p1", &["member"]), &json!({})));
        assert!(r.apply_policy_file("\"x\": \"role:a and\"").is_err());
    }
}
