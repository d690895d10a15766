//! Network MTU rules, as Neutron has them: a network's MTU is at most what its segments allow
//! (`0` or absent means exactly that), and a subnet needs the minimum of its IP version
//! (68 for IPv4, 1280 for IPv6) on its network.

use crate::DomainError;

pub const IPV4_MIN_MTU: u32 = 68;
pub const IPV6_MIN_MTU: u32 = 1280;

/// The MTU a network gets: the requested one (0 or none: the largest), refused when larger
/// than `max`.
pub fn network_mtu(requested: Option<u32>, max: u32) -> Result<u32, DomainError> {
    match requested {
        None | Some(0) => Ok(max),
        Some(mtu) if mtu > max => Err(DomainError::invalid(format!("Requested MTU is too big, maximum is {max}"))),
        Some(mtu) => Ok(mtu),
    }
}

/// Whether a network of `mtu` may hold subnets of these IP versions (409 otherwise).
pub fn check_subnets_fit(network_id: &str, mtu: u32, ip_versions: &[u8]) -> Result<(), DomainError> {
    let required = if !ip_versions.is_empty() && mtu < IPV4_MIN_MTU {
        IPV4_MIN_MTU
    } else if ip_versions.contains(&6) && mtu < IPV6_MIN_MTU {
        IPV6_MIN_MTU
    } else {
        return Ok(());
    };
    Err(DomainError::conflict(
        "NetworkMTUSubnetConflict",
        format!("MTU of {network_id} is not valid, subnet requires a minimum of {required}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtus_follow_neutron() {
        assert_eq!(network_mtu(None, 1450).unwrap(), 1450);
        assert_eq!(network_mtu(Some(0), 1450).unwrap(), 1450);
        assert_eq!(network_mtu(Some(67), 1450).unwrap(), 67, "a network may be below any subnet's minimum");
        assert!(network_mtu(Some(1451), 1450).unwrap_err().to_string().contains("maximum is 1450"));
        assert!(check_subnets_fit("n", 1280, &[4, 6]).is_ok());
        assert!(check_subnets_fit("n", 1279, &[4]).is_ok());
        assert!(check_subnets_fit("n", 67, &[]).is_ok(), "no subnet yet");
        let v4 = check_subnets_fit("n", 67, &[4]).unwrap_err().to_string();
        assert!(v4.contains("minimum of 68"), "{v4}");
        let v6 = check_subnets_fit("n", 1279, &[6]).unwrap_err().to_string();
        assert!(v6.contains("minimum of 1280"), "{v6}");
    }
}
