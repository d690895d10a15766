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
            // As Neutron's `_rule_to_key`: "anywhere" and no prefix are the same rule.
            o(&self.normalized_cidr.clone().filter(|c| c != "0.0.0.0/0" && c != "::/0")),
            o(&self.remote_group_id)
        );
        // Appended only when set, so the prints of rules stored before stay what they were.
        if let Some(ag) = &self.remote_address_group_id {
            print.push_str(&format!("|{ag}"));
        }
        print
    }
}

/// Protocol names Neutron accepts, with their IANA numbers, in neutron-lib's
/// `IP_PROTOCOL_MAP` order (messages list them so).
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ip", 0),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
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

/// `SecurityGroupRuleInvalidProtocol`, listing what Neutron supports as Python prints it.
fn invalid_protocol(p: &str) -> DomainError {
    let names: Vec<String> = PROTOCOLS.iter().map(|(n, _)| format!("'{n}'")).collect();
    DomainError::bad_request(
        "SecurityGroupRuleInvalidProtocol",
        format!(
            "Security group rule protocol {p} not supported. Only protocol values (None, 'any', {}) and integer representations [0 to 255] are supported.",
            names.join(", ")
        ),
    )
}

/// `protocol` as Neutron's `convert_protocol`: none for `any`, a number 0 to 255 as given, a
/// known name in lower case.
fn convert_protocol(p: Option<&str>) -> Result<Option<String>, DomainError> {
    let Some(p) = p.filter(|p| *p != "any") else { return Ok(None) };
    if let Ok(n) = p.trim().parse::<i64>() {
        return if (0..=255).contains(&n) { Ok(Some(p.to_string())) } else { Err(invalid_protocol(p)) };
    }
    let lower = p.to_ascii_lowercase();
    if PROTOCOLS.iter().any(|(n, _)| *n == lower) {
        Ok(Some(lower))
    } else {
        Err(invalid_protocol(p))
    }
}

