//! Security group rules, as Neutron validates them, and the rules a new group starts with.

use crate::DomainError;
use ipnet::IpNet;

/// A rule as the client asked for it (attributes already type-checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleRequest {
    pub direction: Option<String>,
    pub ethertype: Option<String>,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub remote_address_group_id: Option<String>,
}

/// A validated rule, normalised so that equal rules compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRule {
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub normalized_cidr: Option<String>,
    pub remote_group_id: Option<String>,
    pub remote_address_group_id: Option<String>,
}

impl ValidRule {
    /// What makes two rules of one group the same rule (for the duplicate check, which the
    /// database enforces with a unique key on it).
    pub fn fingerprint(&self) -> String {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let n = |v: &Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
        let mut print = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.direction,
            self.ethertype,
            o(&self.protocol.as_ref().map(|p| canonical_protocol(p))),
            n(&self.port_range_min),
            n(&self.port_range_max),
            o(&self.normalized_cidr),
            o(&self.remote_group_id)
        );
        // Appended only when set, so the prints of rules stored before stay what they were.
        if let Some(ag) = &self.remote_address_group_id {
            print.push_str(&format!("|{ag}"));
        }
        print
    }
}

/// Protocol names Neutron accepts, with their IANA numbers.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("icmp", 1),
    ("icmpv6", 58),
    ("igmp", 2),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// Protocols Neutron allows with IPv6 rules only (`ipv6-encap`, `-route`, `-frag`, `-icmp`,
/// `-nonxt`, `-opts`, by name or number).
const IPV6_ONLY_PROTOCOLS: [u8; 6] = [41, 43, 44, 58, 59, 60];

/// Protocols whose port range means ports (others may not have one, but ICMP's means type/code).
const PORT_PROTOCOLS: [u8; 5] = [6, 17, 33, 132, 136];

/// The IANA number of a protocol given by name or number.
pub fn protocol_number(p: &str) -> Option<u8> {
    PROTOCOLS.iter().find(|(n, _)| *n == p).map(|(_, v)| *v).or_else(|| p.parse().ok())
}

/// `tcp` and `6` are the same protocol.
fn canonical_protocol(p: &str) -> String {
    protocol_number(p).map(|n| n.to_string()).unwrap_or_else(|| p.to_string())
}

