//! MAC addresses for ports: Neutron's `base_mac = fa:16:3e:00:00:00`, random low three bytes.

use rand::Rng;

pub const BASE_MAC_PREFIX: [u8; 3] = [0xfa, 0x16, 0x3e];

/// A random MAC under the OpenStack prefix. Uniqueness per network is the database's job.
pub fn random_port_mac(rng: &mut impl Rng) -> String {
    let b: [u8; 3] = rng.gen();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        BASE_MAC_PREFIX[0], BASE_MAC_PREFIX[1], BASE_MAC_PREFIX[2], b[0], b[1], b[2]
    )
}

/// The six bytes of a MAC as clients write it (`:` or `-` separated hex pairs), whatever
/// kind of address it is.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let sep = if text.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = text.split(sep).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut bytes = [0u8; 6];
    for (b, p) in bytes.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(bytes)
}

/// Parse and normalise a MAC given by a client (lower case, colon separated).
pub fn normalize_mac(text: &str) -> Option<String> {
    let bytes = parse_mac(text)?;
    // Multicast and all-zero addresses cannot be a port's address.
    if bytes[0] & 1 == 1 || bytes == [0; 6] {
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

/// The six bytes of a normalised MAC.
pub fn mac_bytes(mac: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut it = mac.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(it.next()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_macs_carry_the_openstack_prefix() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let m = random_port_mac(&mut rng);
            assert!(m.starts_with("fa:16:3e:"), "{m}");
            assert_eq!(normalize_mac(&m).as_deref(), Some(m.as_str()));
        }
    }

    #[test]
    fn normalize_rejects_multicast_and_garbage() {
        assert_eq!(normalize_mac("FA-16-3E-00-00-01").as_deref(), Some("fa:16:3e:00:00:01"));
        assert!(normalize_mac("01:00:5e:00:00:01").is_none());
        assert!(normalize_mac("zz:00:00:00:00:01").is_none());
        assert!(normalize_mac("fa:16:3e:00:00").is_none());
    }
}
