//! Quotas: how many resources of each kind a project may own.
//!
//! A limit is an integer from -1 (unlimited) to Neutron's largest database integer. The
//! defaults come from `[quotas]`; a project's overrides replace them one resource at a time.
//! Usage is counted, never tracked, so deleting a resource frees its quota at once.

use crate::DomainError;
use serde_json::Value;
use std::collections::BTreeMap;

/// No limit.
pub const UNLIMITED: i64 = -1;
/// Neutron's `DB_INTEGER_MAX_VALUE`, the largest limit it accepts.
pub const MAX_LIMIT: i64 = 2_147_483_647;

/// The resources Neutrino counts, with Neutron's quota names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaResource {
    Network,
    Subnet,
    Port,
    Subnetpool,
    SecurityGroup,
    SecurityGroupRule,
    RbacPolicy,
    Router,
    Floatingip,
    /// Extra routes per router (a limit checked on each router's list, never a count).
    RouterRoute,
}

impl QuotaResource {
    pub const ALL: [QuotaResource; 10] = [
        QuotaResource::Network,
        QuotaResource::Subnet,
        QuotaResource::Port,
        QuotaResource::Subnetpool,
        QuotaResource::SecurityGroup,
        QuotaResource::SecurityGroupRule,
        QuotaResource::RbacPolicy,
        QuotaResource::Router,
        QuotaResource::Floatingip,
        QuotaResource::RouterRoute,
    ];

    /// The name in quota bodies and in `Quota exceeded for resources: [...]`.
    pub fn name(self) -> &'static str {
        match self {
            QuotaResource::Network => "network",
            QuotaResource::Subnet => "subnet",
            QuotaResource::Port => "port",
            QuotaResource::Subnetpool => "subnetpool",
            QuotaResource::SecurityGroup => "security_group",
            QuotaResource::SecurityGroupRule => "security_group_rule",
            QuotaResource::RbacPolicy => "rbac_policy",
            QuotaResource::Router => "router",
            QuotaResource::Floatingip => "floatingip",
            QuotaResource::RouterRoute => "router_route",
        }
    }

    pub fn from_name(name: &str) -> Option<QuotaResource> {
        QuotaResource::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The `[quotas]` option of its default, e.g. `quota_network`.
    pub fn option_name(self) -> String {
        format!("quota_{}", self.name())
    }

    /// Neutron's default when `[quotas]` does not set one.
    pub fn neutron_default(self) -> i64 {
        match self {
            QuotaResource::Network | QuotaResource::Subnet | QuotaResource::SecurityGroupRule => 100,
            QuotaResource::Port => 500,
            QuotaResource::Subnetpool => UNLIMITED,
            QuotaResource::SecurityGroup | QuotaResource::RbacPolicy | QuotaResource::Router => 10,
            QuotaResource::Floatingip => 50,
            QuotaResource::RouterRoute => 30,
        }
    }
}

/// The configured defaults: each resource's own `quota_<resource>` option, and
/// `default_quota` for a resource without one (none of today's resources; Neutron keeps it for
/// resources registered without their own option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDefaults {
    pub own: BTreeMap<QuotaResource, i64>,
    pub default_quota: i64,
}

impl Default for QuotaDefaults {
    /// Neutron's defaults.
    fn default() -> Self {
        QuotaDefaults {
            own: QuotaResource::ALL.into_iter().map(|r| (r, r.neutron_default())).collect(),
            default_quota: UNLIMITED,
        }
    }
}

impl QuotaDefaults {
    /// Every resource unlimited (benchmarks, labs).
    pub fn unlimited() -> Self {
        QuotaDefaults {
            own: QuotaResource::ALL.into_iter().map(|r| (r, UNLIMITED)).collect(),
            default_quota: UNLIMITED,
        }
    }

    pub fn limit(&self, resource: QuotaResource) -> i64 {
        self.own.get(&resource).copied().unwrap_or(self.default_quota)
    }

    /// The effective limits of a project with these `overrides`.
    pub fn effective(&self, overrides: &BTreeMap<QuotaResource, i64>) -> BTreeMap<QuotaResource, i64> {
        QuotaResource::ALL.into_iter().map(|r| (r, overrides.get(&r).copied().unwrap_or(self.limit(r)))).collect()
    }

    /// Every configured value must be a valid limit (start-up refuses anything else).
    pub fn validate(&self) -> Result<(), String> {
        let named = self.own.iter().map(|(r, v)| (r.option_name(), *v));
        for (option, value) in named.chain([("default_quota".to_string(), self.default_quota)]) {
            if !(UNLIMITED..=MAX_LIMIT).contains(&value) {
                return Err(format!(
                    "[quotas] {option}: '{value}' must be an integer from -1 (unlimited) to {MAX_LIMIT}"
                ));
            }
        }
        Ok(())
    }
}

/// A limit of a `PUT /v2.0/quotas/{project}` body, converted and checked as Neutron does
/// (`convert_to_int`, then a range of -1 to [`MAX_LIMIT`]).
pub fn parse_limit(resource: QuotaResource, value: &Value) -> Result<i64, DomainError> {
    let number = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    };
    let shown = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let Some(limit) = number else {
        return Err(DomainError::invalid(format!("'{shown}' is not an integer")));
    };
    let reason = if limit < UNLIMITED {
        format!("'{limit}' is too small - must be at least '{UNLIMITED}'")
    } else if limit > MAX_LIMIT {
        format!("'{limit}' is too large - must be no larger than '{MAX_LIMIT}'")
    } else {
        return Ok(limit);
    };
    // A validator's refusal: Neutron's API layer answers it as `HTTPBadRequest`.
    Err(DomainError::bad_request("HTTPBadRequest", format!("Invalid input for {}. Reason: {reason}.", resource.name())))
}

