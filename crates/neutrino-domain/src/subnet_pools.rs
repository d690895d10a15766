//! Subnet pools: prefix validation and allocating subnets from a pool's prefixes.

use crate::ipam::{from_u128, to_u128};
use crate::DomainError;
use ipnet::IpNet;

/// A pool's prefixes and prefix-length bounds, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub ip_version: u8,
    pub prefixes: Vec<IpNet>,
    pub min_prefixlen: u8,
    pub max_prefixlen: u8,
    pub default_prefixlen: u8,
}

/// Validate a pool: prefixes of one IP version, `min <= default <= max` within the family.
pub fn validate_pool(
    prefixes: &[String],
    min: Option<u8>,
    max: Option<u8>,
    default: Option<u8>,
) -> Result<PoolSpec, DomainError> {
    if prefixes.is_empty() {
        return Err(DomainError::bad_request("EmptySubnetPoolPrefixList", "Empty subnet pool prefix list."));
    }
    let mut nets = Vec::with_capacity(prefixes.len());
    for p in prefixes {
        let net: IpNet = p.parse().map_err(|_| DomainError::invalid(format!("'{p}' is not a valid IP subnet")))?;
        nets.push(net.trunc());
    }
    let v4 = nets[0].addr().is_ipv4();
    if nets.iter().any(|n| n.addr().is_ipv4() != v4) {
        return Err(DomainError::bad_request(
            "PrefixVersionMismatch",
            "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
        ));
    }
    let family_max = if v4 { 32 } else { 128 };
    let min = min.unwrap_or(if v4 { 8 } else { 64 });
    let max = max.unwrap_or(family_max);
    let default = default.unwrap_or(min);
    // In the order of Neutron's `_read_prefix_bounds`.
    let illegal = |kind: &str, len: u8, base: &str, base_len: u8| {
        DomainError::bad_request(
            "IllegalSubnetPoolPrefixBounds",
            format!("Illegal prefix bounds: {kind}={len}, {base}={base_len}."),
        )
    };
    if min > max {
        return Err(illegal("min_prefixlen", min, "max_prefixlen", max));
    }
    if max > family_max {
        return Err(illegal("max_prefixlen", max, "ip_version_max", family_max));
    }
    if default < min {
        return Err(illegal("default_prefixlen", default, "min_prefixlen", min));
    }
    if default > max {
        return Err(illegal("default_prefixlen", default, "max_prefixlen", max));
    }
    nets.sort();
    nets.dedup();
    // Drop prefixes contained in others.
    let prefixes: Vec<IpNet> =
        nets.iter().filter(|n| !nets.iter().any(|o| o != *n && o.contains(*n))).cloned().collect();
    Ok(PoolSpec {
        ip_version: if v4 { 4 } else { 6 },
        prefixes,
        min_prefixlen: min,
        max_prefixlen: max,
        default_prefixlen: default,
    })
}

pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Whether any prefix of `a` overlaps any of `b`.
pub fn any_overlap(a: &[IpNet], b: &[IpNet]) -> bool {
    a.iter().any(|x| b.iter().any(|y| overlaps(x, y)))
}

fn check_prefixlen(spec: &PoolSpec, len: u8) -> Result<(), DomainError> {
    if len < spec.min_prefixlen {
        return Err(DomainError::bad_request(
            "MinPrefixSubnetAllocationError",
            format!(
                "Unable to allocate subnet with prefix length {len}, minimum allowed prefix is {}.",
                spec.min_prefixlen
            ),
        ));
    }
    if len > spec.max_prefixlen {
        return Err(DomainError::bad_request(
            "MaxPrefixSubnetAllocationError",
            format!(
                "Unable to allocate subnet with prefix length {len}, maximum allowed prefix is {}.",
                spec.max_prefixlen
            ),
        ));
    }
    Ok(())
}

/// The first free subnet of length `len` in the pool, given the subnets already taken from it.
pub fn allocate_prefix(spec: &PoolSpec, used: &[IpNet], len: u8) -> Result<IpNet, DomainError> {
    check_prefixlen(spec, len)?;
    let family_max: u8 = if spec.ip_version == 4 { 32 } else { 128 };
    let step: u128 = 1u128.checked_shl(u32::from(family_max - len)).unwrap_or(0);
    for prefix in &spec.prefixes {
        if prefix.prefix_len() > len {
            continue;
        }
        let mut at = to_u128(prefix.network());
        let end = to_u128(prefix.broadcast());
        while at <= end {
            let candidate =
                IpNet::new(from_u128(at, prefix.network()), len).map_err(|_| DomainError::invalid("bad prefix"))?;
            match used.iter().filter(|u| overlaps(u, &candidate)).map(|u| to_u128(u.broadcast())).max() {
                None => return Ok(candidate),
                // Jump past the taken block, aligned to the candidate size.
                Some(taken_end) => {
                    let next = taken_end.saturating_add(1);
                    let aligned = if step == 0 { next } else { next.div_ceil(step).saturating_mul(step) };
                    if aligned <= at {
                        break;
                    }
                    at = aligned;
                }
            }
        }
    }
    Err(DomainError::conflict(
        "SubnetAllocationError",
        format!("Failed to allocate subnet: Insufficient prefix space to allocate subnet size /{len}."),
    ))
}

