//! DNS integration: port host names and their `dns_assignment`, as Neutron's `dns` extension
//! driver computes them from `[DEFAULT] dns_domain`.

use crate::DomainError;
use serde_json::{json, Value};

pub const DEFAULT_DNS_DOMAIN: &str = "openstacklocal.";

/// Validate a `dns_name` (a host name or a name under the domain): labels of letters, digits
/// and hyphens, 1 to 63 characters, not starting or ending with a hyphen. Lower-cased.
pub fn validate_dns_name(name: &str, domain: &str) -> Result<String, DomainError> {
    if name.is_empty() {
        return Ok(String::new());
    }
    let lower = name.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('.').unwrap_or(&lower);
    if lower.ends_with('.') && !(lower.ends_with(&format!(".{domain}")) || lower == domain) {
        return Err(DomainError::invalid(format!(
            "The dns_name passed is a FQDN. Its higher level labels must be equal to the dns_domain option in neutron.conf, that has been set to '{domain}'"
        )));
    }
    let ok = trimmed.len() <= 255
        && trimmed.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(DomainError::invalid(format!("'{name}' not a valid PQDN or FQDN")));
    }
    Ok(lower)
}

/// A domain given for a network: a valid name, stored with its final dot.
pub fn validate_dns_domain(domain: &str) -> Result<String, DomainError> {
    if domain.is_empty() {
        return Ok(String::new());
    }
    let with_dot =
        if domain.ends_with('.') { domain.to_ascii_lowercase() } else { format!("{}.", domain.to_ascii_lowercase()) };
    validate_dns_name(&with_dot[..with_dot.len() - 1], "")
        .map_err(|_| DomainError::invalid(format!("'{domain}' is not a valid domain name")))?;
    Ok(with_dot)
}

/// `dns_assignment` of a port: one entry per fixed IP.
pub fn dns_assignment(dns_name: &str, ips: &[String], domain: &str) -> Vec<Value> {
    ips.iter()
        .map(|ip| {
            let hostname = if dns_name.is_empty() {
                format!("host-{}", ip.replace(['.', ':'], "-"))
            } else {
                dns_name
                    .trim_end_matches('.')
                    .trim_end_matches(domain.trim_end_matches('.'))
                    .trim_end_matches('.')
                    .to_string()
            };
            json!({"hostname": hostname, "ip_address": ip, "fqdn": format!("{hostname}.{domain}")})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_assignments_follow_neutron() {
        assert_eq!(validate_dns_name("VM1", DEFAULT_DNS_DOMAIN).unwrap(), "vm1");
        assert!(validate_dns_name("-bad", DEFAULT_DNS_DOMAIN).is_err());
        assert!(validate_dns_name("vm1.example.org.", DEFAULT_DNS_DOMAIN).is_err());
        assert!(validate_dns_name("vm1.openstacklocal.", DEFAULT_DNS_DOMAIN).is_ok());
        let a = dns_assignment("", &["198.51.100.5".into()], DEFAULT_DNS_DOMAIN);
        assert_eq!(a[0]["hostname"], "host-198-51-100-5");
        assert_eq!(a[0]["fqdn"], "host-198-51-100-5.openstacklocal.");
        let b = dns_assignment("vm1", &["fd00::5".into()], DEFAULT_DNS_DOMAIN);
        assert_eq!(b[0]["fqdn"], "vm1.openstacklocal.");
        assert_eq!(validate_dns_domain("Example.org").unwrap(), "example.org.");
    }
}