/// Whether `requested` more of a resource fit beside `used` under `limit`.
pub fn fits(limit: i64, used: i64, requested: i64) -> bool {
    limit < 0 || used.saturating_add(requested) <= limit
}

/// Neutron's 409 `OverQuota`: "Quota exceeded for resources: ['network']."
pub fn over_quota(resources: &[QuotaResource]) -> DomainError {
    let names: Vec<String> = resources.iter().map(|r| format!("'{}'", r.name())).collect();
    DomainError::conflict("OverQuota", format!("Quota exceeded for resources: [{}].", names.join(", ")))
}

/// Refuse one more of `resource` when `used` already reaches `limit`.
pub fn check_one_more(resource: QuotaResource, limit: i64, used: i64) -> Result<(), DomainError> {
    check_more(resource, limit, used, 1)
}

/// Refuse `more` of `resource` when they do not fit under `limit` beside `used`.
pub fn check_more(resource: QuotaResource, limit: i64, used: i64, more: i64) -> Result<(), DomainError> {
    if fits(limit, used, more) {
        Ok(())
    } else {
        Err(over_quota(&[resource]))
    }
}

/// A new limit below what the project already uses is refused unless forced
/// (Neutron's `quota-check-limit-default`).
pub fn check_new_limit(resource: QuotaResource, limit: i64, used: i64) -> Result<(), DomainError> {
    if fits(limit, used, 0) {
        return Ok(());
    }
    Err(DomainError::bad_request(
        "HTTPBadRequest",
        format!("Quota limit {limit} for {} must be greater than or equal to already used {used}", resource.name()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_neutrons() {
        let d = QuotaDefaults::default();
        let names: Vec<(&str, i64)> = QuotaResource::ALL.iter().map(|r| (r.name(), d.limit(*r))).collect();
        assert_eq!(
            names,
            [
                ("network", 100),
                ("subnet", 100),
                ("port", 500),
                ("subnetpool", -1),
                ("security_group", 10),
                ("security_group_rule", 100),
                ("rbac_policy", 10),
                ("router", 10),
                ("floatingip", 50),
                ("router_route", 30)
            ]
        );
        assert!(d.validate().is_ok());
    }

    #[test]
    fn default_quota_covers_resources_without_their_own_option() {
        let mut d = QuotaDefaults { default_quota: 7, ..QuotaDefaults::default() };
        d.own.remove(&QuotaResource::RbacPolicy);
        assert_eq!(d.limit(QuotaResource::RbacPolicy), 7);
        assert_eq!(d.limit(QuotaResource::Network), 100);
    }

    #[test]
    fn overrides_replace_defaults_one_resource_at_a_time() {
        let d = QuotaDefaults::default();
        let limits = d.effective(&BTreeMap::from([(QuotaResource::Network, 5)]));
        assert_eq!(limits[&QuotaResource::Network], 5);
        assert_eq!(limits[&QuotaResource::Port], 500);
        assert_eq!(limits.len(), QuotaResource::ALL.len());
    }

    #[test]
    fn configured_limits_below_minus_one_stop_start_up() {
        let mut d = QuotaDefaults::default();
        d.own.insert(QuotaResource::Port, -2);
        assert!(d.validate().unwrap_err().contains("quota_port"));
        let d = QuotaDefaults { default_quota: -5, ..QuotaDefaults::default() };
        assert!(d.validate().unwrap_err().contains("default_quota"));
    }

    #[test]
    fn limits_are_converted_and_range_checked_like_neutron() {
        let net = QuotaResource::Network;
        assert_eq!(parse_limit(net, &json!(5)), Ok(5));
        assert_eq!(parse_limit(net, &json!("12")), Ok(12));
        assert_eq!(parse_limit(net, &json!(-1)), Ok(-1));
        assert_eq!(parse_limit(net, &json!(MAX_LIMIT)), Ok(MAX_LIMIT));
        assert_eq!(parse_limit(net, &json!("abc")), Err(DomainError::invalid("'abc' is not an integer")));
        assert!(parse_limit(net, &json!(1.5)).is_err());
        assert!(parse_limit(net, &json!(null)).is_err());
        assert_eq!(
            parse_limit(net, &json!(-2)),
            Err(DomainError::bad_request(
                "HTTPBadRequest",
                "Invalid input for network. Reason: '-2' is too small - must be at least '-1'."
            ))
        );
        assert!(parse_limit(net, &json!(MAX_LIMIT + 1)).is_err());
    }

    #[test]
    fn over_quota_is_neutrons_409() {
        assert_eq!(
            check_one_more(QuotaResource::Network, 10, 10),
            Err(DomainError::conflict("OverQuota", "Quota exceeded for resources: ['network']."))
        );
        assert!(check_one_more(QuotaResource::Network, 10, 9).is_ok());
        assert!(check_one_more(QuotaResource::Network, UNLIMITED, 1_000_000).is_ok());
        assert!(check_one_more(QuotaResource::Port, 0, 0).is_err());
    }

    #[test]
    fn a_limit_below_usage_is_refused() {
        assert!(check_new_limit(QuotaResource::Port, 3, 3).is_ok());
        assert!(check_new_limit(QuotaResource::Port, UNLIMITED, 3).is_ok());
        let e = check_new_limit(QuotaResource::Port, 2, 3).unwrap_err();
        assert_eq!(
            e,
            DomainError::bad_request(
                "HTTPBadRequest",
                "Quota limit 2 for port must be greater than or equal to already used 3"
            )
        );
    }
}
