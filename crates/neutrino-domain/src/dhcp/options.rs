//! `extra_dhcp_opts` for IPv4, with dnsmasq's names (which Neutron passes through): a name or
//! a number, optionally `option:`-prefixed, and a value encoded by the option's type.

use super::LeaseV4;
use neutrino_api::agent::LocalPort;
use std::net::Ipv4Addr;

/// An option to send as it is: its code and encoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraOption {
    pub code: u8,
    pub value: Vec<u8>,
}

/// A dnsmasq tag an option is for: `tag:ipxe`, or `tag:!ipxe` (a client without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub negated: bool,
}

/// The tag Neutron's dnsmasq sets for a client that sends option 175 (iPXE):
/// `--dhcp-match=set:ipxe,175`.
pub const IPXE: &str = "ipxe";

/// An option for the clients whose request sets its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedOption {
    pub tags: Vec<Tag>,
    pub option: ExtraOption,
}

impl TaggedOption {
    /// Whether a request that sets `set` (tag names) gets the option: every tag set, every
    /// negated one not.
    pub fn applies(&self, set: &[&str]) -> bool {
        self.tags.iter().all(|t| set.contains(&t.name.as_str()) != t.negated)
    }
}

/// The tags before an option's name (`tag:ipxe,tag:!x,option:bootfile-name`).
fn tags(name: &str) -> Vec<Tag> {
    let mut parts: Vec<&str> = name.split(',').map(str::trim).collect();
    parts.pop();
    parts
        .iter()
        .filter_map(|p| p.strip_prefix("tag:"))
        .map(|t| match t.strip_prefix('!') {
            Some(name) => Tag { name: name.to_string(), negated: true },
            None => Tag { name: t.to_string(), negated: false },
        })
        .collect()
}

/// dnsmasq's option names.
const NAMES: &[(&str, u8)] = &[
    ("netmask", 1),
    ("time-offset", 2),
    ("router", 3),
    ("dns-server", 6),
    ("log-server", 7),
    ("lpr-server", 9),
    ("hostname", 12),
    ("boot-file-size", 13),
    ("domain-name", 15),
    ("swap-server", 16),
    ("root-path", 17),
    ("extension-path", 18),
    ("ip-forward-enable", 19),
    ("non-local-source-routing", 20),
    ("policy-filter", 21),
    ("max-datagram-reassembly", 22),
    ("default-ttl", 23),
    ("mtu", 26),
    ("all-subnets-local", 27),
    ("broadcast", 28),
    ("router-discovery", 31),
    ("router-solicitation", 32),
    ("static-route", 33),
    ("trailer-encapsulation", 34),
    ("arp-timeout", 35),
    ("ethernet-encap", 36),
    ("tcp-ttl", 37),
    ("tcp-keepalive", 38),
    ("nis-domain", 40),
    ("nis-server", 41),
    ("ntp-server", 42),
    ("vendor-encap", 43),
    ("netbios-ns", 44),
    ("netbios-dd", 45),
    ("netbios-nodetype", 46),
    ("netbios-scope", 47),
    ("x-windows-fs", 48),
    ("x-windows-dm", 49),
    ("lease-time", 51),
    ("message", 56),
    ("max-message-size", 57),
    ("T1", 58),
    ("T2", 59),
    ("vendor-class", 60),
    ("nis+-domain", 64),
    ("nis+-server", 65),
    ("tftp-server", 66),
    ("bootfile-name", 67),
    ("mobile-ip-home", 68),
    ("smtp-server", 69),
    ("pop3-server", 70),
    ("nntp-server", 71),
    ("irc-server", 74),
    ("user-class", 77),
    ("domain-search", 119),
    ("sip-server", 120),
    ("classless-static-route", 121),
    ("tftp-server-address", 150),
    // Not an option: the header's `siaddr` (the next server), as dnsmasq treats it.
    ("server-ip-address", 255),
];

/// Options whose value is a list of IPv4 addresses.
const ADDRESS_LISTS: &[u8] =
    &[1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 28, 41, 42, 44, 45, 48, 49, 65, 68, 69, 70, 71, 72, 73, 74, 75, 76, 150, 255];
const U32S: &[u8] = &[2, 24, 35, 38, 51, 58, 59];
const U16S: &[u8] = &[13, 22, 26, 57];
const U8S: &[u8] = &[19, 20, 23, 27, 29, 30, 31, 34, 36, 37, 39, 46];

/// The code of an option named as Neutron and dnsmasq accept it: a name, a number, either
/// after `option:` (tags before it, `tag:x,option:router`, are read by `tags`).
pub fn option_code(name: &str) -> Option<u8> {
    let name = name.rsplit(',').next().unwrap_or(name).trim();
    let name = name.strip_prefix("option:").unwrap_or(name);
    if let Ok(code) = name.parse::<u8>() {
        return Some(code);
    }
    NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, c)| *c)
}

