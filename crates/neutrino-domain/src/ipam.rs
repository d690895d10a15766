//! IP address management, pure: pools and allocated addresses in, an address out.
//!
//! Addresses are handled as `u128` so IPv4 and IPv6 share one code path.

use ipnet::IpNet;
use rand::Rng;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An inclusive range of addresses of one IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub first: IpAddr,
    pub last: IpAddr,
}

impl IpRange {
    pub fn new(first: IpAddr, last: IpAddr) -> Self {
        IpRange { first, last }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        same_version(self.first, ip) && to_u128(self.first) <= to_u128(ip) && to_u128(ip) <= to_u128(self.last)
    }

    pub fn overlaps(&self, other: &IpRange) -> bool {
        same_version(self.first, other.first)
            && to_u128(self.first) <= to_u128(other.last)
            && to_u128(other.first) <= to_u128(self.last)
    }

    /// Number of addresses, saturating.
    pub fn size(&self) -> u128 {
        (to_u128(self.last) - to_u128(self.first)).saturating_add(1)
    }
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

fn same_version(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// The pools Neutron generates for a CIDR: everything but the network address, the IPv4
/// broadcast address and the gateway.
pub fn default_pools(cidr: IpNet, gateway: Option<IpAddr>) -> Vec<IpRange> {
    let net = cidr.network();
    let first = to_u128(net);
    let last = to_u128(cidr.broadcast());
    if first == last {
        return vec![IpRange::new(net, net)];
    }
    let lo = first + 1;
    let hi = if net.is_ipv4() { last - 1 } else { last };
    if lo >= hi {
        return Vec::new();
    }
    let whole = IpRange::new(from_u128(lo, net), from_u128(hi, net));
    match gateway {
        Some(gw) if whole.contains(gw) => exclude(whole, gw),
        _ => vec![whole],
    }
}

/// Split `range` around `ip`.
fn exclude(range: IpRange, ip: IpAddr) -> Vec<IpRange> {
    let (f, l, x) = (to_u128(range.first), to_u128(range.last), to_u128(ip));
    let mut out = Vec::new();
    if x > f {
        out.push(IpRange::new(range.first, from_u128(x - 1, ip)));
    }
    if x < l {
        out.push(IpRange::new(from_u128(x + 1, ip), range.last));
    }
    out
}

/// Up to `count` random distinct candidates from the pools, weighted by pool size. Random
/// choice (as Neutron does) keeps concurrent allocations from colliding on the same address;
/// the database's unique index settles any collision that still happens.
pub fn random_candidates(pools: &[IpRange], count: usize, rng: &mut impl Rng) -> Vec<IpAddr> {
    let total: u128 = pools.iter().map(IpRange::size).fold(0, u128::saturating_add);
    let mut out: Vec<IpAddr> = Vec::with_capacity(count);
    if total == 0 {
        return out;
    }
    let wanted = count.min(total.min(usize::MAX as u128) as usize);
    let mut attempts = 0;
    while out.len() < wanted && attempts < wanted * 4 {
        attempts += 1;
        let mut offset = rng.gen_range(0..total);
        for pool in pools {
            if offset < pool.size() {
                let ip = from_u128(to_u128(pool.first) + offset, pool.first);
                if !out.contains(&ip) {
                    out.push(ip);
                }
                break;
            }
            offset -= pool.size();
        }
    }
    out
}

/// The lowest address in the pools that is not in `allocated` (which must be sorted by
/// [`to_u128`]). Used when random candidates keep colliding on a nearly full subnet.
pub fn first_free(pools: &[IpRange], allocated_sorted: &[IpAddr]) -> Option<IpAddr> {
    let mut pools: Vec<IpRange> = pools.to_vec();
    pools.sort_by_key(|p| to_u128(p.first));
    let taken: Vec<u128> = allocated_sorted.iter().map(|ip| to_u128(*ip)).collect();
    for pool in pools {
        let mut candidate = to_u128(pool.first);
        let last = to_u128(pool.last);
        let start = taken.partition_point(|t| *t < candidate);
        for t in &taken[start..] {
            if *t > candidate || candidate > last {
                break;
            }
            candidate = t + 1;
        }
        if candidate <= last {
            return Some(from_u128(candidate, pool.first));
        }
    }
    None
}

/// Addresses a subnet can hold, as Neutron counts them: an IPv4 subnet loses its network and
/// broadcast addresses (except /31 and /32), an IPv6 subnet loses nothing.
pub fn subnet_capacity(cidr: IpNet) -> u128 {
    let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
    let size = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
    match cidr {
        IpNet::V4(_) if cidr.prefix_len() < 31 => size - 2,
        _ => size,
    }
}

/// Addresses in the pools.
pub fn pools_capacity(pools: &[IpRange]) -> u128 {
    pools.iter().map(IpRange::size).fold(0, u128::saturating_add)
}

/// The modified EUI-64 address of `mac` in a /64 (SLAAC).
pub fn eui64_address(prefix: IpNet, mac: [u8; 6]) -> Option<IpAddr> {
    let IpNet::V6(p) = prefix else { return None };
    if p.prefix_len() != 64 {
        return None;
    }
    let iid = [mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]];
    let hi = u128::from(p.network()) & !((1u128 << 64) - 1);
    let lo = u64::from_be_bytes(iid) as u128;
    Some(IpAddr::V6(Ipv6Addr::from(hi | lo)))
}

/// The modified EUI-64 link-local address of `mac` (`fe80::f816:3eff:fe12:3456`).
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let iid = [mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]];
    Ipv6Addr::from((0xfe80u128 << 112) | u64::from_be_bytes(iid) as u128)
}