/// A pool's `default_quota` (per project; 0 or none: no limit), counted as Neutron does: in
/// addresses for IPv4 and in /64s for IPv6, over the project's subnets from the pool plus the
/// one asked for (of length `len`).
pub fn check_pool_quota(ip_version: u8, quota: Option<u64>, held: &[IpNet], len: u8) -> Result<(), DomainError> {
    let Some(quota) = quota.filter(|q| *q > 0) else { return Ok(()) };
    let unit: i32 = if ip_version == 4 { 32 } else { 64 };
    let units = |prefixlen: u8| 2f64.powi(unit - i32::from(prefixlen));
    let used: f64 = held.iter().map(|n| units(n.prefix_len())).sum();
    if used + units(len) > quota as f64 {
        return Err(DomainError::conflict("SubnetPoolQuotaExceeded", "Per-project subnet pool prefix quota exceeded."));
    }
    Ok(())
}

/// A specific CIDR asked from a pool: inside its prefixes, allowed size, not taken.
pub fn check_specific(spec: &PoolSpec, used: &[IpNet], cidr: IpNet) -> Result<(), DomainError> {
    check_prefixlen(spec, cidr.prefix_len())?;
    if !spec.prefixes.iter().any(|p| p.contains(&cidr)) {
        return Err(DomainError::invalid(format!("Cidr {cidr} is not within the subnet pool's prefixes")));
    }
    if used.iter().any(|u| overlaps(u, &cidr)) {
        return Err(DomainError::conflict(
            "SubnetAllocationError",
            format!("Failed to allocate subnet: Cidr {cidr} overlaps with another subnet of the pool."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_pool_quota_counts_addresses_for_ipv4_and_64s_for_ipv6() {
        assert!(check_pool_quota(4, None, &[net("10.0.0.0/8")], 8).is_ok(), "no quota");
        assert!(check_pool_quota(4, Some(0), &[net("10.0.0.0/8")], 8).is_ok(), "0 is no quota");
        assert!(check_pool_quota(4, Some(4), &[], 30).is_ok());
        assert!(check_pool_quota(4, Some(4), &[], 29).is_err());
        assert!(check_pool_quota(4, Some(8), &[net("10.0.0.0/30")], 30).is_ok());
        let e = check_pool_quota(4, Some(8), &[net("10.0.0.0/30"), net("10.0.0.4/31")], 30).unwrap_err();
        assert_eq!(e.to_string(), "SubnetPoolQuotaExceeded: Per-project subnet pool prefix quota exceeded.");
        assert!(check_pool_quota(6, Some(1), &[], 64).is_ok());
        assert!(check_pool_quota(6, Some(1), &[], 63).is_err());
        assert!(check_pool_quota(6, Some(1), &[net("2001:db8::/65")], 65).is_ok(), "half a /64 each");
    }

    #[test]
    fn pools_default_their_bounds_by_family() {
        let v4 = validate_pool(&["10.10.0.0/16".into()], None, None, Some(24)).unwrap();
        assert_eq!((v4.min_prefixlen, v4.max_prefixlen, v4.default_prefixlen), (8, 32, 24));
        let v6 = validate_pool(&["fd00:10::/48".into()], None, None, None).unwrap();
        assert_eq!((v6.min_prefixlen, v6.max_prefixlen, v6.default_prefixlen), (64, 128, 64));
        assert!(validate_pool(&["10.0.0.0/8".into(), "fd00::/8".into()], None, None, None).is_err());
        assert!(validate_pool(&["10.0.0.0/8".into()], Some(24), Some(16), None).is_err());
    }

    #[test]
    fn allocation_takes_the_first_free_block() {
        let spec = validate_pool(&["10.10.0.0/16".into()], None, None, Some(24)).unwrap();
        assert_eq!(allocate_prefix(&spec, &[], 24).unwrap(), net("10.10.0.0/24"));
        let used = vec![net("10.10.0.0/24"), net("10.10.1.0/25")];
        assert_eq!(allocate_prefix(&spec, &used, 24).unwrap(), net("10.10.2.0/24"));
        assert_eq!(allocate_prefix(&spec, &used, 25).unwrap(), net("10.10.1.128/25"));
        let full = vec![net("10.10.0.0/16")];
        assert!(matches!(
            allocate_prefix(&spec, &full, 24),
            Err(DomainError::Conflict { kind: "SubnetAllocationError", .. })
        ));
        assert!(allocate_prefix(&spec, &[], 4).is_err(), "below min_prefixlen");
    }

    #[test]
    fn specific_cidrs_must_fit_and_be_free() {
        let spec = validate_pool(&["10.10.0.0/16".into()], None, None, Some(24)).unwrap();
        assert!(check_specific(&spec, &[], net("10.10.5.0/24")).is_ok());
        assert!(check_specific(&spec, &[], net("10.11.5.0/24")).is_err());
        assert!(check_specific(&spec, &[net("10.10.5.0/25")], net("10.10.5.0/24")).is_err());
    }
}