/// `remote_ip_prefix` as Neutron's `convert_ip_prefix_to_cidr`: empty is none, an address is
/// its host prefix, written as netaddr writes it (host bits kept, lower case).
fn convert_ip_prefix(prefix: Option<&str>) -> Result<Option<IpNet>, DomainError> {
    let Some(prefix) = prefix.filter(|p| !p.is_empty()) else { return Ok(None) };
    prefix
        .parse::<IpNet>()
        .or_else(|_| prefix.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(Some)
        .map_err(|_| DomainError::bad_request("InvalidCIDR", format!("Invalid CIDR {prefix} given as IP prefix.")))
}

pub fn validate_rule(req: &RuleRequest) -> Result<ValidRule, DomainError> {
    let direction = req.direction.clone().ok_or_else(|| {
        DomainError::bad_request(
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'direction' not specified",
        )
    })?;
    if direction != "ingress" && direction != "egress" {
        return Err(DomainError::bad_request(
            "HTTPBadRequest",
            format!("Invalid input for direction. Reason: {direction} is not in valid_values."),
        ));
    }
    let given_ethertype = req.ethertype.clone().unwrap_or_else(|| "IPv4".into());
    let ethertype = ["IPv4", "IPv6"]
        .into_iter()
        .find(|e| e.eq_ignore_ascii_case(&given_ethertype))
        .map(String::from)
        .ok_or_else(|| {
            DomainError::bad_request(
                "SecurityGroupRuleInvalidEtherType",
                format!(
                    "Security group rule for ethertype '{given_ethertype}' not supported. Allowed values are ['IPv4', 'IPv6']."
                ),
            )
        })?;
    let mut protocol = convert_protocol(req.protocol.as_deref())?;
    if let Some(p) = &protocol {
        let number = protocol_number(p).unwrap_or(255);
        if ethertype == "IPv4" && IPV6_ONLY_PROTOCOLS.contains(&number) {
            return Err(DomainError::bad_request(
                "SecurityGroupEthertypeConflictWithProtocol",
                format!("Invalid ethertype IPv4 for protocol {p}."),
            ));
        }
    }
    validate_ports(protocol.as_deref(), req.port_range_min, req.port_range_max)?;
    let remote_ip_prefix = convert_ip_prefix(req.remote_ip_prefix.as_deref())?;
    let remotes = [remote_ip_prefix.is_some(), req.remote_group_id.is_some(), req.remote_address_group_id.is_some()];
    if remotes.iter().filter(|r| **r).count() > 1 {
        return Err(DomainError::bad_request(
            "SecurityGroupMultipleRemoteEntites",
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
        ));
    }
    if let Some(net) = &remote_ip_prefix {
        let version = if net.addr().is_ipv4() { "IPv4" } else { "IPv6" };
        if version != ethertype {
            return Err(DomainError::bad_request(
                "SecurityGroupRuleParameterConflict",
                format!("Conflicting value ethertype {ethertype} for CIDR {net}"),
            ));
        }
    }
    // Neutron's canonical forms: IPv6 ICMP by its IPv6 name (or number), and the whole port
    // range as no range.
    if ethertype == "IPv6" {
        protocol = match protocol.as_deref() {
            Some("icmp") | Some("icmpv6") => Some("ipv6-icmp".into()),
            Some("1") => Some("58".into()),
            _ => protocol,
        };
    }
    let (port_range_min, port_range_max) = match (req.port_range_min, req.port_range_max) {
        (Some(1), Some(65535)) => (None, None),
        other => other,
    };
    Ok(ValidRule {
        direction,
        ethertype,
        protocol,
        port_range_min,
        port_range_max,
        remote_ip_prefix: remote_ip_prefix.map(|n| n.to_string()),
        normalized_cidr: remote_ip_prefix.map(|n| n.trunc().to_string()),
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
        if min == Some(0) || max == Some(0) {
            return Err(DomainError::bad_request("SecurityGroupInvalidPortValue", "Invalid value for port 0"));
        }
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
        for (field, attr, v) in [("type", "port_range_min", min), ("code", "port_range_max", max)] {
            if let Some(v) = v {
                if !(0..=255).contains(&v) {
                    return Err(DomainError::bad_request(
                        "SecurityGroupInvalidIcmpValue",
                        format!("Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."),
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
    Err(DomainError::bad_request(
        "SecurityGroupInvalidProtocolForPort",
        format!(
            "Ports cannot be specified for protocol {number}. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE."
        ),
    ))
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
    fn rules_take_neutrons_canonical_forms() {
        let rule = |f: &dyn Fn(&mut RuleRequest)| {
            let mut r = RuleRequest { direction: Some("ingress".into()), ..Default::default() };
            f(&mut r);
            validate_rule(&r)
        };
        let v6_icmp = rule(&|r| {
            r.ethertype = Some("ipv6".into());
            r.protocol = Some("icmp".into());
        })
        .unwrap();
        assert_eq!((v6_icmp.ethertype.as_str(), v6_icmp.protocol.as_deref()), ("IPv6", Some("ipv6-icmp")));
        let by_number = rule(&|r| {
            r.ethertype = Some("IPv6".into());
            r.protocol = Some("1".into());
        });
        assert_eq!(by_number.unwrap().protocol.as_deref(), Some("58"));
        let whole = rule(&|r| {
            r.protocol = Some("TCP".into());
            (r.port_range_min, r.port_range_max) = (Some(1), Some(65535));
        })
        .unwrap();
        assert_eq!((whole.protocol.as_deref(), whole.port_range_min, whole.port_range_max), (Some("tcp"), None, None));
        let host = rule(&|r| r.remote_ip_prefix = Some("192.0.2.7".into())).unwrap();
        assert_eq!(
            (host.remote_ip_prefix.as_deref(), host.normalized_cidr.as_deref()),
            (Some("192.0.2.7/32"), Some("192.0.2.7/32"))
        );
        let v6 = rule(&|r| {
            r.ethertype = Some("IPv6".into());
            r.remote_ip_prefix = Some("2001:DB8::5/64".into());
        })
        .unwrap();
        assert_eq!(
            (v6.remote_ip_prefix.as_deref(), v6.normalized_cidr.as_deref()),
            (Some("2001:db8::5/64"), Some("2001:db8::/64"))
        );
        assert_eq!(rule(&|r| r.remote_ip_prefix = Some(String::new())).unwrap().remote_ip_prefix, None);
        let anywhere = rule(&|r| r.remote_ip_prefix = Some("0.0.0.0/0".into())).unwrap();
        assert_eq!(anywhere.fingerprint(), rule(&|_| {}).unwrap().fingerprint(), "anywhere is no prefix");
        assert!(rule(&|r| r.protocol = Some("hopopt".into())).is_ok());
        let errors = [
            (
                rule(&|r| {
                    r.protocol = Some("tcp".into());
                    (r.port_range_min, r.port_range_max) = (Some(0), Some(10));
                }),
                "SecurityGroupInvalidPortValue",
            ),
            (
                rule(&|r| {
                    r.protocol = Some("gre".into());
                    (r.port_range_min, r.port_range_max) = (Some(1), Some(2));
                }),
                "SecurityGroupInvalidProtocolForPort",
            ),
            (rule(&|r| r.remote_ip_prefix = Some("192.0.2.300/24".into())), "InvalidCIDR"),
            (rule(&|r| r.direction = Some("sideways".into())), "HTTPBadRequest"),
            (rule(&|r| r.protocol = Some("bogus".into())), "SecurityGroupRuleInvalidProtocol"),
        ];
        for (result, kind) in errors {
            assert!(matches!(result, Err(DomainError::BadRequest { kind: k, .. }) if k == kind), "{kind}");
        }
    }

    #[test]
    fn default_group_admits_its_members() {
        let rules = initial_rules("sg", true);
        assert_eq!(rules.len(), 4);
        assert_eq!(rules.iter().filter(|r| r.remote_group_id.as_deref() == Some("sg")).count(), 2);
        assert_eq!(initial_rules("sg", false).len(), 2);
    }
}