fn addresses(value: &str) -> Vec<Ipv4Addr> {
    value.split(',').filter_map(|a| a.trim().parse().ok()).collect()
}

/// An option's value as it goes on the wire, by the option's type (`None`: unusable).
fn encode(code: u8, value: &str) -> Option<Vec<u8>> {
    let value = value.trim();
    if ADDRESS_LISTS.contains(&code) {
        let list = addresses(value);
        return (!list.is_empty()).then(|| list.iter().flat_map(|a| a.octets()).collect());
    }
    if U32S.contains(&code) {
        return value.parse::<i64>().ok().map(|v| (v as u32).to_be_bytes().to_vec());
    }
    if U16S.contains(&code) {
        return value.parse::<u16>().ok().map(|v| v.to_be_bytes().to_vec());
    }
    if U8S.contains(&code) {
        return match value {
            "true" | "on" => Some(vec![1]),
            "false" | "off" => Some(vec![0]),
            v => v.parse::<u8>().ok().map(|v| vec![v]),
        };
    }
    if code == 119 {
        // RFC 3397: each domain as DNS labels.
        let mut out = Vec::new();
        for domain in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            for label in domain.trim_end_matches('.').split('.') {
                out.push(label.len().min(63) as u8);
                out.extend(label.bytes().take(63));
            }
            out.push(0);
        }
        return Some(out);
    }
    Some(value.as_bytes().to_vec())
}

/// RFC 3442's encoding of classless routes (options 121 and 249).
pub fn classless_bytes(routes: &[(Ipv4Addr, u8, Ipv4Addr)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (dest, len, via) in routes {
        out.push(*len);
        out.extend(&dest.octets()[..(*len as usize).div_ceil(8)]);
        out.extend(via.octets());
    }
    out
}

/// dnsmasq's `classless-static-route` value: `dest/len,gateway,...`.
fn classless_routes(value: &str) -> Vec<(Ipv4Addr, u8, Ipv4Addr)> {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    parts
        .chunks(2)
        .filter_map(|pair| {
            let net: ipnet::Ipv4Net = pair.first()?.parse().ok()?;
            let via: Ipv4Addr = pair.get(1)?.parse().ok()?;
            Some((net.network(), net.prefix_len(), via))
        })
        .collect()
}

/// Apply the port's IPv4 `extra_dhcp_opts` to its lease: the options the lease computes are
/// replaced, a blank `router` or `classless-static-route` suppresses it, others are added; one
/// with tags is kept apart, encoded, for the requests that set them.
pub(super) fn apply_extra(lease: &mut LeaseV4, port: &LocalPort) {
    for opt in port.extra_dhcp_opts.iter().filter(|o| o.ip_version == 4) {
        let Some(code) = option_code(&opt.opt_name) else { continue };
        let value = opt.opt_value.trim();
        let tags = tags(&opt.opt_name);
        if !tags.is_empty() {
            // Not the exchange's own options, nor the header's next server.
            if matches!(code, 1 | 50 | 51 | 53 | 54 | 55 | 61 | 255) {
                continue;
            }
            let encoded = match code {
                121 | 249 => classless_bytes(&classless_routes(value)),
                _ => match encode(code, value) {
                    Some(encoded) => encoded,
                    None => continue,
                },
            };
            lease.tagged.retain(|t| !(t.option.code == code && t.tags == tags));
            lease.tagged.push(TaggedOption { tags, option: ExtraOption { code, value: encoded } });
            continue;
        }
        match code {
            3 => {
                lease.router = addresses(value).first().copied();
                lease.classless_routes.retain(|(_, len, _)| *len != 0);
                if let Some(router) = lease.router {
                    lease.classless_routes.push((Ipv4Addr::UNSPECIFIED, 0, router));
                }
            }
            121 | 249 => lease.classless_routes = classless_routes(value),
            6 => lease.dns_servers = addresses(value),
            15 => lease.domain = value.to_string(),
            12 => lease.hostname = value.to_string(),
            26 => {
                if let Ok(mtu) = value.parse() {
                    lease.mtu = mtu;
                }
            }
            255 => lease.next_server = addresses(value).first().copied(),
            // Computed from the port, or the DHCP exchange itself.
            1 | 50 | 51 | 53 | 54 | 55 | 61 => {}
            _ => {
                if let Some(encoded) = encode(code, value) {
                    lease.extra.retain(|e| e.code != code);
                    lease.extra.push(ExtraOption { code, value: encoded });
                }
            }
        }
    }
}