/// The MAC behind a modified EUI-64 link-local address (none for any other address).
pub fn link_local_mac(address: Ipv6Addr) -> Option<[u8; 6]> {
    let o = address.octets();
    let link_local = o[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0];
    (link_local && o[11] == 0xff && o[12] == 0xfe).then_some([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_addresses_are_eui64_both_ways() {
        let mac = [0xfa, 0x16, 0x3e, 0x12, 0x34, 0x56];
        assert_eq!(link_local(mac).to_string(), "fe80::f816:3eff:fe12:3456");
        assert_eq!(link_local_mac(link_local(mac)), Some(mac));
        assert_eq!(link_local_mac("fe80::1".parse().unwrap()), None);
        assert_eq!(link_local_mac("2001:db8::f816:3eff:fe12:3456".parse().unwrap()), None, "not link-local");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_v4_pool_skips_network_broadcast_and_gateway() {
        let pools = default_pools("10.30.0.0/24".parse().unwrap(), Some(ip("10.30.0.1")));
        assert_eq!(pools, vec![IpRange::new(ip("10.30.0.2"), ip("10.30.0.254"))]);
    }

    #[test]
    fn default_pool_splits_around_a_middle_gateway() {
        let pools = default_pools("10.0.0.0/29".parse().unwrap(), Some(ip("10.0.0.3")));
        assert_eq!(
            pools,
            vec![IpRange::new(ip("10.0.0.1"), ip("10.0.0.2")), IpRange::new(ip("10.0.0.4"), ip("10.0.0.6"))]
        );
    }

    #[test]
    fn default_v6_pool_matches_neutron_sample() {
        let pools = default_pools("fd00:30::/64".parse().unwrap(), Some(ip("fd00:30::")));
        assert_eq!(pools, vec![IpRange::new(ip("fd00:30::1"), ip("fd00:30::ffff:ffff:ffff:ffff"))]);
    }

    #[test]
    fn first_free_skips_allocated_addresses() {
        let pools = vec![IpRange::new(ip("10.0.0.2"), ip("10.0.0.4"))];
        assert_eq!(first_free(&pools, &[]), Some(ip("10.0.0.2")));
        assert_eq!(first_free(&pools, &[ip("10.0.0.2"), ip("10.0.0.3")]), Some(ip("10.0.0.4")));
        assert_eq!(first_free(&pools, &[ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.4")]), None);
    }

    #[test]
    fn random_candidates_stay_in_pools_and_are_distinct() {
        let pools = vec![IpRange::new(ip("10.0.0.2"), ip("10.0.0.5"))];
        let mut rng = rand::thread_rng();
        let c = random_candidates(&pools, 10, &mut rng);
        assert!(c.len() <= 4 && !c.is_empty());
        for a in &c {
            assert!(pools[0].contains(*a));
        }
        let mut d = c.clone();
        d.dedup();
        assert_eq!(c.len(), d.len());
    }

    #[test]
    fn capacities_match_neutron_counts() {
        assert_eq!(subnet_capacity("10.30.0.0/24".parse().unwrap()), 254);
        assert_eq!(subnet_capacity("fd00:30::/64".parse().unwrap()), 1 << 64);
        let pools = default_pools("fd00:30::/64".parse().unwrap(), Some(ip("fd00:30::")));
        assert_eq!(pools_capacity(&pools), (1 << 64) - 1);
    }

    #[test]
    fn eui64_matches_neutron_sample() {
        let mac = [0xfa, 0x16, 0x3e, 0x71, 0x04, 0x65];
        assert_eq!(eui64_address("fd00:30::/64".parse().unwrap(), mac), Some(ip("fd00:30::f816:3eff:fe71:465")));
    }
}
