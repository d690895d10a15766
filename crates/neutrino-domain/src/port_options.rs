//! Port options with Neutron's rules: allowed address pairs and extra DHCP options.

use crate::mac::normalize_mac;
use crate::DomainError;
use ipnet::IpNet;
use std::net::IpAddr;

/// Neutron's `max_allowed_address_pair` default.
pub const MAX_ALLOWED_ADDRESS_PAIRS: usize = 10;

/// One allowed address pair: an address or CIDR, and the MAC it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPair {
    pub ip_address: String,
    pub mac_address: String,
}

/// Validate requested pairs (`(ip_address, mac_address)`); a missing MAC is the port's own.
pub fn validate_address_pairs(
    requested: &[(Option<String>, Option<String>)],
    port_mac: &str,
    port_security_enabled: bool,
) -> Result<Vec<AddressPair>, DomainError> {
    if !requested.is_empty() && !port_security_enabled {
        return Err(DomainError::conflict(
            "AddressPairAndPortSecurityRequired",
            "Port Security must be enabled in order to have allowed address pairs on a port.",
        ));
    }
    if requested.len() > MAX_ALLOWED_ADDRESS_PAIRS {
        return Err(DomainError::bad_request(
            "AllowedAddressPairExhausted",
            format!("The number of allowed address pair exceeds the maximum {MAX_ALLOWED_ADDRESS_PAIRS}."),
        ));
    }
    let mut out: Vec<AddressPair> = Vec::with_capacity(requested.len());
    for (ip, mac) in requested {
        let ip = ip.as_deref().ok_or_else(|| {
            DomainError::bad_request("AllowedAddressPairsMissingIP", "AllowedAddressPair must contain ip_address")
        })?;
        let net: IpNet = ip
            .parse()
            .or_else(|_| ip.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| DomainError::invalid(format!("'{ip}' is not a valid IP address")))?;
        if net.addr().is_multicast() {
            return Err(DomainError::invalid(format!("'{ip}' is a multicast address, not allowed in address pairs")));
        }
        let mac = match mac {
            None => port_mac.to_string(),
            Some(m) => {
                normalize_mac(m).ok_or_else(|| DomainError::invalid(format!("'{m}' is not a valid MAC address")))?
            }
        };
        let pair = AddressPair { ip_address: ip.to_string(), mac_address: mac };
        if out.contains(&pair) {
            return Err(DomainError::bad_request(
                "DuplicateAddressPairInRequest",
                format!(
                    "Request contains duplicate address pair: mac_address {} ip_address {}.",
                    pair.mac_address, pair.ip_address
                ),
            ));
        }
        out.push(pair);
    }
    Ok(out)
}

/// One extra DHCP option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOption {
    pub opt_name: String,
    pub opt_value: String,
    pub ip_version: u8,
}

/// A requested option; `opt_value: None` (JSON null) removes the option on update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOptionRequest {
    pub opt_name: Option<String>,
    pub opt_value: Option<String>,
    pub ip_version: Option<u8>,
}

/// Merge requested options into `current`, as Neutron does: an option is identified by name
/// and IP version; a null value removes it.
pub fn merge_dhcp_options(
    current: &[DhcpOption],
    requested: &[DhcpOptionRequest],
) -> Result<Vec<DhcpOption>, DomainError> {
    let mut out = current.to_vec();
    let mut seen = Vec::new();
    for r in requested {
        let name = r
            .opt_name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| DomainError::invalid("extra_dhcp_opts entries need an opt_name"))?;
        let version = r.ip_version.unwrap_or(4);
        if version != 4 && version != 6 {
            return Err(DomainError::invalid(format!("ip_version {version} of DHCP option {name} is not 4 or 6")));
        }
        if seen.contains(&(name.clone(), version)) {
            return Err(DomainError::invalid(format!("Duplicate DHCP option {name} for IPv{version}")));
        }
        seen.push((name.clone(), version));
        out.retain(|o| !(o.opt_name == name && o.ip_version == version));
        if let Some(value) = &r.opt_value {
            out.push(DhcpOption { opt_name: name, opt_value: value.clone(), ip_version: version });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_default_to_the_port_mac_and_refuse_duplicates() {
        let pairs =
            validate_address_pairs(&[(Some("203.0.113.0/24".into()), None)], "fa:16:3e:00:00:01", true).unwrap();
        assert_eq!(pairs[0].mac_address, "fa:16:3e:00:00:01");
        let dup = vec![(Some("203.0.113.5".into()), None), (Some("203.0.113.5".into()), None)];
        assert!(matches!(
            validate_address_pairs(&dup, "fa:16:3e:00:00:01", true),
            Err(DomainError::BadRequest { kind: "DuplicateAddressPairInRequest", .. })
        ));
        assert!(matches!(
            validate_address_pairs(&[(Some("203.0.113.5".into()), None)], "fa:16:3e:00:00:01", false),
            Err(DomainError::Conflict { kind: "AddressPairAndPortSecurityRequired", .. })
        ));
        assert!(validate_address_pairs(&[(Some("224.0.0.1".into()), None)], "fa:16:3e:00:00:01", true).is_err());
    }

    #[test]
    fn dhcp_options_merge_by_name_and_version() {
        let req = |n: &str, v: Option<&str>| DhcpOptionRequest {
            opt_name: Some(n.into()),
            opt_value: v.map(String::from),
            ip_version: None,
        };
        let first =
            merge_dhcp_options(&[], &[req("mtu", Some("1400")), req("domain-search", Some("example.org"))]).unwrap();
        assert_eq!(first.len(), 2);
        let second = merge_dhcp_options(&first, &[req("mtu", Some("1300")), req("domain-search", None)]).unwrap();
        assert_eq!(second, vec![DhcpOption { opt_name: "mtu".into(), opt_value: "1300".into(), ip_version: 4 }]);
        assert!(merge_dhcp_options(&[], &[req("mtu", Some("1")), req("mtu", Some("2"))]).is_err());
    }
}