pub fn validate_rule(req: &RuleRequest) -> Result<ValidRule, DomainError> {
    let direction = req.direction.clone().ok_or_else(|| {
        DomainError::bad_request(
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'direction' not specified",
        )
    })?;
    if direction != "ingress" && direction != "egress" {
        return Err(DomainError::invalid(format!("'{direction}' is not in ['ingress', 'egress']")));
    }
    let ethertype = req.ethertype.clone().unwrap_or_else(|| "IPv4".into());
    if ethertype != "IPv4" && ethertype != "IPv6" {
        return Err(DomainError::bad_request(
            "SecurityGroupRuleInvalidEtherType",
            format!(
                "Security group rule for ethertype '{ethertype}' not supported. Allowed values are ['IPv4', 'IPv6']."
            ),
        ));
    }
    let protocol = match req.protocol.as_deref() {
        None | Some("") | Some("any") => None,
        Some(p) => {
            let lower = p.to_ascii_lowercase();
            let number = protocol_number(&lower).ok_or_else(|| {
                DomainError::bad_request(
                    "SecurityGroupRuleInvalidProtocol",
                    format!("Security group rule protocol {p} not supported. Only protocol values {} and integer representations [0 to 255] are supported.",
                        PROTOCOLS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")),
                )
            })?;
            if ethertype == "IPv4" && IPV6_ONLY_PROTOCOLS.contains(&number) {
                return Err(DomainError::bad_request(
                    "SecurityGroupEthertypeConflictWithProtocol",
                    format!("Invalid ethertype IPv4 for protocol {p}."),
                ));
            }
            Some(lower)
        }
    };
    validate_ports(protocol.as_deref(), req.port_range_min, req.port_range_max)?;
    let remotes =
        [req.remote_ip_prefix.is_some(), req.remote_group_id.is_some(), req.remote_address_group_id.is_some()];
    if remotes.iter().filter(|r| **r).count() > 1 {
        return Err(DomainError::bad_request(
            "SecurityGroupMultipleRemoteEntites",
            "Invalid input for operation: Only one of remote_ip_prefix or remote_group_id or remote_address_group_id \
             may be provided.",
        ));
    }
    let normalized_cidr = match &req.remote_ip_prefix {
        None => None,
        Some(prefix) => {
            let net: IpNet = prefix
                .parse()
                .or_else(|_| prefix.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| DomainError::invalid(format!("'{prefix}' is not a valid IP subnet")))?;
            let version = if net.addr().is_ipv4() { "IPv4" } else { "IPv6" };
            if version != ethertype {
                return Err(DomainError::bad_request(
                    "SecurityGroupRuleParameterConflict",
                    format!("Conflicting value ethertype {ethertype} for CIDR {prefix}"),
                ));
            }
            Some(net.trunc().to_string())
        }
    };
    Ok(ValidRule {
        direction,
        ethertype,
        protocol,
        port_range_min: req.port_range_min,
        port_range_max: req.port_range_max,
        remote_ip_prefix: req.remote_ip_prefix.clone(),
        normalized_cidr,
        remote_group_id: req.remote_group_id.clone(),
        remote_address_group_id: req.remote_address_group_id.clone(),
    })
}

fn validate_ports(protocol: Option<&str>, min: Option<i64>, max: Option<i64>) -> Result<(), DomainError> {
    if min.is_none() && max.is_none() {
        return Ok(());
    }
    let Some(p) = protocol else {
        return Err(DomainError::bad_request(
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        ));
    };
    let number = protocol_number(p).unwrap_or(255);
    if PORT_PROTOCOLS.contains(&number) {
        let (Some(lo), Some(hi)) = (min, max) else {
            return Err(DomainError::bad_request(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            ));
        };
        if !(0..=65535).contains(&lo) || !(0..=65535).contains(&hi) {
            return Err(DomainError::bad_request(
                "SecurityGroupInvalidPortValue",
                format!("Invalid value for port {}", if (0..=65535).contains(&lo) { hi } else { lo }),
            ));
        }
        if lo > hi {
            return Err(DomainError::bad_request(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            ));
        }
        return Ok(());
    }
    if number == 1 || number == 58 {
        for (field, v) in [("type", min), ("code", max)] {
            if let Some(v) = v {
                if !(0..=255).contains(&v) {
                    return Err(DomainError::bad_request(
                        "SecurityGroupInvalidIcmpValue",
                        format!(
                            "Invalid value for ICMP {field} (port_range_min/port_range_max) {v}. It must be 0 to 255."
                        ),
                    ));
                }
            }
        }
        if min.is_none() && max.is_some() {
            return Err(DomainError::bad_request(
                "SecurityGroupMissingIcmpType",
                format!(
                    "ICMP code (port-range-max) {} is provided but ICMP type (port-range-min) is missing.",
                    max.unwrap_or_default()
                ),
            ));
        }
        return Ok(());
    }
    Err(DomainError::invalid(format!("Protocol {p} does not support port ranges")))
}

/// The rules of a new group: any egress over IPv4 and IPv6; the project's `default` group
/// also admits ingress from its own members.
pub fn initial_rules(group_id: &str, is_default: bool) -> Vec<ValidRule> {
    let mut rules = Vec::new();
    for ethertype in ["IPv4", "IPv6"] {
        rules.push(ValidRule {
            direction: "egress".into(),
            ethertype: ethertype.into(),
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            normalized_cidr: None,
            remote_group_id: None,
            remote_address_group_id: None,
        });
        if is_default {
            rules.push(ValidRule {
                direction: "ingress".into(),
                ethertype: ethertype.into(),
                protocol: None,
                port_range_min: None,
                port_range_max: None,
                remote_ip_prefix: None,
                normalized_cidr: None,
                remote_group_id: Some(group_id.to_string()),
                remote_address_group_id: None,
            });
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp22() -> RuleRequest {
        RuleRequest {
            direction: Some("ingress".into()),
            ethertype: Some("IPv4".into()),
            protocol: Some("tcp".into()),
            port_range_min: Some(22),
            port_range_max: Some(22),
            remote_ip_prefix: Some("0.0.0.0/0".into()),
            remote_group_id: None,
            remote_address_group_id: None,
        }
    }

    #[test]
    fn a_valid_rule_is_normalised() {
        let r = validate_rule(&tcp22()).unwrap();
        assert_eq!(r.normalized_cidr.as_deref(), Some("0.0.0.0/0"));
        let mut by_number = tcp22();
        by_number.protocol = Some("6".into());
        assert_eq!(validate_rule(&by_number).unwrap().fingerprint(), r.fingerprint());
    }

    #[test]
    fn neutron_rule_errors() {
        let mut both = tcp22();
        both.remote_group_id = Some("g".into());
        assert!(matches!(
            validate_rule(&both),
            Err(DomainError::BadRequest { kind: "SecurityGroupMultipleRemoteEntites", .. })
        ));
        let mut reversed = tcp22();
        reversed.port_range_min = Some(80);
        assert!(matches!(
            validate_rule(&reversed),
            Err(DomainError::BadRequest { kind: "SecurityGroupInvalidPortRange", .. })
        ));
        let mut no_proto = tcp22();
        no_proto.protocol = None;
        assert!(validate_rule(&no_proto).is_err());
        let mut v6_prefix = tcp22();
        v6_prefix.remote_ip_prefix = Some("fd00::/64".into());
        assert!(matches!(
            validate_rule(&v6_prefix),
            Err(DomainError::BadRequest { kind: "SecurityGroupRuleParameterConflict", .. })
        ));
        let mut bogus = tcp22();
        bogus.protocol = Some("bogus".into());
        assert!(matches!(
            validate_rule(&bogus),
            Err(DomainError::BadRequest { kind: "SecurityGroupRuleInvalidProtocol", .. })
        ));
        let mut icmp = tcp22();
        icmp.protocol = Some("icmp".into());
        icmp.port_range_min = None;
        icmp.port_range_max = Some(0);
        assert!(matches!(
            validate_rule(&icmp),
            Err(DomainError::BadRequest { kind: "SecurityGroupMissingIcmpType", .. })
        ));
    }

    #[test]
    fn default_group_admits_its_members() {
        let rules = initial_rules("sg", true);
        assert_eq!(rules.len(), 4);
        assert_eq!(rules.iter().filter(|r| r.remote_group_id.as_deref() == Some("sg")).count(), 2);
        assert_eq!(initial_rules("sg", false).len(), 2);
    }
}
